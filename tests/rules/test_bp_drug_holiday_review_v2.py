"""BP-DRUG-HOLIDAY-REVIEW, catalog version 2 (RULES.md D4 "Oral bisphosphonate exposure" as
amended by A38, §8 A11): orders without dispensing data count only over their order span, a
course is current by its exposure end, and an order linked by a dispense or an administration is
not an extra infusion or an extra span."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cards.thresholds import Thresholds
from cds_service.chart import add_months
from tests.factory import administration, dispense, request, statement
from tests.rules._bp_helpers import ALENDRONATE_70, TODAY, ZOL5, card, run

RID = "BP-DRUG-HOLIDAY-REVIEW"


def years_ago(n: int, days: int = 0) -> date:
    return add_months(TODAY, -12 * n) - timedelta(days=days)


def pv(resources, **kw):
    return run(resources, hook="patient-view", **kw)


def order(authored: date, *, status: str = "active", dispense_request: dict | None = None,
          timing: dict | None = None, dose: dict | None = None, rid: str | None = None) -> dict:
    body = request(ALENDRONATE_70, authored.isoformat(), status=status, rid=rid)
    if dispense_request is not None:
        body["dispenseRequest"] = dispense_request
    if timing is not None or dose is not None:
        dosage: dict = {}
        if timing is not None:
            dosage["timing"] = {"repeat": timing}
        if dose is not None:
            dosage["doseAndRate"] = [{"doseQuantity": dose}]
        body["dosageInstruction"] = [dosage]
    return body


# ---- A38: an open order is not years of therapy ----------------------------------------------

def test_one_open_order_six_years_old_no_dispense_is_no_course():
    """A38: one active alendronate order authored 6 years ago, no dosage, no dispenseRequest, no
    dispense: it spans 365 days, ended long ago: no current course, no card."""
    assert card(pv([order(years_ago(6))]), RID) is None


def test_orders_renewed_yearly_chain_into_one_current_course():
    """A38: orders renewed every 11–12 months for 6 years, no dispensing data: one current course."""
    start = years_ago(6)
    orders, d = [], start
    while d <= TODAY - timedelta(days=150):
        orders.append(order(d, status="completed"))
        d += timedelta(days=350)
    c = card(pv(orders), RID)
    assert c is not None and f"since {start.isoformat()}" in c["summary"]


@pytest.mark.parametrize("gap_days, fires", [(365, True), (366, False)])
def test_order_default_span_and_course_gap_boundary(gap_days, fires):
    """A38: a default 365-day order span; the next order starting ≤ 365 days after its end
    continues the course, 366 days starts a new one (D4 course gap)."""
    first = years_ago(6)
    second = first + timedelta(days=365 + gap_days)
    renewals = [order(second + timedelta(days=360 * i), status="completed") for i in range(6)
                if second + timedelta(days=360 * i) <= TODAY]
    renewals.append(order(TODAY - timedelta(days=30)))
    c = card(pv([order(first, status="completed"), *renewals]), RID)
    if fires:
        assert c is not None and f"since {first.isoformat()}" in c["summary"]
    else:
        assert c is None or f"since {first.isoformat()}" not in c["summary"]


@pytest.mark.parametrize("end_days_ago, current", [(89, True), (90, True), (91, False)])
def test_current_by_exposure_end_within_90_days(end_days_ago, current):
    """A38: the course is current when the latest order/dispense end is ≥ today − 90 days."""
    start = years_ago(6)
    last = TODAY - timedelta(days=end_days_ago + 30)
    meds = [dispense(ALENDRONATE_70, (start + timedelta(days=30 * i)).isoformat(), days_supply=30)
            for i in range(((last - start).days // 30) + 1)]
    meds[-1] = dispense(ALENDRONATE_70, last.isoformat(), days_supply=30)
    assert (card(pv(meds), RID) is not None) is current


def test_expected_supply_duration_times_fills_wins_over_validity():
    """A38 example: 28 days × (1 + 2 repeats) = 84 days, shorter than the one-year validity."""
    start = years_ago(6)

    def dr(authored: date) -> dict:
        return {"expectedSupplyDuration": {"value": 28, "unit": "days", "code": "d",
                                           "system": "http://unitsofmeasure.org"},
                "numberOfRepeatsAllowed": 2,
                "validityPeriod": {"start": authored.isoformat(),
                                   "end": add_months(authored, 12).isoformat()}}

    def o(authored: date) -> dict:
        return order(authored, dispense_request=dr(authored))

    # spans of 84 days: orders 84 + 300 days apart chain, 84 + 366 days apart break the course
    chained = [o(start + timedelta(days=384 * i)) for i in range(6)] + [o(TODAY - timedelta(days=10))]
    assert card(pv(chained), RID) is not None
    broken = [o(start), o(start + timedelta(days=84 + 366))]
    broken += [o(start + timedelta(days=84 + 366 + 384 * i)) for i in range(1, 5)]
    broken.append(o(TODAY - timedelta(days=10)))
    c = card(pv(broken), RID)
    assert c is None or f"since {start.isoformat()}" not in c["summary"]


def test_quantity_over_dose_frequency_gives_the_supply():
    """A38: quantity 12 tablets, 1 tablet weekly → 84 days per fill; no repeat."""
    from cds_service.chart.medications import implied_supply_days

    body = order(TODAY - timedelta(days=10),
                 dispense_request={"quantity": {"value": 12, "unit": "tablet"}},
                 timing={"frequency": 1, "period": 1, "periodUnit": "wk"},
                 dose={"value": 1, "unit": "tablet"})
    assert implied_supply_days(body) == 84
    body["dispenseRequest"]["numberOfRepeatsAllowed"] = 3
    assert implied_supply_days(body) == 336
    body["dispenseRequest"]["quantity"] = {"value": 12, "unit": "tablet"}
    body["dosageInstruction"][0]["timing"]["repeat"]["periodUnit"] = "fortnight"  # unreadable unit
    assert implied_supply_days(body) is None


def test_linked_order_counts_only_its_date():
    """A38 (3): an order named by a dispense counts its date only; the dispense carries the supply."""
    start = years_ago(6)
    o = order(start, rid="mr-linked")                           # would span 365 days unlinked
    d = dispense(ALENDRONATE_70, (start + timedelta(days=5)).isoformat(), days_supply=30)
    d["authorizingPrescription"] = [{"reference": "MedicationRequest/mr-linked"}]
    # a second order 380 days later continues the course only if the first order spans a year
    later = [order(start + timedelta(days=420 + 350 * i), status="completed") for i in range(5)]
    later.append(order(TODAY - timedelta(days=10)))
    linked_card = card(pv([o, d, *later]), RID)
    assert linked_card is None or f"since {start.isoformat()}" not in linked_card["summary"]
    d["authorizingPrescription"] = [{"reference": "MedicationRequest/other"}]
    c = card(pv([o, d, *later]), RID)
    assert c is not None and f"since {start.isoformat()}" in c["summary"]


def test_stopped_order_never_makes_the_course_current():
    """A38 (4): a stopped order is point evidence and never current."""
    start = years_ago(6)
    meds = [order(start + timedelta(days=300 * i), status="completed") for i in range(7)
            if start + timedelta(days=300 * i) < TODAY - timedelta(days=500)]
    meds.append(order(TODAY - timedelta(days=10), status="stopped"))
    assert card(pv(meds), RID) is None


def test_active_statement_without_end_still_runs_to_today():
    """A38 (6) unchanged: an active statement without an end runs to today and is current."""
    assert card(pv([statement(ALENDRONATE_70, years_ago(6).isoformat(), status="active")]), RID) is not None


def test_default_order_days_configurable():
    th = Thresholds(oral_order_default_days=2500)
    assert card(pv([order(years_ago(6))], thresholds=th), RID) is not None


# ---- A11: linked orders are not extra infusions ----------------------------------------------

def test_orders_two_weeks_before_linked_infusions_are_not_extra_infusions():
    """A11: two infusions, each with its completed order authored two weeks earlier and named in
    ``MedicationAdministration.request``: 2 infusions, below 3, no card; unlinked they are 4."""
    meds = []
    for i, when in enumerate((add_months(TODAY, -13), add_months(TODAY, -1))):
        o = request(ZOL5, (when - timedelta(days=14)).isoformat(), status="completed", rid=f"mr-z{i}")
        a = administration(ZOL5, when.isoformat())
        a["request"] = {"reference": f"https://fhir.example.org/r4/MedicationRequest/mr-z{i}/_history/2"}
        meds += [o, a]
    assert card(pv(meds), RID) is None
    for m in meds:
        m.pop("request", None)
    c = card(pv(meds), RID)
    assert c is not None and "4 infusions" in c["summary"]
