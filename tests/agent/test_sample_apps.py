"""The seed's three Flask services (services/app.py), over real HTTP between them."""
from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator

import pytest
from waitress.server import create_server

from support.net import free_port
from support.paths import SERVICES

APP_FILE = SERVICES / "app.py"
_spec = importlib.util.spec_from_file_location("sample_app", APP_FILE)
sample_app = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(sample_app)


@pytest.fixture
def tax_url() -> Iterator[str]:
    server = create_server(sample_app.create_app("tax", env={}), host="127.0.0.1", port=free_port())
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        thread.join(timeout=5)


def test_tax_answers_its_own_line() -> None:
    response = sample_app.create_app("tax", env={}).test_client().get("/")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == '{"Service": "Tax", "Version": 1.0}\n'


def test_invoice_appends_tax_through_the_seed_variable(tax_url: str) -> None:
    client = sample_app.create_app("invoice", env={"TAX_SVC_URL": tax_url}).test_client()
    assert client.get("/").get_data(as_text=True).splitlines() == [
        '{"Service": "Invoice", "Version": 1.0}', '{"Service": "Tax", "Version": 1.0}']


def test_nomad_upstream_address_is_used_when_the_seed_variable_is_absent(tax_url: str) -> None:
    addr = tax_url.removeprefix("http://")
    client = sample_app.create_app("invoice", env={"NOMAD_UPSTREAM_ADDR_tax": addr}).test_client()
    assert client.get("/").status_code == 200


def test_unreachable_upstream_is_a_one_line_502_naming_it() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    response = sample_app.create_app("order", env={"INV_SVC_URL": dead}).test_client().get("/")
    assert response.status_code == 502
    body = response.get_data(as_text=True)
    assert body.count("\n") == 1 and "Traceback" not in body
    assert json.loads(body)["upstream"] == "invoice"


def test_a_failing_hop_further_down_is_named_in_the_502(tax_url: str) -> None:
    # invoice answers 502 about tax; order's 502 carries that along.
    invoice = create_server(sample_app.create_app("invoice", env={"TAX_SVC_URL": f"http://127.0.0.1:{free_port()}"}),
                            host="127.0.0.1", port=free_port())
    thread = threading.Thread(target=invoice.run, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{invoice.effective_port}"
        response = sample_app.create_app("order", env={"INV_SVC_URL": url}).test_client().get("/")
    finally:
        invoice.close()
        thread.join(timeout=5)
    assert response.status_code == 502
    message = json.loads(response.get_data(as_text=True))["error"]
    assert "invoice answered 502" in message and "tax" in message


def test_health() -> None:
    response = sample_app.create_app("order", env={}).test_client().get("/health")
    assert response.status_code == 200 and response.json["status"] == "ok"


def test_version_comes_from_the_environment() -> None:
    assert sample_app.create_app("tax", env={"VERSION": "2.0"}).test_client().get("/").json == {
        "Service": "Tax", "Version": 2.0}
    assert sample_app.create_app("tax", env={"VERSION": "2.0-rc1"}).test_client().get("/").json == {
        "Service": "Tax", "Version": "2.0-rc1"}


@pytest.mark.parametrize(("rate", "failed"), [("0.5", 50), ("0.1", 10), ("0", 0), ("1", 100), ("0.25", 25)])
def test_fail_rate_fails_exactly_that_share_of_requests(rate: str, failed: int) -> None:
    client = sample_app.create_app("tax", env={"FAIL_RATE": rate, "VERSION": "3.0"}).test_client()
    statuses = [client.get("/").status_code for _ in range(100)]
    assert statuses.count(500) == failed and statuses.count(200) == 100 - failed
    assert client.get("/health").status_code == 200  # a failing version still passes its checks


def test_a_failed_request_says_it_was_injected_and_by_which_version() -> None:
    response = sample_app.create_app("tax", env={"FAIL_RATE": "1", "VERSION": "3.0"}).test_client().get("/")
    assert response.status_code == 500
    assert response.json["Version"] == 3.0 and "FAIL_RATE=1" in response.json["error"]


@pytest.mark.parametrize("bad", ["half", "1.5", "-0.1", "nan"])
def test_a_bad_fail_rate_stops_the_app_with_one_line(bad: str) -> None:
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(APP_FILE), "tax"], env={**os.environ, "FAIL_RATE": bad, "PORT": "0"},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.strip() == f"FAIL_RATE: {bad!r} is not a number between 0 and 1"
