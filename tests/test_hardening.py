"""Issue 12 items closed so far (each test fails on the code before the change)."""

from __future__ import annotations

import logging
import uuid

import responses

from cds_service.prefetch import FetchSettings, gather
from hooks.services import services
from tests.factory import hook_request, patient
from tests.test_prefetch import BASE, OBS, PATIENT, TEMPLATES, bundle, make_request
from tests.trust_helpers import drip_server

PV, OSEL, OSIGN = (s.id for s in services())


@responses.activate
def test_next_link_climbing_out_of_the_fhir_base_is_not_followed() -> None:
    """A ``link[next]`` of ``{base}/../admin/secret`` stays on the host but leaves the FHIR base:
    never followed with the bearer token (PF-7)."""
    responses.get(f"{BASE}/Observation", json=bundle(OBS, next_url=f"{BASE}/../admin/secret"))
    responses.get(f"{BASE}/MedicationRequest", json=bundle(next_url=f"{BASE}/%2e%2e/admin/secret"))
    responses.get(f"{BASE}/Patient/pat-7Q9Z", json=PATIENT)
    result = gather(TEMPLATES, make_request(), FetchSettings(allowed_servers=(BASE,)))
    assert all("admin" not in c.request.url for c in responses.calls)
    assert result.keys["observations"].resources == [OBS]
    assert result.incomplete == {"observations": "max-pages", "medicationRequests": "max-pages"}


@responses.activate
def test_next_link_inside_the_base_with_dot_segments_is_followed() -> None:
    responses.get(f"{BASE}/Observation", json=bundle(OBS, next_url=f"{BASE}/x/../Observation?page=2"))
    responses.get(f"{BASE}/MedicationRequest", json=bundle())
    responses.get(f"{BASE}/Patient/pat-7Q9Z", json=PATIENT)
    gather(TEMPLATES, make_request(), FetchSettings(allowed_servers=(BASE,)))
    assert sum("/Observation" in c.request.url for c in responses.calls) >= 2   # followed


def test_feedback_batch_over_the_limit_is_a_413_with_a_json_body(client) -> None:
    item = {"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-11-23T15:00:00Z"}
    r = client.post(f"/cds-services/{OSIGN}/feedback", json={"feedback": [item] * 1001})
    assert r.status_code == 413 and r.get_json()["error"] == "too_many_feedback_items"
    ok = client.post(f"/cds-services/{OSIGN}/feedback", json={"feedback": [item] * 1000})
    assert ok.status_code == 200


def test_hook_instance_is_logged_at_most_64_characters(client, caplog) -> None:
    body = hook_request("patient-view", [patient()])
    body["hookInstance"] = "h" * 100_000
    with caplog.at_level(logging.INFO, logger="cds_service"):
        assert client.post(f"/cds-services/{PV}", json=body).status_code == 200
    line = next(r for r in caplog.records if r.getMessage() == "hook answered")
    assert line.event["hookInstance"] == "h" * 64


def test_serve_uses_no_shared_gunicorn_control_socket() -> None:
    """Every gunicorn binds ~/.gunicorn/gunicorn.ctl by default: stopping one instance removed
    another's. ``bone-cds serve`` (and the benchmark's servers, same configuration) bind none."""
    from cds_service.cli import gunicorn_server
    server = gunicorn_server(lambda environ, start: [], host="127.0.0.1", port=0, workers=1, threads=1)
    assert server.cfg.control_socket_disable is True


def _raw_http(base: str, raw: bytes) -> bytes:
    import socket
    from urllib.parse import urlsplit
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(raw)
        out = b""
        while True:
            data = sock.recv(65536)
            if not data:
                return out
            out += data


def test_malformed_chunk_size_is_a_400_on_hook_and_feedback_routes_never_a_500(tmp_path) -> None:
    """Measured: a chunk size of ``zz`` gave 500 on the hook and feedback routes, and gunicorn's
    warning quoted the request bytes in the log. Now 400 with a JSON body; nothing of the body
    reaches the log."""
    import json as _json

    from tests.trust_helpers import live_server
    with live_server(tmp_path, workers=1, threads=2) as server:
        for path in (f"/cds-services/{PV}", f"/cds-services/{OSIGN}/feedback"):
            raw = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                   "zzPIDSENTINEL7731\r\n{}\r\n0\r\n\r\n").encode()
            answer = _raw_http(server.base, raw)
            status = answer.split(b"\r\n", 1)[0]
            assert b" 400 " in status, answer[:300]
            body = answer.split(b"\r\n\r\n", 1)[1]
            assert _json.loads(body)["error"] == "invalid_body"
        log = server.log()
    assert "PIDSENTINEL7731" not in log


# --------------------------------------------------------------------------- slow and big FHIR answers

def test_a_dripping_fhir_server_is_abandoned_at_the_deadline_and_threads_stay_flat() -> None:
    """Measured: against a server dripping its body, worker threads went from 3 to 124 after 15
    calls and ~120 connections stayed open. Reads now stop at the deadline and close."""
    import threading
    import time as _time

    from cds_service.prefetch import new_session
    srv, open_conns, stop = drip_server()
    base = f"http://127.0.0.1:{srv.getsockname()[1]}/fhir"
    settings = FetchSettings(allowed_servers=(base,), read_timeout=1.0, deadline=0.4)
    session = new_session()
    try:
        before = threading.active_count()
        for _ in range(6):
            t = _time.monotonic()
            result = gather(TEMPLATES, make_request(server=base), settings, session)
            assert _time.monotonic() - t < 1.5
            assert set(result.unavailable) == set(TEMPLATES)
        _time.sleep(0.6)
        assert threading.active_count() <= before + 3
        assert open_conns[0] == 0   # every abandoned read closed its connection
    finally:
        stop.set()
        srv.close()


@responses.activate
def test_an_answer_inflating_past_the_byte_limit_is_not_read_whole() -> None:
    import gzip
    import json as _json
    huge = _json.dumps(bundle(*[OBS] * 20_000)).encode()
    responses.get(f"{BASE}/Observation", body=gzip.compress(huge), headers={"Content-Encoding": "gzip"},
                  content_type="application/fhir+json")
    responses.get(f"{BASE}/MedicationRequest", json=bundle())
    responses.get(f"{BASE}/Patient/pat-7Q9Z", json=PATIENT)
    limit = len(huge) // 4
    assert len(gzip.compress(huge)) < limit   # the compressed answer is under the limit
    result = gather(TEMPLATES, make_request(), FetchSettings(allowed_servers=(BASE,), max_read_bytes=limit))
    assert result.unavailable == {"observations": "too-large"}
    ok = gather(TEMPLATES, make_request(), FetchSettings(allowed_servers=(BASE,), max_read_bytes=len(huge) + 1))
    assert len(ok.keys["observations"].resources) == 1   # de-duplicated by id, but read whole


def test_read_byte_limit_setting_is_validated() -> None:
    import pytest
    with pytest.raises(ValueError, match="BONE_CDS_FHIR_MAX_READ_BYTES"):
        FetchSettings.from_env({"BONE_CDS_FHIR_MAX_READ_BYTES": "lots"})
    assert FetchSettings.from_env({"BONE_CDS_FHIR_MAX_READ_BYTES": "1000"}).max_read_bytes == 1000


def test_server_warnings_never_quote_request_bytes(tmp_path) -> None:
    """gunicorn's "Invalid request" warnings quoted header and body bytes; the server's warnings
    about malformed requests now name no request data, and each is answered with a JSON 400."""
    from tests.trust_helpers import live_server
    with live_server(tmp_path, workers=1, threads=2) as server:
        for raw in (b"POST /cds-services HTTP/1.1\r\nHost: x\r\nContent-Length: 12PIDSENTINEL7731\r\n\r\n",
                    b"GET /PIDSENTINEL7731\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header PIDSENTINEL7731: y\r\n\r\n"):
            answer = _raw_http(server.base, raw)
            assert b" 400 " in answer.split(b"\r\n", 1)[0], answer[:200]
            assert b'"error": "invalid_body"' in answer and b"PIDSENTINEL" not in answer
        import time as _time
        _time.sleep(0.3)
        log = server.log()
    assert "Invalid HTTP request" in log     # the warning itself is kept
    assert "PIDSENTINEL7731" not in log


def test_record_text_never_becomes_a_link_image_or_html_in_a_card(client) -> None:
    """Issue 12, measured: a Condition text of ``[Renew order](https://evil…)`` became a live link
    in the card detail. Record text stays text; the plain summary is not backslash-escaped."""
    import re

    from tests.factory import CALCIUM_SERUM, ICD10, condition, draft, observation
    evil = "osteonecrosis of jaw [Renew order](https://evil.example/x) <img src=x onerror=alert(1)> www.evil.example"
    onj = condition("M87.180", ICD10, onset="2023-04-12", text=evil)
    body = hook_request("order-sign", [patient(), onj, observation(CALCIUM_SERUM, 9.4, "mg/dL", "2026-11-20")],
                        drafts=[draft()])
    cards = client.post(f"/cds-services/{OSIGN}", json=body).get_json()["cards"]
    card = next(c for c in cards if c["source"]["topic"]["code"] == "AR-ONJ-HISTORY")
    for c in cards:
        detail = c.get("detail", "")
        assert not re.search(r"(?<!\\)\]\(", detail) and "<img" not in detail
        assert "https://" not in detail and "www.evil" not in detail
    assert "Renew order" in card["detail"] or "Renew order" in card["summary"]
