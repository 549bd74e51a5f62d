"""A steady client for release tests and benches: calls the sample's order (through the gateway)
without pause from two threads, one keeping its connection alive and one opening a new connection
per request, and counts what it gets: invoice's `Version` per answer, failures with their time."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter

import requests

KINDS = ("keep-alive", "new")


class SteadyClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.versions: Counter[str] = Counter()  # invoice's Version per good answer
        self.counts: Counter[str] = Counter()  # "<kind> ok" / "<kind> failed"
        self.failures: list[str] = []  # "<time> <status or error> <body>", in order
        self.failed_at: list[float] = []  # time.monotonic() of each failure
        self.threads = [threading.Thread(target=self._loop, args=(kind,), daemon=True) for kind in KINDS]

    def _loop(self, kind: str) -> None:
        session = requests.Session() if kind == "keep-alive" else None
        while not self.stop.is_set():
            version, failure = None, ""
            try:
                resp = (session or requests).get(self.url, timeout=5)
                if resp.status_code == 200:
                    version = str(json.loads(resp.text.splitlines()[1])["Version"])
                else:
                    failure = f"{resp.status_code} {resp.text[:200]}"
            except (requests.RequestException, ValueError, IndexError, KeyError) as e:
                failure = f"{type(e).__name__}: {e}"
            with self.lock:
                self.counts[f"{kind} {'failed' if failure else 'ok'}"] += 1
                if failure:
                    self.failures.append(f"{time.time():.3f} {failure}")
                    self.failed_at.append(time.monotonic())
                else:
                    self.versions[str(version)] += 1

    def reset(self) -> None:
        with self.lock:
            self.versions.clear()
            self.counts.clear()
            self.failures.clear()
            self.failed_at.clear()

    def __enter__(self) -> SteadyClient:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)
