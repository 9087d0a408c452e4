"""A bounded closed-loop HTTP load: ``concurrency`` client threads, each with its own pooled
``requests.Session`` (keep-alive), sharing a fixed number of POSTs of one body; stops early
after ``time_limit`` seconds. Latency per request, throughput = completed / wall time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from .stats import summary_ms

HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


@dataclass
class LoadResult:
    url: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)   # seconds, successful requests
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    wall: float = 0.0
    stopped_early: bool = False
    warmup_calls: int = 0          # untimed calls sent before the clock started (each client's warm-up)

    def summary(self) -> dict[str, Any]:
        ok = len(self.latencies)
        return {"concurrency": self.concurrency, "requests": ok + self.errors, "ok": ok, "errors": self.errors,
                "error_samples": self.error_samples[:3], "wall_s": self.wall,
                "throughput_rps": ok / self.wall if self.wall > 0 else 0.0,
                "stopped_early": self.stopped_early, "latency_ms": summary_ms(self.latencies)}


def _session() -> requests.Session:
    s = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
    s.mount("http://", adapter)
    return s


def run(url: str, body: bytes | Callable[[], bytes], *, concurrency: int, requests_total: int,
        time_limit: float, warmup_per_client: int = 2, timeout: float = 60.0) -> LoadResult:
    """POST ``body`` to ``url`` ``requests_total`` times from ``concurrency`` threads (bounded in time).

    ``body`` may be a function giving the next body (thread-safe), e.g. a new patient each call;
    it is called before the clock starts."""
    next_body: Callable[[], bytes] = body if callable(body) else (lambda: body)  # type: ignore[assignment]
    result = LoadResult(url, concurrency)
    lock = threading.Lock()
    remaining = [max(1, requests_total)]
    stop_at = [0.0]
    started = [0.0]

    def go() -> None:   # runs once, when every client has warmed up, before any is released
        started[0] = time.perf_counter()
        stop_at[0] = time.monotonic() + time_limit

    barrier = threading.Barrier(concurrency + 1, action=go)
    finished: list[float] = []

    aborted = threading.Event()   # set when the caller is interrupted: clients stop taking work

    def take() -> bool:
        with lock:
            if remaining[0] <= 0 or aborted.is_set():
                return False
            if time.monotonic() > stop_at[0]:
                result.stopped_early = True
                return False
            remaining[0] -= 1
            return True

    def client() -> None:
        with _session() as s:
            try:
                for _ in range(warmup_per_client):   # open the keep-alive connection, warm the worker
                    with lock:
                        result.warmup_calls += 1
                    s.post(url, data=next_body(), headers=HEADERS, timeout=timeout).content
            except requests.RequestException:
                pass
            try:
                barrier.wait(timeout=120)
            except threading.BrokenBarrierError:
                return
            lat: list[float] = []
            errors: list[str] = []
            while take():
                data = next_body()
                t0 = time.perf_counter()
                try:
                    resp = s.post(url, data=data, headers=HEADERS, timeout=timeout)
                    resp.content  # noqa: B018 - read the whole answer
                    dt = time.perf_counter() - t0
                    if resp.status_code == 200:
                        lat.append(dt)
                    else:
                        errors.append(f"HTTP {resp.status_code}: {resp.text[:200]}")
                except requests.RequestException as exc:
                    errors.append(f"{type(exc).__name__}: {str(exc)[:160]}")
            with lock:
                result.latencies.extend(lat)
                result.errors += len(errors)
                result.error_samples.extend(errors[:3])
                finished.append(time.perf_counter())

    threads = [threading.Thread(target=client, name=f"load-{i}", daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    try:
        try:
            barrier.wait(timeout=120)
        except threading.BrokenBarrierError:
            pass
        for t in threads:
            t.join(timeout=time_limit + timeout + 5)
    except BaseException:   # Ctrl-C / SIGTERM: let the clients finish their request in flight and stop
        aborted.set()
        barrier.abort()
        raise
    result.wall = (max(finished) if finished else time.perf_counter()) - (started[0] or time.perf_counter())
    return result
