"""The client filesystem API (/v1/client/fs/{ls,stat,cat,readat,stream}) over real HTTP, with python-nomad
where it covers the call, on an in-process agent running a real raw_exec task. Every hostile path
(`..`, symlinks out of the allocation, a link into secrets/) is refused with Nomad's text."""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import nomad.api.exceptions as nx
import pytest
import requests

from support.agents import InProcessAgent
from support.waiting import wait_until

JOB = """
job "files" {
  group "files" {
    task "maker" {
      driver = "raw_exec"
      config {
        command = "python3"
        args    = ["-c", "%s"]
      }
    }
  }
}
"""
# Lays out the task's files, then says so on stdout and stays up.
MAKER = ";".join([
    "import os,time",
    "d=os.environ['NOMAD_TASK_DIR']",
    "open(d+'/hello.txt','w').write('hello world\\n')",
    "open(d+'/data.json','w').write('{}')",
    "os.mkdir(d+'/sub')",
    "open(os.environ['NOMAD_SECRETS_DIR']+'/token','w').write('s3cret')",
    "os.symlink('../../../..',d+'/up')",
    "os.symlink('/etc',d+'/etc')",
    "os.symlink('../../alloc/data',d+'/shared')",
    "os.symlink('../secrets/token',d+'/peek')",
    "open(os.environ['NOMAD_ALLOC_DIR']+'/data/note','w').write('shared note')",
    "print('ready',flush=True)",
    "time.sleep(3600)",
])


@pytest.fixture
def alloc(agent: InProcessAgent) -> dict[str, Any]:
    job = agent.client.jobs.parse(JOB % MAKER.replace("\\", "\\\\").replace('"', '\\"'), canonicalize=True)
    agent.client.jobs.register_job({"Job": job})

    def ready() -> dict[str, Any] | None:
        for stub in agent.client.job.get_allocations("files"):
            if stub["ClientStatus"] == "running" and requests.get(
                    f"{agent.addr}/v1/client/fs/logs/{stub['ID']}",
                    params={"task": "maker", "type": "stdout", "plain": "true"}).text == "ready\n":
                return dict(stub)
        return None

    return wait_until(ready, 20)  # the agent fixture stops the task when it closes


def get(agent: InProcessAgent, what: str, alloc_id: str, **params: Any) -> requests.Response:
    return requests.get(f"{agent.addr}/v1/client/fs/{what}/{alloc_id}", params=params, timeout=10)


def error(r: requests.Response) -> tuple[int, str]:
    return r.status_code, r.text.rstrip("\n")  # the agent ends error texts with a newline, as Nomad does


def test_ls_and_stat_describe_the_allocation_dir(agent: InProcessAgent, alloc: dict[str, Any]) -> None:
    top = agent.client.client.ls.list_files(alloc["ID"])  # path "/" is the allocation dir itself
    assert {e["Name"] for e in top} == {"alloc", "maker"}
    assert all(e["IsDir"] and e["FileMode"].startswith("d") for e in top)
    local = {e["Name"]: e for e in agent.client.client.ls.list_files(alloc["ID"], "maker/local")}
    assert local["hello.txt"]["Size"] == 12 and local["hello.txt"]["FileMode"] == "-rw-r--r--"
    assert local["hello.txt"]["ModTime"].endswith("Z") and not local["hello.txt"]["IsDir"]
    assert local["up"]["FileMode"].startswith("L")  # symlinks listed, not followed (Go's os.ReadDir)
    assert local["sub"]["IsDir"]

    info = agent.client.client.stat.stat_file(alloc["ID"], "/maker/local/hello.txt")
    assert info["Name"] == "hello.txt" and info["Size"] == 12 and info["ContentType"] == "text/plain; charset=utf-8"
    assert agent.client.client.stat.stat_file(alloc["ID"], "maker/local/data.json")["ContentType"] == "application/json"
    followed = agent.client.client.stat.stat_file(alloc["ID"], "maker/local/shared/note")  # a link inside the alloc
    assert followed["Size"] == len("shared note")

    missing = get(agent, "stat", alloc["ID"], path="maker/local/nope")
    assert missing.status_code == 404 and "no such file or directory" in missing.text
    assert get(agent, "ls", alloc["ID"], path="nope").status_code == 404
    no_path = get(agent, "stat", alloc["ID"])
    assert error(no_path) == (400, "must provide a file name")
    unknown = get(agent, "ls", "0b1c2d3e-0000-0000-0000-000000000000")
    assert error(unknown) == (404, 'Unknown allocation "0b1c2d3e-0000-0000-0000-000000000000"')
    with pytest.raises(nx.URLNotFoundNomadException):
        agent.client.client.ls.list_files(alloc["ID"], "maker/none")


@pytest.mark.parametrize("path", ["..", "/../..", "maker/../../x", "maker/local/up", "maker/local/up/etc",
                                  "maker/local/etc/passwd", "maker/local/etc", "alloc/../../../etc/passwd"])
def test_every_way_out_of_the_allocation_dir_is_refused(agent: InProcessAgent, alloc: dict[str, Any],
                                                         path: str) -> None:
    for what, status in (("ls", 500), ("stat", 500), ("cat", 400), ("stream", 400)):
        r = get(agent, what, alloc["ID"], path=path, follow="false")
        assert error(r) == (status, "Path escapes the alloc directory"), (what, path)
    r = get(agent, "readat", alloc["ID"], path=path, offset=0)
    assert error(r) == (400, "Path escapes the alloc directory")


def test_cat_and_readat_serve_bytes_but_never_secrets(agent: InProcessAgent, alloc: dict[str, Any]) -> None:
    assert agent.client.client.cat.read_file(alloc["ID"], "maker/local/hello.txt") == "hello world\n"
    assert agent.client.client.read_at.read_file_offset(alloc["ID"], 6, 5, "maker/local/hello.txt") == "world"
    whole = get(agent, "readat", alloc["ID"], path="maker/local/hello.txt", offset=6)
    assert whole.text == "world\n" and whole.headers["X-Content-Type-Options"] == "nosniff"
    bad_offset = get(agent, "readat", alloc["ID"], path="maker/local/hello.txt", offset="x")
    assert error(bad_offset) == (
        500, 'error parsing offset: strconv.ParseInt: parsing "x": invalid syntax')
    is_dir = get(agent, "cat", alloc["ID"], path="maker/local")
    assert error(is_dir) == (400, 'file "maker/local" is a directory')
    for path in ("maker/secrets/token", "maker/local/peek"):  # by name, and through a link planted by the task
        r = get(agent, "cat", alloc["ID"], path=path)
        assert error(r) == (500, f"Reading secret file prohibited: {path}")
    # stat is allowed there, as in Nomad
    assert get(agent, "stat", alloc["ID"], path="maker/secrets/token").status_code == 200


def frames_of(raw: bytes) -> list[dict[str, Any]]:
    decoder, out, text = json.JSONDecoder(), [], raw.decode()
    pos = 0
    while pos < len(text):
        doc, pos = decoder.raw_decode(text, pos)
        out.append(doc)
    return out


def test_stream_frames_follow_truncate_and_delete(agent: InProcessAgent, alloc: dict[str, Any]) -> None:
    once = get(agent, "stream", alloc["ID"], path="maker/local/hello.txt", follow="false", origin="end", offset=6)
    assert frames_of(once.content) == [{"Offset": 12, "Data": base64.b64encode(b"world\n").decode(),
                                        "File": "maker/local/hello.txt"}]
    assert error(get(agent, "stream", alloc["ID"], path="x", origin="middle")) == (400, "origin must be start or end")

    target = Path(agent.ctx.config.alloc_root) / alloc["ID"] / "maker" / "local" / "grow.log"
    target.write_text("one\n")
    with requests.get(f"{agent.addr}/v1/client/fs/stream/{alloc['ID']}", stream=True, timeout=10,
                      params={"path": "maker/local/grow.log"}) as r:  # follow is Nomad's default
        chunks = r.iter_content(chunk_size=None)
        assert json.loads(next(chunks)) == {"Offset": 4, "Data": base64.b64encode(b"one\n").decode(),
                                            "File": "maker/local/grow.log"}
        assert next(chunks) == b"{}"  # a heartbeat while nothing is written
        with target.open("a") as f:
            f.write("two\n")
        assert json.loads(next(chunks))["Data"] == base64.b64encode(b"two\n").decode()
        target.write_text("")  # truncated
        assert json.loads(next(chunks)).get("FileEvent") == "file truncated"
        target.unlink()
        rest = [json.loads(c) for c in chunks if c != b"{}"]
        assert rest[-1].get("FileEvent") == "file deleted"  # and the stream ended


def test_logs_refuses_bad_requests_with_nomads_texts(agent: InProcessAgent, alloc: dict[str, Any]) -> None:
    def logs(**params: Any) -> tuple[int, str]:
        return error(get(agent, "logs", alloc["ID"], **params))

    assert logs(type="stdout") == (400, "must provide task name")
    assert logs(task="maker") == (400, "must provide log type (stdout/stderr)")
    assert logs(task="maker", type="stdin") == (400, "must provide log type (stdout/stderr)")
    assert logs(task="maker", type="stdout", origin="middle") == (400, "origin must be start or end")
    assert logs(task="maker", type="stdout", follow="yes") == (
        400, 'failed to parse follow field to boolean: strconv.ParseBool: parsing "yes": invalid syntax')
    assert logs(task="maker", type="stdout", offset="x") == (
        400, 'error parsing offset: strconv.ParseInt: parsing "x": invalid syntax')
    assert logs(task="other", type="stdout") == (400, 'unknown task name "other"')
