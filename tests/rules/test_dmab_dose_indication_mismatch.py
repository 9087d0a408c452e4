"""DMAB-DOSE-INDICATION-MISMATCH (RULES.md §3): (a) 120 mg without an oncology bone indication (warning),
(b1) 60 mg every < 5 months (warning), (b2) 120 mg every > 91 days / 3 months outside GCTB (info, A15), (c) 60 mg with bone
metastases/myeloma and no osteoporosis/bone-loss indication (info); one card, all reasons,
indicator = highest."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests import factory as f
from tests.rules._dmab_dosing_helpers import EGFR_UNIT, ICD10, SNOMED, TODAY, codes_of, ids, override_codes

RULE = "DMAB-DOSE-INDICATION-MISMATCH"
METS = lambda **kw: f.condition("C79.51", ICD10, onset="2025-01-10", **kw)  # noqa: E731
MYELOMA = lambda: f.condition("109989006", SNOMED, onset="2025-03-01")      # noqa: E731
GCTB = lambda: f.condition("D48.0", ICD10, onset="2025-03-01")             # noqa: E731
GCTB_NAMED = lambda: f.condition("D48.0", ICD10, text="Giant cell tumor of bone", onset="2025-03-01")  # noqa: E731
OSTEOPOROSIS = lambda: f.condition("M81.0", ICD10, onset="2020-01-01")     # noqa: E731


def run(*resources, drafts, hook="order-sign", **kw):
    base = [f.patient(), f.administration(f.DMAB60, TODAY - timedelta(days=180)),
            f.observation(f.CALCIUM_SERUM, 9.3, "mg/dL", TODAY - timedelta(days=3)),
            f.observation(f.EGFR, 70, EGFR_UNIT, TODAY - timedelta(days=3))]
    return f.evaluate_rules([*base, *resources], hook=hook, drafts=drafts, **kw)


# ---- (a) -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, reason, fires", [
    ([], (), True),
    ([OSTEOPOROSIS()], (), True),
    ([METS()], (), False),
    ([METS(clinical="resolved")], (), True),                 # only active counts (D9)
    ([MYELOMA()], (), False),
    ([GCTB()], (), False),
    ([f.condition(None, text="Hypercalcaemia of malignancy")], (), False),
    ([], ((ICD10, "C79.51"),), False),                       # coded reason on the draft
    ([METS(verification="entered-in-error")], (), True),
])
def test_dmab_dose_indication_mismatch_120mg_without_oncology_indication(extra, reason, fires):
    """DMAB-DOSE-INDICATION-MISMATCH (a): 120 mg needs an oncology bone indication."""
    cards = run(*extra, drafts=[f.draft(f.DMAB120, reason=reason)])
    assert (RULE in ids(cards)) is fires
    if fires:
        card = f.card_for(cards, RULE)
        assert card["indicator"] == "warning"
        assert card["summary"] == ("Denosumab 120 mg ordered without a recorded oncology indication: "
                                   "osteoporosis dose is 60 mg every 6 months")
        assert codes_of(card) == ["993452"]
        assert override_codes(card) == ["indication-not-coded", "intended-regimen", "cancer-treatment-bone-loss"]


def test_dmab_dose_indication_mismatch_reason_text_on_draft():
    """DMAB-DOSE-INDICATION-MISMATCH (a): a free-text reason naming bone metastases is accepted."""
    draft = f.draft(f.DMAB120)
    draft["reasonCode"] = [{"text": "Bone metastases from breast cancer"}]
    assert RULE not in ids(run(drafts=[draft]))


# ---- (b) -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("period, fires", [
    ((4, "wk"), True), ((1, "mo"), True), ((4, "mo"), True), ((5, "mo"), False), ((6, "mo"), False),
    ((1, "a"), False), ((140, "d"), True), ((26, "wk"), False),
])
def test_dmab_dose_indication_mismatch_60mg_schedule(period, fires):
    """DMAB-DOSE-INDICATION-MISMATCH (b): 60 mg every < 5 months is wrong."""
    cards = run(OSTEOPOROSIS(), drafts=[f.draft(f.DMAB60, period=period)])
    assert (RULE in ids(cards)) is fires
    if fires:
        card = f.card_for(cards, RULE)
        assert card["indicator"] == "warning"
        assert card["summary"].startswith("Denosumab 60 mg ordered every ")
        assert card["summary"].endswith("expected 60 mg every 6 months")
        assert codes_of(card) == ["993452"]


def test_dmab_dose_indication_mismatch_schedule_summary_text():
    """DMAB-DOSE-INDICATION-MISMATCH (b): the summary says the ordered period."""
    card = f.card_for(run(OSTEOPOROSIS(), drafts=[f.draft(f.DMAB60, period=(4, "wk"))]), RULE)
    assert card["summary"] == "Denosumab 60 mg ordered every 4 weeks: expected 60 mg every 6 months"
    card = f.card_for(run(OSTEOPOROSIS(), drafts=[f.draft(f.DMAB60, period=(30, "d"))]), RULE)
    assert card["summary"] == "Denosumab 60 mg ordered every 30 days: expected 60 mg every 6 months"


@pytest.mark.parametrize("period, extra, fires", [
    ((4, "wk"), [METS()], False), ((28, "d"), [METS()], False), ((1, "mo"), [METS()], False),
    ((12, "wk"), [METS()], False), ((13, "wk"), [METS()], False), ((91, "d"), [METS()], False),
    ((3, "mo"), [METS()], False),                            # A15: up to 3 months accepted
    ((92, "d"), [METS()], True), ((14, "wk"), [METS()], True), ((4, "mo"), [METS()], True),
    ((6, "mo"), [METS()], True), ((1, "a"), [METS()], True),
    ((6, "mo"), [GCTB_NAMED()], False),                      # GCTB may be spaced out
    ((6, "mo"), [GCTB()], True),                             # E1: D48.0 alone is not GCTB
])
def test_a15_dmab_dose_indication_mismatch_120mg_schedule(period, extra, fires):
    """DMAB-DOSE-INDICATION-MISMATCH (b2), A15: 120 mg every 28 days to 91 days / 3 months is
    accepted; longer outside GCTB → info."""
    cards = run(*extra, drafts=[f.draft(f.DMAB120, period=period)])
    assert (RULE in ids(cards)) is fires
    if fires:
        card = f.card_for(cards, RULE)
        assert card["indicator"] == "info"
        assert card["summary"].endswith("longer than every 3 months; confirm the oncology schedule")
        assert codes_of(card) == ["1046398"]


def test_a15_120mg_schedule_summary_names_the_period():
    card = f.card_for(run(METS(), drafts=[f.draft(f.DMAB120, period=(6, "mo"))]), RULE)
    assert card["summary"] == ("Denosumab 120 mg ordered every 6 months: longer than every 3 months; "
                               "confirm the oncology schedule")


def test_a15_120mg_single_or_loading_order_without_repeat_is_not_judged():
    assert RULE not in ids(run(METS(), drafts=[f.draft(f.DMAB120)]))
    single = f.draft(f.DMAB120, period=(6, "mo"))
    single["dosageInstruction"][0]["timing"]["repeat"]["count"] = 1
    assert RULE not in ids(run(METS(), drafts=[single]))


def test_a15_frequency_divides_the_period():
    """Schedule = period ÷ frequency: twice every 6 months is every 3 months (accepted)."""
    d = f.draft(f.DMAB120, period=(6, "mo"))
    d["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = 2
    assert RULE not in ids(run(METS(), drafts=[d]))


@pytest.mark.parametrize("period, extra, fires", [
    ((27, "d"), [METS()], True), ((3, "wk"), [METS()], True), ((1, "wk"), [METS()], True),
    ((28, "d"), [METS()], False),
    ((1, "wk"), [GCTB_NAMED()], False),                      # GCTB loading course
    ((1, "wk"), [f.condition(None, text="Hypercalcemia of malignancy")], False),
])
def test_a15_120mg_more_often_than_every_4_weeks_is_a_warning(period, extra, fires):
    """Safe reading of the lower bound (28 days): a repeating 120 mg schedule shorter than 28
    days outside a GCTB/HCM loading course → warning."""
    cards = run(*extra, drafts=[f.draft(f.DMAB120, period=period)])
    assert (RULE in ids(cards)) is fires
    if fires:
        card = f.card_for(cards, RULE)
        assert card["indicator"] == "warning"
        assert "more often than every 4 weeks" in card["summary"]


@pytest.mark.parametrize("period, fires", [((149, "d"), True), ((150, "d"), False), ((5, "mo"), False),
                                           ((21, "wk"), True), ((22, "wk"), False)])
def test_a15_60mg_lower_bound_from_thresholds(period, fires):
    """(b1) below ``dmab60_schedule_min_months`` (5 months = 150 days at 30 days a month)."""
    cards = run(OSTEOPOROSIS(), drafts=[f.draft(f.DMAB60, period=period)])
    assert (RULE in ids(cards)) is fires
    from cards.thresholds import Thresholds
    cards = run(OSTEOPOROSIS(), drafts=[f.draft(f.DMAB60, period=(5, "mo"))],
                thresholds=Thresholds(dmab60_schedule_min_months=6))
    assert RULE in ids(cards)


# ---- (c) -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, reason_text, fires", [
    ([METS()], None, True),
    ([MYELOMA()], None, True),
    ([METS(), OSTEOPOROSIS()], None, False),
    ([METS()], "Bone loss on aromatase inhibitor", False),   # treatment-induced bone loss by text
    ([METS(clinical="resolved")], None, False),
    ([], None, False),
])
def test_dmab_dose_indication_mismatch_60mg_with_metastases(extra, reason_text, fires):
    """DMAB-DOSE-INDICATION-MISMATCH (c): 60 mg with active bone metastases/myeloma and no bone-loss indication → info."""
    draft = f.draft(f.DMAB60, period=(6, "mo"))
    if reason_text:
        draft["reasonCode"] = [{"text": reason_text}]
    cards = run(*extra, drafts=[draft])
    assert (RULE in ids(cards)) is fires
    if fires:
        card = f.card_for(cards, RULE)
        assert card["indicator"] == "info"
        assert card["summary"] == ("Bone metastases on record: skeletal-event prevention dose is denosumab "
                                   "120 mg every 4 weeks, not 60 mg")
        assert codes_of(card) == ["1046398"]
        assert override_codes(card)[0] == "cancer-treatment-bone-loss"


# ---- combined, drafts, hooks ----------------------------------------------------------------------

def test_dmab_dose_indication_mismatch_one_card_all_reasons_highest_indicator():
    """DMAB-DOSE-INDICATION-MISMATCH: (b) warning + (c) info on one draft → one warning card with both."""
    cards = run(METS(), drafts=[f.draft(f.DMAB60, period=(4, "wk"))])
    assert ids(cards).count(RULE) == 1
    card = f.card_for(cards, RULE)
    assert card["indicator"] == "warning"
    assert "(warning)" in card["detail"] and "(info)" in card["detail"]
    assert card["selectionBehavior"] == "at-most-one"
    assert sorted(codes_of(card)) == ["1046398", "993452"]


def test_dmab_dose_indication_mismatch_two_drafts_named():
    """DMAB-DOSE-INDICATION-MISMATCH: two mismatched drafts → one card naming both."""
    d1 = f.draft(f.DMAB120)
    d2 = f.draft(None, text="Xgeva 120 mg", period=(4, "wk"))
    cards = run(drafts=[d1, d2])
    assert ids(cards).count(RULE) == 1
    detail = f.card_for(cards, RULE)["detail"]
    assert "Xgeva" in detail and "identified by name, not code" in detail


def test_dmab_dose_indication_mismatch_unknown_strength_silent():
    """DMAB-DOSE-INDICATION-MISMATCH: strength unknown (ingredient code, no dose) → no judgement."""
    assert RULE not in ids(run(drafts=[f.draft(f.DMAB_IN, period=(4, "wk"))]))


def test_dmab_dose_indication_mismatch_order_select_and_patient_view():
    """DMAB-DOSE-INDICATION-MISMATCH: only selected drafts on order-select; never on patient-view."""
    d = f.draft(f.DMAB120)
    statin = f.draft("617311", text="atorvastatin")
    assert RULE not in ids(run(drafts=[d, statin], hook="order-select",
                               selections=[f"MedicationRequest/{statin['id']}"]))
    assert RULE in ids(run(drafts=[d, statin], hook="order-select", selections=[f"MedicationRequest/{d['id']}"]))
    cards = f.evaluate_rules([f.patient(), f.administration(f.DMAB120, TODAY - timedelta(days=10))],
                             hook="patient-view")
    assert RULE not in ids(cards)


def test_dmab_dose_indication_mismatch_clean():
    """DMAB-DOSE-INDICATION-MISMATCH: 60 mg every 6 months for osteoporosis, or 120 mg q4w for metastases → no card."""
    assert RULE not in ids(run(OSTEOPOROSIS(), drafts=[f.draft(f.DMAB60, period=(6, "mo"))]))
    assert RULE not in ids(run(METS(), drafts=[f.draft(f.DMAB120, period=(4, "wk"))]))


def test_dmab_dose_indication_mismatch_timing_describe_chart_fix():
    """DMAB-DOSE-INDICATION-MISMATCH: Timing.describe prints whole numbers plainly (chart fix: '30 days', not '3E+1 days')."""
    from decimal import Decimal

    from cds_service.chart import Timing
    assert Timing(Decimal("30"), "d").describe() == "30 days"
    assert Timing(Decimal("4"), "wk").describe() == "4 weeks"
    assert Timing(Decimal("1"), "mo").describe() == "month"
    assert Timing(Decimal("0.5"), "mo").describe() == "0.5 months"


# ---- A4: E83.52 is hypercalcemia of malignancy only with a malignancy ---------------------------

HYPERCALCEMIA = lambda **kw: f.condition("E83.52", ICD10, onset="2026-10-01", **kw)  # noqa: E731
PHPT = lambda: f.condition("E21.0", ICD10, onset="2026-10-01")                       # noqa: E731


def test_a4_e83_52_in_primary_hyperparathyroidism_does_not_make_120mg_indicated():
    """The "hurts patients" case: "Hypercalcemia" (E83.52) with primary hyperparathyroidism."""
    cards = run(HYPERCALCEMIA(), PHPT(), drafts=[f.draft(f.DMAB120)])
    card = f.card_for(cards, RULE)
    assert card is not None and card["indicator"] == "warning"
    assert card["summary"].startswith("Denosumab 120 mg ordered without a recorded oncology indication")


@pytest.mark.parametrize("malignancy, fires", [
    (lambda: f.condition("C50.911", ICD10), False),                  # chapter C prefix
    (lambda: f.condition("363346000"), False),                      # SNOMED malignant neoplastic disease
    (lambda: f.condition(None, text="Squamous cell carcinoma of lung"), False),   # text
    (lambda: f.condition("C50.911", ICD10, clinical="resolved"), True),           # not active
    (lambda: f.condition("C50.911", ICD10, verification="entered-in-error"), True),
    (lambda: f.condition("C50.911", ICD10, verification="provisional"), True),    # suspected
    (lambda: f.condition(None, text="Family history of breast cancer"), True),
    (lambda: f.condition(None, text="Screening for malignant neoplasm of colon"), True),
    (lambda: f.condition("D12.6", ICD10, text="Benign neoplasm of colon"), True),
])
def test_a4_e83_52_counts_with_an_active_malignancy(malignancy, fires):
    cards = run(HYPERCALCEMIA(), malignancy(), drafts=[f.draft(f.DMAB120)])
    assert (RULE in ids(cards)) is fires


@pytest.mark.parametrize("reason, text, fires", [
    (((ICD10, "C34.90"),), None, False),                 # coded malignancy reason
    (((ICD10, "E83.52"),), None, True),                  # E83.52 as the reason: not specific
    ((), "Hypercalcaemia of malignancy", False),         # HCM by text
    ((), "Humoral hypercalcemia", False),                # codes.json HCM pattern
    ((), "Hypercalcemia, metastatic breast cancer", False),  # malignancy by text
    ((), "Hypercalcemia due to parathyroid adenoma", True),
])
def test_a4_e83_52_with_a_malignancy_reason_on_the_order(reason, text, fires):
    d = f.draft(f.DMAB120, reason=reason)
    if text:
        d["reasonCode"] = [{"text": text}]
    cards = run(HYPERCALCEMIA(), drafts=[d])
    assert (RULE in ids(cards)) is fires


def test_a4_a_malignancy_alone_is_not_an_oncology_bone_indication():
    assert RULE in ids(run(f.condition("C50.911", ICD10), drafts=[f.draft(f.DMAB120)]))


def test_a4_e83_52_coded_reason_with_active_malignancy_is_indicated():
    d = f.draft(f.DMAB120, reason=((ICD10, "E83.52"),))
    assert RULE not in ids(run(f.condition("C50.911", ICD10), drafts=[d]))


def test_e1_d48_0_alone_still_supports_a_120mg_order():
    assert RULE not in ids(run(GCTB(), drafts=[f.draft(f.DMAB120)]))
