"""BP-DUPLICATE (RULES.md §4, D4): two bisphosphonates, Reclast + Zometa, or ZOL 5 mg too early."""

from __future__ import annotations

import pytest

from tests.factory import ICD10, administration, condition, dispense, draft, request
from tests.rules._bp_helpers import (
    ALENDRONATE_70,
    IBANDRONATE_IV,
    RISEDRONATE_150,
    ZOL4,
    ZOL5,
    ago,
    card,
    good_labs,
    ids,
    override_codes,
    run,
)

RID = "BP-DUPLICATE"
MYELOMA = condition("C90.00", ICD10)


def test_bp_duplicate_different_oral_ingredient_active() -> None:
    """BP-DUPLICATE (a): risedronate drafted while an alendronate order is active."""
    cards = run(good_labs() + [request(ALENDRONATE_70, ago(60), status="active")], [draft(RISEDRONATE_150)])
    c = card(cards, RID)
    assert c is not None and c["indicator"] == "warning"
    assert (
        c["summary"]
        == f"Duplicate bisphosphonate: risedronate ordered while alendronate is active (last {ago(60)})"
    )
    assert override_codes(c) == ["switching-agent", "previous-order-to-stop"]
    assert c["source"]["topic"]["code"] == RID


def test_bp_duplicate_renewal_of_the_same_oral_ingredient_is_not_a_duplicate() -> None:
    """BP-DUPLICATE: renewing alendronate while the previous alendronate order is active is fine."""
    assert RID not in ids(
        run(
            good_labs()
            + [
                request(ALENDRONATE_70, ago(300), status="active"),
                dispense(ALENDRONATE_70, ago(20), days_supply=84),
            ],
            [draft(ALENDRONATE_70)],
        )
    )


@pytest.mark.parametrize("status", ["stopped", "completed", "cancelled", "entered-in-error", "on-hold"])
def test_bp_duplicate_inactive_orders_do_not_count(status) -> None:
    """BP-DUPLICATE: only active therapy (D4) counts; stopped/completed/cancelled orders do not."""
    assert RID not in ids(
        run(good_labs() + [request(ALENDRONATE_70, ago(60), status=status)], [draft(RISEDRONATE_150)])
    )


def test_bp_duplicate_dispense_supply_and_iv_dosing_interval() -> None:
    """BP-DUPLICATE (a): a dispense whose supply covers today; an IV dose within its interval."""
    assert RID in ids(
        run(good_labs() + [dispense(RISEDRONATE_150, ago(30), days_supply=30)], [draft(ALENDRONATE_70)])
    )
    assert RID not in ids(
        run(good_labs() + [dispense(RISEDRONATE_150, ago(31), days_supply=30)], [draft(ALENDRONATE_70)])
    )
    assert RID not in ids(
        run(
            good_labs() + [dispense(RISEDRONATE_150, ago(40), status="cancelled", days_supply=90)],
            [draft(ALENDRONATE_70)],
        )
    )
    c = card(run(good_labs() + [administration(ZOL5, ago(0, months=6))], [draft(ALENDRONATE_70)]), RID)
    assert c is not None and "zoledronic acid 5 mg is active" in c["summary"]
    assert RID not in ids(
        run(good_labs() + [administration(ZOL5, ago(1, months=12))], [draft(ALENDRONATE_70)])
    )
    assert RID in ids(
        run(good_labs() + [administration(IBANDRONATE_IV, ago(0, months=2))], [draft(RISEDRONATE_150)])
    )
    assert RID not in ids(
        run(good_labs() + [administration(IBANDRONATE_IV, ago(1, months=3))], [draft(RISEDRONATE_150)])
    )


def test_bp_duplicate_reclast_and_zometa() -> None:
    """BP-DUPLICATE (b): zoledronic acid 5 mg and 4 mg must not be combined."""
    c = card(run(good_labs() + [MYELOMA, administration(ZOL4, ago(10), dose_mg=4)], [draft(ZOL5)]), RID)
    assert c is not None
    assert c["summary"] == (
        f"Duplicate bisphosphonate: zoledronic acid 5 mg ordered while zoledronic acid 4 mg "
        f"(oncology) is active (last {ago(10)})"
    )
    assert "Reclast" in c["source"]["label"] and "(b)" in c["detail"]
    assert RID in ids(
        run(good_labs() + [administration(ZOL5, ago(0, months=8))] + [MYELOMA], [draft(ZOL4, dose_mg=4)])
    )
    both = run(good_labs() + [MYELOMA], [draft(ZOL5), draft(ZOL4, dose_mg=4)])
    assert ids(both).count(RID) == 1
    assert "(b)" in card(both, RID)["detail"] and "(d)" in card(both, RID)["detail"]
    # a 4 mg dose 29 days ago is outside its 4-week interval
    assert RID not in ids(
        run(good_labs() + [MYELOMA, administration(ZOL4, ago(29), dose_mg=4)], [draft(ZOL5)])
    )


@pytest.mark.parametrize("days, fires", [(200, True), (329, True), (330, False), (400, False)])
def test_bp_duplicate_zoledronic_5mg_yearly_interval(days, fires) -> None:
    """BP-DUPLICATE (c): zoledronic acid 5 mg < 330 days after the previous 5 mg dose."""
    cards = run(good_labs() + [administration(ZOL5, ago(days))], [draft(ZOL5)])
    assert (RID in ids(cards)) is fires
    if fires:
        assert card(cards, RID)["summary"] == (
            f"Duplicate bisphosphonate: zoledronic acid 5 mg ordered {days} days "
            f"after the last 5 mg dose ({ago(days)}); given once a year"
        )
        assert override_codes(card(cards, RID)) == [
            "switching-agent",
            "previous-order-to-stop",
            "previous-dose-not-given",
        ]


def test_bp_duplicate_zoledronic_5mg_dose_from_a_completed_order_says_low_confidence() -> None:
    """BP-DUPLICATE (c): a completed order is the dose date only when nothing better exists (D4)."""
    c = card(run(good_labs() + [request(ZOL5, ago(200), status="completed")], [draft(ZOL5)]), RID)
    assert c is not None and "lowest confidence" in c["detail"]
    assert RID not in ids(
        run(good_labs() + [administration(ZOL5, ago(200), status="not-done")], [draft(ZOL5)])
    )


def test_bp_duplicate_two_drafts_in_the_session() -> None:
    """BP-DUPLICATE (d): two bisphosphonate drafts → one card naming both."""
    a = draft(ALENDRONATE_70, text="Alendronate 70 mg weekly")
    b = draft(ALENDRONATE_70, text="Fosamax 70 mg tablet")
    cards = run(good_labs(), [a, b])
    assert ids(cards).count(RID) == 1
    c = card(cards, RID)
    assert (
        c["summary"]
        == "Duplicate bisphosphonate: Alendronate 70 mg weekly and Fosamax 70 mg tablet ordered in this session"
    )
    assert "cancel-other-order" in override_codes(c)


def test_bp_duplicate_order_select_reads_every_draft_but_triggers_on_selected() -> None:
    """BP-DUPLICATE: order-select sees an unselected BP draft (d) but needs a selected BP trigger."""
    z = draft(ZOL5, rid="zol")
    a = draft(ALENDRONATE_70, rid="aln")
    assert RID in ids(run(good_labs(), [z, a], hook="order-select", selections=["MedicationRequest/zol"]))
    assert RID not in ids(run(good_labs(), [z, a], hook="order-select", selections=[]))
    assert RID not in ids(
        run(good_labs() + [request(ALENDRONATE_70, ago(60), status="active")], [], hook="patient-view")
    )
