"""Tests for cds_service.prefetch (checklist PF-2, PF-4..PF-8, REQ-4..REQ-6, IOP-3; RULES.md §1).

The FHIR server is mocked with ``responses``: a test that expects no HTTP call asserts that
``responses.calls`` is empty (responses also fails any call to an unregistered URL).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import requests
import responses
from hypothesis import given, settings as hyp_settings, strategies as st

from cds_service.prefetch import (
    FetchSettings,
    KeyResult,
    PrefetchResult,
    gather,
    is_allowed,
    normalise_base_url,
    render_template,
)
from cds_service.request import FhirAuthorization, HookRequest, parse_hook_request

BASE = "https://ehr.example.org/fhir"
PID = "pat-7Q9Z"
TOKEN = "tok-SECRET-4711"
TEMPLATES = {
    "patient": "Patient/{{context.patientId}}",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}&_count=200",
    "observations": "Observation?patient={{context.patientId}}&code=http://loinc.org|17861-6,"
                    "http://loinc.org|62238-1&_count=200",
}
SETTINGS = FetchSettings(allowed_servers=(BASE,), read_timeout=1.0, deadline=2.0)

PATIENT = {"resourceType": "Patient", "id": PID, "birthDate": "1950-01-01"}
MED = {"resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order",
       "subject": {"reference": f"Patient/{PID}"}}
OBS = {"resourceType": "Observation", "id": "o1", "status": "final",
       "code": {"coding": [{"system": "http://loinc.org", "code": "17861-6"}]}}
OUTCOME = {"resourceType": "OperationOutcome",
           "issue": [{"severity": "error", "code": "exception", "diagnostics": "backend down"}]}


def bundle(*resources: dict, next_url: str | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset",
                         "entry": [{"resource": r} for r in resources]}
    if next_url:
        b["link"] = [{"relation": "self", "url": "x"}, {"relation": "next", "url": next_url}]
    return b


def make_request(prefetch: dict[str, Any] | None = None, *, server: str | None = BASE,
                 token: str | None = TOKEN, **context: Any) -> HookRequest:
    ctx = {"userId": "Practitioner/doc-1", "patientId": PID, **context}
    auth = FhirAuthorization(access_token=token) if token else None
    return HookRequest(hook="patient-view", hook_instance="hi-1", context=ctx, fhir_server=server,
                       fhir_authorization=auth, prefetch=prefetch or {})


def full_prefetch() -> dict[str, Any]:
    return {"patient": PATIENT, "medicationRequests": bundle(MED), "observations": bundle(OBS)}


def mock_all(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{BASE}/Patient/{PID}", json=PATIENT)
    rsps.get(f"{BASE}/MedicationRequest", json=bundle(MED))
    rsps.get(f"{BASE}/Observation", json=bundle(OBS))


# ------------------------------------------------------------------ PF-4 / PF-5: what the client sent


@responses.activate
def test_pf4_every_key_prefetched_makes_no_http_call() -> None:
    """PF-4: keys the client filled are used as sent; nothing is fetched."""
    result = gather(TEMPLATES, make_request(full_prefetch()), SETTINGS)
    assert len(responses.calls) == 0
    assert result.status_line() == {k: "prefetch" for k in TEMPLATES}
    assert result.unavailable == {}
    assert [r["id"] for r in result.resources] == [PID, "m1", "o1"]
    assert result.keys["patient"].resource_type == "Patient"
    assert result.keys["observations"].resource_type == "Observation"


@responses.activate
def test_pf7_none_prefetched_all_fetched_with_bearer_token() -> None:
    """PF-7: every missing key is read from the FHIR server, each call carrying the token."""
    mock_all(responses.mock)
    result = gather(TEMPLATES, make_request(), SETTINGS)
    assert result.status_line() == {k: "fetched" for k in TEMPLATES}
    assert len(responses.calls) == 3
    for call in responses.calls:
        assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert call.request.headers["Accept"] == "application/fhir+json"
    urls = sorted(c.request.url for c in responses.calls)
    assert any(u.startswith(f"{BASE}/MedicationRequest?patient={PID}&_count=200") for u in urls)
    assert any("code=http://loinc.org%7C17861-6" in u for u in urls)
    assert {r["id"] for r in result.resources} == {PID, "m1", "o1"}
    assert result.keys["patient"].pages == 1


@responses.activate
def test_pf7_without_token_fetches_without_authorization_header() -> None:
    """PF-7/REQ-5: no fhirAuthorization → fetch with no Authorization header (open test servers)."""
    mock_all(responses.mock)
    result = gather(TEMPLATES, make_request(token=None), SETTINGS)
    assert result.unavailable == {}
    assert all("Authorization" not in c.request.headers for c in responses.calls)


@responses.activate
def test_pf4_partial_prefetch_fetches_only_missing_keys() -> None:
    """PF-4/PF-5: a key the client omitted is fetched; the ones it sent are not."""
    responses.get(f"{BASE}/Observation", json=bundle(OBS))
    pre = {"patient": PATIENT, "medicationRequests": bundle(MED)}
    result = gather(TEMPLATES, make_request(pre), SETTINGS)
    assert len(responses.calls) == 1
    assert result.status_line() == {"patient": "prefetch", "medicationRequests": "prefetch",
                                    "observations": "fetched"}


@responses.activate
def test_pf4_null_key_means_no_data_and_is_not_fetched() -> None:
    """PF-4: ``null`` is "no data", not "not fetched"."""
    result = gather(TEMPLATES, make_request({**full_prefetch(), "patient": None}), SETTINGS)
    assert len(responses.calls) == 0
    assert result.keys["patient"] == KeyResult("patient", "Patient", "prefetch", [])
    assert result.unavailable == {}


@responses.activate
def test_pf4_empty_bundle_means_no_data_and_is_not_fetched() -> None:
    """PF-4: a searchset Bundle with zero entries (or no ``entry`` at all) is "no data"."""
    pre = {**full_prefetch(), "medicationRequests": bundle(),
           "observations": {"resourceType": "Bundle", "type": "searchset", "total": 0}}
    result = gather(TEMPLATES, make_request(pre), SETTINGS)
    assert len(responses.calls) == 0
    assert result.keys["medicationRequests"].resources == []
    assert result.keys["observations"].source == "prefetch"


@responses.activate
def test_pf5_operation_outcome_in_prefetch_is_fetched() -> None:
    """PF-5: an OperationOutcome (top level, or as a Bundle's only entries) means the client
    failed: the service fetches the key itself."""
    responses.get(f"{BASE}/Patient/{PID}", json=PATIENT)
    responses.get(f"{BASE}/MedicationRequest", json=bundle(MED))
    pre = {"patient": OUTCOME, "medicationRequests": bundle(OUTCOME), "observations": bundle(OBS)}
    result = gather(TEMPLATES, make_request(pre), SETTINGS)
    assert len(responses.calls) == 2
    assert result.status_line() == {"patient": "fetched", "medicationRequests": "fetched",
                                    "observations": "prefetch"}


@responses.activate
def test_pf5_operation_outcome_entry_beside_results_is_dropped() -> None:
    """PF-5: a warning OperationOutcome (search.mode = outcome) next to real entries is not data."""
    pre = {**full_prefetch(), "observations": bundle(OBS, OUTCOME)}
    result = gather(TEMPLATES, make_request(pre), SETTINGS)
    assert len(responses.calls) == 0
    assert result.keys["observations"].resources == [OBS]


@responses.activate
def test_pf5_warning_only_outcome_bundle_is_an_empty_result() -> None:
    """PF-5: a searchset whose only entry is a *warning* OperationOutcome (real servers add one for
    an ignored parameter, sekmet-fhir among them) is an empty result, not a failure."""
    warning = {"resourceType": "OperationOutcome",
               "issue": [{"severity": "warning", "code": "not-supported", "diagnostics": "ignored"}]}
    pre = {**full_prefetch(), "medicationRequests": bundle(warning)}
    responses.get(f"{BASE}/Observation", json=bundle(warning))
    result = gather(TEMPLATES, make_request({k: v for k, v in pre.items() if k != "observations"}), SETTINGS)
    assert len(responses.calls) == 1
    assert result.status_line() == {"patient": "prefetch", "medicationRequests": "prefetch",
                                    "observations": "fetched"}
    assert result.keys["medicationRequests"].resources == result.keys["observations"].resources == []


@responses.activate
def test_pf5_operation_outcome_without_server_is_unavailable() -> None:
    """PF-5/PF-6: a failed key that cannot be fetched is unavailable, never silently empty."""
    result = gather(TEMPLATES, make_request({**full_prefetch(), "patient": OUTCOME}, server=None, token=None),
                    SETTINGS)
    assert result.unavailable == {"patient": "no-fhir-server"}


def test_prefetch_resources_deduplicated_by_type_and_id() -> None:
    """RULES.md §1: duplicates (same type + id from two keys) are removed; id-less ones kept."""
    anon = {"resourceType": "Observation", "status": "final"}
    pre = {"patient": PATIENT, "medicationRequests": bundle(MED, PATIENT, anon),
           "observations": bundle(OBS, MED, anon, {**OBS, "resourceType": "Procedure"})}
    result = gather(TEMPLATES, make_request(pre), SETTINGS)
    assert [(r["resourceType"], r.get("id")) for r in result.resources] == [
        ("Patient", PID), ("MedicationRequest", "m1"), ("Observation", None), ("Observation", "o1"),
        ("Observation", None), ("Procedure", "o1")]


# --------------------------------------------------------------------------- paging


@responses.activate
def test_pf7_paging_follows_next_links() -> None:
    """PF-4 ("the client MAY paginate") / PF-7: the service follows Bundle.link[next] itself."""
    page2 = f"{BASE}?_getpages=abc&_getpagesoffset=1"
    page3 = f"{BASE}/MedicationRequest?patient={PID}&_page=3"
    responses.get(f"{BASE}/MedicationRequest", json=bundle(MED, next_url=page2),
                  match=[responses.matchers.query_param_matcher({"patient": PID, "_count": "200"})])
    responses.get(BASE, json=bundle({**MED, "id": "m2"}, next_url=page3))
    responses.get(f"{BASE}/MedicationRequest", json=bundle({**MED, "id": "m3"}),
                  match=[responses.matchers.query_param_matcher({"patient": PID, "_page": "3"})])
    result = gather({"medicationRequests": TEMPLATES["medicationRequests"]}, make_request(), SETTINGS)
    key = result.keys["medicationRequests"]
    assert key.source == "fetched" and key.pages == 3
    assert [r["id"] for r in key.resources] == ["m1", "m2", "m3"]
    assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in responses.calls)


@responses.activate
def test_pf8_paging_bounded_by_max_pages(caplog: pytest.LogCaptureFixture) -> None:
    """PF-8: an endless chain of next links stops after ``max_pages`` reads (and says so in the log)."""
    responses.get(f"{BASE}/MedicationRequest", json=bundle(MED, next_url=f"{BASE}/MedicationRequest?page=n"))
    settings = FetchSettings(allowed_servers=(BASE,), max_pages=3)
    with caplog.at_level(logging.WARNING, logger="cds_service.prefetch"):
        result = gather({"medicationRequests": TEMPLATES["medicationRequests"]}, make_request(), settings)
    assert len(responses.calls) == 3
    assert result.keys["medicationRequests"].pages == 3
    assert result.keys["medicationRequests"].source == "fetched"
    assert "max_pages" in caplog.text


@responses.activate
def test_pf7_next_link_to_another_host_not_followed(caplog: pytest.LogCaptureFixture) -> None:
    """PF-7/REQ-6: the token goes only to the allowed base; a next link elsewhere is not followed."""
    responses.get(f"{BASE}/MedicationRequest",
                  json=bundle(MED, next_url="https://evil.example.com/fhir/MedicationRequest?page=2"))
    with caplog.at_level(logging.WARNING, logger="cds_service.prefetch"):
        result = gather({"medicationRequests": TEMPLATES["medicationRequests"]}, make_request(), SETTINGS)
    assert len(responses.calls) == 1
    assert result.keys["medicationRequests"].resources == [MED]
    assert "next link leaves" in caplog.text


@responses.activate
def test_pf7_next_link_to_other_path_on_same_host_not_followed() -> None:
    """PF-7: same host but outside the base path (``/fhir2``) is another server."""
    responses.get(f"{BASE}/MedicationRequest",
                  json=bundle(MED, next_url="https://ehr.example.org/fhir2/MedicationRequest?page=2"))
    gather({"medicationRequests": TEMPLATES["medicationRequests"]}, make_request(), SETTINGS)
    assert len(responses.calls) == 1


@responses.activate
def test_pf7_error_on_a_later_page_makes_the_key_unavailable() -> None:
    """PF-4: a partial search is not what the template returns; the key is unavailable."""
    responses.get(f"{BASE}/MedicationRequest", json=bundle(MED, next_url=f"{BASE}/MedicationRequest?p=2"),
                  match=[responses.matchers.query_param_matcher({"patient": PID, "_count": "200"})])
    responses.get(f"{BASE}/MedicationRequest", status=500,
                  match=[responses.matchers.query_param_matcher({"p": "2"})])
    result = gather({"medicationRequests": TEMPLATES["medicationRequests"]}, make_request(), SETTINGS)
    assert result.unavailable == {"medicationRequests": "http-500"}
    assert result.keys["medicationRequests"].resources == []


# --------------------------------------------------------------------------- server failures (PF-6 inputs)


@pytest.mark.parametrize("status, reason", [(401, "unauthorized"), (403, "forbidden"), (500, "http-500"),
                                            (400, "http-400"), (302, "http-302")])
@responses.activate
def test_pf6_http_errors_make_key_unavailable(status: int, reason: str) -> None:
    """PF-6: 401/403/other statuses → unavailable with a reason (redirects are not followed)."""
    responses.get(f"{BASE}/Observation", status=status, json=OUTCOME,
                  headers={"Location": "https://elsewhere.example.com/"} if status == 302 else None)
    result = gather({"observations": TEMPLATES["observations"]}, make_request(), SETTINGS)
    assert result.unavailable == {"observations": reason}
    assert result.status_line() == {"observations": f"unavailable:{reason}"}
    assert len(responses.calls) == 1


@responses.activate
def test_pf4_read_answering_404_is_no_data() -> None:
    """PF-4: a read of a resource that does not exist is ``null`` (no data), not a failure."""
    responses.get(f"{BASE}/Patient/{PID}", status=404, json=OUTCOME)
    result = gather({"patient": TEMPLATES["patient"]}, make_request(), SETTINGS)
    assert result.keys["patient"].source == "fetched"
    assert result.keys["patient"].resources == []
    assert result.unavailable == {}


@responses.activate
def test_pf6_search_answering_404_is_unavailable() -> None:
    """PF-6: a search answering 404 (type not supported) is a failure, unlike a read's 404."""
    responses.get(f"{BASE}/MedicationRequest", status=404, json=OUTCOME)
    result = gather({"medicationRequests": TEMPLATES["medicationRequests"]}, make_request(), SETTINGS)
    assert result.unavailable == {"medicationRequests": "http-404"}


@pytest.mark.parametrize("exc, reason", [
    (requests.exceptions.ReadTimeout("read timed out"), "timeout"),
    (requests.exceptions.ConnectTimeout("connect timed out"), "timeout"),
    (requests.exceptions.ConnectionError("refused"), "unreachable"),
    (requests.exceptions.ChunkedEncodingError("broken"), "unreachable"),
])
@responses.activate
def test_pf6_network_failures(exc: Exception, reason: str) -> None:
    """PF-6/PF-8: a timeout or a connection error → unavailable, never an exception."""
    responses.get(f"{BASE}/Patient/{PID}", body=exc)
    result = gather({"patient": TEMPLATES["patient"]}, make_request(), SETTINGS)
    assert result.unavailable == {"patient": reason}


@pytest.mark.parametrize("body", ["<html>oops</html>", "[1, 2]", '{"id": "x"}', "\xff\xfe",
                                  '{"resourceType": "Bundle", "entry": {"resource": {}}}'])
@responses.activate
def test_pf6_body_not_a_fhir_resource_is_invalid_json(body: str) -> None:
    """PF-6: a 200 whose body is not JSON, or not a FHIR resource → "invalid-json"."""
    responses.get(f"{BASE}/Patient/{PID}", body=body, content_type="application/fhir+json")
    result = gather({"patient": TEMPLATES["patient"]}, make_request(), SETTINGS)
    assert result.unavailable == {"patient": "invalid-json"}


@responses.activate
def test_pf5_operation_outcome_with_200_is_unavailable() -> None:
    """PF-5: an OperationOutcome answered with 200 (top level or as the only entries) is a failure."""
    responses.get(f"{BASE}/Patient/{PID}", json=OUTCOME)
    responses.get(f"{BASE}/Observation", json=bundle(OUTCOME))
    result = gather({k: TEMPLATES[k] for k in ("patient", "observations")}, make_request(), SETTINGS)
    assert result.unavailable == {"patient": "operation-outcome", "observations": "operation-outcome"}


# ------------------------------------------------------------------ allowlist, no server (REQ-4, PF-7)


@responses.activate
def test_pf7_disallowed_server_makes_no_http_call(caplog: pytest.LogCaptureFixture) -> None:
    """PF-7/REQ-6: a server not on the allowlist never receives the token; a WARNING names its host."""
    with caplog.at_level(logging.WARNING, logger="cds_service.prefetch"):
        result = gather(TEMPLATES, make_request(server="https://attacker.example.net/fhir"), SETTINGS)
    assert len(responses.calls) == 0
    assert result.unavailable == {k: "server-not-allowed" for k in TEMPLATES}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "attacker.example.net" in warnings[0].getMessage()
    assert TOKEN not in caplog.text and PID not in caplog.text


@responses.activate
def test_pf7_default_settings_allow_no_server() -> None:
    """DESIGN.md: the embedded default is prefetch only."""
    result = gather(TEMPLATES, make_request(), FetchSettings())
    assert len(responses.calls) == 0
    assert set(result.unavailable.values()) == {"server-not-allowed"}


@responses.activate
def test_pf6_no_fhir_server_keys_unavailable() -> None:
    """REQ-4/PF-6: with no fhirServer, missing keys cannot be had: "no-fhir-server"."""
    result = gather(TEMPLATES, make_request({"patient": PATIENT}, server=None, token=None), SETTINGS)
    assert len(responses.calls) == 0
    assert result.unavailable == {"medicationRequests": "no-fhir-server", "observations": "no-fhir-server"}
    assert result.keys["patient"].source == "prefetch"


@responses.activate
def test_iop3_unrenderable_template_key_is_unavailable() -> None:
    """IOP-3: a key whose tokens cannot be resolved is skipped, the others still fetched."""
    responses.get(f"{BASE}/Patient/{PID}", json=PATIENT)
    templates = {"patient": TEMPLATES["patient"], "encounter": "Encounter/{{context.encounterId}}"}
    result = gather(templates, make_request(), SETTINGS)
    assert result.unavailable == {"encounter": "unrenderable-template"}
    assert result.keys["encounter"].resource_type == "Encounter"
    assert len(responses.calls) == 1


# --------------------------------------------------------------------------- templates (PF-2, IOP-3)


def test_pf2_render_context_token_url_encoded() -> None:
    """PF-2: context values are URL-encoded (no path or query injection through an id)."""
    req = make_request(patientId="a b/../x?y&z=1")
    assert render_template("Patient/{{context.patientId}}", req) == "Patient/a%20b%2F..%2Fx%3Fy%26z%3D1"
    assert render_template("Observation?patient={{ context.patientId }}&_count=5", make_request()) == \
        f"Observation?patient={PID}&_count=5"


def test_pf2_render_user_tokens() -> None:
    """PF-2: ``userPractitionerId`` etc. come from ``context.userId``; the wrong kind is unresolvable."""
    req = make_request()
    assert render_template("Practitioner/{{userPractitionerId}}", req) == "Practitioner/doc-1"
    assert render_template("PractitionerRole?practitioner={{userPractitionerId}}", req) == \
        "PractitionerRole?practitioner=doc-1"
    assert render_template("Patient/{{userPatientId}}", req) is None
    assert render_template("X/{{userRelatedPersonId}}", req) is None
    role = make_request(userId="PractitionerRole/r-9")
    assert render_template("PractitionerRole/{{userPractitionerRoleId}}", role) == "PractitionerRole/r-9"
    assert render_template("Practitioner/{{userPractitionerId}}", role) is None


def test_pf2_context_user_id_alone_is_a_read_of_the_user() -> None:
    """PF-2: ``{{context.userId}}`` alone is a valid read of the user (its ``/`` is kept)."""
    assert render_template("{{context.userId}}", make_request()) == "Practitioner/doc-1"


@pytest.mark.parametrize("template", [
    "Encounter/{{context.encounterId}}",          # field absent
    "X?draft={{context.draftOrders}}",            # object: not a prefetch token
    "X?s={{context.selections}}",                 # list
    "X/{{context.medication.id}}",                # nested path (PF-2: invalid)
    "X/{{today()}}",                              # not a CDS Hooks 2.0 token
    "Patient/{{context.patientId}",               # unbalanced
])
def test_iop3_unresolvable_token_renders_none(template: str) -> None:
    """IOP-3: a token that cannot be resolved → ``None`` (the key is skipped)."""
    req = make_request(selections=["MedicationRequest/1"], draftOrders={"resourceType": "Bundle"})
    assert render_template(template, req) is None


def test_pf1_real_service_templates_render() -> None:
    """PF-1/PF-3: every template of the real services renders for a normal request."""
    from hooks.services import services
    req = parse_hook_request({"hook": "patient-view", "hookInstance": "h",
                              "context": {"userId": "Practitioner/1", "patientId": PID}}, "patient-view")
    for service in services():
        for key, template in service.prefetch.items():
            rendered = render_template(template, req)
            assert rendered is not None and PID in rendered, key


# --------------------------------------------------------------------------- base URLs (PF-7, REQ-4)


@pytest.mark.parametrize("url, expected", [
    ("https://EHR.example.org:443/fhir/", "https://ehr.example.org/fhir"),
    ("HTTPS://ehr.example.org/fhir", "https://ehr.example.org/fhir"),
    ("http://localhost:80/", "http://localhost"),
    ("http://127.0.0.1:8080/fhir/r4//", "http://127.0.0.1:8080/fhir/r4"),
    ("https://ehr.example.org:8443/FHIR", "https://ehr.example.org:8443/FHIR"),
    ("http://[::1]:8080/fhir", "http://[::1]:8080/fhir"),
    ("ftp://ehr.example.org/fhir", None),
    ("ehr.example.org/fhir", None),
    ("https://user:pw@ehr.example.org/fhir", None),
    ("https://ehr.example.org/fhir?x=1", None),
    ("https://ehr.example.org:99999/fhir", None),
    ("", None),
])
def test_req4_normalise_base_url(url: str, expected: str | None) -> None:
    """REQ-4/PF-7: one spelling per server, so the allowlist compares exactly."""
    assert normalise_base_url(url) == expected


def test_pf7_is_allowed_exact_match_after_normalisation() -> None:
    """PF-7: the allowlist is an exact match: no prefix, no scheme downgrade."""
    allowed = ["https://ehr.example.org/fhir"]
    assert is_allowed("https://EHR.example.org:443/fhir/", allowed)
    assert not is_allowed("https://ehr.example.org/fhir2", allowed)
    assert not is_allowed("https://ehr.example.org/fhir/extra", allowed)
    assert not is_allowed("http://ehr.example.org/fhir", allowed)
    assert not is_allowed("https://ehr.example.org.evil.com/fhir", allowed)
    assert not is_allowed("not a url", allowed)
    assert not is_allowed("https://ehr.example.org/fhir", [])


def test_settings_from_env() -> None:
    """Configuration: the allowlist and the limits come from the environment, normalised."""
    s = FetchSettings.from_env({"BONE_CDS_ALLOWED_FHIR_SERVERS":
                                " https://EHR.example.org/fhir/ , http://127.0.0.1:9/,",
                                "BONE_CDS_FHIR_READ_TIMEOUT": "0.5", "BONE_CDS_FHIR_DEADLINE": "3",
                                "BONE_CDS_FHIR_MAX_PAGES": "10"})
    assert s == FetchSettings(allowed_servers=("https://ehr.example.org/fhir", "http://127.0.0.1:9"),
                              read_timeout=0.5, deadline=3.0, max_pages=10)
    assert FetchSettings.from_env({}) == FetchSettings()
    assert FetchSettings.from_env({"BONE_CDS_FHIR_DEADLINE": " "}) == FetchSettings()


@pytest.mark.parametrize("name, value", [
    ("BONE_CDS_ALLOWED_FHIR_SERVERS", "ftp://x/fhir"), ("BONE_CDS_FHIR_READ_TIMEOUT", "fast"),
    ("BONE_CDS_FHIR_READ_TIMEOUT", "-1"), ("BONE_CDS_FHIR_DEADLINE", "nan"), ("BONE_CDS_FHIR_DEADLINE", "0"),
    ("BONE_CDS_FHIR_MAX_PAGES", "0"), ("BONE_CDS_FHIR_MAX_PAGES", "2.5"),
])
def test_settings_from_env_rejects_bad_values(name: str, value: str) -> None:
    """Configuration errors name the variable and the value."""
    with pytest.raises(ValueError) as err:
        FetchSettings.from_env({name: value})
    assert name in str(err.value) and value in str(err.value)


# --------------------------------------------------------------------------- time (PF-8)


@responses.activate
def test_pf8_deadline_bounds_gather() -> None:
    """PF-8: a server slower than the deadline does not hold the answer: the key is "deadline"
    (or "timeout") and gather returns within deadline + 0.5 s; fast keys are kept."""
    def slow(_request: Any) -> tuple[int, dict[str, str], str]:
        time.sleep(2.0)
        return 200, {}, '{"resourceType": "Bundle", "type": "searchset"}'
    responses.add_callback(responses.GET, f"{BASE}/Observation", callback=slow)
    responses.get(f"{BASE}/Patient/{PID}", json=PATIENT)
    settings = FetchSettings(allowed_servers=(BASE,), read_timeout=5.0, deadline=0.4)
    t0 = time.monotonic()
    result = gather({k: TEMPLATES[k] for k in ("patient", "observations")}, make_request(), settings)
    elapsed = time.monotonic() - t0
    assert elapsed < 0.4 + 0.5
    assert result.unavailable["observations"] in ("deadline", "timeout")
    assert result.keys["patient"].source == "fetched"


@responses.activate
def test_pf8_keys_fetched_in_parallel() -> None:
    """PF-8: four reads of 0.3 s each finish in well under their sum (1.2 s)."""
    def delayed(body: dict) -> Any:
        def cb(_request: Any) -> tuple[int, dict[str, str], str]:
            time.sleep(0.3)
            import json
            return 200, {}, json.dumps(body)
        return cb
    templates = {**TEMPLATES, "conditions": "Condition?patient={{context.patientId}}"}
    responses.add_callback(responses.GET, f"{BASE}/Patient/{PID}", callback=delayed(PATIENT))
    responses.add_callback(responses.GET, f"{BASE}/MedicationRequest", callback=delayed(bundle(MED)))
    responses.add_callback(responses.GET, f"{BASE}/Observation", callback=delayed(bundle(OBS)))
    responses.add_callback(responses.GET, f"{BASE}/Condition", callback=delayed(bundle()))
    t0 = time.monotonic()
    result = gather(templates, make_request(), FetchSettings(allowed_servers=(BASE,), deadline=5.0))
    elapsed = time.monotonic() - t0
    assert result.unavailable == {}
    assert elapsed < 0.8, f"{elapsed:.2f}s: reads ran one after another"


# --------------------------------------------------------------------------- REQ-6: nothing secret in logs


@responses.activate
def test_req6_token_and_patient_id_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    """REQ-6: at DEBUG, across successes and every failure path, the log holds neither the
    access token nor the patient id (exception messages, which carry URLs, are not logged)."""
    responses.get(f"{BASE}/Patient/{PID}", json=PATIENT)
    responses.get(f"{BASE}/MedicationRequest",
                  body=requests.exceptions.ConnectionError(f"{BASE}?patient={PID}"))
    responses.get(f"{BASE}/Observation",
                  json=bundle(OBS, next_url=f"https://other.example/fhir?patient={PID}"))
    responses.get(f"{BASE}/Condition", status=401)
    templates = {**TEMPLATES, "conditions": "Condition?patient={{context.patientId}}",
                 "procedures": "Procedure?patient={{context.patientId}}"}
    with caplog.at_level(logging.DEBUG):
        gather(templates, make_request({"procedures": OUTCOME}), SETTINGS)
        gather(templates, make_request(server=f"https://elsewhere.example.net/fhir?access_token={TOKEN}"),
               SETTINGS)
        gather(templates, make_request(server="https://elsewhere.example.net/fhir"), SETTINGS)
    assert caplog.records, "expected some log lines"
    assert TOKEN not in caplog.text
    assert PID not in caplog.text


def test_req6_urllib3_request_lines_kept_out_of_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    """REQ-6: urllib3 logs each request line (with ``?patient=<id>``) at DEBUG; the module keeps
    that logger at INFO even when the root logger is at DEBUG (found against a real server)."""
    with caplog.at_level(logging.DEBUG):
        assert not logging.getLogger("urllib3.connectionpool").isEnabledFor(logging.DEBUG)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                         st.sampled_from(["resourceType", "entry", "resource", "issue", "severity", "id",
                                          "link"]),
                         inner, max_size=4), max_leaves=12)
_values = st.none() | st.dictionaries(st.sampled_from(["resourceType", "entry", "id", "issue", "link"]),
                                      _json, max_size=4) | st.fixed_dictionaries(
    {"resourceType": st.sampled_from(["Bundle", "OperationOutcome", "Patient"])},
    optional={"entry": _json, "issue": _json, "id": _json})


@hyp_settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(TEMPLATES)), _values))
def test_pf5_any_prefetch_shape_gives_every_key_a_result(prefetch: dict[str, Any]) -> None:
    """PF-5/ERR: whatever a client puts in a prefetch value, gather never raises and every key ends
    up as prefetch data or unavailable with a reason (no server here, so nothing is fetched)."""
    result = gather(TEMPLATES, make_request(prefetch, server=None, token=None), SETTINGS)
    assert set(result.keys) == set(TEMPLATES)
    for key, res in result.keys.items():
        assert res.source == "prefetch" or res.reason == "no-fhir-server"
        assert all(isinstance(r, dict) and isinstance(r.get("resourceType"), str) for r in res.resources)
        assert (res.source == "prefetch") == (key in prefetch and res.reason is None)
    result.resources  # noqa: B018 - de-duplication must not raise on odd ids either


def test_prefetch_result_views() -> None:
    """PF-6 inputs: ``unavailable`` and ``status_line`` name every key's fate."""
    result = PrefetchResult({"a": KeyResult("a", "Patient", "prefetch", [PATIENT]),
                             "b": KeyResult("b", "Observation", "unavailable", [], "timeout")})
    assert result.unavailable == {"b": "timeout"}
    assert result.status_line() == {"a": "prefetch", "b": "unavailable:timeout"}
    assert result.resources == [PATIENT]
