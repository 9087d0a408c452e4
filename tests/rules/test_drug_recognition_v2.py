"""Drug recognition and initiation, catalog version 2 (RULES.md D3, D4, §8 A8, A25, A26, A27):
denosumab biosimilar brands settle the regimen, supplement brands come from codes.json,
DMAB-CALCIMIMETIC counts recent administrations, zoledronic acid 5 mg is an initiation only
after 18 months without a dose."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cds_service.chart import add_months, build_chart, default_value_sets
from cds_service.chart.medications import classify
from tests import factory as f
from tests.rules._bp_helpers import ALENDRONATE_70, ZOL5, card, good_labs
from tests.rules._bp_helpers import run as bp_run
from tests.rules._dmab_dosing_helpers import ids, normal_labs, pv
from tests.rules._dmab_helpers import HOOKS, ago, continuation, run

VS = default_value_sets()


def _regimen(text: str, dose_mg: float | None = None) -> str | None:
    body = f.request(None, "2026-01-01", text=text, dose_mg=dose_mg)
    drug = classify(body, VS, {})
    assert drug is not None and drug.drug_class == "denosumab", text
    return drug.regimen


# ---- A8: brand → strength ------------------------------------------------------------------

@pytest.mark.parametrize("brand", ["Prolia", "Jubbonti", "Ospomyv", "Obodence", "Stoboclo", "Conexxence",
                                   "Bildyos", "Bosaya", "Enoby", "Osvyrti", "Boncresa"])
def test_60mg_brand_alone_settles_the_regimen(brand):
    assert _regimen(f"{brand} injection") == "60mg"


@pytest.mark.parametrize("brand", ["Xgeva", "Wyost", "Xbryk", "Osenvelt", "Bomyntra", "Bilprevda", "Aukelso",
                                   "Xtrenbo", "Jubereq", "Oziltus"])
def test_120mg_brand_alone_settles_the_regimen(brand):
    assert _regimen(f"{brand} (denosumab) prefilled") == "120mg"


def test_suffix_never_decides():
    """A8: "-bbdz" is shared by Jubbonti (60 mg) and Wyost (120 mg): the suffix alone is unknown."""
    assert _regimen("denosumab-bbdz injection") is None
    assert _regimen("denosumab-bbdz (Wyost) injection") == "120mg"


def test_brand_wins_over_charted_dose_and_both_brands_go_on_to_dose():
    """D3: the product (brand) wins over a charted dose; brands of both sets go on to step 3."""
    assert _regimen("Xbryk", dose_mg=60) == "120mg"
    assert _regimen("Prolia / Xgeva", dose_mg=60) == "60mg"
    assert _regimen("Prolia / Xgeva") in ("60mg", "120mg", None)


def test_xbryk_without_strength_gives_the_120mg_cards():
    """A8: an Xbryk administration 60 days ago, no strength: DMAB-ONCOLOGY-INTERVAL fires (and
    no 60 mg card)."""
    cards = pv([f.administration(None, ago(60), text="Xbryk"), *normal_labs()])
    assert "DMAB-ONCOLOGY-INTERVAL" in ids(cards)
    assert "DMAB-OVERDUE-TRANSITION" not in ids(cards) and "DMAB-DOSE-DUE" not in ids(cards)


def test_jubbonti_without_strength_gives_the_60mg_cards():
    dose = f.administration(None, add_months(f.NOW.date(), -8), text="Jubbonti 1 syringe")
    cards = pv([dose, *normal_labs()])
    assert "DMAB-OVERDUE-TRANSITION" in ids(cards)


# ---- A25: supplement brands from codes.json --------------------------------------------------

SUPPLEMENT = "DMAB-NO-CA-VITD-SUPPLEMENT"


def _supplement_card(*records):
    base = [f.patient(), *continuation(), f.observation(f.CALCIUM_SERUM, 9.3, "mg/dL", ago(5)),
            f.observation(f.EGFR, 70, "mL/min/{1.73_m2}", ago(5)),
            f.observation(f.VITD, 28, "ng/mL", ago(40))]
    return run(SUPPLEMENT, [*base, *records], drafts=[f.draft(f.DMAB60)])


@pytest.mark.parametrize("text", ["Caltrate 600+D3", "Os-Cal 500", "Oscal chewable", "Citracal Petites",
                                  "Viactiv soft chews", "Tums Extra 750", "Oyst-Cal 500",
                                  "D-Vi-Sol drops", "Drisdol 50,000 units", "Rocaltrol 0.25 mcg",
                                  "Zemplar 1 mcg", "Hectorol 2.5 mcg", "Rayaldee 30 mcg"])
def test_supplement_brands_silence(text):
    assert _supplement_card() is not None
    assert _supplement_card(f.statement(None, ago(30), text=text)) is None


def test_supplement_patterns_are_loaded_from_codes_json():
    """A25: the patterns are the text-pattern entries of the codes.json sets (no list in code)."""
    from cds_service.chart.valuesets import TEXT_PATTERNS, ValueSets

    assert not {"denosumab", "calcium-supplement", "vitamin-d-supplement"} & set(TEXT_PATTERNS)
    sets = dict(VS.sets)
    sets["calcium-supplement-text"] = [s for s in sets["calcium-supplement-text"] if "caltrate" not in s.code]
    trimmed = ValueSets(sets)
    assert "calcium-supplement" not in trimmed.text_matches(["Caltrate 600"])
    assert "calcium-supplement" in VS.text_matches(["Caltrate 600"])


# ---- A26: calcimimetic administrations within 30 days ----------------------------------------

CALCIMIMETIC = "DMAB-CALCIMIMETIC"


@pytest.mark.parametrize("days, fires", [(29, True), (30, True), (31, False)])
def test_calcimimetic_administration_window_30_days(days, fires):
    rec = f.administration(None, ago(days), text="Parsabiv 5 mg IV")
    c = run(CALCIMIMETIC, [f.patient(), rec], drafts=[f.draft()])
    assert (c is not None) is fires
    if fires:
        assert c["summary"].startswith(f"Patient receives Parsabiv 5 mg IV (last given "
                                       f"{ago(days).isoformat()}): with denosumab")
        assert len(c["summary"]) <= 140


@pytest.mark.parametrize("hook", HOOKS)
def test_calcimimetic_dispense_window_unchanged(hook):
    assert run(CALCIMIMETIC, [f.patient(), f.dispense(None, ago(120), text="Sensipar 30 mg")],
               hook=hook, drafts=[f.draft()]) is not None


# ---- A27: zoledronic acid 5 mg initiation after 18 months --------------------------------------

DENTAL = "BP-DENTAL"


@pytest.mark.parametrize("months, days, initiation", [
    (13, 0, False),      # the yearly infusion given at 13 months: continuation
    (18, 0, False),      # exactly 18 calendar months: still within
    (18, 1, True),       # 18 months + 1 day: a new start
    (24, 0, True),       # 2-yearly prevention dose: initiation (A27 choice)
])
def test_zol5_initiation_after_18_months(months, days, initiation):
    last = add_months(f.NOW.date(), -months) - timedelta(days=days)
    cards = bp_run(good_labs() + [f.administration(ZOL5, last.isoformat())], [f.draft(ZOL5)])
    assert (card(cards, DENTAL) is not None) is initiation


def test_zol5_other_antiresorptive_in_365_days_is_no_initiation():
    """D4 (BP-DENTAL): also no other antiresorptive dose in 365 days."""
    cards = bp_run(good_labs() + [f.dispense(ALENDRONATE_70, ago(100), days_supply=30)], [f.draft(ZOL5)])
    assert card(cards, DENTAL) is None
    cards = bp_run(good_labs() + [f.dispense(ALENDRONATE_70, ago(400), days_supply=30)], [f.draft(ZOL5)])
    assert card(cards, DENTAL) is not None


def test_zol5_initiation_window_configurable():
    from cards.thresholds import Thresholds

    last = add_months(f.NOW.date(), -13)
    th = Thresholds(zol5_reinitiation_months=12)
    cards = bp_run(good_labs() + [f.administration(ZOL5, last.isoformat())], [f.draft(ZOL5)], thresholds=th)
    assert card(cards, DENTAL) is not None


def test_zol5_initiation_in_other_rules():
    """A27 "wherever D4 initiation of ZOL 5 mg is used": AR-RECENT-INVASIVE-DENTAL at initiation."""
    chart = build_chart([f.patient(), f.administration(ZOL5, add_months(f.NOW.date(), -13).isoformat())],
                        f.NOW, hook="order-sign", draft_orders=[f.draft(ZOL5)])
    from cards.registry import RuleInput
    from cards.rules import _definitions as defs

    inp = RuleInput(chart=chart, hook="order-sign", now=f.NOW)
    assert defs.draft_initiation(inp, chart.triggers[0]) is False
    chart = build_chart([f.patient(), f.administration(ZOL5, add_months(f.NOW.date(), -19).isoformat())],
                        f.NOW, hook="order-sign", draft_orders=[f.draft(ZOL5)])
    inp = RuleInput(chart=chart, hook="order-sign", now=f.NOW)
    assert defs.draft_initiation(inp, chart.triggers[0]) is True


# ---- A9: Reference.display is drug text (D3) -------------------------------------------------

def test_unresolved_reference_display_brand_settles_the_regimen():
    """A9 + A8: a medicationReference that resolves nowhere, display "Xbryk": 120 mg regimen."""
    dose = f.administration(None, ago(60))
    del dose["medicationCodeableConcept"]
    dose["medicationReference"] = {"reference": "Medication/not-sent", "display": "Xbryk"}
    cards = pv([dose, *normal_labs()])
    assert "DMAB-ONCOLOGY-INTERVAL" in ids(cards)


def test_resolved_medication_code_text_and_reference_display_both_read():
    """D3: the resolved Medication's code and the reference display are both drug texts."""
    med = {"resourceType": "Medication", "id": "m-1", "code": {"text": "denosumab-bbdz"}}
    dose = f.administration(None, add_months(f.NOW.date(), -8))
    del dose["medicationCodeableConcept"]
    dose["medicationReference"] = {"reference": "Medication/m-1", "display": "Jubbonti"}
    cards = pv([med, dose, *normal_labs()])
    assert "DMAB-OVERDUE-TRANSITION" in ids(cards)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("calcium-supplement-text"), "required value sets missing"),
    (lambda d: d["denosumab-120mg-brand-text"].append(
        {"system": "urn:bone-safety-cds:text-pattern", "code": "\\bXbryk\\b"}), "lower case"),
    (lambda d: d["vitamin-d-supplement-text"].append(
        {"system": "urn:bone-safety-cds:text-pattern", "code": "(drisdol"}), "not a valid regular expression"),
])
def test_text_pattern_sets_validated_at_load(tmp_path, change, message):
    """A25: the patterns are data; a file without them or with a bad one stops start-up."""
    import json

    from cds_service.chart.valuesets import DEFAULT_PATH, ValueSetError, load_value_sets

    data = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "codes.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueSetError, match=message):
        load_value_sets(path)
