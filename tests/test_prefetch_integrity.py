"""Issue 11 §2, the prefetch edge: non-Bundle answers, partial results, the per-key cap, a token for
another patient, and ``medicationReference`` resolution (checklist PF-5, PF-7, PF-8; RULES.md D3).

The FHIR server is mocked with ``responses``; hook calls go through the Flask app.
"""

from __future__ import annotations

import copy

import pytest
import requests
import responses

from cds_service.app import create_app
from cds_service.config import Settings
from cds_service.prefetch import FetchSettings, gather
from hooks.services import services
from tests.factory import (CALCIUM_SERUM, DMAB60, NOW, PID, RXNORM, administration, draft,
                           hook_request, observation, patient, searchset)
from tests.test_prefetch import BASE, OBS, OUTCOME, PATIENT, TEMPLATES, bundle, make_request

PV, OSEL, OSIGN = (s.id for s in services())
DATA = "SERVICE-DATA-UNAVAILABLE"
FHIR = "https://ehr.example.org/fhir"
AUTH = {"access_token": "tok-secret", "token_type": "Bearer", "scope": "patient/*.read", "subject": "cds"}
WARNING_OUTCOME = {"resourceType": "OperationOutcome", "issue": [{
    "severity": "warning", "code": "processing",
    "details": {"coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.657369", "code": "4101",
                            "display": "Resource request returns no results."}]}}]}


def app_client(tmp_path, **env: str):
    settings = Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path), "BONE_CDS_ALLOWED_FHIR_SERVERS": FHIR, **env})
    return create_app(settings, clock=lambda: NOW).test_client()


def codes(cards: list[dict]) -> list[str]:
    return [c["source"]["topic"]["code"] for c in cards]


def data_card(cards: list[dict]) -> dict:
    return next(c for c in cards if c["source"]["topic"]["code"] == DATA)


# --------------------------------------------------------------------------- not a Bundle

@responses.activate
@pytest.mark.parametrize("answer", [PATIENT, OUTCOME, {"resourceType": "Parameters"}])
def test_pf5_search_answered_by_a_non_bundle_is_unavailable(answer) -> None:
    responses.get(f"{BASE}/Observation", json=answer)
    responses.get(f"{BASE}/MedicationRequest", json=bundle())
    responses.get(f"{BASE}/Patient/pat-7Q9Z", json=PATIENT)
    result = gather(TEMPLATES, make_request(), FetchSettings(allowed_servers=(BASE,)))
    assert result.keys["observations"].source == "unavailable"
    assert result.keys["observations"].resources == []
    assert result.keys["patient"].source == "fetched" and result.keys["patient"].resources == [PATIENT]


def test_pf5_prefetch_search_key_holding_a_non_bundle_is_not_data() -> None:
    """A Patient sent where the Observation search belongs is no search result."""
    result = gather(TEMPLATES, make_request({"observations": PATIENT, "patient": PATIENT,
                                             "medicationRequests": bundle()}, server=None, token=None),
                    FetchSettings())
    assert result.unavailable == {"observations": "no-fhir-server"}


# --------------------------------------------------------------------------- partial results

def test_bundle_with_resources_and_an_error_outcome_is_incomplete(client) -> None:
    """Measured: a Bundle holding resources *and* a timeout OperationOutcome passed as complete."""
    body = hook_request("order-sign", [patient(), observation(CALCIUM_SERUM, 9.4, "mg/dL", "2026-11-20")],
                        drafts=[draft()])
    body["prefetch"]["observations"]["entry"].append(
        {"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]},
         "search": {"mode": "outcome"}})
    cards = client.post(f"/cds-services/{OSIGN}", json=body).get_json()["cards"]
    card = data_card(cards)
    assert "Laboratory results may be incomplete: the FHIR server reported an error in its answer" in card["detail"]
    assert card["indicator"] == "warning"   # the missing results may be the newest calcium


def test_warning_outcome_entry_is_neither_data_nor_incomplete(client) -> None:
    """Epic answers an empty search with an OperationOutcome entry (4101, "no results")."""
    body = hook_request("order-sign", [patient(), observation(CALCIUM_SERUM, 9.4, "mg/dL", "2026-11-20")],
                        drafts=[draft()])
    body["prefetch"]["procedures"]["entry"] = [{"resource": WARNING_OUTCOME, "search": {"mode": "outcome"}}]
    cards = client.post(f"/cds-services/{OSIGN}", json=body).get_json()["cards"]
    assert DATA not in codes(cards)
    from tests.factory import rule_ids   # a merged work-up card counts its members (A12)
    assert "DMAB-DENTAL-CLEARANCE" in rule_ids(cards)   # "no procedures" was understood as no data


def test_prefetch_bundle_total_beyond_its_entries_or_with_a_next_link_is_incomplete() -> None:
    short = bundle(OBS) | {"total": 300}
    paged = bundle(OBS, next_url=f"{BASE}/Observation?page=2")
    result = gather(TEMPLATES, make_request({"patient": PATIENT, "observations": short,
                                             "medicationRequests": paged}), FetchSettings())
    assert result.incomplete == {"observations": "total-exceeds-entries", "medicationRequests": "unread-pages"}


@responses.activate
def test_fetched_total_beyond_entries_without_next_is_incomplete() -> None:
    responses.get(f"{BASE}/Observation", json=bundle(OBS) | {"total": 120})
    responses.get(f"{BASE}/MedicationRequest", json=bundle() | {"total": 0})
    responses.get(f"{BASE}/Patient/pat-7Q9Z", json=PATIENT)
    result = gather(TEMPLATES, make_request(), FetchSettings(allowed_servers=(BASE,)))
    assert result.incomplete == {"observations": "total-exceeds-entries"}


@responses.activate
def test_max_pages_with_a_next_link_pending_is_incomplete() -> None:
    responses.get(f"{BASE}/Observation", json=bundle(OBS, next_url=f"{BASE}/Observation?page=2"))
    responses.get(f"{BASE}/MedicationRequest", json=bundle())
    responses.get(f"{BASE}/Patient/pat-7Q9Z", json=PATIENT)
    result = gather(TEMPLATES, make_request(), FetchSettings(allowed_servers=(BASE,), max_pages=1))
    assert result.incomplete == {"observations": "max-pages"}
    assert result.keys["observations"].resources == [OBS]


# --------------------------------------------------------------------------- the cap

def test_cap_keeps_the_newest_observations_and_is_reported(tmp_path) -> None:
    client = app_client(tmp_path, BONE_CDS_MAX_RESOURCES_PER_KEY="50")
    old = [observation(CALCIUM_SERUM, 9.4, "mg/dL", f"2025-{m:02d}-{d:02d}") for m in range(1, 13)
           for d in range(1, 6)]                     # 60 normal results last year
    newest = observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-11-20")
    body = hook_request("order-sign", [patient(), *old[:30], newest, *old[30:]], drafts=[draft()])
    result = gather({"observations": "Observation?patient={{context.patientId}}"},
                    make_request(body["prefetch"] and {"observations": body["prefetch"]["observations"]}),
                    FetchSettings(max_resources=50))
    kept = result.keys["observations"].resources
    assert len(kept) == 50 and result.capped == {"observations": 11} and newest in kept
    assert min(r["effectiveDateTime"] for r in kept) > min(r["effectiveDateTime"] for r in old)
    cards = client.post(f"/cds-services/{OSIGN}", json=body).get_json()["cards"]
    assert "DMAB-HYPOCALCEMIA" in codes(cards)
    assert "Only part of the laboratory results was read: 11 older or further records were not used" \
        in data_card(cards)["detail"]


@pytest.mark.parametrize("value", ["-1", "many", "1.5"])
def test_cap_setting_is_validated(value) -> None:
    with pytest.raises(ValueError, match="BONE_CDS_MAX_RESOURCES_PER_KEY"):
        FetchSettings.from_env({"BONE_CDS_MAX_RESOURCES_PER_KEY": value})


def test_cap_is_linear_on_a_100k_bundle() -> None:
    """A 100k-entry Bundle is capped in one pass plus a heap (measured in ``python -m bench``; here
    only that the right ones are kept)."""
    many = [{"resourceType": "Observation", "id": f"o{i}", "effectiveDateTime": f"20{10 + i % 16:02d}-01-01"}
            for i in range(100_000)]
    result = gather({"observations": "Observation?patient={{context.patientId}}"},
                    make_request({"observations": searchset(many)}), FetchSettings(max_resources=5000))
    kept = result.keys["observations"].resources
    assert len(kept) == 5000 and {r["effectiveDateTime"] for r in kept} == {"2025-01-01"}


# --------------------------------------------------------------------------- token for another patient

@responses.activate
def test_token_for_another_patient_is_never_used(tmp_path) -> None:
    own_server = "https://ehr-token-test.example.org/fhir"   # calls of other tests' threads never count
    client = app_client(tmp_path, BONE_CDS_ALLOWED_FHIR_SERVERS=own_server)
    body = hook_request("order-sign", [patient()], drafts=[draft()])
    del body["prefetch"]["observations"]
    body["fhirServer"] = own_server
    body["fhirAuthorization"] = AUTH | {"patient": "someone-else"}
    cards = client.post(f"/cds-services/{OSIGN}", json=body).get_json()["cards"]
    assert not [c for c in responses.calls if c.request.url.startswith(own_server)]
    assert "the access token was issued for a different patient" in data_card(cards)["detail"]


@responses.activate
def test_token_for_this_patient_is_used(tmp_path) -> None:
    client = app_client(tmp_path)
    responses.get(f"{FHIR}/Observation", json=searchset([observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-11-20")]))
    body = hook_request("order-sign", [patient()], drafts=[draft()])
    del body["prefetch"]["observations"]
    body["fhirServer"] = FHIR
    body["fhirAuthorization"] = AUTH | {"patient": PID}
    cards = client.post(f"/cds-services/{OSIGN}", json=body).get_json()["cards"]
    assert responses.calls[0].request.headers["Authorization"] == "Bearer tok-secret"
    assert "DMAB-HYPOCALCEMIA" in codes(cards)


# --------------------------------------------------------------------------- medicationReference (D3)

PROLIA = {"resourceType": "Medication", "id": "med-prolia",
          "code": {"coding": [{"system": RXNORM, "code": DMAB60}]}}


def dose_by_reference(ref: str, display: str | None = None) -> dict:
    dose = administration(None, "2026-03-20")
    del dose["medicationCodeableConcept"]
    dose["medicationReference"] = {"reference": ref} | ({"display": display} if display else {})
    return dose


def pv_cards(client, resources: list[dict], extra_entries: list[dict] = (), **body_extra) -> list[dict]:
    body = hook_request("patient-view", [patient(), *resources])
    body["prefetch"]["medicationAdministrations"]["entry"] += list(extra_entries)
    body.update(body_extra)
    r = client.post(f"/cds-services/{PV}", json=body)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["cards"]


def test_medication_reference_resolved_in_a_prefetch_bundle_by_id(client) -> None:
    cards = pv_cards(client, [dose_by_reference("Medication/med-prolia")], [{"resource": PROLIA}])
    assert "DMAB-OVERDUE-TRANSITION" in codes(cards)


def test_medication_reference_resolved_by_fullurl(client) -> None:
    cards = pv_cards(client, [dose_by_reference("urn:uuid:7f3a")], [{"fullUrl": "urn:uuid:7f3a", "resource": PROLIA}])
    assert "DMAB-OVERDUE-TRANSITION" in codes(cards)


def test_medication_reference_display_is_drug_text(client) -> None:
    cards = pv_cards(client, [dose_by_reference("Medication/unknown-1", display="Prolia 60 mg/mL syringe")])
    assert "DMAB-OVERDUE-TRANSITION" in codes(cards)


def test_medication_reference_contained(client) -> None:
    dose = dose_by_reference("#m")
    dose["contained"] = [PROLIA | {"id": "m"}]
    assert "DMAB-OVERDUE-TRANSITION" in codes(pv_cards(client, [dose]))


def test_draft_medication_resolved_in_draft_orders(client) -> None:
    d = draft(code=None)
    del d["medicationCodeableConcept"]
    d["medicationReference"] = {"reference": "Medication/med-prolia"}
    body = hook_request("order-sign", [patient(), observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-11-20")],
                        drafts=[d, PROLIA])
    cards = client.post(f"/cds-services/{OSIGN}", json=body).get_json()["cards"]
    assert "DMAB-HYPOCALCEMIA" in codes(cards)


@responses.activate
def test_medication_read_from_the_allowed_server(tmp_path) -> None:
    client = app_client(tmp_path)
    responses.get(f"{FHIR}/Medication/med-prolia", json=PROLIA)
    cards = pv_cards(client, [dose_by_reference(f"{FHIR}/Medication/med-prolia")], fhirServer=FHIR,
                     fhirAuthorization=AUTH)
    assert "DMAB-OVERDUE-TRANSITION" in codes(cards)
    assert [c.request.url for c in responses.calls] == [f"{FHIR}/Medication/med-prolia"]


@responses.activate
def test_medication_read_never_leaves_the_fhir_base_or_an_unlisted_server(tmp_path) -> None:
    client = app_client(tmp_path)
    cards = pv_cards(client, [dose_by_reference("https://evil.example/fhir/Medication/med-prolia")],
                     fhirServer=FHIR, fhirAuthorization=AUTH)
    other = create_app(Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path / "b")}), clock=lambda: NOW).test_client()
    pv_cards(other, [dose_by_reference("Medication/med-prolia")], fhirServer=FHIR, fhirAuthorization=AUTH)
    assert len(responses.calls) == 0
    assert "DMAB-OVERDUE-TRANSITION" not in codes(cards)


@responses.activate
def test_medication_read_that_times_out_is_bounded(tmp_path) -> None:
    client = app_client(tmp_path, BONE_CDS_FHIR_READ_TIMEOUT="0.2", BONE_CDS_FHIR_DEADLINE="0.5")
    responses.get(f"{FHIR}/Medication/med-prolia", body=requests.exceptions.ReadTimeout("slow"))
    cards = pv_cards(client, [dose_by_reference("Medication/med-prolia", display="Prolia 60 mg")],
                     fhirServer=FHIR, fhirAuthorization=AUTH)
    assert "DMAB-OVERDUE-TRANSITION" in codes(cards)   # the display still names the drug


def test_malformed_fhir_server_url_without_prefetch_is_not_a_500(client) -> None:
    body = hook_request("patient-view", [patient()], prefetch=False)
    body["fhirServer"] = "http://[::1/fhir"
    r = client.post(f"/cds-services/{PV}", json=body)
    assert r.status_code in (400, 412) and r.get_json()["error"]


def test_unchanged_input(client) -> None:
    """Resolution never modifies the request (the same body gives the same answer twice)."""
    body = hook_request("patient-view", [patient(), dose_by_reference("Medication/med-prolia")])
    body["prefetch"]["medicationAdministrations"]["entry"].append({"resource": PROLIA})
    before = copy.deepcopy(body)
    client.post(f"/cds-services/{PV}", json=body)
    assert body == before


@responses.activate
def test_fallback_search_does_not_ask_the_server_to_sort() -> None:
    """Sorting cost sekmet-fhir 16x (bench.fallback_real); the chart orders results itself."""
    responses.get(f"{BASE}/Observation", json=bundle(OBS))
    responses.get(f"{BASE}/MedicationRequest", json=bundle())
    responses.get(f"{BASE}/Patient/pat-7Q9Z", json=PATIENT)
    templates = TEMPLATES | {"observations": TEMPLATES["observations"] + "&_sort=-date"}
    gather(templates, make_request(), FetchSettings(allowed_servers=(BASE,)))
    urls = [c.request.url for c in responses.calls if "/Observation" in c.request.url]
    assert urls and all("_sort" not in u for u in urls) and all("_count=200" in u for u in urls)
