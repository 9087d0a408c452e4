"""The HTTP service: discovery, hook calls, every 4xx path, CORS, health (issue "The service").

Checklist IDs are in each test's name or docstring.
"""

from __future__ import annotations

import re
import uuid

import pytest

from cds_service.app import create_app
from cds_service.config import Settings
from hooks.services import services
from tests.factory import (CALCIUM_SERUM, DMAB60, NOW, administration, draft, hook_request,
                           observation, patient)

PV, OSEL, OSIGN = (s.id for s in services())
TOKEN = re.compile(r"\{\{([^}]*)\}\}")


# ---- discovery (DISC-*, PF-1..3) -----------------------------------------------------------

def test_disc_1_2_discovery_lists_three_services(client) -> None:
    """DISC-1, DISC-2, DISC-7: 200 with one service per hook."""
    r = client.get("/cds-services")
    assert r.status_code == 200 and r.mimetype == "application/json"
    hooks = sorted(s["hook"] for s in r.get_json()["services"])
    assert hooks == ["order-select", "order-sign", "patient-view"]


def test_disc_3_4_service_fields_and_url_safe_ids(client) -> None:
    """DISC-3: hook, id, description, title; DISC-4: id is a URL-safe path segment, id+hook unique."""
    entries = client.get("/cds-services").get_json()["services"]
    for s in entries:
        assert {"hook", "id", "description", "title", "prefetch"} <= set(s)
        assert re.fullmatch(r"[A-Za-z0-9._~-]+", s["id"])
    assert len({(s["id"], s["hook"]) for s in entries}) == 3


def test_pf_1_2_3_prefetch_templates_use_only_allowed_tokens(client) -> None:
    """PF-2: only {{context.patientId|userId|encounterId}} or user tokens; PF-3: search subset;
    RULES.md §1: one template per query, no status filter, patient read + 4 medication searches."""
    for s in client.get("/cds-services").get_json()["services"]:
        templates = s["prefetch"]
        assert templates["patient"] == "Patient/{{context.patientId}}"
        types = sorted(t.split("?")[0].split("/")[0] for t in templates.values())
        assert types == sorted(["Patient", "MedicationRequest", "MedicationAdministration",
                                "MedicationStatement", "MedicationDispense", "Observation",
                                "Condition", "Procedure"])
        for t in templates.values():
            for token in TOKEN.findall(t):
                assert token in ("context.patientId", "context.userId", "context.encounterId")
            assert "status" not in t
            params = [p.split("=")[0] for p in t.split("?")[1].split("&")] if "?" in t else []
            assert set(params) <= {"patient", "code", "_count", "_sort"}
        obs = templates["observations"]
        assert "http://loinc.org|17861-6" in obs and "http://loinc.org|98979-8" in obs


def test_healthz_says_up_and_version(client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.get_json()["status"] == "ok" and re.fullmatch(r"\d+\.\d+\.\d+", r.get_json()["version"])


# ---- hook calls ----------------------------------------------------------------------------

def test_resp_2_unrelated_patient_gets_empty_cards(client) -> None:
    """RESP-1, RESP-2: a patient on no antiresorptive gets 200 {"cards": []}."""
    body = hook_request("patient-view", [patient()])
    r = client.post(f"/cds-services/{PV}", json=body)
    assert r.status_code == 200 and r.get_json() == {"cards": []}


def test_order_for_another_drug_gets_no_card_and_fetches_nothing(client) -> None:
    """RULES.md §7: a draft for a statin produces no card, even with no prefetch and no server."""
    statin = draft("617312", text="atorvastatin 40 MG Oral Tablet")
    body = hook_request("order-sign", drafts=[statin], prefetch=False)
    r = client.post(f"/cds-services/{OSIGN}", json=body)
    assert r.status_code == 200 and r.get_json() == {"cards": []}


def test_hook_1_req_9_unknown_fields_and_extensions_ignored(client) -> None:
    """HOOK-1, REQ-9, GEN-3: unknown context fields and extensions do not fail the call."""
    body = hook_request("patient-view", [patient()])
    body["extension"] = {"org.example.anything": {"x": 1}}
    body["context"]["org.example.newField"] = [1, 2]
    body["somethingNew"] = True
    assert client.post(f"/cds-services/{PV}", json=body).status_code == 200


def test_iop_1_sandbox_shaped_draft_is_accepted(client) -> None:
    """IOP-1: the sandbox's draft MedicationRequest (no intent, category/reasonCode as objects,
    Bundle without type) is normalised and evaluated, never a 400/500."""
    d = {"resourceType": "MedicationRequest", "id": "request-123", "status": "draft",
         "subject": {"reference": "Patient/pat-1"},
         "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                   "code": DMAB60, "display": "Prolia"}], "text": "Prolia"},
         "category": {"coding": [{"code": "outpatient"}]}, "reasonCode": {"text": "osteoporosis"}}
    body = hook_request("order-select", [patient(), administration(DMAB60, "2026-05-20"),
                                         observation(CALCIUM_SERUM, 7.1, "mg/dL", "2026-11-20")],
                        drafts=[d])
    del body["context"]["draftOrders"]["type"]
    r = client.post(f"/cds-services/{OSEL}", json=body)
    assert r.status_code == 200
    codes = [c["source"]["topic"]["code"] for c in r.get_json()["cards"]]
    assert "DMAB-HYPOCALCEMIA" in codes


def _post(client, service: str, body, **kw):
    return client.post(f"/cds-services/{service}", json=body, **kw)


@pytest.mark.parametrize("mutate, field", [
    (lambda b: b.pop("hook"), "hook"),
    (lambda b: b.pop("hookInstance"), "hookInstance"),
    (lambda b: b.pop("context"), "context"),
    (lambda b: b["context"].pop("patientId"), "context.patientId"),
    (lambda b: b["context"].pop("userId"), "context.userId"),
    (lambda b: b["context"].pop("draftOrders"), "context.draftOrders"),
    (lambda b: b["context"].pop("selections"), "context.selections"),
    (lambda b: b.update(hook=7), "hook"),
    (lambda b: b.update(context=[1]), "context"),
    (lambda b: b["context"].update(selections="MedicationRequest/x"), "context.selections"),
    (lambda b: b["context"].update(draftOrders=[]), "context.draftOrders"),
    (lambda b: b.update(prefetch=[1]), "prefetch"),
    (lambda b: b.update(prefetch={"patient": "Patient/1"}), "prefetch.patient"),
    (lambda b: b.update(fhirAuthorization={"access_token": "t"}), "fhirServer"),
    (lambda b: b.update(fhirServer="https://x", fhirAuthorization={"token_type": "Bearer"}),
     "fhirAuthorization.access_token"),
])
def test_req_10_err_4_missing_or_malformed_fields_are_400_naming_the_field(client, mutate, field) -> None:
    """REQ-2, REQ-3, REQ-7, HOOK-OSEL, REQ-4/5, REQ-10, ERR-4: 400 with a JSON body naming the field."""
    body = hook_request("order-select", [patient()], drafts=[draft()])
    mutate(body)
    r = _post(client, OSEL, body)
    assert r.status_code == 400
    payload = r.get_json()
    assert payload["error"] in ("missing_field", "invalid_field")
    assert payload["field"] == field and field in payload["message"]


def test_req_10_wrong_hook_for_service_is_400(client) -> None:
    body = hook_request("patient-view", [patient()])
    r = _post(client, OSIGN, body)
    assert r.status_code == 400 and r.get_json()["error"] == "wrong_hook"


def test_req_10_unknown_service_is_404_json(client) -> None:
    r = _post(client, "no-such-service", hook_request("patient-view", [patient()]))
    assert r.status_code == 404 and r.get_json()["error"] == "unknown_service"


@pytest.mark.parametrize("data", ["{not json", "", "[1, 2]", "\"text\"", "null", "\xff\xfe"])
def test_req_10_non_json_or_non_object_body_is_400(client, data: str) -> None:
    r = client.post(f"/cds-services/{PV}", data=data.encode("latin-1"), content_type="application/json")
    assert r.status_code == 400 and set(r.get_json()) >= {"error", "message"}


def test_req_10_wrong_method_is_405_json(client) -> None:
    r = client.get(f"/cds-services/{PV}")
    assert r.status_code == 405 and r.get_json()["error"]


def test_unknown_path_is_404_json(client) -> None:
    r = client.get("/nope")
    assert r.status_code == 404 and r.mimetype == "application/json"


def test_pf_6_patient_view_without_medication_data_is_412(client) -> None:
    """PF-6, RESP-3: no prefetch and no FHIR server allowed → 412 naming the missing keys."""
    body = hook_request("patient-view", prefetch=False)
    r = _post(client, PV, body)
    assert r.status_code == 412
    payload = r.get_json()
    assert payload["error"] == "prefetch_unavailable"
    assert "medicationRequests" in payload["missing"]


def test_order_hook_with_partial_prefetch_degrades_with_an_info_card(client) -> None:
    """PF-5/PF-6 decision: observations missing on an order hook → the checks that need labs do not
    run and one info card says so (no false 'no calcium on record')."""
    body = hook_request("order-sign", [patient(), administration(DMAB60, "2026-05-20")], drafts=[draft()])
    del body["prefetch"]["observations"]
    r = _post(client, OSIGN, body)
    assert r.status_code == 200
    cards = r.get_json()["cards"]
    codes = [c["source"]["topic"]["code"] for c in cards]
    assert "SERVICE-DATA-UNAVAILABLE" in codes
    assert "AR-CALCIUM-NOT-CHECKED" not in codes
    data_card = next(c for c in cards if c["source"]["topic"]["code"] == "SERVICE-DATA-UNAVAILABLE")
    assert data_card["indicator"] == "info" and "laboratory results" in data_card["summary"]


# ---- CORS ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/cds-services", f"/cds-services/{PV}", f"/cds-services/{OSIGN}/feedback"])
def test_cors_1_preflight_allows_authorization_and_content_type(client, path: str) -> None:
    r = client.options(path, headers={"Origin": "https://sandbox.cds-hooks.org",
                                      "Access-Control-Request-Method": "POST",
                                      "Access-Control-Request-Headers": "authorization, content-type"})
    assert 200 <= r.status_code < 300
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert {"GET", "POST"} <= {m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")}


def test_cors_2_error_responses_carry_cors_headers(client) -> None:
    r = client.post(f"/cds-services/{PV}", data="{bad", content_type="application/json",
                    headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert r.status_code == 400 and r.headers["Access-Control-Allow-Origin"] == "*"
    r = client.get("/cds-services", headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert r.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_configured_origins_echo_only_allowed(tmp_path) -> None:
    app = create_app(Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path),
                                        "BONE_CDS_CORS_ORIGINS": "https://ehr.example.org"}), clock=lambda: NOW)
    c = app.test_client()
    ok = c.get("/cds-services", headers={"Origin": "https://ehr.example.org"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://ehr.example.org"
    other = c.get("/cds-services", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in other.headers


# ---- feedback (FB-*) -------------------------------------------------------------------------

def _feedback(card: str, outcome: str = "overridden", **extra) -> dict:
    item = {"card": card, "outcome": outcome, "outcomeTimestamp": "2026-11-23T15:05:00Z"}
    item.update(extra)
    return {"feedback": [item]}


def test_fb_2_3_feedback_stored_and_survives_app_recreation(settings) -> None:
    """FB-2, FB-3, FB-6: 200 for a valid body; the row is there after the app is recreated."""
    app = create_app(settings, clock=lambda: NOW)
    card = str(uuid.uuid4())
    r = app.test_client().post(f"/cds-services/{OSIGN}/feedback",
                               json=_feedback(card, overrideReason={"reason": {"code": "patient-declined"}}))
    assert r.status_code == 200 and r.get_json() == {"stored": 1, "duplicates": 0}
    app2 = create_app(settings, clock=lambda: NOW)
    rows = app2.config["FEEDBACK_STORE"].rows()
    assert [(row["card_uuid"], row["outcome"], row["override_code"]) for row in rows] == \
        [(card, "overridden", "patient-declined")]


@pytest.mark.parametrize("body, field", [
    ({}, "feedback"),
    ({"feedback": []}, "feedback"),
    ({"feedback": [{"outcome": "accepted"}]}, "feedback[0].card"),
    (_feedback("c", outcome="maybe"), "feedback[0].outcome"),
    (_feedback("c", outcome="accepted"), "feedback[0].acceptedSuggestions"),
    ({"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "yesterday"}]},
     "feedback[0].outcomeTimestamp"),
])
def test_fb_6_invalid_feedback_is_400(client, body, field) -> None:
    r = client.post(f"/cds-services/{OSIGN}/feedback", json=body)
    assert r.status_code == 400 and r.get_json()["field"] == field


def test_fb_feedback_for_unknown_service_is_404(client) -> None:
    r = client.post("/cds-services/nope/feedback", json=_feedback("c"))
    assert r.status_code == 404


def test_fb_card_rule_is_recorded_for_our_cards(client, app) -> None:
    """A card we issued is attributed to its rule when feedback arrives (source.topic)."""
    body = hook_request("order-sign", [patient(), administration(DMAB60, "2026-05-20"),
                                       observation(CALCIUM_SERUM, 7.1, "mg/dL", "2026-11-20")], drafts=[draft()])
    cards = client.post(f"/cds-services/{OSIGN}", json=body).get_json()["cards"]
    hypo = next(c for c in cards if c["source"]["topic"]["code"] == "DMAB-HYPOCALCEMIA")
    sugg = hypo["suggestions"][0]["uuid"]
    r = client.post(f"/cds-services/{OSIGN}/feedback",
                    json=_feedback(hypo["uuid"], outcome="accepted", acceptedSuggestions=[{"id": sugg}]))
    assert r.status_code == 200
    rows = app.config["FEEDBACK_STORE"].rows()
    assert rows[-1]["rule_id"] == "DMAB-HYPOCALCEMIA"


def test_a_rule_that_raises_does_not_silence_the_others(client, monkeypatch) -> None:
    """A bug in one rule: the other cards still come, plus an info card saying which check did not
    run (never a 500, never a silent gap)."""
    from cards.registry import REGISTRY, RuleSpec, load_rules
    load_rules()
    spec = REGISTRY["DMAB-DENTAL-CLEARANCE"]

    def broken(inp):
        raise RuntimeError("boom")
    monkeypatch.setitem(REGISTRY, spec.id, RuleSpec(spec.id, spec.title, spec.hooks, spec.needs, broken))
    body = hook_request("order-sign", [patient(), observation(CALCIUM_SERUM, 7.1, "mg/dL", "2026-11-20")],
                        drafts=[draft()])
    r = client.post(f"/cds-services/{OSIGN}", json=body)
    assert r.status_code == 200
    cards = r.get_json()["cards"]
    codes = [c["source"]["topic"]["code"] for c in cards]
    assert "DMAB-HYPOCALCEMIA" in codes and "DMAB-DENTAL-CLEARANCE" not in codes
    data_card = next(c for c in cards if c["source"]["topic"]["code"] == "SERVICE-DATA-UNAVAILABLE")
    assert spec.title in data_card["detail"] and "failed" in data_card["detail"]
    assert "DMAB-DENTAL-CLEARANCE" not in data_card["detail"]   # no rule IDs in clinician text (A29)


@pytest.mark.parametrize("path", ["/cds-services/", "//cds-services", "/cds-services//"])
def test_disc_discovery_with_a_trailing_or_double_slash_answers_in_place(client, path) -> None:
    """Issue 14: the sandbox adds a discovery URL ending in '/'; '//' must not 308 (preflight)."""
    raw = {"PATH_INFO": path}   # as the server receives it ("//x" would be a host to a URL parser)
    r = client.get("/", environ_overrides=raw)
    assert r.status_code == 200 and r.get_json()["services"]
    pre = client.options("/", environ_overrides=raw, headers={"Origin": "https://sandbox.cds-hooks.org",
                                                              "Access-Control-Request-Method": "GET"})
    assert pre.status_code < 300


def test_hook_path_with_double_slashes_answers_in_place(client) -> None:
    body = hook_request("patient-view", [patient()])
    r = client.post("/", json=body, environ_overrides={"PATH_INFO": f"//cds-services//{PV}/"})
    assert r.status_code == 200 and "cards" in r.get_json()
