"""AR-CALCIUM-NOT-CHECKED (RULES.md §5): no usable calcium within 30 days before denosumab or an
IV bisphosphonate; never for oral bisphosphonates; silent whenever a usable calcium exists."""

from __future__ import annotations

import pytest

from cards.thresholds import Thresholds
from tests.factory import (ALBUMIN, ALENDRONATE, CALCIUM_IONIZED, CALCIUM_SERUM, CREATININE, DMAB60,
                           DMAB120, EGFR, IBANDRONATE_ORAL, RISEDRONATE, ZOL4, ZOL5, administration,
                           condition, dispense, draft, observation, patient, request, statement)
from tests.rules._ar_helpers import ago, engine_ids, override_codes, run, suggestion_codes

RID = "AR-CALCIUM-NOT-CHECKED"
IBANDRONATE_IV = "904952"
CALCIUM_CORRECTED = "29265-6"
CINACALCET = "432402"


def base() -> list[dict]:
    """A 71-year-old woman with normal kidney function and no calcium on record."""
    return [patient("1955-04-10", "female"), observation(EGFR, 72, "mL/min/{1.73_m2}", ago(20))]


def dmab_continuation() -> list[dict]:
    return base() + [administration(DMAB60, ago(months=6))]


# ---- fires on missing / stale / ignored / unusable ------------------------------------------------

def test_ar_calcium_not_checked_fires_for_denosumab_with_no_calcium_on_record():
    card = run(RID, base(), drafts=[draft(DMAB60)])
    assert card is not None
    assert card["indicator"] == "warning"  # initiation
    assert card["summary"] == ("No serum calcium in the last 30 days (last: none on record): "
                               "check calcium before denosumab")
    assert card["source"]["topic"] == {"system": "urn:bone-safety-cds:rule", "code": RID,
                                       "display": "No recent calcium before denosumab or an IV bisphosphonate"}
    assert "No calcium result of any age is on record" in card["detail"] and "30 days" in card["detail"]
    assert override_codes(card) == ["result-elsewhere", "drawn-today"]
    assert card["source"]["url"].startswith("https://dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid=")


@pytest.mark.parametrize("days_ago, fires", [(29, False), (30, False), (31, True)])
def test_ar_calcium_not_checked_window_boundary(days_ago, fires):
    res = dmab_continuation() + [observation(CALCIUM_SERUM, 9.4, "mg/dL", ago(days_ago))]
    card = run(RID, res, drafts=[draft(DMAB60)])
    assert (card is not None) is fires
    if fires:
        assert f"(last: {ago(days_ago).isoformat()})" in card["summary"]
        assert "9.4 mg/dL" in card["detail"] and "stale" in card["detail"]


def test_ar_calcium_not_checked_window_is_the_configured_threshold():
    res = dmab_continuation() + [observation(CALCIUM_SERUM, 9.4, "mg/dL", ago(31))]
    assert run(RID, res, drafts=[draft(DMAB60)], thresholds=Thresholds(calcium_lookback_days=45)) is None
    card = run(RID, res, drafts=[draft(DMAB60)], thresholds=Thresholds(calcium_lookback_days=20))
    assert card is not None and "last 20 days" in card["summary"]


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled", "registered"])
def test_ar_calcium_not_checked_ignored_statuses_do_not_count(status):
    res = dmab_continuation() + [observation(CALCIUM_SERUM, 9.4, "mg/dL", ago(3), status=status)]
    card = run(RID, res, drafts=[draft(DMAB60)])
    assert card is not None and "none on record" in card["summary"]


@pytest.mark.parametrize("status", ["final", "amended", "corrected", "preliminary"])
def test_ar_calcium_not_checked_counting_statuses_silence_it(status):
    res = dmab_continuation() + [observation(CALCIUM_SERUM, 9.4, "mg/dL", ago(3), status=status)]
    assert run(RID, res, drafts=[draft(DMAB60)]) is None


@pytest.mark.parametrize("value, unit", [(9.4, "mg/dL"), (2.35, "mmol/L"), (2.35, "mmol/l"), (4.7, "meq/L")])
def test_ar_calcium_not_checked_silent_with_calcium_in_either_unit(value, unit):
    res = dmab_continuation() + [observation(CALCIUM_SERUM, value, unit, ago(5))]
    assert run(RID, res, drafts=[draft(DMAB60)]) is None


@pytest.mark.parametrize("unit", ["mg", "umol/L", None])
def test_ar_calcium_not_checked_fires_when_only_unknown_units(unit):
    res = dmab_continuation() + [observation(CALCIUM_SERUM, 9.4, unit, ago(5))]
    card = run(RID, res, drafts=[draft(DMAB60)])
    assert card is not None
    assert card["summary"] == (f"No usable calcium in the last 30 days (latest {ago(5).isoformat()}: "
                               "unit not recognised): check calcium before denosumab")
    shown = f'("{unit}")' if unit else "(no unit)"
    assert f"Calcium 9.4 on {ago(5).isoformat()}: unit not recognised {shown}" in card["detail"]


# ---- A39: the latest calcium date decides, usable or not ------------------------------------------

def _unit(value, when):
    return observation(CALCIUM_SERUM, value, "mmol", when, ucum=False)


def _no_value(when, display="Error"):
    obs = observation(CALCIUM_SERUM, None, None, when)
    obs["dataAbsentReason"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                           "code": "error", **({"display": display} if display else {})}]}
    return obs


def _text(text, when):
    return observation(CALCIUM_SERUM, None, None, when, value_string=text)


@pytest.mark.parametrize("latest, words, reason", [
    (lambda: _unit(9.43, ago(1)), f'Calcium 9.4 on {ago(1).isoformat()}: unit not recognised ("mmol")',
     "unit not recognised"),
    (lambda: _no_value(ago(1)), f"Calcium on {ago(1).isoformat()}: no value (Error)", "no value"),
    (lambda: _no_value(ago(1), display=None), f"Calcium on {ago(1).isoformat()}: no value (error)", "no value"),
    (lambda: observation(CALCIUM_SERUM, None, None, ago(1)), f"Calcium on {ago(1).isoformat()}: no value.",
     "no value"),
    (lambda: _text("haemolysed", ago(1)), f'Calcium on {ago(1).isoformat()}: no numeric value ("haemolysed")',
     "no numeric value"),
])
@pytest.mark.parametrize("older_value", [9.4, 7.2])
def test_a39_unusable_latest_calcium_falls_back_and_the_older_value_is_not_judged(latest, words, reason, older_value):
    """D5 example: calcium with dataAbsentReason yesterday and 9.4 mg/dL three weeks ago, Prolia
    continuation → this card, not silence; an older low value is named ("was low"), not judged."""
    res = dmab_continuation() + [latest(), observation(CALCIUM_SERUM, older_value, "mg/dL", ago(12))]
    card = run(RID, res, drafts=[draft(DMAB60)])
    assert card is not None
    assert card["summary"] == (f"No usable calcium in the last 30 days (latest {ago(1).isoformat()}: "
                               f"{reason}): check calcium before denosumab")
    finding = card["detail"].split("\n")[0]
    assert words in finding and "unit not recognised" not in finding.replace(words, "") 
    assert "not used: a newer result exists" in card["detail"]
    if older_value < 8.5:
        assert f"previous result, calcium 7.2 mg/dL (measured 7.2 mg/dL) on {ago(12).isoformat()}, was low" in finding
        assert card["indicator"] == "warning"       # the earlier low value: hypocalcemia-prone (D9)
    else:
        assert "was low" not in card["detail"] and card["indicator"] == "info"
    ids = engine_ids(res, drafts=[draft(DMAB60)])
    assert RID in ids and "DMAB-HYPOCALCEMIA" not in ids


def test_a39_no_value_is_never_worded_unit_not_recognised():
    card = run(RID, dmab_continuation() + [_no_value(ago(1))], drafts=[draft(DMAB60)])
    assert "unit not recognised" not in card["summary"] + card["detail"]


def test_a39_usable_latest_calcium_decides_unchanged():
    """An unusable result older than a usable one changes nothing: the newer usable one decides."""
    res = dmab_continuation() + [observation(CALCIUM_SERUM, 9.4, "mg/dL", ago(1)), _no_value(ago(5))]
    assert run(RID, res, drafts=[draft(DMAB60)]) is None
    low = dmab_continuation() + [observation(CALCIUM_SERUM, 7.4, "mg/dL", ago(1)), _no_value(ago(5))]
    ids = engine_ids(low, drafts=[draft(DMAB60)])
    assert "DMAB-HYPOCALCEMIA" in ids and RID not in ids


@pytest.mark.parametrize("other", [
    lambda: observation(CALCIUM_SERUM, 9.4, "mg/dL", ago(1)),
    lambda: observation(CALCIUM_IONIZED, 1.22, "mmol/L", ago(1)),
    lambda: observation(CALCIUM_CORRECTED, 9.3, "mg/dL", ago(1)),
])
def test_a39_same_date_one_usable_result_decides(other):
    """Several calcium results (any form) on the latest date: the usable ones decide."""
    res = dmab_continuation() + [_no_value(ago(1)), other(), observation(CALCIUM_SERUM, 7.0, "mg/dL", ago(9))]
    assert run(RID, res, drafts=[draft(DMAB60)]) is None
    assert "DMAB-HYPOCALCEMIA" not in engine_ids(res, drafts=[draft(DMAB60)])   # 7.0 is older: not judged


def test_a39_unusable_ionized_on_the_latest_date_does_not_let_an_older_total_decide():
    """The latest date holding a calcium of any form decides (D5 "Calcium to judge")."""
    res = dmab_continuation() + [observation(CALCIUM_IONIZED, 1.2, "mg", ago(1), ucum=False),
                                 observation(CALCIUM_SERUM, 9.4, "mg/dL", ago(3))]
    card = run(RID, res, drafts=[draft(DMAB60)])
    assert card is not None and f'Ionized calcium 1.20 on {ago(1).isoformat()}: unit not recognised ("mg")' in card["detail"]


def test_a39_window_first_an_unusable_result_outside_the_window_is_only_stale():
    """Within the window first: an unusable result 40 days ago is stale, not "the latest"; a
    usable one in the window decides; none in the window → the plain "none in the window" card."""
    inside = dmab_continuation() + [observation(CALCIUM_SERUM, 9.4, "mg/dL", ago(20)), _no_value(ago(40))]
    assert run(RID, inside, drafts=[draft(DMAB60)]) is None
    only_outside = dmab_continuation() + [_no_value(ago(31)), observation(CALCIUM_SERUM, 9.4, "mg/dL", ago(45))]
    card = run(RID, only_outside, drafts=[draft(DMAB60)])
    assert card["summary"].startswith(f"No serum calcium in the last 30 days (last: {ago(31).isoformat()})")
    assert f"Calcium on {ago(31).isoformat()}: no value (Error) — stale" in card["detail"]


def test_a39_unusable_latest_with_a_stale_usable_one_names_it_stale():
    res = dmab_continuation() + [_no_value(ago(2)), observation(CALCIUM_SERUM, 9.4, "mg/dL", ago(50))]
    card = run(RID, res, drafts=[draft(DMAB60)])
    assert f"Last usable calcium: calcium 9.4 mg/dL (measured 9.4 mg/dL) on {ago(50).isoformat()} — stale" in card["detail"]
    assert "newer result exists" not in card["detail"]


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_a39_entered_in_error_latest_does_not_count_so_the_older_one_decides(status):
    res = dmab_continuation() + [_no_value(ago(1)), observation(CALCIUM_SERUM, 7.1, "mg/dL", ago(10))]
    res[-2]["status"] = status
    assert run(RID, res, drafts=[draft(DMAB60)]) is None
    assert "DMAB-HYPOCALCEMIA" in engine_ids(res, drafts=[draft(DMAB60)])


def test_a39_iv_bisphosphonate_falls_back_oral_gets_no_card():
    res = base() + [_unit(7.0, ago(1)), observation(CALCIUM_SERUM, 7.0, "mg/dL", ago(8))]
    assert run(RID, res, drafts=[draft(ZOL5)]) is not None
    for d in (draft(ZOL5), draft(ALENDRONATE)):
        assert "BP-HYPOCALCEMIA" not in engine_ids(res, drafts=[d])
    assert RID not in engine_ids(res, drafts=[draft(ALENDRONATE)])


def test_a39_card_text_has_no_internal_references():
    import re
    res = dmab_continuation() + [_no_value(ago(1)), observation(CALCIUM_SERUM, 7.2, "mg/dL", ago(12))]
    card = run(RID, res, drafts=[draft(DMAB60)])
    text = card["summary"] + card["detail"]
    for pattern in (r"RULES\.md", "§", r"\bseeds?\b", r"\(D(10|[1-9])\)", r"\b[a-z][a-z0-9]*(_[a-z0-9]+)+\b",
                    r"\bObservation/", r"\burn:"):
        assert not re.search(pattern, text, re.IGNORECASE if "seed" in pattern else 0), pattern


def test_ar_calcium_not_checked_silent_with_ionized_or_lab_corrected_calcium_only():
    ionized = dmab_continuation() + [observation(CALCIUM_IONIZED, 1.22, "mmol/L", ago(2))]
    corrected = dmab_continuation() + [observation(CALCIUM_CORRECTED, 2.30, "mmol/L", ago(2))]
    assert run(RID, ionized, drafts=[draft(DMAB60)]) is None
    assert run(RID, corrected, drafts=[draft(DMAB60)]) is None


def test_ar_calcium_not_checked_silent_when_calcium_is_low_exclusive_with_hypocalcemia_rules():
    """§7: a low calcium is DMAB-/BP-HYPOCALCEMIA's finding, never "not checked"."""
    res = dmab_continuation() + [observation(CALCIUM_SERUM, 7.9, "mg/dL", ago(4)),
                                 observation(ALBUMIN, 4.1, "g/dL", ago(4))]
    assert run(RID, res, drafts=[draft(DMAB60)]) is None
    assert run(RID, res, drafts=[draft(ZOL5)]) is None
    assert RID not in engine_ids(res, drafts=[draft(DMAB60)])


def test_ar_calcium_not_checked_future_dated_result_is_not_used():
    res = dmab_continuation() + [observation(CALCIUM_SERUM, 9.4, "mg/dL", ago(-2))]
    card = run(RID, res, drafts=[draft(DMAB60)])
    assert card is not None and "none on record" in card["summary"]


# ---- which drafts --------------------------------------------------------------------------------

@pytest.mark.parametrize("code", [ZOL5, ZOL4, IBANDRONATE_IV])
def test_ar_calcium_not_checked_fires_for_iv_bisphosphonate_always_warning(code):
    res = base() + [administration(code, ago(months=11))]  # continuation of the IV agent
    card = run(RID, res, drafts=[draft(code)])
    assert card is not None and card["indicator"] == "warning"
    assert "IV bisphosphonate" in card["detail"]


def test_ar_calcium_not_checked_pamidronate_by_text_is_iv():
    card = run(RID, base(), drafts=[draft(None, text="Pamidronate 90 mg in 500 mL NS IV")])
    assert card is not None and "pamidronate" in card["summary"]


@pytest.mark.parametrize("code", [ALENDRONATE, RISEDRONATE, IBANDRONATE_ORAL])
def test_ar_calcium_not_checked_never_for_oral_bisphosphonates(code):
    """§8 item 16: no "not checked" card for oral agents, even with no calcium ever."""
    assert run(RID, base(), drafts=[draft(code)]) is None


def test_ar_calcium_not_checked_other_drugs_do_not_trigger():
    assert run(RID, base(), drafts=[draft("197361", text="amlodipine 5 mg tablet")]) is None


def test_ar_calcium_not_checked_zoledronic_acid_summary_names_the_agent():
    card = run(RID, base(), drafts=[draft(ZOL5)])
    assert card["summary"].endswith("check calcium before zoledronic acid")
    assert card["source"]["label"].startswith("FDA label: Reclast")


# ---- indicator -----------------------------------------------------------------------------------

def test_ar_calcium_not_checked_info_for_plain_denosumab_continuation():
    card = run(RID, dmab_continuation(), drafts=[draft(DMAB60)])
    assert card is not None and card["indicator"] == "info"


def test_ar_calcium_not_checked_restart_after_a_year_counts_as_initiation():
    res = base() + [administration(DMAB60, ago(366))]
    assert run(RID, res, drafts=[draft(DMAB60)])["indicator"] == "warning"
    res = base() + [administration(DMAB60, ago(365))]
    assert run(RID, res, drafts=[draft(DMAB60)])["indicator"] == "info"


@pytest.mark.parametrize("extra, word", [
    ([observation(EGFR, 24, "mL/min/{1.73_m2}", ago(2))], "advanced CKD"),
    ([condition("431857002")], "advanced CKD"),
    ([condition("36976004", text="Hypoparathyroidism")], "Hypoparathyroidism"),
    ([condition("5291005", text="Hypocalcemia")], "Hypocalcemia"),
    ([observation(CALCIUM_SERUM, 8.1, "mg/dL", ago(200))], "low calcium"),
    ([request(CINACALCET, ago(90), text="cinacalcet 30 mg tablet")], "calcimimetic"),
    ([dispense(CINACALCET, ago(100), text="cinacalcet 30 mg tablet")], "calcimimetic"),
])
def test_ar_calcium_not_checked_warning_when_prone_or_calcimimetic(extra, word):
    card = run(RID, dmab_continuation() + extra, drafts=[draft(DMAB60)])
    assert card is not None and card["indicator"] == "warning"
    assert word in card["detail"]


def test_ar_calcium_not_checked_prone_only_by_recent_low_and_active_conditions():
    """A low calcium more than 365 days ago, or a resolved hypocalcemia, does not make warning."""
    res = dmab_continuation() + [observation(CALCIUM_SERUM, 8.1, "mg/dL", ago(400)),
                                 condition("5291005", clinical="resolved"),
                                 statement(CINACALCET, ago(400), status="stopped")]
    assert run(RID, res, drafts=[draft(DMAB60)])["indicator"] == "info"


def test_ar_calcium_not_checked_low_total_calcium_corrected_to_normal_is_not_prone():
    """D5: 8.3 mg/dL with albumin 3.0 g/dL corrects to 9.1 — not a low calcium (D9)."""
    res = dmab_continuation() + [observation(CALCIUM_SERUM, 8.3, "mg/dL", ago(200)),
                                 observation(ALBUMIN, 3.0, "g/dL", ago(200))]
    assert run(RID, res, drafts=[draft(DMAB60)])["indicator"] == "info"


# ---- suggestions ---------------------------------------------------------------------------------

def test_ar_calcium_not_checked_suggests_calcium_and_albumin():
    card = run(RID, dmab_continuation(), drafts=[draft(DMAB60)])
    assert suggestion_codes(card) == [["17861-6", "1751-7"]]
    assert card["selectionBehavior"] == "any"
    res = card["suggestions"][0]["actions"][0]["resource"]
    assert res["resourceType"] == "ServiceRequest" and res["status"] == "draft" and res["intent"] == "order"
    assert res["subject"] == {"reference": "Patient/pat-1"} and res["authoredOn"] == "2026-11-23"


def test_ar_calcium_not_checked_adds_creatinine_when_egfr_also_missing():
    res = [patient(), administration(DMAB60, ago(months=6)),
           observation(CREATININE, 0.9, "mg/dL", ago(20))]
    card = run(RID, res, drafts=[draft(DMAB60)])
    assert suggestion_codes(card) == [["17861-6", "1751-7", "2160-0"]]
    # an IV bisphosphonate needs an eGFR within 30 days: one of 40 days is "missing"
    res = base()[:1] + [observation(EGFR, 72, "mL/min/{1.73_m2}", ago(40))]
    assert suggestion_codes(run(RID, res, drafts=[draft(ZOL5)])) == [["17861-6", "1751-7", "2160-0"]]
    assert suggestion_codes(run(RID, res, drafts=[draft(DMAB60)])) == [["17861-6", "1751-7"]]


# ---- hooks and drafts ----------------------------------------------------------------------------

def test_ar_calcium_not_checked_order_select_only_selected_drafts():
    d = draft(DMAB60)
    assert run(RID, base(), hook="order-select", drafts=[d]) is not None
    assert run(RID, base(), hook="order-select", drafts=[d], selections=[]) is None
    statin = draft("197361", text="atorvastatin 20 mg tablet")
    assert run(RID, base(), hook="order-select", drafts=[d, statin],
               selections=[f"MedicationRequest/{statin['id']}"]) is None


def test_ar_calcium_not_checked_order_select_names_only_the_selected_draft():
    dmab, zol = draft(DMAB60), draft(ZOL5)
    card = run(RID, base(), hook="order-select", drafts=[dmab, zol],
               selections=[f"MedicationRequest/{zol['id']}"])
    assert card["summary"].endswith("before zoledronic acid")


def test_ar_calcium_not_checked_order_sign_one_card_naming_every_draft():
    card = run(RID, base(), hook="order-sign", drafts=[draft(DMAB60), draft(ZOL5)])
    assert card["summary"].endswith("before denosumab and zoledronic acid")
    ids = engine_ids(base(), hook="order-sign", drafts=[draft(DMAB60), draft(DMAB120)])
    assert ids.count(RID) == 1


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_ar_calcium_not_checked_runs_on_order_hooks_through_the_engine(hook):
    assert RID in engine_ids(base(), hook=hook, drafts=[draft(DMAB60)])


def test_ar_calcium_not_checked_never_on_patient_view():
    res = base() + [administration(DMAB60, ago(20))]
    assert run(RID, res, hook="patient-view") is None
    assert RID not in engine_ids(res, hook="patient-view")


def test_ar_calcium_not_checked_not_run_when_observations_unavailable():
    from tests.factory import evaluate_rules, rule_ids
    cards = evaluate_rules(base(), drafts=[draft(DMAB60)], unavailable={"Observation": "timeout"})
    assert RID not in rule_ids(cards)
