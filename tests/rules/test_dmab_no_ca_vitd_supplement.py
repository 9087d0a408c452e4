"""DMAB-NO-CA-VITD-SUPPLEMENT (RULES.md §3, D3 text fallbacks, D9, §8 item 10)."""

from __future__ import annotations

import pytest

from tests.factory import (ALBUMIN, CALCIUM_IONIZED, CALCIUM_SERUM, DMAB60, EGFR, VITD, condition,
                           dispense, draft, observation, patient, request, statement)

from ._dmab_helpers import (CALCIUM_CARBONATE, CHOLECALCIFEROL, EGFR_UNIT, HOOKS, ICD10, ago,
                            continuation, override_codes, run, suggestion_resources)

RULE = "DMAB-NO-CA-VITD-SUPPLEMENT"
SUMMARY = "No calcium or vitamin D supplement on the medication list: add supplementation with denosumab"


def _base():
    return [patient(), *continuation(), observation(CALCIUM_SERUM, 9.3, "mg/dL", ago(5)),
            observation(EGFR, 70, EGFR_UNIT, ago(5)), observation(VITD, 28, "ng/mL", ago(40))]


@pytest.mark.parametrize("hook", HOOKS)
def test_dmab_no_supplement_fires_info_without_risk(hook: str) -> None:
    card = run(RULE, _base(), hook=hook, drafts=[draft(DMAB60)])
    assert card is not None
    assert card["indicator"] == "info"
    assert card["summary"] == SUMMARY
    assert override_codes(card) == ["dietary-intake-adequate", "taking-otc-supplement", "hypercalcemia"]
    [order] = suggestion_resources(card)
    assert order["resourceType"] == "MedicationRequest" and order["status"] == "draft"
    assert "Calcium carbonate" in order["medicationCodeableConcept"]["text"]
    assert "vitamin D3" in order["medicationCodeableConcept"]["text"]


@pytest.mark.parametrize("record", [
    lambda: request(CALCIUM_CARBONATE, ago(200)),
    lambda: statement(CHOLECALCIFEROL, ago(500)),
    lambda: statement(None, ago(30), text="Calcium citrate 315 mg + D3 tablet"),
    lambda: request(None, ago(30), text="Calcitriol 0.25 mcg capsule"),                    # active vitamin D
    lambda: request(None, ago(30), text="Calcium acetate 667 mg capsule (PhosLo)"),        # phosphate binder
    lambda: statement(None, ago(30), text="Vitamin D3 2000 IU softgel"),
    lambda: statement("1153000", ago(30)),                                                   # Calcitriol Pill
    lambda: dispense(CALCIUM_CARBONATE, ago(120), days_supply=30),                          # within 120 days
])
def test_dmab_no_supplement_any_calcium_or_vitamin_d_silences(record) -> None:
    assert run(RULE, [*_base(), record()], drafts=[draft(DMAB60)]) is None


@pytest.mark.parametrize("record", [
    lambda: dispense(CALCIUM_CARBONATE, ago(121), days_supply=30),        # dispense older than 120 days
    lambda: request(CALCIUM_CARBONATE, ago(30), status="stopped"),
    lambda: request(CALCIUM_CARBONATE, ago(30), status="completed"),
    lambda: request(CALCIUM_CARBONATE, ago(30), status="cancelled"),
    lambda: request(CALCIUM_CARBONATE, ago(30), status="entered-in-error"),
    lambda: statement(CHOLECALCIFEROL, ago(30), status="entered-in-error"),
    lambda: statement(CHOLECALCIFEROL, ago(30), status="not-taken"),
    lambda: statement(CHOLECALCIFEROL, ago(300), status="stopped", end=ago(100)),
    lambda: dispense(CALCIUM_CARBONATE, ago(10), status="cancelled"),
    lambda: statement(None, ago(30), text="Calcium score CT"),            # not a supplement by name
])
def test_dmab_no_supplement_inactive_records_do_not_count(record) -> None:
    assert run(RULE, [*_base(), record()], drafts=[draft(DMAB60)]) is not None


def test_dmab_no_supplement_drafted_in_same_session_silences() -> None:
    ca = draft(None, text="Calcium carbonate 600 mg + vitamin D3 400 IU tablet")
    assert run(RULE, _base(), drafts=[draft(DMAB60), ca]) is None
    # on order-select the supplement need not be selected: it is part of the session
    d = draft(DMAB60)
    assert run(RULE, _base(), hook="order-select", drafts=[d, ca],
               selections=[f"MedicationRequest/{d['id']}"]) is None


@pytest.mark.parametrize("value, fires", [(10.4, True), (10.5, True), (10.6, False)])
def test_dmab_no_supplement_silent_when_calcium_above_10_5(value: float, fires: bool) -> None:
    resources = [patient(), *continuation(), observation(CALCIUM_SERUM, value, "mg/dL", ago(3))]
    assert (run(RULE, resources, drafts=[draft(DMAB60)]) is not None) is fires


def test_dmab_no_supplement_high_calcium_in_si_units() -> None:
    resources = [patient(), *continuation(), observation(CALCIUM_SERUM, 2.7, "mmol/L", ago(3))]  # 10.8
    assert run(RULE, resources, drafts=[draft(DMAB60)]) is None
    resources = [patient(), *continuation(), observation(CALCIUM_SERUM, 2.6, "mmol/L", ago(3))]  # 10.4
    assert run(RULE, resources, drafts=[draft(DMAB60)]) is not None


def test_dmab_no_supplement_high_calcium_outside_30_days_does_not_silence() -> None:
    resources = [patient(), *continuation(), observation(CALCIUM_SERUM, 11.2, "mg/dL", ago(31))]
    assert run(RULE, resources, drafts=[draft(DMAB60)]) is not None


def test_dmab_no_supplement_entered_in_error_high_calcium_does_not_silence() -> None:
    resources = [patient(), *continuation(),
                 observation(CALCIUM_SERUM, 11.2, "mg/dL", ago(3), status="entered-in-error")]
    assert run(RULE, resources, drafts=[draft(DMAB60)]) is not None


def test_dmab_no_supplement_silent_with_hypercalcemia_of_malignancy() -> None:
    resources = [*_base(), condition(None, text="Hypercalcemia of malignancy")]
    assert run(RULE, resources, drafts=[draft(DMAB60)]) is None
    resources = [*_base(), condition("E83.52", ICD10, clinical="resolved")]
    assert run(RULE, resources, drafts=[draft(DMAB60)]) is not None


@pytest.mark.parametrize("extra, why", [
    (lambda: observation(VITD, 19.9, "ng/mL", ago(10)), "19.9 ng/mL"),
    (lambda: observation(EGFR, 25, EGFR_UNIT, ago(1)), "advanced CKD"),
    (lambda: condition("36976004", text="Hypoparathyroidism"), "Hypoparathyroidism"),
    (lambda: condition("5291005", text="Hypocalcemia"), "Hypocalcemia"),
    (lambda: observation(CALCIUM_SERUM, 8.2, "mg/dL", ago(200)), "low calcium"),
])
def test_dmab_no_supplement_warning_when_hypocalcemia_prone_or_vitd_low(extra, why: str) -> None:
    card = run(RULE, [*_base(), extra()], drafts=[draft(DMAB60)])
    assert card is not None
    assert card["indicator"] == "warning"
    assert why in card["detail"]


def test_dmab_no_supplement_vitd_exactly_20_stays_info() -> None:
    card = run(RULE, [*_base(), observation(VITD, 20, "ng/mL", ago(1))], drafts=[draft(DMAB60)])
    assert card is not None and card["indicator"] == "info"


def test_dmab_no_supplement_low_calcium_corrected_by_albumin_counts_as_prone() -> None:
    # 8.6 with albumin 3.0 → 9.4: not low; 8.6 measured alone is not low either
    resources = [*_base(), observation(CALCIUM_SERUM, 8.6, "mg/dL", ago(100)),
                 observation(ALBUMIN, 3.0, "g/dL", ago(100))]
    card = run(RULE, resources, drafts=[draft(DMAB60)])
    assert card is not None and card["indicator"] == "info"
    resources = [*_base(), observation(CALCIUM_IONIZED, 1.05, "mmol/L", ago(100))]
    card = run(RULE, resources, drafts=[draft(DMAB60)])
    assert card is not None and card["indicator"] == "warning"


def test_dmab_no_supplement_hooks() -> None:
    assert run(RULE, _base(), hook="patient-view") is None
    d = draft(DMAB60)
    assert run(RULE, _base(), hook="order-select", drafts=[d], selections=[]) is None
    assert run(RULE, _base(), drafts=[draft("705824")]) is None
