"""Fuzzing every route: no input makes the service answer 5xx (REQ-10, ERR-4, DESIGN.md "a 5xx
only for our own bugs, and those are tested away").

Hypothesis posts generated bodies through the Flask test client — random JSON, raw bytes, and
near-valid hook requests and feedback with fields removed, retyped, emptied, nulled, oversized or
filled with text no database can store — to discovery, each hook service and each feedback route.
Every answer must be below 500; a 4xx must be JSON ``{"error": str, "message": str}``.

Deterministic (``derandomize=True``, no example database) and bounded (``MAX_EXAMPLES`` per route
family). Regressions found here are pinned in ``test_fuzz_regressions`` below.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any, Iterator

import pytest
import responses
from hypothesis import HealthCheck, given, settings, strategies as st

from cds_service.app import create_app
from cds_service.config import Settings
from hooks.services import services
from tests.factory import (
    ALENDRONATE,
    CALCIUM_SERUM,
    DMAB60,
    EGFR,
    NOW,
    VITD,
    ZOL5,
    administration,
    condition,
    dispense,
    draft,
    hook_request,
    observation,
    patient,
    procedure,
    request,
    statement,
)

PV, OSEL, OSIGN = (s.id for s in services())
HOOKS = {"patient-view": PV, "order-select": OSEL, "order-sign": OSIGN}
MAX_EXAMPLES = 150
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


FHIR = "https://fhir.fuzz.example.org/r4"


def _fhir_server(req) -> tuple[int, dict, str]:
    """The allowed FHIR server (mocked): the read or search answered from ``_resources()``."""
    rtype = req.path_url.split("?", 1)[0].split("/")[2]
    found = [r for r in _resources() if r["resourceType"] == rtype]
    if "?" not in req.path_url:
        return (200, {}, json.dumps(found[0])) if found else (404, {}, "{}")
    return (
        200,
        {},
        json.dumps(
            {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in found]}
        ),
    )


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """One app for all examples (feedback accumulates in its store). One FHIR server is allowed
    and mocked; any other network call fails the example (responses refuses unknown URLs)."""
    data = tmp_path_factory.mktemp("fuzz")
    app = create_app(
        Settings.from_env({"BONE_CDS_DATA_DIR": str(data), "BONE_CDS_ALLOWED_FHIR_SERVERS": FHIR}),
        clock=lambda: NOW,
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback(responses.GET, re.compile(re.escape(FHIR) + r"/.*"), callback=_fhir_server)
        yield app.test_client()


def check(r) -> None:
    """The contract: never 5xx; every 4xx is a JSON error body."""
    text = r.get_data(as_text=True)
    assert r.status_code < 500, f"{r.status_code}: {text[:800]}"
    if r.status_code >= 400:
        assert r.mimetype == "application/json", text[:300]
        body = json.loads(text)
        assert (
            isinstance(body, dict)
            and isinstance(body.get("error"), str)
            and isinstance(body.get("message"), str)
        )
    elif r.status_code != 204:
        json.loads(text)


def post(client, path: str, body: Any) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()
    check(client.post(path, data=raw, content_type="application/json"))


# ---- strategies -------------------------------------------------------------------------------

ODD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\ud800",
        "\udfff",
        "\u202e",
        "é" * 3,
        "null",
        "[]",
        "{}",
        "Patient/",
        "/",
        "Bundle",
        "OperationOutcome",
        "draft",
        "2026-02-30",
        "2026-11-23T25:61:61Z",
        "-1",
        "1e309",
        "NaN",
        "x" * 5000,
        "\n\r\t",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | ODD_TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(
        st.text(max_size=12)
        | st.sampled_from(
            [
                "resourceType",
                "id",
                "entry",
                "resource",
                "status",
                "code",
                "coding",
                "system",
                "valueQuantity",
                "value",
                "unit",
                "effectiveDateTime",
                "subject",
                "reference",
            ]
        ),
        children,
        max_size=5,
    ),
    max_leaves=25,
)


def _resources() -> list[dict[str, Any]]:
    return [
        patient(),
        administration(DMAB60, "2026-05-20", dose_mg=60),
        dispense(ALENDRONATE, "2026-10-01", days_supply=28),
        statement(ZOL5, "2025-01-01"),
        request(DMAB60, "2026-05-20", dose_mg=60, period=(6, "mo")),
        observation(CALCIUM_SERUM, 7.9, "mg/dL", "2026-11-20"),
        observation(EGFR, 25, "mL/min/{1.73_m2}", "2026-11-01"),
        observation(VITD, 12, "ng/mL", "2026-10-01"),
        condition("109359008", text="ONJ", onset="2020-01-01"),
        procedure("34043003", when="2026-06-01"),
    ]


def base_documents() -> dict[str, list[dict[str, Any]]]:
    """Valid bodies per route family, to be mutated."""
    docs: dict[str, list[dict[str, Any]]] = {}
    for hook in HOOKS:
        drafts = [
            draft(DMAB60, dose_mg=60, period=(6, "mo"), reason=[("http://snomed.info/sct", "64859006")]),
            draft(ZOL5, dose_mg=5),
        ]
        full = hook_request(hook, _resources(), drafts=drafts)
        auth = {
            "access_token": "t0k3n.abc-_~+/=",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "s",
            "patient": "pat-1",
        }
        fetched = hook_request(hook, [], drafts=drafts, prefetch=False)
        fetched.update(fhirServer=FHIR, fhirAuthorization=auth)
        refused = hook_request(hook, [], drafts=drafts, prefetch=False)
        refused.update(fhirServer="https://not-allowed.example.org/fhir", fhirAuthorization=auth)
        partial = copy.deepcopy(full)
        partial["prefetch"]["observations"] = {"resourceType": "OperationOutcome", "issue": []}
        partial["prefetch"]["conditions"] = None
        del partial["prefetch"]["procedures"]
        docs[hook] = [full, fetched, refused, partial]
    docs["feedback"] = [
        {
            "feedback": [
                {
                    "card": "c-1",
                    "outcome": "overridden",
                    "outcomeTimestamp": "2026-11-23T15:05:00Z",
                    "overrideReason": {
                        "reason": {"system": "urn:x", "code": "not-relevant"},
                        "userComment": "n",
                    },
                },
                {
                    "card": "c-2",
                    "outcome": "accepted",
                    "outcomeTimestamp": "2026-11-23T15:05:00.5+01:00",
                    "acceptedSuggestions": [{"id": "s-1"}, {"id": "s-2"}],
                },
            ]
        }
    ]
    return docs


DOCS = base_documents()


def _paths(doc: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _get(doc: Any, path: tuple) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _set(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


MUTATIONS = [
    "remove",
    "retype",
    "null",
    "empty",
    "odd-text",
    "oversize",
    "wrap-in-list",
    "unwrap",
    "duplicate",
    "deep",
]


@st.composite
def mutated(draw, family: str) -> Any:
    """A valid document of ``family`` with 1–4 mutations at random places."""
    doc = copy.deepcopy(draw(st.sampled_from(DOCS[family])))
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(MUTATIONS))
        current = _get(doc, path)
        if op == "remove" and path:
            del _get(doc, path[:-1])[path[-1]]
        elif op == "retype":
            doc = _set(doc, path, draw(JSON.filter(lambda v: type(v) is not type(current))))
        elif op == "null":
            doc = _set(doc, path, None)
        elif op == "empty":
            doc = _set(doc, path, draw(st.sampled_from(["", [], {}, 0])))
        elif op == "odd-text":
            doc = _set(doc, path, draw(ODD_TEXT))
        elif op == "oversize":
            doc = _set(
                doc,
                path,
                draw(
                    st.sampled_from(
                        ["y" * 200_000, 10**400 // 10**380, 1e308, -1e308, list(range(3000)), [current] * 200]
                    )
                ),
            )
        elif op == "wrap-in-list":
            doc = _set(doc, path, [current])
        elif op == "unwrap" and isinstance(current, list) and current:
            doc = _set(doc, path, current[0])
        elif op == "duplicate" and isinstance(current, list) and current:
            current.append(copy.deepcopy(current[0]))
        elif op == "deep":
            nested: Any = current
            for _ in range(draw(st.integers(1, 60))):
                nested = [nested] if draw(st.booleans()) else {"extension": nested}
            doc = _set(doc, path, nested)
    return doc


RAW = st.binary(max_size=200) | st.sampled_from(
    [
        b"",
        b" ",
        b"null",
        b"[]",
        b"{}",
        b"\xff\xfe\x00{",
        b'{"a":1}{',
        b'{"hook": "\\ud800"}',
        b"\xef\xbb\xbf{}",
        b"1" * 5000,
        b'{"feedback": [' + b"{}, " * 1000 + b"{}]}",
    ]
)


# ---- properties -------------------------------------------------------------------------------


@pytest.mark.parametrize("hook", list(HOOKS))
@FUZZ
@given(data=st.data())
def test_hook_services_never_5xx(client, hook, data) -> None:
    body = data.draw(st.one_of(mutated(hook), mutated(hook), mutated(hook), JSON, RAW), label="body")
    # a call to the wrong service with a valid body of another hook, now and then
    path = f"/cds-services/{HOOKS[hook]}"
    post(client, path, body)


@pytest.mark.parametrize("service", list(HOOKS.values()))
@FUZZ
@given(data=st.data())
def test_feedback_routes_never_5xx(client, service, data) -> None:
    body = data.draw(st.one_of(mutated("feedback"), mutated("feedback"), JSON, RAW), label="body")
    post(client, f"/cds-services/{service}/feedback", body)


@FUZZ
@given(
    body=JSON | RAW,
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]),
    path=st.sampled_from(
        [
            "/cds-services",
            "/cds-services/",
            f"/cds-services/{OSIGN}",
            f"/cds-services/{PV}/feedback",
            "/cds-services/nope",
            "/cds-services/nope/feedback",
            "/healthz",
            "/",
            "/x/%00/%ff",
            "/cds-services/%ED%A0%80",
            "/cds-services/" + "a" * 3000,
        ]
    ),
    query=st.text(max_size=20),
)
def test_discovery_and_every_path_never_5xx(client, body, method, path, query) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.open(path, method=method, data=raw, query_string={"q": query}, content_type="application/json")
    check(r)


# ---- regressions found by the fuzzer ------------------------------------------------------------


def _hook_call(hook: str, mutate, prefetch: bool = True) -> dict[str, Any]:
    body = hook_request(hook, _resources(), drafts=[draft(DMAB60, dose_mg=60)], prefetch=prefetch)
    mutate(body)
    return body


def _order_sign(mutate) -> dict[str, Any]:
    return _hook_call("order-sign", mutate)


def _allowed_server(token: str):
    def mutate(body: dict[str, Any]) -> None:
        body.pop("prefetch", None)
        body.update(
            fhirServer=FHIR,
            fhirAuthorization={
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "patient/*.read",
                "subject": "s",
            },
        )

    return mutate


def _contained_chain(body: dict[str, Any]) -> None:
    chain: list[Any] = []
    for i in range(300):
        chain = [{"resourceType": "Medication", "id": f"m{i}", "contained": chain}]
    body["context"]["draftOrders"]["entry"][0]["resource"]["contained"] = chain


REGRESSIONS = {
    # a lone surrogate echoed in an error message could not be encoded as UTF-8
    "surrogate in hook name": (
        f"/cds-services/{OSIGN}",
        b'{"hook": "\\ud800", "hookInstance": "x", "context": {}}',
    ),
    "surrogate in service id": ("/cds-services/%ED%A0%80", b"{}"),
    # a lone surrogate in a prefetch token (context.patientId) broke URL quoting in the prefetch
    "surrogate in patientId": (
        f"/cds-services/{OSIGN}",
        json.dumps(_order_sign(lambda b: b["context"].update(patientId="\ud800"))).encode(),
    ),
    # stricter since: NUL in a context id
    "NUL in userId": (
        f"/cds-services/{PV}",
        json.dumps(
            _hook_call("patient-view", lambda b: b["context"].update(userId="Practitioner/\x00"))
        ).encode(),
    ),
    # a token that cannot go into an HTTP header broke the FHIR read (non-latin-1, CR/LF)
    "non-ASCII access token": (
        f"/cds-services/{OSIGN}",
        json.dumps(_order_sign(_allowed_server("tök€n"))).encode(),
    ),
    "CRLF in access token": (
        f"/cds-services/{OSIGN}",
        json.dumps(_order_sign(_allowed_server("a\r\nX: y"))).encode(),
    ),
    # feedback text no database can store
    "NUL in feedback card": (
        f"/cds-services/{OSIGN}/feedback",
        b'{"feedback": [{"card": "a\\u0000", "outcome": "overridden", '
        b'"outcomeTimestamp": "2026-11-23T15:05:00Z"}]}',
    ),
    # JSON deeper than the FHIR parser's recursion allows (RecursionError in fhir.resources)
    "deep contained chain": (f"/cds-services/{OSIGN}", json.dumps(_order_sign(_contained_chain)).encode()),
}


@pytest.mark.parametrize("name", list(REGRESSIONS))
def test_fuzz_regressions(client, name) -> None:
    path, raw = REGRESSIONS[name]
    r = client.post(path, data=raw, content_type="application/json")
    check(r)
    assert 400 <= r.status_code < 500


def test_json_response_never_fails_on_text_it_cannot_encode(app) -> None:
    """Defence in depth: a lone surrogate in an answer is sent \\u-escaped, not as a 500."""
    from cds_service.api import json_response

    with app.app_context():
        r = json_response({"error": "x", "message": "bad \ud800 value"}, 400)
    assert json.loads(r.get_data()) == {"error": "x", "message": "bad \ud800 value"}


# ---- malformed FHIR server URLs, and malformed HTTP framing on a real server (issue 12) --------

URL_PIECES = st.sampled_from(["http://", "https://", "ftp://", "http:/", "//", "[", "]", "[::1", "::1]",
                              "127.0.0.1", ":", ":99999", ":-1", "@", "%", "%zz", "/fhir", "/../", "?", "#",
                              " ", "\x00", "é", "xn--", "localhost", "fhir.example.org"])
MALFORMED_URLS = st.lists(URL_PIECES, min_size=1, max_size=7).map("".join) | st.text(max_size=40)


@FUZZ
@given(server=MALFORMED_URLS, hook=st.sampled_from(list(HOOKS)), with_token=st.booleans())
def test_malformed_fhir_server_urls_never_5xx_and_never_fetch(client, server, hook, with_token) -> None:
    """``fhirServer: "http://[::1/fhir"`` gave a 500 (issue 12): any such URL is a 400 or "not
    allowed", and nothing is fetched (responses refuses every URL it does not know)."""
    body = hook_request(hook, _resources(), drafts=[draft(DMAB60)], prefetch=False)
    body["fhirServer"] = server
    if with_token:
        body["fhirAuthorization"] = {"access_token": "tok", "token_type": "Bearer", "expires_in": 300,
                                     "scope": "patient/*.read", "subject": "cds"}
    post(client, f"/cds-services/{HOOKS[hook]}", body)
