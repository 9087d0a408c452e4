"""Integration: prefetch and the hook pipeline against a real FHIR R4 server on loopback.

The server is ``sekmet-fhir`` 0.1.1 (PyPI), started by ``scripts/sekmet_server.py`` in its own
virtualenv, bound to 127.0.0.1 on a free port, simulator off, SMART bearer auth on: every read
carries a real client-credentials token from the server's own token endpoint (checklist PF-7,
REQ-5). Fixture patients (``data/``) are loaded as transaction Bundles with a write-scoped client;
the CDS service gets a read-only token, as an EHR would hand it in ``fhirAuthorization``.

Set ``BONE_CDS_SKIP_INTEGRATION=1`` to skip; otherwise a server that cannot start is an error.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import socket
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from cds_service.errors import ApiError
from cds_service.prefetch import FetchSettings, gather, new_session, render_template
from cds_service.request import parse_hook_request
from hooks.services import Service, service_by_id

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=timezone.utc)
PATIENT_A = "bone-int-a"     # denosumab 60 mg, last dose 2025-07-10, no follow-on: overdue
PATIENT_B = "bone-int-b"     # denosumab draft order, calcium 7.9 mg/dL on 2026-03-10
FIXTURES = ("patient_a_dmab_overdue.json", "patient_b_dmab_low_calcium.json")
DRAFT_B = "MedicationRequest/bone-int-b-draft-dmab"
#: loopback reads take milliseconds; generous limits keep a loaded CI machine green
LIMITS = {"read_timeout": 2.0, "deadline": 4.0}


def _load_script() -> Any:
    spec = importlib.util.spec_from_file_location("sekmet_server", REPO / "scripts" / "sekmet_server.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("sekmet_server", module)
    spec.loader.exec_module(module)
    return module


sekmet_server = _load_script()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def server() -> Iterator[Any]:
    """A running sekmet-fhir with the fixture patients loaded (session-wide)."""
    if os.environ.get("BONE_CDS_SKIP_INTEGRATION") == "1":
        pytest.skip("BONE_CDS_SKIP_INTEGRATION=1: integration tests against sekmet-fhir skipped")
    srv = sekmet_server.start()
    try:
        headers = {"Authorization": f"Bearer {srv.token(sekmet_server.LOAD_CLIENT)}",
                   "Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
        for name in FIXTURES:
            resp = requests.post(srv.base_url, data=(DATA / name).read_bytes(), headers=headers, timeout=30)
            assert resp.status_code == 200, f"loading {name}: {resp.status_code} {resp.text[:500]}"
            statuses = [e["response"]["status"] for e in resp.json()["entry"]]
            assert all(s.startswith(("200", "201")) for s in statuses), statuses
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def token(server: Any) -> str:
    """A read-only access token (scope ``system/*.read``) from the server's token endpoint."""
    return server.token(sekmet_server.READ_CLIENT)


@pytest.fixture
def fetch(server: Any) -> FetchSettings:
    return FetchSettings(allowed_servers=(server.base_url,), **LIMITS)


def fixture_resources(name: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in json.loads((DATA / name).read_text())["entry"]]


def hook_body(hook: str, patient: str, *, server: str | None = None, token: str | None = None,
              prefetch: dict[str, Any] | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": "Practitioner/int-doc", "patientId": patient}
    if hook != "patient-view":
        context["draftOrders"] = json.loads((DATA / "draft_orders_b.json").read_text())
        if hook == "order-select":
            context["selections"] = [DRAFT_B]
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}
    if server:
        body["fhirServer"] = server
    if token:
        body["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 900,
                                     "scope": "system/*.read", "subject": sekmet_server.READ_CLIENT}
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def client_prefetch(server: Any, token: str, service: Service, patient: str, hook: str) -> dict[str, Any]:
    """What a conforming EHR sends (PF-4): each template run against the server, every page read
    and merged into one searchset Bundle; a read that finds nothing is ``null``. Plain requests,
    independent of :func:`gather`."""
    req = parse_hook_request(hook_body(hook, patient), hook)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    out: dict[str, Any] = {}
    for key, template in service.prefetch.items():
        url: str | None = f"{server.base_url}/{render_template(template, req)}"
        if "?" not in template:
            resp = requests.get(url, headers=headers, timeout=10)
            out[key] = resp.json() if resp.status_code == 200 else None
            continue
        entries: list[dict[str, Any]] = []
        while url:
            page = requests.get(url, headers=headers, timeout=10).json()
            entries += page.get("entry") or []
            url = next((link["url"] for link in page.get("link", []) if link["relation"] == "next"), None)
        out[key] = {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}
    return out


def run(service_id: str, body: dict[str, Any], fetch: FetchSettings) -> tuple[dict[str, Any], dict[str, str]]:
    """The pipeline: (response JSON, prefetch status line)."""
    from cds_service.pipeline import evaluate_hook
    service = service_by_id(service_id)
    assert service is not None
    outcome = evaluate_hook(service, body, now=NOW, fetch=fetch)
    return outcome.response, outcome.prefetch


def card_set(response: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["source"]["topic"]["code"], c["indicator"]) for c in response["cards"]}


def implemented(rule_id: str) -> bool:
    from cards.registry import REGISTRY, load_rules
    load_rules()
    return rule_id in REGISTRY


# --------------------------------------------------------------------------- prefetch against the server


def test_pf7_gather_fetches_every_template_with_real_token(server: Any, token: str, fetch: FetchSettings,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """PF-7: with fhirServer + fhirAuthorization and no prefetch, every key is read from the server
    (bearer token accepted), and yields exactly the fixture's resources (the Observation search
    filters by code: the heart rate is not returned). REQ-6: nothing secret in the log."""
    service = service_by_id("bone-safety-patient-view")
    assert service is not None
    req = parse_hook_request(hook_body("patient-view", PATIENT_A, server=server.base_url, token=token),
                             "patient-view")
    with caplog.at_level(logging.DEBUG):
        t0 = time.monotonic()
        result = gather(service.prefetch, req, fetch)
        elapsed = time.monotonic() - t0
    assert result.status_line() == {k: "fetched" for k in service.prefetch}, result.status_line()
    expected = {(r["resourceType"], r["id"]) for r in fixture_resources(FIXTURES[0])
                if r["id"] != "bone-int-a-hr"}
    assert {(r["resourceType"], r["id"]) for r in result.resources} == expected
    assert elapsed < fetch.deadline
    assert token not in caplog.text and PATIENT_A not in caplog.text


def test_pf7_paging_through_real_next_links(server: Any, token: str, fetch: FetchSettings) -> None:
    """PF-7: the server honours ``_count``, sends ``Bundle.total`` and absolute ``next`` links on its
    own base (``_offset`` paging); gather follows them to the end."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    first = requests.get(f"{server.base_url}/Observation?patient={PATIENT_A}&_count=10", headers=headers,
                         timeout=10).json()
    assert first["total"] == 30 and len(first["entry"]) == 10
    nxt = next(link["url"] for link in first["link"] if link["relation"] == "next")
    assert nxt.startswith(server.base_url + "/Observation?") and "_offset=10" in nxt

    req = parse_hook_request(hook_body("patient-view", PATIENT_A, server=server.base_url, token=token),
                             "patient-view")
    result = gather({"obs": "Observation?patient={{context.patientId}}&_count=10"}, req, fetch)
    assert result.keys["obs"].pages == 3
    assert len(result.keys["obs"].resources) == 30


def test_pf8_truncated_paging_is_reported_incomplete(server: Any, token: str) -> None:
    """This server returns search results in insertion order, so when ``max_pages`` cuts a long
    history short the *newest* results are the ones lost. The fallback no longer asks it to sort
    (``_sort=-date`` cost 16x on a realistic store, ``python -m bench.fallback_real``): the cut is
    reported as incomplete instead (the data card says so), and ``_sort`` is never sent."""
    req = parse_hook_request(hook_body("patient-view", PATIENT_A, server=server.base_url, token=token),
                             "patient-view")
    short = FetchSettings(allowed_servers=(server.base_url,), max_pages=2, **LIMITS)
    base = "Observation?patient={{context.patientId}}&code=http://loinc.org|17861-6&_count=10"
    unsorted = gather({"ca": base}, req, short).keys["ca"]
    asked_sorted = gather({"ca": base + "&_sort=-date"}, req, short).keys["ca"]
    assert unsorted.pages == asked_sorted.pages == 2
    assert unsorted.incomplete == asked_sorted.incomplete == "max-pages"
    assert [r["id"] for r in unsorted.resources] == [r["id"] for r in asked_sorted.resources]
    whole = gather({"ca": base}, req, FetchSettings(allowed_servers=(server.base_url,), **LIMITS)).keys["ca"]
    assert whole.incomplete is None and len(whole.resources) > len(unsorted.resources)


def test_pf5_ignored_parameter_warning_is_not_a_failure(server: Any, token: str,
                                                        fetch: FetchSettings) -> None:
    """PF-5, measured: this server answers an unsupported parameter (``code:in`` here) with 200, the
    parameter ignored (so *more* results, unfiltered) and a warning OperationOutcome entry
    (``search.mode = outcome``). With no match that warning is the only entry: still an empty
    result, not a failure."""
    req = parse_hook_request(hook_body("patient-view", PATIENT_A, server=server.base_url, token=token),
                             "patient-view")
    templates = {"dispenses": "MedicationDispense?patient={{context.patientId}}"
                              "&code:in=http://example.org/vs",
                 "obs": "Observation?patient={{context.patientId}}&code:in=http://example.org/vs&_count=200"}
    result = gather(templates, req, fetch)
    assert result.status_line() == {"dispenses": "fetched", "obs": "fetched"}
    assert result.keys["dispenses"].resources == []
    assert len(result.keys["obs"].resources) == 30   # the filter was ignored: every Observation


def test_pf6_wrong_token_is_unauthorized(server: Any, fetch: FetchSettings) -> None:
    """PF-6 input: the server refuses a token it did not issue: every key "unauthorized"."""
    service = service_by_id("bone-safety-patient-view")
    assert service is not None
    body = hook_body("patient-view", PATIENT_A, server=server.base_url, token="not-a-token")
    req = parse_hook_request(body, "patient-view")
    result = gather(service.prefetch, req, fetch)
    assert set(result.unavailable.values()) == {"unauthorized"}
    assert set(result.unavailable) == set(service.prefetch)


def test_pf7_read_of_unknown_patient_is_no_data(server: Any, token: str, fetch: FetchSettings) -> None:
    """PF-4: the server answers 404 for a read of an unknown patient: no data, not a failure;
    its searches answer empty searchset Bundles."""
    service = service_by_id("bone-safety-patient-view")
    assert service is not None
    body = hook_body("patient-view", "bone-int-nobody", server=server.base_url, token=token)
    req = parse_hook_request(body, "patient-view")
    result = gather(service.prefetch, req, fetch)
    assert result.unavailable == {}
    assert result.resources == []


# --------------------------------------------------------------------------- the pipeline


CASES = [
    ("bone-safety-patient-view", "patient-view", PATIENT_A, ("DMAB-OVERDUE-TRANSITION", "warning")),
    ("bone-safety-order-select", "order-select", PATIENT_B, ("DMAB-HYPOCALCEMIA", "critical")),
    ("bone-safety-order-sign", "order-sign", PATIENT_B, ("DMAB-HYPOCALCEMIA", "critical")),
]


@pytest.mark.parametrize("service_id, hook, patient, expected", CASES, ids=[c[1] for c in CASES])
def test_pf7_same_cards_from_fhir_server_as_from_full_prefetch(
        server: Any, token: str, fetch: FetchSettings, service_id: str, hook: str, patient: str,
        expected: tuple[str, str]) -> None:
    """PF-7 ("work from prefetch *or* from the FHIR server"): the same cards, by rule and
    indicator, whether the data comes as a full prefetch (no fhirServer at all, so nothing can be
    fetched) or is fetched from the server with the token (no prefetch)."""
    service = service_by_id(service_id)
    assert service is not None
    prefetch = client_prefetch(server, token, service, patient, hook)
    from_prefetch, status_p = run(service_id, hook_body(hook, patient, prefetch=prefetch), fetch)
    from_server, status_s = run(service_id, hook_body(hook, patient, server=server.base_url, token=token),
                                fetch)
    assert set(status_p.values()) == {"prefetch"}, status_p
    assert set(status_s.values()) == {"fetched"}, status_s
    # the same data reached the chart both ways (holds whichever rules are implemented)
    req_p = parse_hook_request(hook_body(hook, patient, prefetch=prefetch), hook)
    req_s = parse_hook_request(hook_body(hook, patient, server=server.base_url, token=token), hook)
    ids = [{(r["resourceType"], r["id"]) for r in gather(service.prefetch, r, fetch).resources}
           for r in (req_p, req_s)]
    assert ids[0] == ids[1] and len(ids[0]) > 3
    assert card_set(from_server) == card_set(from_prefetch)
    if implemented(expected[0]):
        assert expected in card_set(from_server)


def test_pf7_run_hook_matches_evaluate_hook(server: Any, token: str, fetch: FetchSettings) -> None:
    """The public entry point ``run_hook`` (settings object) answers as ``evaluate_hook``."""
    from cds_service.config import Settings
    from cds_service.pipeline import run_hook
    service = service_by_id("bone-safety-order-select")
    assert service is not None
    body = hook_body("order-select", PATIENT_B, server=server.base_url, token=token)
    session = new_session()
    try:
        response = run_hook(service, body, now=NOW, settings=Settings(fetch=fetch), session=session)
    finally:
        session.close()
    assert card_set(response) == card_set(run("bone-safety-order-select", body, fetch)[0])


def _degraded_or_412(service_id: str, body: dict[str, Any], fetch: FetchSettings,
                     reasons: set[str]) -> str:
    """PF-6: either 412 naming the keys, or an answer whose prefetch keys are all unavailable for
    one of ``reasons`` and which says which checks could not run."""
    try:
        response, status = run(service_id, body, fetch)
    except ApiError as exc:
        assert exc.status == 412, exc.body()
        return "412"
    assert {s.split(":", 1)[1] for s in status.values()} <= reasons, status
    codes = {c["source"]["topic"]["code"] for c in response["cards"]}
    assert "SERVICE-DATA-UNAVAILABLE" in codes, codes
    return "degraded"


@pytest.mark.parametrize("service_id, hook, patient, expected", CASES, ids=[c[1] for c in CASES])
def test_pf6_wrong_token_degrades_or_412(server: Any, fetch: FetchSettings, service_id: str, hook: str,
                                         patient: str, expected: tuple[str, str]) -> None:
    """PF-6: a token the server refuses: a degraded answer or 412, never a 5xx nor false reassurance."""
    body = hook_body(hook, patient, server=server.base_url, token="not-a-token")
    outcome = _degraded_or_412(service_id, body, fetch, {"unauthorized"})
    if hook == "patient-view":
        assert outcome == "412"   # the medication keys are required on patient-view


MED_TYPES = ("Patient", "MedicationRequest", "MedicationAdministration", "MedicationStatement",
             "MedicationDispense")
MED_SCOPES = " ".join(f"system/{t}.read" for t in MED_TYPES)


def test_pf6_token_without_lab_scopes_degrades(server: Any, fetch: FetchSettings) -> None:
    """PF-6, the partial case: a real token whose scopes cover the patient and medications but not
    Observation, Condition or Procedure (the server answers 403 for those). The order hook still
    answers 200, from the data it could read, and says which checks could not run."""
    token = server.token(sekmet_server.READ_CLIENT, scope=MED_SCOPES)
    body = hook_body("order-select", PATIENT_B, server=server.base_url, token=token)
    response, status = run("bone-safety-order-select", body, fetch)
    assert {k: v for k, v in status.items() if v != "fetched"} == {
        "observations": "unavailable:forbidden", "conditions": "unavailable:forbidden",
        "procedures": "unavailable:forbidden"}
    codes = {c["source"]["topic"]["code"] for c in response["cards"]}
    assert "SERVICE-DATA-UNAVAILABLE" in codes, codes


def test_pf6_token_without_a_required_scope_is_412(server: Any, fetch: FetchSettings) -> None:
    """PF-6: on patient-view the four medication keys are required (pipeline decision): a token that
    cannot read MedicationDispense answers 412 naming that key."""
    token = server.token(sekmet_server.READ_CLIENT,
                         scope=MED_SCOPES.replace(" system/MedicationDispense.read", ""))
    body = hook_body("patient-view", PATIENT_A, server=server.base_url, token=token)
    with pytest.raises(ApiError) as err:
        run("bone-safety-patient-view", body, fetch)
    assert err.value.status == 412
    assert err.value.body().get("missing") == ["medicationDispenses"]


def test_pf6_stopped_server_degrades_or_412_within_deadline(fetch: FetchSettings) -> None:
    """PF-6/PF-8: a FHIR server that was running and has stopped (connection refused): the answer
    comes within the deadline, degraded or 412."""
    if os.environ.get("BONE_CDS_SKIP_INTEGRATION") == "1":
        pytest.skip("BONE_CDS_SKIP_INTEGRATION=1")
    srv = sekmet_server.start()
    token = srv.token(sekmet_server.READ_CLIENT)
    srv.stop()
    settings = FetchSettings(allowed_servers=(srv.base_url,), **LIMITS)
    for service_id, hook, patient, _ in CASES:
        t0 = time.monotonic()
        _degraded_or_412(service_id, hook_body(hook, patient, server=srv.base_url, token=token), settings,
                         {"unreachable"})
        assert time.monotonic() - t0 < settings.deadline + 0.5


def test_pf8_hung_server_answers_within_deadline() -> None:
    """PF-8: a server that accepts connections and never answers (a real socket, no mock): the
    answer still comes by the deadline, degraded or 412."""
    hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    base = f"http://127.0.0.1:{hole.getsockname()[1]}/fhir"
    settings = FetchSettings(allowed_servers=(base,), read_timeout=10.0, deadline=1.0)
    try:
        for service_id, hook, patient, _ in CASES:
            t0 = time.monotonic()
            _degraded_or_412(service_id, hook_body(hook, patient, server=base, token="t"), settings,
                             {"deadline", "timeout"})
            assert time.monotonic() - t0 < settings.deadline + 0.5
    finally:
        hole.close()
