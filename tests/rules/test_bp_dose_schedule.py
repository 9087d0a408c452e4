"""BP-DOSE-SCHEDULE (RULES.md §4, A19): oral bisphosphonate strength and interval match no labelled regimen."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.factory import UCUM, condition, draft
from tests.rules import _helpers as h
from tests.rules._bp_helpers import ETIDRONATE, IBANDRONATE_IV, ZOL5, card, good_labs, pt, run
from tests.rules._helpers import ICD10, ORDER_HOOKS, override_codes

RID = "BP-DOSE-SCHEDULE"
#: RxNorm product codes by (agent, strength) (cds_service/data/codes.json).
CODE = {("alendronate", "70"): "904431", ("alendronate", "35"): "904396", ("alendronate", "10"): "904419",
        ("alendronate", "5"): "904425", ("alendronate", "40"): "904405",
        ("risedronate", "35"): "905024", ("risedronate", "5"): "905041", ("risedronate", "150"): "905028",
        ("risedronate", "75"): "905083", ("risedronate", "30"): "905032",
        ("ibandronate", "150"): "904932", ("ibandronate", "2.5"): "904936"}
DAILY, WEEKLY, MONTHLY, TWO_DAYS = (1, 1, "d"), (1, 1, "wk"), (1, 1, "mo"), (2, 1, "mo")


def order(agent: str, mg: str, repeat: tuple[Any, Any, str] | None, *, text: str | None = None,
          code: str | None = None, dose: float | None = None) -> dict[str, Any]:
    d = draft(code or CODE[(agent, mg)])
    dosage: dict[str, Any] = {}
    if repeat is not None:
        freq, period, unit = repeat
        dosage["timing"] = {"repeat": {k: v for k, v in (("frequency", freq), ("period", period),
                                                         ("periodUnit", unit)) if v is not None}}
    if text:
        dosage["text"] = text
    if dose is not None:
        dosage["doseAndRate"] = [{"doseQuantity": {"value": dose, "unit": "mg", "system": UCUM, "code": "mg"}}]
    d["dosageInstruction"] = [dosage]
    return d


def one(drafts, resources=(), **kw):
    return h.run(RID, [pt(), *resources], drafts=drafts, **kw)


LABELLED = [("alendronate", "70", WEEKLY), ("alendronate", "35", WEEKLY), ("alendronate", "10", DAILY),
            ("alendronate", "5", DAILY), ("alendronate", "40", DAILY),
            ("risedronate", "35", WEEKLY), ("risedronate", "5", DAILY), ("risedronate", "150", MONTHLY),
            ("risedronate", "75", TWO_DAYS), ("risedronate", "30", DAILY),
            ("ibandronate", "150", MONTHLY), ("ibandronate", "2.5", DAILY)]


@pytest.mark.parametrize("agent, mg, repeat", LABELLED)
def test_every_labelled_regimen_is_accepted(agent, mg, repeat):
    assert one([order(agent, mg, repeat)]) is None


@pytest.mark.parametrize("repeat", [(1, 7, "d"), (None, 1, "wk")])
def test_weekly_spellings_are_accepted(repeat):
    assert one([order("alendronate", "70", repeat)]) is None


@pytest.mark.parametrize("days", [28, 30, 31])
def test_monthly_as_28_to_31_days_is_accepted(days):
    assert one([order("ibandronate", "150", (1, days, "d"))]) is None


def test_two_consecutive_days_by_text_is_accepted():
    assert one([order("risedronate", "75", None, text="75 mg on 2 consecutive days each month")]) is None
    assert one([order("risedronate", "75", (1, 1, "mo"), text="Take on two consecutive days monthly")]) is None


@pytest.mark.parametrize("agent, mg, repeat, words", [
    ("alendronate", "70", DAILY, "daily"),
    ("alendronate", "35", DAILY, "daily"),
    ("alendronate", "10", WEEKLY, "weekly"),
    ("alendronate", "40", WEEKLY, "weekly"),
    ("risedronate", "35", DAILY, "daily"),
    ("risedronate", "150", WEEKLY, "weekly"),
    ("risedronate", "150", DAILY, "daily"),
    ("risedronate", "75", MONTHLY, "monthly"),
    ("risedronate", "5", WEEKLY, "weekly"),
    ("ibandronate", "150", WEEKLY, "weekly"),
    ("ibandronate", "150", DAILY, "daily"),
    ("ibandronate", "2.5", MONTHLY, "monthly"),
])
def test_near_misses_fire(agent, mg, repeat, words):
    c = one([order(agent, mg, repeat)])
    assert c is not None and c["indicator"] == "warning"
    assert c["summary"].startswith(f"{agent.capitalize()} {mg} mg {words}: not a labelled regimen (expected ")


@pytest.mark.parametrize("repeat", [(1, 27, "d"), (1, 32, "d"), (1, 6, "d"), (1, 2, "wk"), (2, 1, "d")])
def test_intervals_just_outside_the_labelled_ones_fire(repeat):
    assert one([order("ibandronate", "150", repeat)]) is not None


def test_alendronate_70_daily_summary_names_the_weekly_regimen_and_the_overdose():
    c = one([order("alendronate", "70", DAILY)])
    assert c["summary"] == "Alendronate 70 mg daily: not a labelled regimen (expected 70 mg weekly)"
    assert "7-fold overdose" in c["detail"].split("\n")[0]


def test_strength_with_no_regimen_lists_the_labelled_ones():
    c = one([order("alendronate", "20", WEEKLY, code="46041", dose=20)])   # ingredient code, dose 20 mg
    assert c["summary"].startswith("Alendronate 20 mg weekly: not a labelled regimen (labelled: 70 mg weekly")
    suggestion = c["suggestions"][0]["actions"][0]["resource"]
    assert suggestion["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 70
    assert suggestion["dosageInstruction"][0]["timing"]["repeat"] == {"frequency": 1, "period": 1, "periodUnit": "wk"}


def test_suggestion_same_strength_keeps_the_product_and_corrects_the_interval():
    d = order("alendronate", "70", DAILY)
    c = one([d])
    assert c["selectionBehavior"] == "at-most-one"
    fix, remove = c["suggestions"]
    res = fix["actions"][0]["resource"]
    assert res["medicationCodeableConcept"] == d["medicationCodeableConcept"]
    assert res["dosageInstruction"][0]["timing"]["repeat"] == {"frequency": 1, "period": 1, "periodUnit": "wk"}
    assert remove["actions"][0] == {"type": "delete", "description": "Remove the draft alendronate order",
                                    "resourceId": f"MedicationRequest/{d['id']}"}
    assert override_codes(c) == ["intended-regimen", "paget-regimen", "specialist-decision"]


def test_risedronate_75_weekly_suggests_two_consecutive_days_monthly():
    c = one([order("risedronate", "75", WEEKLY)])
    res = c["suggestions"][0]["actions"][0]["resource"]
    assert res["dosageInstruction"][0]["timing"]["repeat"] == {"frequency": 2, "period": 1, "periodUnit": "mo"}
    assert "2 consecutive days" in res["dosageInstruction"][0]["text"]


def test_paget_strength_at_the_wrong_interval_suggests_the_osteoporosis_regimen_without_paget():
    """Safe reading: 40 mg weekly → 70 mg weekly (same interval), never 40 mg daily, unless Paget's
    disease is on record."""
    c = one([order("alendronate", "40", WEEKLY)])
    dose = c["suggestions"][0]["actions"][0]["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert dose["value"] == 70
    paget = condition("M88.9", ICD10, text="Paget's disease of bone")
    c = one([order("alendronate", "40", WEEKLY)], [paget])
    rep = c["suggestions"][0]["actions"][0]["resource"]["dosageInstruction"][0]
    assert rep["doseAndRate"][0]["doseQuantity"]["value"] == 40 and rep["timing"]["repeat"]["periodUnit"] == "d"


@pytest.mark.parametrize("d", [
    order("alendronate", "70", None),                                   # no timing
    order("alendronate", "70", (1, None, "wk")),                        # no period
    order("alendronate", "70", (1, 1, None)),                           # no unit
    order("alendronate", "70", (1, "weekly", "wk")),                    # not a number
    order("alendronate", "70", (1, 1, "fortnight")),                    # not a FHIR unit
    order("alendronate", "x", DAILY, code="46041"),                     # ingredient, no strength anywhere
], ids=["no-timing", "no-period", "no-unit", "nan", "bad-unit", "no-strength"])
def test_unreadable_strength_or_interval_gives_no_card(d):
    assert one([d]) is None


def test_strength_read_from_code_display_then_dose_then_text():
    by_dose = order("alendronate", "x", DAILY, code="46041", dose=70)
    assert "read from the dose on the order" in one([by_dose])["detail"]
    by_text = order("alendronate", "x", DAILY, code="46041")
    by_text["medicationCodeableConcept"]["text"] = "Alendronate 70 mg tablet"
    assert "read from the drug name" in one([by_text])["detail"]
    assert "read from the product name" in one([order("alendronate", "70", DAILY)])["detail"]


def test_etidronate_iv_agents_and_denosumab_are_not_judged():
    assert one([order("x", "x", DAILY, code=ETIDRONATE)]) is None
    assert one([order("x", "x", DAILY, code=IBANDRONATE_IV)]) is None
    assert one([order("x", "x", DAILY, code=ZOL5)]) is None
    assert one([draft()]) is None


def test_by_name_only_draft_is_judged_and_says_so():
    d = draft(None, text="alendronate 70 mg tablet")
    d["dosageInstruction"] = [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}}]
    c = one([d])
    assert c is not None and "identified by name, not code" in c["detail"]


@pytest.mark.parametrize("hook", ORDER_HOOKS)
def test_through_the_engine_on_both_order_hooks(hook):
    cards = run(good_labs(), [order("alendronate", "70", DAILY)], hook=hook)
    assert card(cards, RID)["indicator"] == "warning"


def test_order_select_only_the_selected_draft():
    bad, good = order("alendronate", "70", DAILY), order("alendronate", "70", WEEKLY)
    assert one([bad, good], hook="order-select", selections=[f"MedicationRequest/{good['id']}"]) is None


def test_card_text_has_no_internal_references():
    c = one([order("alendronate", "70", DAILY)])
    texts = [c["summary"], c["detail"], c["source"]["label"], *[s["label"] for s in c["suggestions"]]]
    for text in texts:
        for p in (r"RULES\.md", "§", r"(?i)\bseeds?\b", r"\b[a-z][a-z0-9]*(_[a-z0-9]+)+\b", r"\burn:",
                  r"\b(DMAB|BP|AR)-[A-Z0-9]+", r"\b(Patient|MedicationRequest)/"):
            assert not re.search(p, text), (p, text)
    assert len(c["detail"].split("#### Details")[0]) <= 700
    assert c["source"]["url"].startswith("https://dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid=")
