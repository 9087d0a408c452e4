"""Fuzzing the real server's HTTP framing (issue 12: "malformed chunked framing at the HTTP
level, not only through the Flask test client"). Deterministic and bounded like tests/test_fuzz.py."""

from __future__ import annotations

import json

import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from hooks.services import services

PV, OSEL, OSIGN = (s.id for s in services())


CHUNK_SIZES = st.sampled_from([b"zz", b"-1", b"1x", b"", b" ", b"0x10", b"ffffffffffffffffffff",
                               b"5;ext=\x00", b"\xff", b"1\r\n\r\n", b"10"]) \
    | st.binary(min_size=1, max_size=12).filter(lambda b: b"\r" not in b and b"\n" not in b)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from tests.trust_helpers import live_server
    with live_server(tmp_path_factory.mktemp("fuzz-live"), workers=1, threads=2) as server:
        yield server


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=CHUNK_SIZES, payload=st.binary(max_size=20),
       path=st.sampled_from([f"/cds-services/{PV}", f"/cds-services/{OSIGN}/feedback"]))
def test_malformed_chunked_framing_on_the_real_server_is_a_json_4xx(live, size, payload, path) -> None:
    """At the HTTP level, not through the test client: whatever the chunk framing, the server
    answers a 4xx with a JSON error body (or, for framing it accepts, the app's own answer), never
    a 5xx, and the worker survives. A request whose framing declares more body than it sends
    before the client stops is incomplete: the connection is closed without an answer."""
    import socket
    from urllib.parse import urlsplit
    parts = urlsplit(live.base)
    raw = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode() + size + b"\r\n" + payload + b"\r\n0\r\n\r\n"
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    if not answer:
        # the server may close without an answer only when the framing declares more body than
        # was sent before the client stopped sending (an incomplete request: nobody to answer)
        declared = size.split(b";", 1)[0].strip()
        assert declared and all(c in b"0123456789abcdefABCDEF" for c in declared) \
            and int(declared, 16) > len(payload), (size, payload)
        assert requests.get(f"{live.base}/healthz", timeout=5).status_code == 200
        return
    status_line = answer.split(b"\r\n", 1)[0]
    status = int(status_line.split()[1]) if len(status_line.split()) > 1 else 0
    assert 200 <= status < 500, answer[:300]
    if status >= 400:
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1] or b"{}")
        assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), answer[:300]
    assert requests.get(f"{live.base}/healthz", timeout=5).status_code == 200
