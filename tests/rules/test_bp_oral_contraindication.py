"""BP-ORAL-CONTRAINDICATION (RULES.md §4, A18): oral bisphosphonate with delayed esophageal
emptying (critical) or a recorded inability to stay upright (warning)."""

from __future__ import annotations

import re

import pytest

from tests.factory import condition, draft
from tests.rules import _helpers as h
from tests.rules._bp_helpers import (ALENDRONATE_70, IBANDRONATE_150, IBANDRONATE_IV, RISEDRONATE_35, ZOL5,
                                     ago, card, good_labs, pt, run)
from tests.rules._helpers import ICD10, ORDER_HOOKS, SNOMED, override_codes

RID = "BP-ORAL-CONTRAINDICATION"
STRICTURE = ("63305008", SNOMED)
ACHALASIA_ICD = ("K22.0", ICD10)
BED_BOUND = ("Z74.01", ICD10)


def one(resources, drafts=None, **kw):
    return h.run(RID, [pt(), *resources], drafts=drafts if drafts is not None else [draft(ALENDRONATE_70)], **kw)


@pytest.mark.parametrize("cond", [
    condition(*STRICTURE, text="Stricture of esophagus", onset=ago(300)),
    condition(*ACHALASIA_ICD, text="Achalasia of cardia"),
    condition("K22.2", ICD10),
    condition("Q39.3", ICD10),
    condition("45564002", SNOMED),
])
def test_esophageal_stricture_or_achalasia_is_critical(cond):
    c = one([cond])
    assert c["indicator"] == "critical"
    assert c["summary"].endswith("on record: oral alendronate is contraindicated (delayed esophageal emptying)")


@pytest.mark.parametrize("text", ["Achalasia", "Esophageal stricture after radiotherapy",
                                  "benign stricture of the oesophagus"])
def test_esophageal_disorder_recognised_by_name(text):
    c = one([condition(None, text=text)])
    assert c["indicator"] == "critical" and "identified by name, not code" in c["detail"]


@pytest.mark.parametrize("kw", [{"clinical": "resolved"}, {"clinical": "inactive"}, {"clinical": "remission"},
                                {"clinical": None, "abatement": "2024-01-01"},
                                {"verification": "refuted"}, {"verification": "entered-in-error"}])
def test_resolved_inactive_refuted_or_in_error_entries_do_not_count(kw):
    assert one([condition(*STRICTURE, **kw)]) is None
    assert one([condition(*BED_BOUND, **kw)]) is None


def test_provisional_entry_counts_and_is_named_suspected():
    c = one([condition(*STRICTURE, verification="provisional")])
    assert c["indicator"] == "critical" and "suspected" in c["detail"]


@pytest.mark.parametrize("code, agent, minutes", [(ALENDRONATE_70, "alendronate", 30),
                                                  (RISEDRONATE_35, "risedronate", 30),
                                                  (IBANDRONATE_150, "ibandronate", 60)])
def test_unable_to_stay_upright_is_a_warning_with_the_agents_minutes(code, agent, minutes):
    c = one([condition(*BED_BOUND, text="Bed confinement status")], drafts=[draft(code)])
    assert c["indicator"] == "warning"
    assert c["summary"] == (f"Recorded as unable to stay upright: oral {agent} needs {minutes} minutes "
                            "upright after each dose")


@pytest.mark.parametrize("text", ["Bedridden", "Unable to sit upright", "bed-bound after stroke"])
def test_inability_to_stay_upright_recognised_by_name(text):
    assert one([condition(None, text=text)])["indicator"] == "warning"


def test_both_findings_one_card_indicator_highest():
    c = one([condition(*BED_BOUND), condition(*STRICTURE)])
    assert c["indicator"] == "critical"
    assert "unable to stay upright for 30 minutes" in c["detail"]


def test_no_condition_no_card():
    assert one([]) is None
    assert one([condition("44054006", SNOMED, text="Type 2 diabetes")]) is None


def test_iv_bisphosphonates_and_denosumab_are_not_concerned():
    assert one([condition(*STRICTURE)], drafts=[draft(ZOL5)]) is None
    assert one([condition(*STRICTURE)], drafts=[draft(IBANDRONATE_IV)]) is None
    assert one([condition(*STRICTURE)], drafts=[draft()]) is None


def test_order_select_judges_only_the_selected_draft():
    oral, iv = draft(ALENDRONATE_70), draft(ZOL5)
    assert one([condition(*STRICTURE)], drafts=[oral, iv], hook="order-select",
               selections=[f"MedicationRequest/{iv['id']}"]) is None
    assert one([condition(*STRICTURE)], drafts=[oral, iv], hook="order-select",
               selections=[f"MedicationRequest/{oral['id']}"]) is not None


@pytest.mark.parametrize("hook", ORDER_HOOKS)
def test_through_the_engine_one_card_for_two_oral_drafts(hook):
    cards = run([*good_labs(), condition(*STRICTURE)], [draft(ALENDRONATE_70), draft(RISEDRONATE_35)], hook=hook)
    assert h.ids(cards).count(RID) == 1 and card(cards, RID)["indicator"] == "critical"
    assert h.ids(cards)[0] == RID                 # critical first (§1.1 ordering)


def test_not_on_patient_view():
    assert h.run(RID, [pt(), condition(*STRICTURE)], hook="patient-view") is None


def test_suggestions_remove_the_draft_and_offer_iv_zoledronic_acid():
    d = draft(ALENDRONATE_70)
    c = one([condition(*STRICTURE)], drafts=[d])
    delete = c["suggestions"][0]["actions"][0]
    assert delete == {"type": "delete", "description": "Remove the draft alendronate order",
                      "resourceId": f"MedicationRequest/{d['id']}"}
    iv = c["suggestions"][-1]
    med = iv["actions"][0]["resource"]
    assert med["medicationCodeableConcept"]["coding"][0]["code"] == "705824"
    assert "kidney function and calcium" in iv["label"]
    assert c["selectionBehavior"] == "any"
    assert override_codes(c) == ["condition-treated", "can-sit-upright", "specialist-decision",
                                 "iv-alternative-planned"]
    assert all(r["display"] for r in c["overrideReasons"])


def test_source_is_the_agents_label():
    assert one([condition(*STRICTURE)])["source"]["url"].endswith("14e931fd-2c5f-4d90-b7db-5980706f4a56")
    ib = one([condition(*STRICTURE)], drafts=[draft(IBANDRONATE_150)])
    assert "ibandronate" in ib["source"]["label"] and "86c0b4ae" in ib["source"]["url"]


def test_record_text_is_escaped_and_no_internal_references():
    c = one([condition(None, text="Achalasia [see](http://x) *urgent*")])
    assert "[see](http" not in c["detail"]
    texts = [c["summary"], c["detail"], c["source"]["label"], *[s["label"] for s in c["suggestions"]],
             *[a.get("description", "") for s in c["suggestions"] for a in s["actions"]]]
    for text in texts:
        for p in (r"RULES\.md", "§", r"(?i)\bseeds?\b", r"\b[a-z][a-z0-9]*(_[a-z0-9]+)+\b", r"\burn:",
                  r"\b(DMAB|BP|AR)-[A-Z0-9]+", r"\b(Patient|Condition|MedicationRequest)/"):
            assert not re.search(p, text), (p, text)
    assert len(c["detail"].split("#### Details")[0]) <= 700
