"""Intention writes never lose an update: CAS retries under concurrency, and other tools' data survives."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from nomadmesh.deploy import intentions as di
from nomadmesh.errors import TargetError
from support.paths import REPO

KIND = "service-intentions"


FOREIGN = {
    "Meta": {"owner": "terraform", "ticket": "SEC-12"},
    "Sources": [{"Name": "billing", "Action": "deny", "Description": "written by terraform",
                 "Namespace": "default", "Type": "consul"}],
}


@pytest.mark.alone  # twenty CLI processes at once
def test_twenty_concurrent_cli_processes_all_land(module_agent, consul) -> None:
    consul.config.set(KIND, "tax", FOREIGN)
    cmd = [sys.executable, "-m", "nomadmesh", "intent"]
    addr = ["--consul-addr", module_agent.consul_addr]
    procs = [
        subprocess.Popen([*cmd, "allow" if n % 2 else "deny", f"caller-{n:02d}", "tax", *addr], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for n in range(20)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        results.append((p.returncode, out, err))
    assert all(code == 0 for code, _, _ in results), results
    assert all(out.startswith("Created: caller-") for _, out, _ in results)

    entry = consul.config.get(KIND, "tax")
    by_name = {s["Name"]: s for s in entry["Sources"]}
    assert set(by_name) == {"billing"} | {f"caller-{n:02d}" for n in range(20)}
    assert all(by_name[f"caller-{n:02d}"]["Action"] == ("allow" if n % 2 else "deny") for n in range(20))
    # What the other tool wrote is untouched.
    assert entry["Meta"] == FOREIGN["Meta"]
    assert by_name["billing"]["Description"] == "written by terraform"
    assert by_name["billing"]["Action"] == "deny"


def test_concurrent_writes_and_deletes_on_one_entry(consul) -> None:
    """Threads adding new sources and removing old ones at once: the final entry is exactly the result."""
    for n in range(10):
        di.set_intention(consul, f"old-{n}", "invoice", "allow")
    errors: list[BaseException] = []

    def work(fn, *args) -> None:
        try:
            fn(*args)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(di.set_intention, consul, f"new-{n}", "invoice", "deny"))
               for n in range(10)]
    threads += [threading.Thread(target=work, args=(di.delete_intention, consul, f"old-{n}", "invoice"))
                for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert {i.source for i in di.list_intentions(consul)} == {f"new-{n}" for n in range(10)}


def test_our_writes_keep_foreign_sources_meta_and_fields(consul) -> None:
    foreign = {"Meta": {"owner": "terraform"}, "Sources": [
        {"Name": "billing", "Action": "deny", "Description": "tf", "LegacyMeta": {"k": "v"}}]}
    consul.config.set(KIND, "tax", foreign)

    assert di.set_intention(consul, "invoice", "tax", "allow").kind == "created"
    assert di.set_intention(consul, "billing", "tax", "allow").kind == "updated"  # replaces only the decision
    entry = consul.config.get(KIND, "tax")
    billing = next(s for s in entry["Sources"] if s["Name"] == "billing")
    assert entry["Meta"] == {"owner": "terraform"}
    assert billing["Action"] == "allow"
    assert billing["Description"] == "tf" and billing["LegacyMeta"] == {"k": "v"}

    assert di.delete_intention(consul, "invoice", "tax") is True
    entry = consul.config.get(KIND, "tax")
    assert [s["Name"] for s in entry["Sources"]] == ["billing"] and entry["Meta"] == {"owner": "terraform"}


def test_an_unchanged_write_does_not_touch_the_entry(consul) -> None:
    di.set_intention(consul, "invoice", "tax", "deny", "why")
    before = consul.config.get(KIND, "tax")["ModifyIndex"]
    assert di.set_intention(consul, "invoice", "tax", "deny").kind == "unchanged"
    assert consul.config.get(KIND, "tax")["ModifyIndex"] == before


def test_description_empty_string_clears_it(consul) -> None:
    di.set_intention(consul, "invoice", "tax", "deny", "why")
    di.set_intention(consul, "invoice", "tax", "deny", "")
    assert "Description" not in consul.config.get(KIND, "tax")["Sources"][0]


def test_last_source_deleted_removes_the_entry_and_missing_is_false(consul) -> None:
    di.set_intention(consul, "*", "*", "deny")
    assert consul.config.get(KIND, "*") is not None
    assert di.delete_intention(consul, "*", "*") is True
    assert consul.config.get(KIND, "*") is None
    assert di.delete_intention(consul, "*", "*") is False


def test_a_write_expecting_what_was_read_refuses_a_change_made_meanwhile(consul) -> None:
    # The UI computes an L7 rule list from what it read; a change made since must not be overwritten.
    read = di.set_intention(consul, "invoice", "tax", "deny").intention
    di.set_intention(consul, "invoice", "tax", "deny", "someone else")
    with pytest.raises(di.ChangedMeanwhile, match=r"invoice => tax changed since it was read \(now deny\)"):
        di.set_intention(consul, "invoice", "tax", "allow", expected=read)
    assert consul.config.get(KIND, "tax")["Sources"][0]["Action"] == "deny"
    with pytest.raises(di.ChangedMeanwhile, match="now deny"):
        di.set_intention(consul, "invoice", "tax", "allow", expected=None)  # "there was none"
    now = di.get_intention(consul, "invoice", "tax")
    assert di.set_intention(consul, "invoice", "tax", "allow", expected=now).kind == "updated"


def test_refused_writes_name_consul_and_its_reason(consul) -> None:
    # A refusal (400: "maybe" is no action) reaches the caller as one TargetError line with Consul's text.
    refused = r"Consul at http://127\.0\.0\.1:\d+ refused the request \(400\): .*allow or deny"
    with pytest.raises(TargetError, match=refused), di.consul_errors(consul):
        consul.config.set(KIND, "tax", {"Sources": [{"Name": "a", "Action": "maybe"}]})


# --- the retry loop itself (pure: injected sleep and randomness) ----------------------------------


def test_retry_cas_backs_off_with_jitter_until_done() -> None:
    sleeps: list[float] = []
    answers = iter([(False, None), (False, None), (True, "ok")])
    assert di.retry_cas(lambda: next(answers), "x", sleep=sleeps.append, rand=lambda: 0.5) == "ok"
    assert sleeps == [0.5 * di.BACKOFF_BASE_S, 0.5 * di.BACKOFF_BASE_S * 2]


def test_retry_cas_is_bounded_and_capped() -> None:
    sleeps: list[float] = []
    with pytest.raises(TargetError, match="writing a => b: gave up after 12 attempts"):
        di.retry_cas(lambda: (False, None), "writing a => b", attempts=12, sleep=sleeps.append, rand=lambda: 1.0)
    assert len(sleeps) == 12 and max(sleeps) == di.BACKOFF_CAP_S
