"""BP-VITD-DEFICIENCY (RULES.md §4, A20): zoledronic acid 5 mg draft with 25-OH vitamin D < 20 ng/mL."""

from __future__ import annotations

import re

import pytest

from tests.factory import VITD, administration, condition, draft, observation
from tests.rules import _helpers as h
from tests.rules._bp_helpers import (ALENDRONATE_70, RECLAST, ZOL4, ZOL5, ZOL_IN, ago, card, good_labs, pt,
                                     run)
from tests.rules._helpers import ICD10, ORDER_HOOKS, override_codes

RID = "BP-VITD-DEFICIENCY"


def vitd(value, days=20, unit="ng/mL", **kw):
    return observation(VITD, value, unit, ago(days), **kw)


def one(resources, drafts=None, **kw):
    """The card of this rule alone (the engine's way of calling it)."""
    return h.run(RID, [pt(), *resources], drafts=drafts if drafts is not None else [draft(ZOL5)], **kw)


@pytest.mark.parametrize("value, fires", [(19.9, True), (20.0, False), (20.1, False), (19.95, False),
                                          (19.94, True), (5, True)])
def test_threshold_is_strictly_below_20_after_rounding_to_one_decimal(value, fires):
    """19.95 rounds to 20.0 (D5: 1 decimal) and does not fire; 19.94 rounds to 19.9 and does."""
    c = one([vitd(value)])
    assert (c is not None) is fires
    if fires:
        assert c["indicator"] == "warning"


@pytest.mark.parametrize("value", [19.9, 15, 12.0, 11.9, 4])
def test_warning_at_every_level_below_20_severe_below_12_named(value):
    c = one([vitd(value)])
    assert c["indicator"] == "warning"                     # A20: warning at every level
    finding = c["detail"].split("\n")[0]
    assert ("severe deficiency" in finding) is (value < 12)


def test_summary_has_value_date_and_action():
    c = one([vitd(14, days=9)])
    assert c["summary"] == (f"25-OH vitamin D 14 ng/mL on {ago(9)}: replete vitamin D before zoledronic acid "
                            "5 mg (hypocalcemia risk)")
    assert len(c["summary"]) < 140


def test_display_keeps_one_decimal_where_rounding_would_reach_the_cutoff():
    """§1.2 rule 6: 19.6 would read "20", 11.7 would read "12": shown at D5's precision."""
    assert "19.6 ng/mL" in one([vitd(19.6)])["summary"]
    assert "11.7 ng/mL" in one([vitd(11.7)])["summary"]
    assert "vitamin D 18 ng/mL" in one([vitd(18.2)])["summary"]


@pytest.mark.parametrize("nmol, fires", [(49.0, True), (49.9, False), (50.0, False)])
def test_nmol_per_litre_is_converted_before_judging(nmol, fires):
    """49 nmol/L = 19.6 ng/mL (fires); 49.9 nmol/L = 19.99 → 20.0 (no card); 50 nmol/L = 20.0."""
    c = one([vitd(nmol, unit="nmol/L")])
    assert (c is not None) is fires
    if fires:
        assert "nmol/L as sent" in c["detail"]


def test_less_than_comparator_is_below():
    assert one([vitd(10, comparator="<")]) is not None
    assert one([vitd(25, comparator=">")]) is None


@pytest.mark.parametrize("days, fires", [(364, True), (365, True), (366, False)])
def test_lookback_is_vitd_lookback_days(days, fires):
    assert (one([vitd(12, days=days)]) is not None) is fires


def test_no_result_no_card():
    assert one([]) is None
    assert one(good_labs()) is None


def test_latest_result_decides_an_older_low_value_is_not_used():
    assert one([vitd(31, days=2), vitd(9, days=100)]) is None
    assert one([vitd(9, days=2), vitd(31, days=100)]) is not None


def test_unusable_latest_result_gives_no_card_and_the_older_one_does_not_stand_in():
    """A39: the latest date decides; no "not checked" rule for bisphosphonates → silence."""
    assert one([vitd(35, days=2, unit="ug", ucum=False), vitd(9, days=100)]) is None
    no_value = vitd(None, days=2, unit=None)
    no_value["dataAbsentReason"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                                "code": "error"}]}
    assert one([no_value, vitd(9, days=100)]) is None


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_ignored_statuses_do_not_count(status):
    assert one([vitd(9, status=status)]) is None
    assert one([vitd(9, status=status), vitd(30, days=40)]) is None


def test_other_patients_result_is_not_used():
    other = vitd(8)
    other["subject"] = {"reference": "Patient/someone-else"}
    cards = run([other, *good_labs()], [draft(ZOL5)])
    assert card(cards, RID) is None


@pytest.mark.parametrize("code", [ZOL5, RECLAST])
def test_zoledronic_acid_5mg_products_fire(code):
    assert one([vitd(12)], drafts=[draft(code)]) is not None


def test_other_bisphosphonates_and_denosumab_are_not_this_rule():
    assert one([vitd(12)], drafts=[draft(ZOL4)]) is None
    assert one([vitd(12)], drafts=[draft(ALENDRONATE_70)]) is None
    assert one([vitd(12)], drafts=[draft()]) is None           # denosumab: DMAB-VITD-DEFICIENCY


def test_unstated_strength_reads_as_5mg_unless_an_oncology_indication():
    assert one([vitd(12)], drafts=[draft(ZOL_IN)]) is not None
    myeloma = condition("C90.00", ICD10, onset=ago(400))
    assert one([vitd(12), myeloma], drafts=[draft(ZOL_IN)]) is None   # read as the 4 mg oncology regimen


@pytest.mark.parametrize("hook", ORDER_HOOKS)
def test_runs_on_both_order_hooks_through_the_engine(hook):
    cards = run([*good_labs(), vitd(12), administration(ZOL5, ago(days=400))], [draft(ZOL5)], hook=hook)
    assert card(cards, RID)["indicator"] == "warning"


def test_not_on_patient_view():
    assert h.run(RID, [pt(), vitd(8), administration(ZOL5, ago(30))], hook="patient-view") is None


def test_suggestions_overrides_and_source():
    c = one([vitd(12)])
    assert c["selectionBehavior"] == "any"
    resources = [s["actions"][0]["resource"] for s in c["suggestions"]]
    assert resources[0]["resourceType"] == "MedicationRequest"
    assert resources[1]["resourceType"] == "ServiceRequest" and resources[1]["code"]["coding"][0]["code"] == "62292-8"
    assert override_codes(c) == ["repletion-in-progress", "recent-result-elsewhere"]
    assert c["source"]["label"].startswith("FDA label: Reclast")
    assert c["source"]["url"].endswith("setid=5a9b3737-9ce6-4a89-b76e-6aab79eba9cf")


def test_card_text_has_no_internal_references_and_the_fixed_layout():
    c = one([vitd(9.4, unit="ug", ucum=False, days=300), vitd(12)])
    texts = [c["summary"], c["detail"], c["source"]["label"], c["source"]["topic"]["display"],
             *[s["label"] for s in c["suggestions"]], *[r["display"] for r in c["overrideReasons"]]]
    for text in texts:
        for p in (r"RULES\.md", "§", r"(?i)\bseeds?\b", r"\b[a-z][a-z0-9]*(_[a-z0-9]+)+\b", r"\burn:",
                  r"\b(DMAB|BP|AR)-[A-Z0-9]+", r"\b(Patient|Observation|MedicationRequest)/"):
            assert not re.search(p, text), (p, text)
    main = c["detail"].split("#### Details")[0]
    assert len(main) <= 700 and "**What to do:**" in main and "**Evidence:**" in main
