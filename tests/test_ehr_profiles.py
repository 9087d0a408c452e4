"""EHR profiles (issue 14): Epic's and Oracle Health's deviations absorbed at the edge.

Epic CDS Hooks tutorial: topic codes alphanumeric (≤ 100, static), ``selectionBehavior`` "any" with
one action per suggestion, preference-list items, ``patient-view`` reused for BPA triggers.
Checklist RESP-1/RESP-2 (response shape), DISC-1 (discovery), CARD-* (card fields kept).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from pathlib import Path

import pytest

from cards.registry import CATALOG_ORDER
from cds_service.app import create_app
from cds_service.config import ConfigError, Settings
from cds_service.ehr_profiles import (EPIC_PREFERENCE_LIST_SYSTEM, EPIC_TRIGGER_EXTENSION, EhrProfile,
                                      alphanumeric_topic, rule_id_of)
from hooks.services import services

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SCENARIO = "org.bone-safety-cds.scenario"
OVERDUE = FIXTURES / "denosumab" / "overdue-8-months.json"


def catalog_order() -> list[str]:
    return list(CATALOG_ORDER)


def _fixtures() -> list[Path]:
    return [f for f in sorted(FIXTURES.glob("*/*.json")) if f.parent.name != "negative"]


def _client(tmp_path: Path, now: datetime, **env: str):
    settings = Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path), **env})
    return create_app(settings, clock=lambda: now).test_client()


def _now(body: dict) -> datetime:
    return datetime.fromisoformat(body["extension"][SCENARIO]["now"].replace("Z", "+00:00"))


def _service(hook: str) -> str:
    return next(s.id for s in services() if s.hook == hook)


def _post(client, body: dict):
    return client.post(f"/cds-services/{_service(body['hook'])}", json=body)


def test_every_rule_has_a_distinct_alphanumeric_topic_that_maps_back() -> None:
    rules = catalog_order()
    codes = [alphanumeric_topic(r) for r in rules]
    assert all(re.fullmatch(r"[A-Za-z0-9]{1,100}", c) for c in codes)
    assert len(set(codes)) == len(rules)
    assert all(rule_id_of(alphanumeric_topic(r), rules) == r for r in rules)
    assert rule_id_of("DMAB-OVERDUE-TRANSITION", rules) == "DMAB-OVERDUE-TRANSITION"
    assert rule_id_of("NOSUCHRULE", rules) is None


@pytest.mark.parametrize("path", _fixtures(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_epic_profile_wire_form_for_every_fixture(path: Path, tmp_path: Path) -> None:
    """Same findings as the standard profile; only the Epic-safe wire form differs."""
    body = json.loads(path.read_text())
    epic = _post(_client(tmp_path / "e", _now(body), BONE_CDS_EHR_PROFILE="epic"), body)
    assert epic.status_code == 200, epic.get_json()
    cards = epic.get_json()["cards"]
    rules = catalog_order()
    got = sorted(rule_id_of(c["source"]["topic"]["code"], rules) or "?" for c in cards)
    assert got == sorted(body["extension"][SCENARIO]["expect"])
    uuids = []
    for card in cards:
        assert re.fullmatch(r"[A-Za-z0-9]{1,100}", card["source"]["topic"]["code"])
        if card.get("suggestions"):
            assert card["selectionBehavior"] == "any"
        for s in card.get("suggestions", []):
            assert len(s.get("actions", [])) <= 1 and s["label"]
            uuids.append(s["uuid"])
    assert len(uuids) == len(set(uuids)), "split suggestions must keep distinct uuids"


def test_epic_alternatives_are_said_in_labels_and_detail(tmp_path: Path) -> None:
    body = json.loads(OVERDUE.read_text())
    std = _post(_client(tmp_path / "s", _now(body)), body).get_json()["cards"]
    epic = _post(_client(tmp_path / "e", _now(body), BONE_CDS_EHR_PROFILE="epic"), body).get_json()["cards"]
    s_card = next(c for c in std if c["source"]["topic"]["code"] == "DMAB-OVERDUE-TRANSITION")
    e_card = next(c for c in epic if c["source"]["topic"]["code"] == "DMABOVERDUETRANSITION")
    assert s_card["selectionBehavior"] == "at-most-one"
    n_actions = sum(len(s["actions"]) for s in s_card["suggestions"])
    assert len(e_card["suggestions"]) == n_actions > len(s_card["suggestions"])
    assert all(s["label"].startswith("Option ") for s in e_card["suggestions"])
    assert "alternatives" in e_card["detail"] and e_card["summary"] == s_card["summary"]
    meds = [s for s in e_card["suggestions"] if s["actions"][0]["resource"]["resourceType"] == "MedicationRequest"]
    assert meds and all("dose" in s["label"] or "mg" in s["label"] for s in meds)


def test_preference_list_items_are_added_to_matching_medication_suggestions(tmp_path: Path) -> None:
    body = json.loads(OVERDUE.read_text())
    std = _post(_client(tmp_path / "s", _now(body)), body).get_json()["cards"]
    med = next(a["resource"] for c in std for s in c.get("suggestions", []) for a in s["actions"]
               if a["resource"]["resourceType"] == "MedicationRequest")
    coding = med["medicationCodeableConcept"]["coding"][0]
    items = json.dumps({f"{coding['system']}|{coding['code']}": "99123"})
    epic = _post(_client(tmp_path / "e", _now(body), BONE_CDS_EHR_PROFILE="epic",
                         BONE_CDS_EPIC_PREFERENCE_ITEMS=items), body).get_json()["cards"]
    codings = [a["resource"]["medicationCodeableConcept"]["coding"] for c in epic
               for s in c.get("suggestions", []) for a in s["actions"]
               if a["resource"]["resourceType"] == "MedicationRequest"]
    marked = [cs for cs in codings if cs[0]["system"] == EPIC_PREFERENCE_LIST_SYSTEM]
    assert len(marked) == 1 and marked[0][0]["code"] == "99123" and marked[0][1] == coding


def _pv(trigger: str | None) -> dict:
    body = json.loads(OVERDUE.read_text())
    if trigger is not None:
        body.setdefault("extension", {})[EPIC_TRIGGER_EXTENSION] = trigger
    return body


@pytest.mark.parametrize("trigger,answered", [("60", True), ("18", True), ("26", False), (None, True)])
def test_epic_patient_view_answers_only_configured_triggers(tmp_path: Path, trigger, answered, caplog) -> None:
    body = _pv(trigger)
    client = _client(tmp_path, _now(body), BONE_CDS_EHR_PROFILE="epic",
                     BONE_CDS_EPIC_PATIENT_VIEW_TRIGGERS="60,18")
    with caplog.at_level(logging.INFO):
        cards = _post(client, body).get_json()["cards"]
    assert bool(cards) is answered
    if trigger is not None:
        assert any(f"'{trigger}'" in r.getMessage() or trigger in json.dumps(getattr(r, "event", {}))
                   for r in caplog.records)
    patient = body["context"]["patientId"]
    assert not any(patient in json.dumps(getattr(r, "event", {})) for r in caplog.records)


def test_epic_triggers_default_to_all(tmp_path: Path) -> None:
    body = _pv("26")
    assert _post(_client(tmp_path, _now(body), BONE_CDS_EHR_PROFILE="epic"), body).get_json()["cards"]


def test_standard_profile_leaves_the_response_as_the_engine_made_it(tmp_path: Path) -> None:
    body = json.loads(OVERDUE.read_text())
    cards = _post(_client(tmp_path, _now(body)), body).get_json()["cards"]
    assert any("-" in c["source"]["topic"]["code"] for c in cards)
    assert any(c.get("selectionBehavior") == "at-most-one" for c in cards)
    assert EhrProfile().shape({"cards": [{"x": 1}]}) == {"cards": [{"x": 1}]}


def test_oracle_profile_offers_patient_view_only(tmp_path: Path) -> None:
    body = json.loads(OVERDUE.read_text())
    client = _client(tmp_path, _now(body), BONE_CDS_EHR_PROFILE="oracle")
    hooks = [s["hook"] for s in client.get("/cds-services").get_json()["services"]]
    assert hooks == ["patient-view"]
    assert _post(client, body).status_code == 200
    order = client.post(f"/cds-services/{_service('order-sign')}", json={})
    assert order.status_code == 404 and order.get_json()["error"] == "unknown_service"


def test_feedback_store_keeps_our_rule_ids_in_the_epic_profile(tmp_path: Path) -> None:
    body = json.loads(OVERDUE.read_text())
    client = _client(tmp_path, _now(body), BONE_CDS_EHR_PROFILE="epic")
    cards = _post(client, body).get_json()["cards"]
    issued = {c["card_uuid"]: c["rule_id"] for c in client.application.config["FEEDBACK_STORE"].issued()}
    assert {issued[c["uuid"]] for c in cards} <= set(catalog_order())


@pytest.mark.parametrize("env,needle", [
    ({"BONE_CDS_EHR_PROFILE": "cerner"}, "BONE_CDS_EHR_PROFILE"),
    ({"BONE_CDS_EHR_PROFILE": "epic", "BONE_CDS_EPIC_PATIENT_VIEW_TRIGGERS": "open chart"},
     "BONE_CDS_EPIC_PATIENT_VIEW_TRIGGERS"),
    ({"BONE_CDS_EPIC_PATIENT_VIEW_TRIGGERS": "60"}, "BONE_CDS_EHR_PROFILE=epic"),
    ({"BONE_CDS_EHR_PROFILE": "epic", "BONE_CDS_EPIC_PREFERENCE_ITEMS": '{"nocode": "1"}'},
     "BONE_CDS_EPIC_PREFERENCE_ITEMS"),
    ({"BONE_CDS_EHR_PROFILE": "epic", "BONE_CDS_EPIC_PREFERENCE_ITEMS": '["x"]'},
     "BONE_CDS_EPIC_PREFERENCE_ITEMS"),
])
def test_invalid_profile_settings_stop_start_up(env: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(needle)):
        Settings.from_env(env)


def test_oracle_profile_trusts_oracles_issuer_by_default() -> None:
    env = {"BONE_CDS_EHR_PROFILE": "oracle", "BONE_CDS_AUTH": "jwt",
           "BONE_CDS_AUDIENCE_BASE_URLS": "https://cds.example.org"}
    trusted = Settings.from_env(env).auth.trusted_issuers
    assert trusted == {"https://cds-hooks.cerner.com": {"jwks_uri": "https://authorization.cerner.com/jwk"}}
    # a site's own list wins; without the oracle profile nothing is trusted by default
    own = Settings.from_env({**env, "BONE_CDS_TRUSTED_ISSUERS": '{"https://i.example": {"jwks_uri": "https://i.example/k"}}'})
    assert list(own.auth.trusted_issuers) == ["https://i.example"]
    with pytest.raises(ConfigError, match="BONE_CDS_TRUSTED_ISSUERS"):
        Settings.from_env({**env, "BONE_CDS_EHR_PROFILE": "epic"})
