"""The request budget while the chart is built (issue 11 §3: "past it, the answer is what the data
supports plus the data card, never a worker pinned for a minute").

The chart looks at the budget every ``CHECK_EVERY`` records (made small here); once it is spent,
the type being read and every later one are left out whole, marked ``out-of-time``, and the
data card says they were not checked. The clock is a fake that expires after k looks: no timed
test.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from cds_service.chart import OUT_OF_TIME, build_chart
from cds_service.chart import chart as chart_module
from cds_service.chart.identity import PatientIdentity
from cds_service.pipeline import DATA_CARD_ID, evaluate_hook
from hooks.services import service_by_id
from tests.factory import (CALCIUM_SERUM, DMAB60, ICD10, NOW, PID, administration, condition, draft,
                           hook_request, observation, patient, procedure, rule_ids)
from tests.test_request_budget import ExpiresAfter   # the fake budget clock: False for k looks

TODAY = NOW.date()
KINDS = ("MedicationRequest", "MedicationAdministration", "MedicationStatement", "MedicationDispense",
         "Observation", "Condition", "Procedure")




@pytest.fixture(autouse=True)
def small_check_interval(monkeypatch):
    monkeypatch.setattr(chart_module, "CHECK_EVERY", 4)


def _record(n_obs: int = 12) -> list[dict]:
    """A denosumab patient: 6 administrations, ``n_obs`` calcium results (the newest 7.2 mg/dL,
    DMAB-HYPOCALCEMIA), ONJ on the problem list (AR-ONJ-HISTORY), 3 dental procedures."""
    out = [patient()]
    out += [administration(DMAB60, TODAY - timedelta(days=182 * i + 30)) for i in range(6)]
    out += [observation(CALCIUM_SERUM, 7.2 if i == 0 else 9.4, "mg/dL", TODAY - timedelta(days=3 + 20 * i))
            for i in range(n_obs)]
    out += [condition("M87.180", ICD10, onset="2023-04-12"), condition("M81.0", ICD10)]
    out += [procedure("D7140", "http://www.ada.org/cdt", TODAY - timedelta(days=400 + i)) for i in range(3)]
    return out


RECORD = _record()
#: With CHECK_EVERY = 4, RECORD's 24 records are sorted by type with looks 1–6 (the Patient
#: first), its 6 administrations are read with look 7, its 12 results with looks 8–10.
LOOKS_SORTING, LOOKS_MEDICATIONS = 6, 7


def _chart(deadline=None, resources=None):
    return build_chart(resources if resources is not None else RECORD, NOW, hook="patient-view",
                       identity=PatientIdentity(PID), deadline=deadline)


def _facts(chart, kind: str) -> list:
    if kind == "Observation":
        return [(c, l.id) for c, labs in sorted(chart.results.items()) for l in labs]
    if kind == "Condition":
        return [c.id for c in chart.conditions]
    if kind == "Procedure":
        return [p.id for p in chart.procedures]
    return [r.id for r in chart.medications if r.resource_type == kind]


def test_a_budget_never_spent_changes_nothing_and_is_looked_at_every_few_records() -> None:
    plain = _chart()
    clock = ExpiresAfter(10**6)
    timed = _chart(clock)
    assert timed.unavailable == plain.unavailable == {}
    for kind in KINDS:
        assert _facts(timed, kind) == _facts(plain, kind)
    records = len(RECORD)
    assert 0 < clock.calls <= 2 * records // chart_module.CHECK_EVERY + 1   # not once per record


@pytest.mark.parametrize("k", range(0, 12))
def test_past_the_budget_every_type_is_whole_or_left_out_and_marked(k: int) -> None:
    plain = _chart()
    chart = _chart(ExpiresAfter(k))
    unread = {t for t, why in chart.unavailable.items() if why == OUT_OF_TIME}
    for kind in KINDS:
        if kind in unread:
            assert _facts(chart, kind) == [] and not chart.known(kind)
        else:
            assert _facts(chart, kind) == _facts(plain, kind) and chart.known(kind)
    # types are read in order: once one is left out, every later one is too
    flags = [kind in unread for kind in KINDS]
    assert flags == sorted(flags)
    assert all(s.resource_type not in unread for s in chart.skipped)
    assert chart.patient.age is not None          # the Patient comes first: always read here


def test_spent_while_reading_labs_keeps_the_medications_and_leaves_out_the_rest() -> None:
    chart = _chart(ExpiresAfter(LOOKS_MEDICATIONS))
    assert [r.resource_type for r in chart.medications] == ["MedicationAdministration"] * 6
    assert chart.results == {} and chart.labs("calcium-serum") == ()
    assert {t: w for t, w in chart.unavailable.items()} == {
        "Observation": OUT_OF_TIME, "Condition": OUT_OF_TIME, "Procedure": OUT_OF_TIME}


def test_spent_before_the_records_are_sorted_leaves_out_every_type_but_the_patient_seen() -> None:
    chart = _chart(ExpiresAfter(0))
    assert set(chart.unavailable) == set(KINDS)           # the Patient was the first record
    assert chart.medications == () and chart.patient.sex == "female"
    late_patient = RECORD[1:] + [RECORD[0]]
    chart = _chart(ExpiresAfter(0), late_patient)
    assert set(chart.unavailable) == set(KINDS) | {"Patient"}


def _order_sign(k: int | None):
    body = hook_request("order-sign", RECORD, drafts=[draft()])
    return evaluate_hook(service_by_id("bone-safety-order-sign"), body, now=NOW,
                         deadline=None if k is None else ExpiresAfter(k), budget=None).response["cards"]


def test_order_sign_past_the_budget_in_the_labs_says_so_never_an_empty_answer() -> None:
    full = rule_ids(_order_sign(None))
    assert {"DMAB-HYPOCALCEMIA", "AR-ONJ-HISTORY"} <= set(full)
    cards = _order_sign(LOOKS_MEDICATIONS)   # spent while the calcium results are being read
    ids = rule_ids(cards)
    assert ids == [DATA_CARD_ID]             # no rule judged a partial record
    card = cards[0]
    assert "Not read in time, so not checked: problem list, laboratory results, procedures." in card["detail"]
    assert "did not finish in time and were not performed" in card["detail"]
    assert card["indicator"] == "warning"    # labs unknown before a denosumab order


def test_patient_view_past_the_budget_in_the_medications_still_answers_with_the_data_card() -> None:
    body = hook_request("patient-view", RECORD)
    cards = evaluate_hook(service_by_id("bone-safety-patient-view"), body, now=NOW,
                          deadline=ExpiresAfter(LOOKS_SORTING), budget=None).response["cards"]
    assert rule_ids(cards) == [DATA_CARD_ID]
    detail = cards[0]["detail"]
    line = next(l for l in detail.splitlines() if l.startswith("- Not read in time, so not checked: "))
    # the (empty) orders were read whole before the administrations were cut
    assert "medication orders" not in line
    assert all(w in line for w in ("medication administrations", "medication statements",
                                   "medication dispenses", "laboratory results", "problem list", "procedures"))
    # either antiresorptive may be concerned: denosumab and bisphosphonate checks are both listed
    assert "Denosumab" in detail and "isphosphonate" in detail
