"""Request bodies that are too big, too deep or too strange never crash a worker (REQ-10, ERR-4).

``BONE_CDS_MAX_BODY_BYTES`` caps the body (413 JSON), whether it comes with a Content-Length or
chunked; JSON nested deeper than the parser allows is a 400; nesting the parser accepts, put
anywhere in a request (prefetch, draft orders, extensions, feedback), never becomes a 500.
"""

from __future__ import annotations

import io
import json
from typing import Any, Iterator

import pytest
import requests

from cds_service.app import create_app
from cds_service.config import Settings
from hooks.services import services
from tests.factory import DMAB60, NOW, draft, hook_request, patient, searchset
from tests.trust_helpers import live_server

PV, OSEL, OSIGN = (s.id for s in services())
LIMIT = 4096
ROUTES = [
    f"/cds-services/{PV}",
    f"/cds-services/{OSEL}",
    f"/cds-services/{OSIGN}",
    f"/cds-services/{OSIGN}/feedback",
]


@pytest.fixture
def small_app(tmp_path):
    settings = Settings.from_env(
        {"BONE_CDS_DATA_DIR": str(tmp_path / "data"), "BONE_CDS_MAX_BODY_BYTES": str(LIMIT)}
    )
    return create_app(settings, clock=lambda: NOW)


def assert_json_error(r, status: int, error: str | None = None) -> dict:
    assert r.status_code == status, r.get_data(as_text=True)[:500]
    assert r.mimetype == "application/json"
    body = r.get_json()
    assert set(body) >= {"error", "message"} and isinstance(body["message"], str)
    if error:
        assert body["error"] == error
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    return body


def padded(size: int) -> bytes:
    """A valid hook request of about ``size`` bytes (padding in an extension)."""
    body = hook_request("order-sign", [patient()], drafts=[draft(DMAB60)])
    body["extension"] = {"org.example.padding": ""}
    raw = json.dumps(body)
    body["extension"]["org.example.padding"] = "x" * max(0, size - len(raw))
    return json.dumps(body).encode()


# ---- size -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ROUTES)
def test_body_over_the_limit_is_413_json(small_app, path) -> None:
    r = small_app.test_client().post(path, data=padded(LIMIT + 1), content_type="application/json")
    body = assert_json_error(r, 413, "body_too_large")
    assert str(LIMIT) in body["message"]


def test_body_at_the_limit_is_read(small_app) -> None:
    raw = padded(LIMIT)
    assert len(raw) == LIMIT
    r = small_app.test_client().post(f"/cds-services/{OSIGN}", data=raw, content_type="application/json")
    assert r.status_code == 200


def _chunked(client, path: str, raw: bytes):
    """A body without Content-Length from a server that terminates the stream (chunked)."""
    r = client.post(
        path,
        input_stream=io.BytesIO(raw),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert r.request.content_length is None  # Werkzeug ignores Content-Length with chunked
    return r


def test_chunked_body_over_the_limit_is_413(small_app) -> None:
    r = _chunked(small_app.test_client(), f"/cds-services/{OSIGN}", padded(LIMIT * 3))
    assert_json_error(r, 413, "body_too_large")


def test_chunked_body_under_the_limit_is_read(small_app) -> None:
    r = _chunked(small_app.test_client(), f"/cds-services/{OSIGN}", padded(LIMIT - 100))
    assert r.status_code == 200


def test_max_body_bytes_is_checked_at_start_up() -> None:
    from cds_service.config import ConfigError

    for bad in ("ten", "-1", "100"):
        with pytest.raises(ConfigError, match="BONE_CDS_MAX_BODY_BYTES"):
            Settings.from_env({"BONE_CDS_MAX_BODY_BYTES": bad})


def test_huge_flat_json_under_the_default_limit_is_answered(client) -> None:
    """Default limit 10 MiB: a 9 MB array in an extension is read and ignored (HOOK-1, REQ-9)."""
    body = hook_request("order-sign", [patient()], drafts=[draft(DMAB60)])
    body["extension"] = {"org.example.big": list(range(1_200_000))}
    raw = json.dumps(body).encode()
    assert 8_000_000 < len(raw) < 10 * 1024 * 1024
    r = client.post(f"/cds-services/{OSIGN}", data=raw, content_type="application/json")
    assert r.status_code == 200


# ---- depth ----------------------------------------------------------------------------------


def nested_list(depth: int, leaf: Any = "x") -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def nested_dict(depth: int, leaf: Any = "x") -> Any:
    for _ in range(depth):
        leaf = {"a": leaf}
    return leaf


def dumps_deep(value: Any) -> str:
    """``json.dumps`` for values deeper than the recursion limit allows it to write."""
    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 250_000))
    try:
        return json.dumps(value)
    finally:
        sys.setrecursionlimit(old)


@pytest.mark.parametrize("path", ROUTES + ["/cds-services"])
@pytest.mark.parametrize("opener, closer", [("[", "]"), ('{"a":', "}")], ids=["arrays", "objects"])
def test_100k_nesting_is_400(client, path, opener, closer) -> None:
    raw = opener * 100_000 + "1" + closer * 100_000
    if path == "/cds-services":
        r = client.get(path, data=raw)  # a body on GET is ignored
        assert r.status_code == 200
        return
    r = client.post(path, data=raw, content_type="application/json")
    assert_json_error(r, 400, "invalid_json")


def json_depth(value: Any) -> int:
    """Levels of objects/arrays (iterative: works on values deeper than the recursion limit)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth + 1)
            stack.extend((c, depth + 1) for c in (node.values() if isinstance(node, dict) else node))
    return deepest


@pytest.mark.parametrize("path", ROUTES)
def test_nesting_limit_is_max_json_depth(client, path) -> None:
    """MAX_JSON_DEPTH levels are read; one more is a 400 naming the limit."""
    from cds_service.json_body import MAX_JSON_DEPTH

    for extra, expect_400 in ((0, False), (1, True)):
        body = {"feedback": []} if path.endswith("/feedback") else {"hook": "x"}
        body["extension"] = {"org.example.deep": nested_list(MAX_JSON_DEPTH - 2 + extra)}
        assert json_depth(body) == MAX_JSON_DEPTH + extra
        r = client.post(path, json=body)
        if expect_400:
            assert str(MAX_JSON_DEPTH) in assert_json_error(r, 400, "invalid_json")["message"]
        else:  # read, then refused for what it says, not for its depth
            assert r.status_code == 400 and "nested" not in r.get_json()["message"]


def _extension_chain(depth: int) -> list:
    """Valid FHIR: an Extension whose ``extension`` holds an Extension ... ``depth`` times (each
    level is a model the FHIR parser validates recursively)."""
    ext: dict = {"url": "http://example.org/leaf", "valueString": "v"}
    for i in range(depth):
        ext = {"url": f"http://example.org/level-{i}", "extension": [ext]}
    return [ext]


@pytest.mark.parametrize("depth", [5, 20, 40, 46, 47, 60, 400])
def test_valid_but_deep_fhir_never_500(client, depth) -> None:
    """Each Extension level costs the FHIR parser several Python frames: up to the nesting limit
    it parses, past it the request is a 400 before any parsing."""
    body = hook_request("order-sign", [patient()], drafts=[draft(DMAB60)])
    body["prefetch"]["patient"]["extension"] = _extension_chain(depth)
    body["context"]["draftOrders"]["entry"][0]["resource"]["extension"] = _extension_chain(depth)
    r = client.post(f"/cds-services/{OSIGN}", data=dumps_deep(body), content_type="application/json")
    if json_depth(body) <= 100:
        assert r.status_code == 200, r.get_data(as_text=True)
    else:
        assert_json_error(r, 400, "invalid_json")


DEPTHS = [50, 300, 600, 900, 960, 985, 995, 2000]


def _place(body: dict, where: str, deep: Any) -> dict:
    if where == "prefetch-resource":
        body["prefetch"]["patient"]["extension"] = [
            {"url": "http://example.org/x", "valueString": "v", "extension": deep}
        ]
    elif where == "prefetch-bundle-entry":
        body["prefetch"]["conditions"] = searchset([{"resourceType": "Condition", "id": "c1", "code": deep}])
    elif where == "draft-order":
        body["context"]["draftOrders"]["entry"][0]["resource"]["note"] = [{"text": "n", "extension": deep}]
    elif where == "context-field":
        body["context"]["org.example.new"] = deep
    elif where == "top-extension":
        body["extension"] = {"org.example.deep": deep}
    return body


@pytest.mark.parametrize(
    "where", ["prefetch-resource", "prefetch-bundle-entry", "draft-order", "context-field", "top-extension"]
)
@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("shape", [nested_list, nested_dict], ids=["lists", "dicts"])
def test_deep_structures_inside_a_hook_request_never_500(client, where, depth, shape) -> None:
    for hook, service in (("order-sign", OSIGN), ("patient-view", PV)):
        if hook == "patient-view" and where == "draft-order":
            continue
        body = _place(hook_request(hook, [patient()], drafts=[draft(DMAB60)]), where, shape(depth))
        r = client.post(f"/cds-services/{service}", data=dumps_deep(body), content_type="application/json")
        if r.status_code != 200:
            assert_json_error(r, 400)


def _bundle_chain(depth: int) -> dict:
    inner: dict = {"resourceType": "Condition", "id": "deep", "code": {"text": "x"}}
    for _ in range(depth):
        inner = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": inner}]}
    return inner


def _contained_chain(depth: int) -> dict:
    res = draft(DMAB60)
    inner: dict = {"resourceType": "Medication", "id": "m0"}
    for i in range(depth):
        inner = {"resourceType": "Medication", "id": f"m{i + 1}", "contained": [inner]}
    res["contained"] = [inner]
    return res


@pytest.mark.parametrize("depth", [10, 100, 250, 320, 330, 600])
def test_bundles_inside_bundles_never_500(client, depth) -> None:
    """The chart unpacks Bundles recursively: a Bundle chain as deep as JSON allows is no crash."""
    body = hook_request("order-sign", [patient()], drafts=[draft(DMAB60)])
    body["prefetch"]["conditions"] = _bundle_chain(depth)
    r = client.post(f"/cds-services/{OSIGN}", data=dumps_deep(body), content_type="application/json")
    if r.status_code != 200:
        assert_json_error(r, 400)


@pytest.mark.parametrize("depth", [10, 100, 300, 480, 490, 700])
def test_contained_chains_in_draft_orders_never_500(client, depth) -> None:
    """The normaliser walks ``contained`` recursively (IOP-1 repairs)."""
    body = hook_request("order-sign", [patient()])
    body["context"]["draftOrders"]["entry"] = [{"resource": _contained_chain(depth)}]
    r = client.post(f"/cds-services/{OSIGN}", data=dumps_deep(body), content_type="application/json")
    if r.status_code != 200:
        assert_json_error(r, 400)


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("shape", [nested_list, nested_dict], ids=["lists", "dicts"])
def test_deep_feedback_entries_never_500(client, depth, shape) -> None:
    entry = {
        "card": "c-1",
        "outcome": "overridden",
        "outcomeTimestamp": "2026-11-23T15:05:00Z",
        "extension": {"org.example.deep": shape(depth)},
    }
    r = client.post(
        f"/cds-services/{OSIGN}/feedback",
        data=dumps_deep({"feedback": [entry]}),
        content_type="application/json",
    )
    if r.status_code != 200:
        assert_json_error(r, 400)


# ---- the real server ------------------------------------------------------------------------


def _chunks(raw: bytes, size: int = 1024) -> Iterator[bytes]:
    for i in range(0, len(raw), size):
        yield raw[i : i + size]


def test_gunicorn_chunked_bodies_obey_the_limit(tmp_path) -> None:
    """Under gunicorn a chunked body (no Content-Length) is capped like any other, and a deep
    body is a 400 from the worker, which keeps serving."""
    with live_server(tmp_path, workers=1, threads=2, env={"BONE_CDS_MAX_BODY_BYTES": str(LIMIT)}) as server:
        url = f"{server.base}/cds-services/{OSIGN}"
        headers = {"Content-Type": "application/json"}
        ok = requests.post(url, data=_chunks(padded(LIMIT - 200)), headers=headers, timeout=10)
        assert ok.status_code == 200, ok.text
        assert ok.request.headers.get("Transfer-Encoding") == "chunked"
        big = requests.post(url, data=_chunks(padded(LIMIT * 4)), headers=headers, timeout=10)
        assert big.status_code == 413 and big.json()["error"] == "body_too_large"
        deep = requests.post(url, data="[" * 2000 + "]" * 2000, headers=headers, timeout=10)
        assert deep.status_code == 400 or deep.status_code == 413
        assert requests.get(f"{server.base}/healthz", timeout=5).status_code == 200
