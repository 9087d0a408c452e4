"""BP-DRUG-HOLIDAY-REVIEW (RULES.md §4, D4): long bisphosphonate courses on patient-view."""

from __future__ import annotations

from datetime import date, timedelta

from cards.thresholds import Thresholds
from cds_service.chart import add_months
from tests.factory import ICD10, administration, condition, dispense, draft, request, statement
from tests.rules._bp_helpers import (
    ALENDRONATE_70,
    PAMIDRONATE,
    RISEDRONATE_150,
    TODAY,
    ZOL4,
    ZOL5,
    ago,
    card,
    good_labs,
    ids,
    override_codes,
    reason,
    run,
)

RID = "BP-DRUG-HOLIDAY-REVIEW"


def dispenses(code: str, start: date, end: date, every: int = 84, supply: int = 84, **kw) -> list[dict]:
    """A completed dispense every ``every`` days back from ``end`` (inclusive), and one on ``start``."""
    out, d = [], end
    while d >= start:
        out.append(dispense(code, d.isoformat(), days_supply=supply, **kw))
        d -= timedelta(days=every)
    if out and out[-1]["whenHandedOver"] != start.isoformat():
        out.append(dispense(code, start.isoformat(), days_supply=supply, **kw))
    return out


def years_ago(n: int, days: int = 0) -> date:
    return add_months(TODAY, -12 * n) - timedelta(days=days)


def pv(resources, **kw):
    return run(resources, hook="patient-view", **kw)


def test_bp_holiday_six_years_alendronate_gets_the_card() -> None:
    """BP-DRUG-HOLIDAY-REVIEW: a patient six years on weekly alendronate gets an info card."""
    start = years_ago(6)
    meds = [request(ALENDRONATE_70, ago(200), status="active")] + dispenses(
        ALENDRONATE_70, start, TODAY - timedelta(days=20)
    )
    c = card(pv(meds), RID)
    assert c is not None and c["indicator"] == "info"
    assert c["summary"] == (
        f"Alendronate for 6 years (oral, since {start.isoformat()}): review whether "
        "to continue or take a drug holiday"
    )
    assert override_codes(c) == ["high-risk-continue", "reviewed-this-year", "holiday-planned"]
    sr = c["suggestions"][0]["actions"][0]["resource"]
    assert sr["resourceType"] == "ServiceRequest" and "DXA" in sr["code"]["text"]
    assert (sr["status"], sr["intent"]) == ("draft", "order")
    assert c["source"]["url"] == "https://doi.org/10.1002/jbmr.2708"
    assert "pooled across oral agents" in c["detail"]


def test_bp_holiday_restarted_after_a_holiday_does_not_get_the_card() -> None:
    """BP-DRUG-HOLIDAY-REVIEW: 5 years, a 3-year holiday, restarted 3.5 years ago → no card."""
    first = dispenses(ALENDRONATE_70, years_ago(12), years_ago(7))
    restart = add_months(TODAY, -42)
    second = dispenses(ALENDRONATE_70, restart, TODAY - timedelta(days=30))
    meds = (
        first
        + second
        + [
            request(ALENDRONATE_70, years_ago(12), status="stopped"),
            request(ALENDRONATE_70, restart.isoformat(), status="active"),
        ]
    )
    assert RID not in ids(pv(meds))


def test_bp_holiday_threshold_exactly_five_years() -> None:
    """BP-DRUG-HOLIDAY-REVIEW: ≥ 5 years fires (calendar), one day short does not."""
    at = [statement(RISEDRONATE_150, years_ago(5).isoformat(), status="active")]
    short = [statement(RISEDRONATE_150, (years_ago(5) + timedelta(days=1)).isoformat(), status="active")]
    assert RID in ids(pv(at))
    assert RID not in ids(pv(short))
    c = card(pv(at), RID)
    assert c["summary"].startswith(f"Risedronate for 5 years (oral, since {years_ago(5).isoformat()})")


def test_bp_holiday_course_must_be_current() -> None:
    """BP-DRUG-HOLIDAY-REVIEW: no active order/statement and the last supply ended > 90 days ago → over."""
    start = years_ago(7)
    # last dispense 174 days ago, 84 days' supply → ended 90 days ago: still current; 175 → 91: over
    assert RID in ids(pv(dispenses(ALENDRONATE_70, start, TODAY - timedelta(days=174))))
    assert RID not in ids(pv(dispenses(ALENDRONATE_70, start, TODAY - timedelta(days=175))))
    # a dispense without daysSupply covers 30 days
    no_supply = dispenses(ALENDRONATE_70, start, TODAY - timedelta(days=200))
    no_supply.append(dispense(ALENDRONATE_70, (TODAY - timedelta(days=120)).isoformat()))
    assert RID in ids(pv(no_supply))
    no_supply[-1] = dispense(ALENDRONATE_70, (TODAY - timedelta(days=121)).isoformat())
    assert RID not in ids(pv(no_supply))
    # stopped 1 year ago: the course is over, no holiday card is due
    over = dispenses(ALENDRONATE_70, start, years_ago(1))
    assert RID not in ids(pv(over + [request(ALENDRONATE_70, years_ago(1).isoformat(), status="stopped")]))
    # an active order makes it current again
    assert RID in ids(pv(over + [request(ALENDRONATE_70, years_ago(1).isoformat(), status="active")]))


def test_bp_holiday_course_summed_across_oral_agents() -> None:
    """BP-DRUG-HOLIDAY-REVIEW: alendronate 4 years then risedronate 2 years is one 6-year course."""
    meds = [
        statement(ALENDRONATE_70, years_ago(6).isoformat(), status="completed", end=years_ago(2).isoformat()),
        statement(RISEDRONATE_150, (years_ago(2) + timedelta(days=7)).isoformat(), status="active"),
    ]
    c = card(pv(meds), RID)
    assert c is not None and c["summary"].startswith("Alendronate, then risedronate for 6 years (oral")


def test_bp_holiday_gap_of_365_days_continues_366_starts_a_new_course() -> None:
    """BP-DRUG-HOLIDAY-REVIEW: a gap of more than 365 days starts a new course (D4)."""
    end1 = years_ago(3)
    first = statement(ALENDRONATE_70, years_ago(7).isoformat(), status="completed", end=end1.isoformat())
    same = statement(ALENDRONATE_70, (end1 + timedelta(days=365)).isoformat(), status="active")
    new = statement(ALENDRONATE_70, (end1 + timedelta(days=366)).isoformat(), status="active")
    assert RID in ids(pv([first, same]))
    assert RID not in ids(pv([first, new]))


def test_bp_holiday_entered_in_error_and_cancelled_records_do_not_count() -> None:
    """BP-DRUG-HOLIDAY-REVIEW: only counting statuses build the course (D2)."""
    old = dispenses(ALENDRONATE_70, years_ago(6), years_ago(3), status="entered-in-error")
    old += [request(ALENDRONATE_70, years_ago(6).isoformat(), status="cancelled")]
    recent = dispenses(ALENDRONATE_70, years_ago(3) + timedelta(days=30), TODAY - timedelta(days=10))
    assert RID not in ids(pv(old + recent))
    assert RID in ids(pv(dispenses(ALENDRONATE_70, years_ago(6), years_ago(3)) + recent))


def test_bp_holiday_three_zoledronic_5mg_infusions() -> None:
    """BP-DRUG-HOLIDAY-REVIEW: ≥ 3 yearly zoledronic acid 5 mg infusions in the current IV course."""
    three = [
        administration(ZOL5, ago(20, years=2)),
        administration(ZOL5, ago(15, years=1)),
        administration(ZOL5, ago(10)),
    ]
    c = card(pv(three), RID)
    assert c is not None and c["indicator"] == "info"
    assert c["summary"] == (
        f"Zoledronic acid 5 mg: 3 infusions since {ago(20, years=2)} (IV): review "
        "whether to continue or take a drug holiday"
    )
    assert RID not in ids(pv(three[1:]))  # 2 infusions
    # the same infusion recorded as order + administration + dispense counts once (D4)
    dup = three[1:] + [request(ZOL5, ago(11), status="completed"), dispense(ZOL5, ago(12))]
    assert RID not in ids(pv(dup))


def test_bp_holiday_zoledronic_course_current_and_gap_rules() -> None:
    """BP-DRUG-HOLIDAY-REVIEW: last infusion > 18 months ago → over; a gap > 24 months restarts."""
    old = [
        administration(ZOL5, ago(0, months=43)),
        administration(ZOL5, ago(0, months=31)),
        administration(ZOL5, ago(0, months=19)),
    ]
    assert RID not in ids(pv(old))
    at18 = [
        administration(ZOL5, ago(0, months=42)),
        administration(ZOL5, ago(0, months=30)),
        administration(ZOL5, ago(0, months=18)),
    ]
    assert RID in ids(pv(at18))
    restarted = [
        administration(ZOL5, ago(0, months=70)),
        administration(ZOL5, ago(0, months=58)),
        administration(ZOL5, ago(0, months=33)),
        administration(ZOL5, ago(0, months=9)),
    ]
    assert RID not in ids(pv(restarted))  # 58 → 33 months is a 25-month gap: new course of 2


def test_bp_holiday_not_for_oncology_dosing() -> None:
    """BP-DRUG-HOLIDAY-REVIEW: zoledronic acid 4 mg and pamidronate courses never count."""
    monthly = [
        administration(ZOL4, (TODAY - timedelta(days=28 * i)).isoformat(), dose_mg=4) for i in range(1, 40)
    ]
    assert RID not in ids(pv(monthly))
    pam = [administration(PAMIDRONATE, (TODAY - timedelta(days=28 * i)).isoformat()) for i in range(1, 30)]
    assert RID not in ids(pv(pam))


def test_bp_holiday_not_for_pagets_disease_courses() -> None:
    """BP-DRUG-HOLIDAY-REVIEW: a Paget's disease course is left alone."""
    course = [statement(ALENDRONATE_70, years_ago(6).isoformat(), status="active")]
    paget_order = request(ALENDRONATE_70, years_ago(6).isoformat(), status="active")
    paget_order["reasonCode"] = [reason("Paget's disease of bone")]
    assert RID not in ids(pv([paget_order]))
    assert RID not in ids(pv(course + [condition("M88.9", ICD10)]))
    assert RID not in ids(pv(course + [condition(None, text="Osteitis deformans of pelvis")]))
    # Paget's of the nipple is not bone disease; and osteoporosis on record means the course is for it
    assert RID in ids(pv(course + [condition(None, text="Paget disease of nipple")]))
    assert RID in ids(pv(course + [condition("M88.9", ICD10), condition("64859006")]))
    zol = [
        administration(ZOL5, ago(20, years=2)),
        administration(ZOL5, ago(15, years=1)),
        administration(ZOL5, ago(10)),
    ]
    assert RID not in ids(pv(zol + [condition("M88.0", ICD10)]))


def test_bp_holiday_only_on_patient_view() -> None:
    """BP-DRUG-HOLIDAY-REVIEW: draft-independent rule; order hooks never emit it (§7)."""
    meds = [statement(ALENDRONATE_70, years_ago(8).isoformat(), status="active")]
    assert RID in ids(pv(meds))
    assert RID not in ids(run(meds + good_labs(), [draft(ALENDRONATE_70)], hook="order-sign"))
    assert RID not in ids(run(meds + good_labs(), [draft(ALENDRONATE_70)], hook="order-select"))


def test_bp_holiday_thresholds_come_from_configuration() -> None:
    """BP-DRUG-HOLIDAY-REVIEW: bp_oral_holiday_years / bp_iv_holiday_infusions (D10)."""
    meds = [statement(ALENDRONATE_70, years_ago(6).isoformat(), status="active")]
    assert RID not in ids(pv(meds, thresholds=Thresholds(bp_oral_holiday_years=7)))
    zol = [administration(ZOL5, ago(15, years=1)), administration(ZOL5, ago(10))]
    assert RID in ids(pv(zol, thresholds=Thresholds(bp_iv_holiday_infusions=2)))
