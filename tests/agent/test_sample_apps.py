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
