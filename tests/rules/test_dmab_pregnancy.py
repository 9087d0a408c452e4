"""DMAB-PREGNANCY and DMAB-PREGNANCY-STATUS-UNVERIFIED (RULES.md §3, D1, D8, §7, §8 item 13)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factory import (DMAB120, DMAB60, condition, draft, evaluate_rules, observation, patient,
                           procedure, rule_ids)

from ._dmab_helpers import (HOOKS, ICD10, LOINC, SNOMED, TODAY, ago, continuation, override_codes,
                            resource_codes, run, suggestion_resources, woman)

PREG = "DMAB-PREGNANCY"
UNVER = "DMAB-PREGNANCY-STATUS-UNVERIFIED"
V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


def _urine(result: str, days_ago: int = 5, **kw):
    code = {"pos": (SNOMED, "10828004"), "neg": (SNOMED, "260385009"),
            "LA-pos": (LOINC, "LA6576-8"), "LA-neg": (LOINC, "LA6577-6")}[result]
    return observation("2106-3", None, None, ago(days_ago), value_code=code, **kw)


def _hcg(value: float, unit: str = "m[IU]/mL", days_ago: int = 5, **kw):
    return observation("21198-7", value, unit, ago(days_ago), **kw)


def _interp(code: str, days_ago: int = 5):
    obs = observation("2118-8", None, None, ago(days_ago))
    obs["interpretation"] = [{"coding": [{"system": V3, "code": code}]}]
    return obs


def _status(pregnant: bool, days_ago: int = 5):
    code = (LOINC, "LA15173-0") if pregnant else (LOINC, "LA26683-5")
    return observation("82810-3", None, None, ago(days_ago), value_code=code)


# ---- DMAB-PREGNANCY ------------------------------------------------------------------------

@pytest.mark.parametrize("hook", HOOKS)
def test_dmab_pregnancy_positive_coded_test_is_critical(hook: str) -> None:
    card = run(PREG, [woman(29), _urine("pos", 3)], hook=hook, drafts=[draft()])
    assert card is not None
    assert card["indicator"] == "critical"
    assert card["summary"] == (f"Possible pregnancy (positive pregnancy test on {ago(3).isoformat()}): "
                               "denosumab is contraindicated in pregnancy")
    assert override_codes(card) == ["pregnancy-excluded", "result-error"]
    [hcg] = suggestion_resources(card)
    assert hcg["resourceType"] == "ServiceRequest" and resource_codes(hcg) == ["2118-8"]
    assert "5 months" in card["detail"]


@pytest.mark.parametrize("record, fires", [
    (lambda: _urine("LA-pos"), True), (lambda: _urine("neg"), False), (lambda: _urine("LA-neg"), False),
    (lambda: _interp("POS"), True), (lambda: _interp("NEG"), False),
    (lambda: _hcg(26), True), (lambda: _hcg(25), False), (lambda: _hcg(25.1), True),
    (lambda: _hcg(24), False),
    (lambda: _hcg(120, "[IU]/L"), True),         # IU/L = mIU/mL
    (lambda: _hcg(1000, "pmol/L"), False),       # unit not recognised: not used
    (lambda: _hcg(25, comparator=">"), True),
    (lambda: _hcg(10, comparator=">"), False),   # a lower bound under 25 says nothing
    (lambda: _hcg(5, comparator="<"), False),
])
def test_dmab_pregnancy_test_readings(record, fires: bool) -> None:
    assert (run(PREG, [woman(30), record()], drafts=[draft()]) is not None) is fires


def test_dmab_pregnancy_quantitative_summary_names_the_value() -> None:
    card = run(PREG, [woman(30), _hcg(850, days_ago=2)], drafts=[draft()])
    assert card is not None and "hCG 850 mIU/mL on " + ago(2).isoformat() in card["summary"]


@pytest.mark.parametrize("days_ago, fires", [(30, True), (31, False)])
def test_dmab_pregnancy_test_window_30_days(days_ago: int, fires: bool) -> None:
    assert (run(PREG, [woman(30), _urine("pos", days_ago)], drafts=[draft()]) is not None) is fires


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_dmab_pregnancy_ignored_test_status(status: str) -> None:
    assert run(PREG, [woman(30), _urine("pos", status=status)], drafts=[draft()]) is None


def test_dmab_pregnancy_later_negative_cancels_earlier_positive() -> None:
    assert run(PREG, [woman(30), _urine("pos", 20), _urine("neg", 2)], drafts=[draft()]) is None
    assert run(PREG, [woman(30), _urine("neg", 20), _urine("pos", 2)], drafts=[draft()]) is not None
    # same day: the positive wins
    assert run(PREG, [woman(30), _urine("neg", 2), _hcg(300, days_ago=2)], drafts=[draft()]) is not None


def test_dmab_pregnancy_unreadable_later_test_does_not_cancel() -> None:
    blank = observation("2106-3", None, None, ago(1))
    assert run(PREG, [woman(30), _urine("pos", 10), blank], drafts=[draft()]) is not None


def test_dmab_pregnancy_status_pregnant_and_later_not_pregnant() -> None:
    card = run(PREG, [woman(30), _status(True, 4)], drafts=[draft()])
    assert card is not None and "pregnancy status: pregnant" in card["summary"]
    assert run(PREG, [woman(30), _status(True, 10), _status(False, 2)], drafts=[draft()]) is None
    assert run(PREG, [woman(30), _status(True, 31)], drafts=[draft()]) is None


@pytest.mark.parametrize("onset_days, fires", [(294, True), (295, False), (None, True), (10, True)])
def test_dmab_pregnancy_active_condition_onset_within_42_weeks(onset_days, fires: bool) -> None:
    onset = ago(onset_days) if onset_days is not None else None
    cond = condition("77386006", text="Pregnant", onset=onset, recorded=ago(3))
    card = run(PREG, [woman(30), cond], drafts=[draft()])
    assert (card is not None) is fires


def test_dmab_pregnancy_resolved_or_refuted_condition_does_not_fire() -> None:
    assert run(PREG, [woman(30), condition("77386006", clinical="resolved", onset=ago(100))],
               drafts=[draft()]) is None
    assert run(PREG, [woman(30), condition("Z33.1", ICD10, verification="refuted")], drafts=[draft()]) is None


def test_dmab_pregnancy_not_restricted_by_age_or_sex() -> None:
    assert run(PREG, [patient("1950-01-01", "male"), _urine("pos")], drafts=[draft()]) is not None
    assert run(PREG, [patient(None, None), _urine("pos")], drafts=[draft()]) is not None


def test_dmab_pregnancy_fires_for_continuation_too_and_not_on_patient_view() -> None:
    assert run(PREG, [woman(35), *continuation(), _urine("pos")], drafts=[draft(DMAB60)]) is not None
    assert run(PREG, [woman(35), _urine("pos")], hook="patient-view") is None
    d = draft()
    assert run(PREG, [woman(35), _urine("pos")], hook="order-select", drafts=[d], selections=[]) is None


# ---- DMAB-PREGNANCY-STATUS-UNVERIFIED --------------------------------------------------------

@pytest.mark.parametrize("hook", HOOKS)
def test_dmab_pregnancy_unverified_fires_for_woman_of_reproductive_age(hook: str) -> None:
    card = run(UNVER, [woman(34)], hook=hook, drafts=[draft(DMAB120)])
    assert card is not None
    assert card["indicator"] == "info"
    assert card["summary"] == ("Pregnancy status not verified in the last 30 days: test before starting "
                               "denosumab")
    assert card["selectionBehavior"] == "at-most-one"
    assert [resource_codes(r) for r in suggestion_resources(card)] == [["2106-3"], ["2118-8"]]
    assert override_codes(card) == ["not-of-reproductive-potential", "verified-verbally",
                                    "recent-test-elsewhere"]
    assert "age 34" in card["detail"]


@pytest.mark.parametrize("record", [
    lambda: _urine("neg", 30), lambda: _status(False, 1), lambda: _hcg(2),
])
def test_dmab_pregnancy_unverified_any_recent_test_or_status_silences(record) -> None:
    assert run(UNVER, [woman(30), record()], drafts=[draft()]) is None


def _no_value(days_ago: int):
    obs = observation("2106-3", None, None, ago(days_ago))
    obs["dataAbsentReason"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                           "code": "error", "display": "Error"}]}
    return obs


@pytest.mark.parametrize("record, words", [
    (lambda: observation("2106-3", None, None, ago(3)), f"Pregnancy test on {ago(3).isoformat()}: no value."),
    (lambda: _no_value(3), f"Pregnancy test on {ago(3).isoformat()}: no value (Error)."),
    (lambda: _hcg(300, unit="mg", days_ago=3), f'Pregnancy test 300 on {ago(3).isoformat()}: unit not recognised ("mg").'),
    (lambda: observation("2106-3", None, None, ago(3), value_code=(SNOMED, "123")),
     f"Pregnancy test on {ago(3).isoformat()}: no recognisable result."),
])
def test_a39_pregnancy_unverified_a_test_without_a_result_does_not_verify(record, words) -> None:
    """A39 (DMAB-PREGNANCY-STATUS-UNVERIFIED): only a usable result verifies the status; the card
    names the test that does not. Changed: a blank test in the window used to silence the card."""
    card = run(UNVER, [woman(30), record()], drafts=[draft()])
    assert card is not None and words in card["detail"].split("\n")[0]


def test_a39_pregnancy_unusable_later_test_never_cancels_a_positive_only_a_usable_negative_does() -> None:
    """DMAB-PREGNANCY keeps its own rule (A39): positive, then an unusable test → still fires;
    positive, then a usable negative → cancelled."""
    for later in (_no_value(1), _hcg(3, unit="mg", days_ago=1),
                  observation("2106-3", None, None, ago(1), value_string="see note")):
        res = [woman(30), _urine("pos", 10), later]
        assert run(PREG, res, drafts=[draft()]) is not None
        assert UNVER not in rule_ids(evaluate_rules(res, drafts=[draft()]))
    assert run(PREG, [woman(30), _urine("pos", 10), _hcg(3, days_ago=1)], drafts=[draft()]) is None
    # an unusable positive-looking value is no positive either
    assert run(PREG, [woman(30), _hcg(300, unit="mg", days_ago=1)], drafts=[draft()]) is None


def test_dmab_pregnancy_unverified_stale_or_erroneous_test_does_not_silence() -> None:
    assert run(UNVER, [woman(30), _urine("neg", 31)], drafts=[draft()]) is not None
    assert run(UNVER, [woman(30), _urine("neg", 3, status="entered-in-error")], drafts=[draft()]) is not None


def _born(years: int, day_shift: int) -> dict:
    """Female born ``years`` years before today shifted by ``day_shift`` days (+: later)."""
    from cds_service.chart import add_months
    birth = add_months(TODAY, -12 * years) + timedelta(days=day_shift)
    return patient(birth.isoformat(), "female")


@pytest.mark.parametrize("years, shift, fires", [
    (12, 0, True),     # 12th birthday today
    (12, 1, False),    # turns 12 tomorrow: 11
    (50, 0, True),     # 50th birthday today
    (51, 1, True),     # turns 51 tomorrow: still 50
    (51, 0, False),    # 51 today
])
def test_dmab_pregnancy_unverified_age_12_to_50_inclusive_with_birthdays(years: int, shift: int,
                                                                         fires: bool) -> None:
    assert (run(UNVER, [_born(years, shift)], drafts=[draft()]) is not None) is fires


def test_dmab_pregnancy_unverified_unknown_age_or_male_never() -> None:
    assert run(UNVER, [patient(None, "female")], drafts=[draft()]) is None
    assert run(UNVER, [patient("1990-01-01", "male")], drafts=[draft()]) is None
    assert run(UNVER, [patient("1990-01-01", None)], drafts=[draft()]) is None
    assert run(UNVER, [patient("1990-01-01", "unknown")], drafts=[draft()]) is None


def test_dmab_pregnancy_unverified_unknown_sex_with_pregnancy_record_counts() -> None:
    old = condition("72892002", clinical="resolved", onset="2019-02-01")
    assert run(UNVER, [patient("1990-01-01", None), old], drafts=[draft()]) is not None


@pytest.mark.parametrize("record", [
    lambda: procedure("236886002", SNOMED, "2019-05-01"),                        # hysterectomy
    lambda: procedure("609275002", SNOMED, "2020-05-01"),                        # bilateral oophorectomy
    lambda: condition("Z78.0", ICD10, clinical=None),
])
def test_dmab_pregnancy_unverified_non_reproductive_status_silences(record) -> None:
    assert run(UNVER, [woman(45), record()], drafts=[draft()]) is None


def test_dmab_pregnancy_unverified_menopausal_state_code_no_longer_silences() -> None:
    """A24: N95.1 ("menopausal and female climacteric states") is symptoms, not a status."""
    rec = condition("N95.1", ICD10, text="Menopausal state")
    assert run(UNVER, [woman(45), rec], drafts=[draft()]) is not None


def test_dmab_pregnancy_unverified_not_done_hysterectomy_does_not_silence() -> None:
    rec = procedure("236886002", SNOMED, "2019-05-01", status="not-done")
    assert run(UNVER, [woman(45), rec], drafts=[draft()]) is not None


def test_dmab_pregnancy_unverified_only_at_initiation_and_not_on_patient_view() -> None:
    assert run(UNVER, [woman(40), *continuation()], drafts=[draft(DMAB60)]) is None
    assert run(UNVER, [woman(40)], hook="patient-view") is None


def test_dmab_pregnancy_rules_are_exclusive() -> None:
    ids = rule_ids(evaluate_rules([woman(30), condition("77386006", text="Pregnant")], drafts=[draft()]))
    assert PREG in ids and UNVER not in ids
    # an active pregnancy condition older than 42 weeks: not "possible pregnancy", not a test either
    ids = rule_ids(evaluate_rules([woman(30), condition("77386006", onset=ago(400))], drafts=[draft()]))
    assert PREG not in ids and UNVER in ids
