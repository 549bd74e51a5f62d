"""The mesh's traffic over the last minute, for the dev agent's GET /v1/nomadmesh/traffic.

Envoy's counters only grow; rates need two reads some time apart. While someone asks (the UI, `nomadmesh
top`), one thread samples every running Nomad-run sidecar every `SAMPLE_S` seconds (its Envoy admin
`/stats`, JSON with cumulative histogram buckets, read from inside the allocation's namespace as
sidecar_stats does) and keeps a ring of samples per sidecar covering `WINDOW_S`. The maths is the
product's (`nomadmesh.mesh.traffic`). Nobody asking for `IDLE_S`: the thread ends and the rings are
dropped; the next request starts it again (its first answers cover a shorter window, which they say).
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from nomadmesh.agent.context import AgentContext
from nomadmesh.agent.nomad.platform import Platform
from nomadmesh.agent.nomad.sidecar_stats import Located, Unavailable, fetch_in_netns, locate
from nomadmesh.mesh import traffic

log = logging.getLogger("nomadmesh.agent.traffic")

SAMPLE_S = 2.0
WINDOW_S = traffic.WINDOW_S
IDLE_S = 120.0
FETCH_WORKERS = 4
SOURCE = "dev agent: the sidecars' Envoy admin stats"


@dataclass
class _Ring:
    where: Located
    samples: collections.deque[traffic.Sample]


class TrafficSampler:
    def __init__(self, ctx: AgentContext, sample_s: float = SAMPLE_S, window_s: float = WINDOW_S,
                 idle_s: float = IDLE_S):
        self.ctx = ctx
        self.platform = Platform(ctx)
        self.sample_s, self.window_s, self.idle_s = sample_s, window_s, idle_s
        self._lock = threading.Lock()
        self._rings: dict[str, _Ring] = {}
        self._asked = 0.0
        self._thread: threading.Thread | None = None
        self._sampled = threading.Event()

    def figures(self, window_s: float | None = None) -> dict[str, Any]:
        """The figures over the last `window_s` (at most the ring's span), starting the sampler if idle."""
        self._ensure_running()
        now = time.monotonic()
        window = min(window_s or self.window_s, self.window_s)
        with self._lock:
            rings = list(self._rings.values())
        windows = []
        for ring in rings:
            pair = traffic.window_of(list(ring.samples), now, window)
            if pair:
                windows.append(traffic.SidecarWindow(ring.where.service, ring.where.upstreams, *pair))
        body = traffic.figures(windows, SOURCE).to_json()
        body["sampling_s"] = self.sample_s
        body["sidecars"] = len(rings)
        return body

    def _ensure_running(self) -> None:
        with self._lock:
            self._asked = time.monotonic()
            if self._thread is not None and self._thread.is_alive():
                return
            self._sampled.clear()
            self._thread = threading.Thread(target=self._run, name="traffic-sampler", daemon=True)
            self._thread.start()
        self._sampled.wait(self.sample_s * 2)  # one sample, so the next answer can have rates

    def _run(self) -> None:
        with ThreadPoolExecutor(max_workers=FETCH_WORKERS, thread_name_prefix="traffic-fetch") as pool:
            while True:
                with self._lock:
                    if time.monotonic() - self._asked > self.idle_s:
                        self._rings.clear()
                        self._thread = None
                        return
                started = time.monotonic()
                try:
                    self._sample(pool)
                except Exception:  # a sampling round must never end the thread: log it, try next round
                    log.exception("traffic sampling round failed")
                self._sampled.set()
                time.sleep(max(0.05, self.sample_s - (time.monotonic() - started)))

    def _sample(self, pool: ThreadPoolExecutor) -> None:
        ids = [r.key for r in self.ctx.state.records("service") if (r.value or {}).get("Kind") == "connect-proxy"]
        found: dict[str, tuple[Located, traffic.Sample]] = {}
        for sidecar_id, got in zip(ids, pool.map(self._read, ids), strict=True):
            if got is not None:
                found[sidecar_id] = got
        keep = int(self.window_s / self.sample_s) + 2
        with self._lock:
            # A sidecar no longer registered loses its ring; one that missed a round (a slow admin) keeps it.
            for gone in set(self._rings) - set(ids):
                del self._rings[gone]
            for sidecar_id, (where, sample) in found.items():
                ring = self._rings.get(sidecar_id)
                if ring is None or ring.where.alloc_id != where.alloc_id:
                    ring = self._rings[sidecar_id] = _Ring(where, collections.deque(maxlen=keep))
                ring.where = where
                ring.samples.append(sample)

    def _read(self, sidecar_id: str) -> tuple[Located, traffic.Sample] | None:
        try:
            where = locate(self.ctx, self.platform, sidecar_id)
            url = (f"http://{where.admin}/stats?format=json&histogram_buckets=cumulative"
                   f"&filter={quote(traffic.STATS_FILTER, safe='')}")
            body = fetch_in_netns(where.netns, url)
            at = time.monotonic()
            counters, histograms = traffic.parse_envoy_json(body)
        except Unavailable:
            return None  # not running here (yet): no sample
        except (ValueError, KeyError, TypeError) as e:
            log.warning("traffic: sidecar %s: Envoy's stats are not JSON as expected: %s", sidecar_id, e)
            return None
        return where, traffic.Sample(at, counters, histograms)
