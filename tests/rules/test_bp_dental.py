"""BP-DENTAL (RULES.md §4, §8 item 8): no dental evaluation before starting an IV bisphosphonate."""

from __future__ import annotations

from tests.factory import CDT, ICD10, SNOMED, administration, condition, dispense, draft, procedure, statement
from tests.rules._bp_helpers import (
    ALENDRONATE_70,
    DMAB60,
    IBANDRONATE_IV,
    PAMIDRONATE,
    ZOL4,
    ZOL5,
    ago,
    card,
    good_labs,
    ids,
    override_codes,
    run,
)

RID = "BP-DENTAL"
METS = condition("C79.51", ICD10, onset="2026-09-01")


def test_bp_dental_oncology_zoledronic_initiation_without_dental_eval_is_warning() -> None:
    """BP-DENTAL: zoledronic acid 4 mg started for bone metastases, no dental exam → warning."""
    c = card(run(good_labs() + [METS], [draft(ZOL4, dose_mg=4)]), RID)
    assert c is not None and c["indicator"] == "warning"
    assert c["summary"] == (
        "No dental evaluation in the last 12 months before starting IV zoledronic acid "
        "4 mg (oncology): arrange a dental examination"
    )
    sr = c["suggestions"][0]["actions"][0]["resource"]
    assert sr["resourceType"] == "ServiceRequest" and sr["code"]["coding"][0]["code"] == "103697008"
    assert sr["reasonCode"][0]["text"] == "Dental clearance before antiresorptive therapy"
    assert override_codes(c) == [
        "dental-eval-done-elsewhere",
        "urgent-treatment-benefit",
        "patient-declined",
        "edentulous",
    ]
    assert "No dental evaluation of any date is on record" in c["detail"]
    assert c["links"][0]["url"] == "https://doi.org/10.1016/j.joms.2022.02.008"


def test_bp_dental_indicator_by_regimen() -> None:
    """BP-DENTAL: info for zoledronic acid 5 mg / ibandronate IV; warning for pamidronate or oncology."""
    assert card(run(good_labs(), [draft(ZOL5)]), RID)["indicator"] == "info"
    assert card(run(good_labs(), [draft(IBANDRONATE_IV)]), RID)["indicator"] == "info"
    assert "IV ibandronate:" in card(run(good_labs(), [draft(IBANDRONATE_IV)]), RID)["summary"]
    assert card(run(good_labs(), [draft(PAMIDRONATE)]), RID)["indicator"] == "warning"
    assert card(run(good_labs() + [METS], [draft(ZOL5)]), RID)["indicator"] == "warning"
    assert card(run(good_labs(), [draft(ZOL5, reason=[(ICD10, "C90.00")])]), RID)["indicator"] == "warning"


def test_bp_dental_evaluation_window() -> None:
    """BP-DENTAL: a dental evaluation 365 days ago is enough; 366 days ago is not (detail names it)."""
    assert RID not in ids(run(good_labs() + [procedure("D0150", CDT, ago(365))], [draft(ZOL5)]))
    c = card(run(good_labs() + [procedure("D0150", CDT, ago(366))], [draft(ZOL5)]), RID)
    assert c is not None and f"on {ago(366)} (older than 12 months)" in c["detail"]


def test_bp_dental_not_done_referral_or_extraction_is_not_an_evaluation() -> None:
    """BP-DENTAL: not-done / entered-in-error exams, referrals and extractions do not count."""
    for proc in (
        procedure("D0120", CDT, ago(30), status="not-done"),
        procedure("D0120", CDT, ago(30), status="entered-in-error"),
        procedure("103697008", SNOMED, ago(30)),
        procedure("55162003", SNOMED, ago(60)),
    ):
        assert RID in ids(run(good_labs() + [proc], [draft(ZOL5)])), proc["code"]


def test_bp_dental_only_at_initiation_of_any_antiresorptive() -> None:
    """BP-DENTAL: any denosumab or bisphosphonate exposure in 365 days means no initiation."""
    assert RID not in ids(run(good_labs() + [administration(ZOL5, ago(0, months=11))], [draft(ZOL5)]))
    assert RID not in ids(run(good_labs() + [administration(DMAB60, ago(0, months=8))], [draft(ZOL5)]))
    # an alendronate statement running since 3 years (its start is outside the window)
    assert RID not in ids(
        run(good_labs() + [statement(ALENDRONATE_70, ago(years=3), status="active")], [draft(ZOL5)])
    )
    # an old dispense only, or entered-in-error doses: initiation
    assert RID in ids(run(good_labs() + [dispense(ALENDRONATE_70, ago(400), days_supply=30)], [draft(ZOL5)]))
    assert RID in ids(
        run(good_labs() + [administration(ZOL5, ago(100), status="entered-in-error")], [draft(ZOL5)])
    )
    # v2 (A27): a zoledronic acid infusion 366 days ago is the yearly dose, not a new start
    assert RID not in ids(run(good_labs() + [administration(ZOL5, ago(366))], [draft(ZOL5)]))
    assert RID in ids(run(good_labs() + [administration(DMAB60, ago(366))], [draft(ZOL5)]))


def test_bp_dental_never_for_oral_agents() -> None:
    """BP-DENTAL: oral bisphosphonates never get the dental card (§8 item 8)."""
    assert RID not in ids(run(good_labs(), [draft(ALENDRONATE_70)]))


def test_bp_dental_hooks() -> None:
    """BP-DENTAL: order-select (selected only) and order-sign; not patient-view."""
    d = draft(ZOL5)
    assert RID in ids(run(good_labs(), [d], hook="order-select"))
    assert RID not in ids(
        run(
            good_labs(),
            [d, draft(ALENDRONATE_70, rid="other")],
            hook="order-select",
            selections=["MedicationRequest/other"],
        )
    )
    assert RID not in ids(run(good_labs(), [], hook="patient-view"))
