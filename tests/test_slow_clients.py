"""Slow and idle clients do not hold up anyone else (issue 12).

Measured before: 8 clients dripping headers or a body (2 workers × 4 threads) stopped the service
for everyone, and 16 idle connections caused 8 s timeouts. Target: 200 slow or idle connections
delay a normal call by no more than 100 ms. The real server runs (``bone-cds serve``, one worker
with two threads, fewer threads than slow clients by far).
"""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from urllib.parse import urlsplit

import requests

from hooks.services import services
from tests.factory import hook_request, patient
from tests.trust_helpers import live_server

PV = next(s.id for s in services() if s.hook == "patient-view")


def _timed_calls(base: str, n: int = 7) -> list[float]:
    body = json.dumps(hook_request("patient-view", [patient()]))
    out = []
    with requests.Session() as session:
        for _ in range(n):
            t = time.perf_counter()
            r = session.post(f"{base}/cds-services/{PV}", data=body,
                             headers={"Content-Type": "application/json"}, timeout=5)
            out.append(time.perf_counter() - t)
            assert r.status_code == 200 and r.json()["cards"] == []
    return out


def _slow_peers(base: str, count: int, stop: threading.Event) -> list[socket.socket]:
    """A third idle, a third dripping headers, a third dripping a body, one byte at a time."""
    parts = urlsplit(base)
    socks = []
    for i in range(count):
        s = socket.create_connection((parts.hostname, parts.port), timeout=5)
        if i % 3 == 1:
            s.sendall(b"POST /cds-services/" + PV.encode() + b" HTTP/1.1\r\nHost: x\r\n")
        elif i % 3 == 2:
            s.sendall(b"POST /cds-services/" + PV.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
        socks.append(s)

    def drip() -> None:
        while not stop.wait(0.5):
            for i, s in enumerate(socks):
                try:
                    if i % 3 == 1:
                        s.sendall(b"X")          # never ends its headers
                    elif i % 3 == 2:
                        s.sendall(b" ")          # never ends its body
                except OSError:
                    pass
    threading.Thread(target=drip, daemon=True).start()
    return socks


def test_200_slow_or_idle_connections_do_not_delay_a_normal_call(tmp_path) -> None:
    with live_server(tmp_path, workers=1, threads=2) as server:
        _timed_calls(server.base, 3)                       # warm
        idle = statistics.median(_timed_calls(server.base))
        stop = threading.Event()
        socks = _slow_peers(server.base, 200, stop)
        try:
            time.sleep(1.2)                                 # let the drip run
            loaded = _timed_calls(server.base)
        finally:
            stop.set()
            for s in socks:
                s.close()
        log = server.log()
    assert max(loaded) < 2.0, loaded
    assert statistics.median(loaded) - idle < 0.1, (idle, loaded)
    assert "Traceback" not in log
