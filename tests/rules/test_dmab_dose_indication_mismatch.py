"""DMAB-DOSE-INDICATION-MISMATCH (RULES.md §3): (a) 120 mg without an oncology bone indication (warning),
(b) 60 mg every < 5 months or 120 mg every ≥ 3 months outside GCTB (warning), (c) 60 mg with bone
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
    ((3, "mo"), [METS()], True), ((12, "wk"), [METS()], False), ((4, "wk"), [METS()], False),
    ((3, "mo"), [GCTB()], False),                           # GCTB may be spaced out
    ((6, "mo"), [METS()], True),
])
def test_dmab_dose_indication_mismatch_120mg_schedule(period, extra, fires):
    """DMAB-DOSE-INDICATION-MISMATCH (b): 120 mg every ≥ 3 months outside GCTB."""
    cards = run(*extra, drafts=[f.draft(f.DMAB120, period=period)])
    assert (RULE in ids(cards)) is fires
    if fires:
        card = f.card_for(cards, RULE)
        assert card["summary"].endswith("expected 120 mg every 4 weeks")
        assert codes_of(card) == ["1046398"]


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
