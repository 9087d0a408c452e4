"""A request must arrive whole within ``BONE_CDS_REQUEST_READ_TIMEOUT`` (issue 12).

uvicorn times out idle keep-alive connections between requests only: a client that opened a
connection and never completed its request head kept it open for ever. On the real server
(``bone-cds serve``, a short setting), over raw sockets: idle, a partial head, a body dripped
steadily, and a partial second request on a kept-alive connection are all closed at the limit;
a slow client that completes within it is answered. Time is measured from the connection's
opening (or the next request's first byte), so the bound is on the total.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from cds_service.config import ConfigError, Settings
from hooks.services import services
from tests.factory import hook_request, patient
from tests.trust_helpers import live_server

PV = next(s.id for s in services() if s.hook == "patient-view")
LIMIT = 1.5


def _connect(base: str) -> socket.socket:
    parts = urlsplit(base)
    s = socket.create_connection((parts.hostname, parts.port), timeout=10)
    s.settimeout(10)
    return s


def _until_closed(s: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and when it closed (monotonic)."""
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic()


def _one_response(s: socket.socket) -> bytes:
    """One response with a Content-Length, read from a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += s.recv(65536)
    return head + b"\r\n\r\n" + body


def _status_and_json(data: bytes) -> tuple[int, dict]:
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def _request(body: bytes, *, keep_alive: bool = True) -> bytes:
    return (f"POST /cds-services/{PV} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{'' if keep_alive else 'Connection: close' + chr(13) + chr(10)}\r\n"
            ).encode() + body


def test_connections_without_a_complete_request_are_closed_at_the_read_timeout(tmp_path) -> None:
    body = json.dumps(hook_request("patient-view", [patient()])).encode()
    with live_server(tmp_path, workers=1, threads=2, env={"BONE_CDS_REQUEST_READ_TIMEOUT": str(LIMIT)}) as server:
        opened = time.monotonic()
        idle = _connect(server.base)
        head = _connect(server.base)
        head.sendall(f"POST /cds-services/{PV} HTTP/1.1\r\nHost: x\r\nX-Secret-Header: sentinel-7731".encode())
        drip = _connect(server.base)
        drip.sendall(_request(body)[:-len(body)] + body[:1])    # the head, then one body byte
        stop = threading.Event()

        def dripping() -> None:                                 # steady progress: a byte every 0.25 s
            for b in body[1:]:
                if stop.wait(0.25):
                    return
                try:
                    drip.sendall(bytes([b]))
                except OSError:
                    return
        threading.Thread(target=dripping, daemon=True).start()
        results = {}
        threads = [threading.Thread(target=lambda n=n, s=s: results.__setitem__(n, _until_closed(s)))
                   for n, s in (("idle", idle), ("head", head), ("drip", drip))]
        for t in threads:
            t.start()

        # a slow client that finishes in time is answered (head in three parts over 0.6 s)
        slow = _connect(server.base)
        request = _request(body, keep_alive=False)
        for part in (request[:20], request[20:60], request[60:]):
            slow.sendall(part)
            time.sleep(0.3)
        answer, _ = _until_closed(slow)
        assert _status_and_json(answer)[0] == 200

        # a kept-alive connection: the first request is answered, a partial second one is cut
        kept = _connect(server.base)
        kept.sendall(_request(body))
        assert _one_response(kept).startswith(b"HTTP/1.1 200")
        second_at = time.monotonic()
        kept.sendall(f"POST /cds-services/{PV} HTTP/1.1\r\nHost: x\r\n".encode())
        kept_data, kept_closed = _until_closed(kept)

        for t in threads:
            t.join(15)
        stop.set()
        log = server.log()
    for s in (idle, head, drip, slow, kept):
        s.close()
    assert set(results) == {"idle", "head", "drip"}, f"never closed: {sorted({'idle', 'head', 'drip'} - set(results))}"
    idle_data, idle_closed = results["idle"]
    assert idle_data == b"" and LIMIT - 0.2 <= idle_closed - opened < LIMIT + 2.0   # silently
    for name in ("head", "drip"):
        data, closed = results[name]
        assert LIMIT - 0.2 <= closed - opened < LIMIT + 2.0, name
        status, answer_body = _status_and_json(data)
        assert status == 408 and answer_body["error"] == "request_timeout", name
    assert _status_and_json(kept_data)[0] == 408 and LIMIT - 0.2 <= kept_closed - second_at < LIMIT + 2.0
    assert "sentinel-7731" not in log and "Traceback" not in log


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "nan", "inf", "3601"])
def test_the_read_timeout_setting_is_validated(bad) -> None:
    with pytest.raises(ConfigError, match="BONE_CDS_REQUEST_READ_TIMEOUT"):
        Settings.from_env({"BONE_CDS_REQUEST_READ_TIMEOUT": bad})


def test_the_read_timeout_defaults_to_30_seconds() -> None:
    assert Settings.from_env({}).request_read_timeout == 30.0
    assert Settings.from_env({"BONE_CDS_REQUEST_READ_TIMEOUT": "2.5"}).request_read_timeout == 2.5
