"""``cds_service.jsonio.loads``: orjson's speed, the standard library's acceptance (issue "Speed").

Every input must read exactly as ``json.loads`` reads it, including what orjson alone refuses, and
fail with the same exception types, so the route's 400s and the FHIR reader's "invalid-json" stay.
"""

from __future__ import annotations

import json
import math

import pytest

from cds_service import jsonio


@pytest.mark.parametrize("raw", [
    b'{"resourceType": "Observation", "valueQuantity": {"value": 7.6}}',
    b'{"a": [1, 2.50, -0.0, 1e-7, true, false, null, "x\\u00e9\\n"]}',
    b'{"dup": 1, "dup": 2}',                                   # last one wins, as in json
    '{"text": "Kalzium 2,1 mmol/L – niedrig"}'.encode(),
    b'{"max": 18446744073709551615, "min": -9223372036854775808}',   # the 64-bit limits: exact
    b'{"lone": "\\ud800"}',                                     # lone surrogate escape: orjson refuses
    b"[" * 200 + b"]" * 200,
])
def test_reads_what_json_reads(raw: bytes) -> None:
    assert jsonio.loads(raw) == json.loads(raw)
    assert jsonio.loads(raw.decode("utf-8", "surrogatepass")) == json.loads(raw)


def test_integers_beyond_64_bits_read_as_floats() -> None:
    """The one documented difference from json (FHIR integers are 32-bit: invalid either way)."""
    assert jsonio.loads(b'{"big": 123456789012345678901234567890}')["big"] == pytest.approx(1.2345678901234568e29)


def test_nan_and_infinity_read_as_json_does() -> None:
    value = jsonio.loads(b'{"v": NaN, "w": Infinity}')
    assert math.isnan(value["v"]) and value["w"] == math.inf


@pytest.mark.parametrize("raw", [b"", b"{", b'{"a": 1,}', b"nope", b'{"a": 1} trailing'])
def test_not_json_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        jsonio.loads(raw)


def test_nesting_beyond_both_parsers_is_a_recursion_error() -> None:
    """orjson stops at 1,024 levels, json at the interpreter's recursion limit: the route turns
    this into a 400 "nested too deeply"."""
    with pytest.raises(RecursionError):
        jsonio.loads(b"[" * 5000 + b"]" * 5000)


def test_invalid_utf8_is_refused_like_json() -> None:
    with pytest.raises((ValueError, UnicodeDecodeError)):
        jsonio.loads(b'{"a": "\xff"}')


def test_large_body_decoded_with_gc_paused_and_restored() -> None:
    """Issue 11 §3: collection is paused during a large decode, and on again afterwards."""
    import gc
    from unittest import mock

    from cds_service import jsonio
    big = b'{"a": [' + b",".join(b'{"x": 1}' for _ in range(150_000)) + b"]}"
    assert len(big) >= jsonio.PAUSE_GC_BYTES
    seen = []
    real = jsonio._decode
    with mock.patch.object(jsonio, "_decode", lambda d: (seen.append(gc.isenabled()), real(d))[1]):
        assert len(jsonio.loads(big)["a"]) == 150_000
        jsonio.loads(b'{"small": true}')
    assert seen == [False, True] and gc.isenabled()
    gc.disable()
    try:
        jsonio.loads(big)
        assert not gc.isenabled()          # an operator's choice to run without collection is kept
    finally:
        gc.enable()


def test_large_hook_request_is_evaluated_with_gc_paused(monkeypatch) -> None:
    """Issue 11 §3: a request of 10k+ prefetch entries runs with collection paused, then resumed."""
    import gc

    from cds_service import pipeline
    from hooks.services import service_by_id
    from tests.factory import NOW, hook_request, observation, patient
    seen: list[bool] = []
    real = pipeline._evaluate_hook
    monkeypatch.setattr(pipeline, "_evaluate_hook", lambda *a, **k: (seen.append(gc.isenabled()), real(*a, **k))[1])
    monkeypatch.setattr(pipeline, "PAUSE_GC_ENTRIES", 5)
    service = service_by_id("bone-safety-patient-view")
    small = hook_request("patient-view", [patient()])
    big = hook_request("patient-view", [patient()] + [observation("17861-6", 9.4, "mg/dL", "2026-11-01")
                                                      for _ in range(6)])
    pipeline.evaluate_hook(service, small, now=NOW)
    pipeline.evaluate_hook(service, big, now=NOW)
    assert seen == [True, False] and gc.isenabled()


def _gc_seen_by_route(client, monkeypatch, body: bytes) -> tuple[int, list[bool]]:
    import gc

    from cds_service import api
    seen: list[bool] = []
    real = api.evaluate_hook
    monkeypatch.setattr(api, "evaluate_hook", lambda *a, **k: (seen.append(gc.isenabled()), real(*a, **k))[1])
    resp = client.post("/cds-services/bone-safety-patient-view", data=body, content_type="application/json")
    return resp.status_code, seen


def test_route_keeps_collection_paused_through_a_large_request(client, monkeypatch) -> None:
    """Issue 11 §3: a body of PAUSE_GC_BYTES or more is decoded, evaluated and released with
    collection paused (resuming right after the decode would walk the whole document once);
    a small body runs with collection on; either way it is on again after the answer."""
    import gc

    from cds_service import jsonio
    from tests.factory import hook_request, observation, patient
    body = json.dumps(hook_request("patient-view", [patient()] + [
        observation("17861-6", 9.4, "mg/dL", "2026-11-01") for _ in range(3)])).encode()
    monkeypatch.setattr(jsonio, "PAUSE_GC_BYTES", len(body) + 1)
    status, seen = _gc_seen_by_route(client, monkeypatch, body)
    assert status == 200 and seen == [True] and gc.isenabled()
    monkeypatch.setattr(jsonio, "PAUSE_GC_BYTES", len(body))
    status, seen = _gc_seen_by_route(client, monkeypatch, body)
    assert status == 200 and seen == [False] and gc.isenabled()


def test_route_resumes_collection_after_a_large_bad_request(client, monkeypatch) -> None:
    """A large body that is refused (400: not JSON, or not a hook request) leaves collection on."""
    import gc

    from cds_service import jsonio
    monkeypatch.setattr(jsonio, "PAUSE_GC_BYTES", 10)
    for body in (b'{"hook": "patient-view", "truncated', b'{"hook": "patient-view", "context": 7}'):
        status, seen = _gc_seen_by_route(client, monkeypatch, body)
        assert status == 400 and gc.isenabled()
