"""The Chart: FHIR R4 resources → clinical facts (issue "The chart"; RULES.md D1–D9)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from cds_service.chart import (CalciumLimits, add_months, build_chart, load_value_sets, months_since,
                               ValueSetError)
from cds_service.chart.units import convert
from tests.factory import (ALBUMIN, CALCIUM_IONIZED, CALCIUM_SERUM, DMAB120, DMAB60, DMAB_IN, EGFR, ICD10,
                           NOW, RXNORM, SNOMED, VITD, ZOL5, administration, condition, dispense, draft,
                           observation, patient, procedure, request, searchset, statement)

TODAY = NOW.date()


def chart(*resources, **kw):
    return build_chart(list(resources), NOW, **kw)


# ---- D1 dates ----------------------------------------------------------------------------------

@pytest.mark.parametrize("start, n, expected", [
    (date(2025, 8, 31), 6, date(2026, 2, 28)), (date(2023, 8, 31), 6, date(2024, 2, 29)),
    (date(2026, 3, 31), 1, date(2026, 4, 30)), (date(2026, 5, 15), 7, date(2026, 12, 15)),
    (date(2026, 11, 23), -24, date(2024, 11, 23)),
])
def test_d1_add_months_clamps_to_month_end(start, n, expected) -> None:
    assert add_months(start, n) == expected


def test_d1_months_since_counts_calendar_months() -> None:
    assert months_since(date(2026, 3, 23), TODAY) == 8
    assert months_since(date(2026, 3, 24), TODAY) == 7


def test_d1_today_is_the_utc_date_of_now() -> None:
    late = datetime(2026, 11, 23, 23, 30, tzinfo=timezone(__import__("datetime").timedelta(hours=-5)))
    assert build_chart([], late).today == date(2026, 11, 24)


def test_d1_age_birthday_today_and_partial_birth_dates() -> None:
    assert chart(patient("1950-11-23")).patient.age == 76
    assert chart(patient("1950-11-24")).patient.age == 75
    assert chart(patient("1950")).patient.age == 76          # read as 1950-01-01
    assert chart(patient(None)).patient.age is None
    assert chart(patient(gender="other")).patient.sex is None


# ---- D5 units and conversions -------------------------------------------------------------------

@pytest.mark.parametrize("concept, value, unit, expected", [
    ("calcium-serum", "2.12", "mmol/L", "8.5"),        # §8 item 18: rounds to 8.5, not below
    ("calcium-serum", "2.11", "mmol/l", "8.5"),        # 8.457 → 8.5
    ("calcium-serum", "2.10", "mmol/L", "8.4"),
    ("calcium-serum", "8.44", "mg/dl", "8.4"),
    ("calcium-serum", "4.2", "mEq/L", "8.4"),
    ("calcium-ionized", "4.6", "mg/dL", "1.15"),
    ("albumin", "35", "g/L", "3.5"),
    ("vitamin-d-25oh", "50", "nmol/L", "20.0"),
    ("vitamin-d-25oh", "49.9", "nmol/L", "20.0"),
    ("vitamin-d-25oh", "49.8", "nmol/L", "20.0"),
    ("vitamin-d-25oh", "49.7", "nmol/L", "19.9"),
    ("creatinine", "88.42", "umol/L", "1.00"),
    ("egfr", "34.5", "mL/min/1.73m2", "35"),
    ("egfr", "29.4", "mL/min/{1.73_m2}", "29"),
    ("egfr", "30", "ml/min/1.73 m²", "30"),
    ("magnesium", "0.7", "mmol/L", "1.7"),
    ("phosphate", "1.0", "mmol/L", "3.1"),
])
def test_d5_conversions_round_half_up_in_the_rule_unit(concept, value, unit, expected) -> None:
    assert convert(concept, Decimal(value), unit) == Decimal(expected)


@pytest.mark.parametrize("unit", [None, "", "furlongs", "mg"])
def test_d5_unknown_unit_is_never_guessed(unit) -> None:
    assert convert("calcium-serum", Decimal("8.0"), unit) is None
    c = chart(observation(CALCIUM_SERUM, 8.0, unit or None, "2026-11-20", ucum=False))
    lab = c.labs("calcium-serum")[0]
    assert not lab.usable and c.latest("calcium-serum", 30) is None and c.calcium(30) is None


# ---- D2 status filters --------------------------------------------------------------------------

@pytest.mark.parametrize("status, counts", [("final", True), ("amended", True), ("corrected", True),
                                            ("preliminary", True), ("registered", False),
                                            ("cancelled", False), ("entered-in-error", False), ("unknown", False)])
def test_d2_observation_status(status, counts) -> None:
    c = chart(observation(CALCIUM_SERUM, 8.0, "mg/dL", "2026-11-20", status=status))
    assert (c.latest("calcium-serum", 30) is not None) is counts


@pytest.mark.parametrize("builder, status, counts", [
    (lambda s: administration(DMAB60, "2026-05-01", status=s), "completed", True),
    (lambda s: administration(DMAB60, "2026-05-01", status=s), "in-progress", True),
    (lambda s: administration(DMAB60, "2026-05-01", status=s), "not-done", False),
    (lambda s: administration(DMAB60, "2026-05-01", status=s), "entered-in-error", False),
    (lambda s: administration(DMAB60, "2026-05-01", status=s), "stopped", False),
    (lambda s: dispense(DMAB60, "2026-05-01", status=s), "completed", True),
    (lambda s: dispense(DMAB60, "2026-05-01", status=s), "cancelled", False),
    (lambda s: dispense(DMAB60, "2026-05-01", status=s), "in-progress", False),
    (lambda s: statement(DMAB60, "2026-05-01", status=s), "completed", True),
    (lambda s: statement(DMAB60, "2026-05-01", status=s), "active", True),
    (lambda s: statement(DMAB60, "2026-05-01", status=s), "not-taken", False),
    (lambda s: statement(DMAB60, "2026-05-01", status=s), "entered-in-error", False),
    (lambda s: request(DMAB60, "2026-05-01", status=s), "completed", True),
    (lambda s: request(DMAB60, "2026-05-01", status=s), "active", False),   # a plan, not a dose
    (lambda s: request(DMAB60, "2026-05-01", status=s), "cancelled", False),
    (lambda s: request(DMAB60, "2026-05-01", status=s), "draft", False),
])
def test_d2_d4_dose_events_from_each_record_type_and_status(builder, status, counts) -> None:
    c = chart(builder(status))
    last = c.last_dose("denosumab")
    assert (last is not None and last.date == date(2026, 5, 1)) is counts


def test_d4_dedupe_within_four_days_keeps_most_confident_source() -> None:
    c = chart(request(DMAB60, "2026-05-01", status="completed"), administration(DMAB60, "2026-05-02"),
              dispense(DMAB60, "2026-04-30"), administration(DMAB60, "2025-11-01"))
    events = c.dose_events("denosumab")
    assert [(e.date, e.source) for e in events] == [(date(2025, 11, 1), "MedicationAdministration"),
                                                    (date(2026, 5, 2), "MedicationAdministration")]


def test_d4_loading_doses_seven_days_apart_stay_separate() -> None:
    c = chart(*(administration(DMAB120, d) for d in ("2026-11-01", "2026-11-08", "2026-11-15")))
    assert len(c.dose_events("denosumab", regimen="120mg")) == 3


def test_d4_completed_request_is_low_confidence() -> None:
    c = chart(request(DMAB60, "2026-05-01", status="completed"))
    assert c.last_dose("denosumab").low_confidence


def test_future_dated_records_are_ignored_and_reported() -> None:
    c = chart(administration(DMAB60, "2026-12-01"), observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-11-30"))
    assert c.last_dose("denosumab") is None and c.latest("calcium-serum") is None
    assert {s.reason for s in c.skipped} == {"dated in the future"}


# ---- D3 classification --------------------------------------------------------------------------

def test_d3_regimen_from_code_dose_and_text() -> None:
    c = chart(administration(DMAB60, "2026-01-01"), administration(DMAB120, "2026-03-01"),
              administration(DMAB_IN, "2026-05-01", dose_mg=120), administration(None, "2026-07-01", text="Prolia 60 mg"),
              administration(None, "2026-09-01", text="denosumab injection"))
    regimens = [(e.date.month, e.drug.regimen, e.drug.by_text) for e in c.dose_events("denosumab")]
    assert regimens == [(1, "60mg", False), (3, "120mg", False), (5, "120mg", False), (7, "60mg", True), (9, None, True)]


def test_d3_medication_reference_contained_and_bundled() -> None:
    contained = administration(None, "2026-05-01")
    del contained["medicationCodeableConcept"]
    contained["contained"] = [{"resourceType": "Medication", "id": "m1",
                               "code": {"coding": [{"system": RXNORM, "code": DMAB60}]}}]
    contained["medicationReference"] = {"reference": "#m1"}
    bundled = administration(None, "2025-11-01")
    del bundled["medicationCodeableConcept"]
    bundled["medicationReference"] = {"reference": "Medication/zol"}
    med = {"resourceType": "Medication", "id": "zol", "code": {"coding": [{"system": RXNORM, "code": ZOL5}]}}
    c = chart(searchset([contained, bundled, med]))
    assert c.last_dose("denosumab").drug.regimen == "60mg"
    zol = c.last_dose("bisphosphonate")
    assert (zol.drug.agent, zol.drug.regimen, zol.drug.route) == ("zoledronic-acid", "5mg", "iv")


@pytest.mark.parametrize("code, agent, route", [("904396", "alendronate", "oral"), ("1367009", "alendronate", "oral"),
                                                ("905028", "risedronate", "oral"), ("905041", "risedronate", "oral"),
                                                ("904932", "ibandronate", "oral")])
def test_d3_sandbox_oral_bisphosphonates_are_recognised(code, agent, route) -> None:
    c = chart(hook="order-sign", draft_orders=[draft(code)])
    assert [(t.drug.agent, t.drug.route) for t in c.triggers] == [(agent, route)]


def test_hooks_triggers_selected_on_order_select_all_on_order_sign() -> None:
    a, b = draft(DMAB60, rid="a"), draft(ZOL5, rid="b")
    sel = chart(hook="order-select", draft_orders=[a, b], selections=["MedicationRequest/b"])
    assert [t.ref for t in sel.triggers] == ["MedicationRequest/b"] and len(sel.drafts) == 2
    sign = chart(hook="order-sign", draft_orders=[a, b])
    assert len(sign.triggers) == 2
    assert chart(hook="patient-view", draft_orders=[a]).triggers == ()


# ---- D5 labs --------------------------------------------------------------------------------------

def test_d5_calcium_ionized_wins_when_not_older() -> None:
    c = chart(observation(CALCIUM_SERUM, 8.0, "mg/dL", "2026-11-20"), observation(CALCIUM_IONIZED, 1.20, "mmol/L", "2026-11-20"))
    j = c.calcium(30)
    assert j.kind == "ionized" and not j.low


def test_d5_albumin_correction_only_below_four() -> None:
    low_alb = chart(observation(CALCIUM_SERUM, 8.0, "mg/dL", "2026-11-20"), observation(ALBUMIN, 3.0, "g/dL", "2026-11-18"))
    j = low_alb.calcium(30)
    assert (j.kind, j.value, j.low) == ("albumin-corrected", Decimal("8.8"), False)
    high_alb = chart(observation(CALCIUM_SERUM, 8.4, "mg/dL", "2026-11-20"), observation(ALBUMIN, 45, "g/L", "2026-11-20"))
    j = high_alb.calcium(30)
    assert (j.kind, j.value, j.low) == ("measured", Decimal("8.4"), True)
    far_alb = chart(observation(CALCIUM_SERUM, 8.0, "mg/dL", "2026-11-20"), observation(ALBUMIN, 3.0, "g/dL", "2026-11-01"))
    assert far_alb.calcium(30).kind == "measured"


@pytest.mark.parametrize("value, low, severe", [("8.4", True, False), ("8.5", False, False), ("8.6", False, False),
                                                ("7.4", True, True), ("7.5", True, False)])
def test_d5_calcium_thresholds(value, low, severe) -> None:
    j = chart(observation(CALCIUM_SERUM, float(value), "mg/dL", "2026-11-20")).calcium(30, CalciumLimits())
    assert (j.low, j.severe) == (low, severe)


def test_d5_latest_result_wins_and_window_is_inclusive() -> None:
    c = chart(observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-11-01"), observation(CALCIUM_SERUM, 9.0, "mg/dL", "2026-11-10"))
    assert not c.calcium(30).low
    edge = chart(observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-10-24"))   # 30 days ago
    assert edge.calcium(30).low and chart(observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-10-23")).calcium(30) is None


def test_d5_egfr_preference_same_day_and_race_split_lower() -> None:
    c = chart(observation("33914-3", 40, "mL/min/{1.73_m2}", "2026-11-01"), observation(EGFR, 38, "mL/min/{1.73_m2}", "2026-11-01"))
    assert c.egfr(365).value == 38
    split = chart(observation("88293-6", 45, "mL/min/{1.73_m2}", "2026-11-01"), observation("88294-4", 37, "mL/min/{1.73_m2}", "2026-11-01"))
    assert split.egfr(365).value == 37
    assert chart(observation("2160-0", 2.1, "mg/dL", "2026-11-01")).egfr(365) is None   # creatinine is not eGFR


def test_d5_egfr_and_calcium_read_only_as_far_as_the_answer_needs() -> None:
    """The newest day with a usable eGFR decides (D5), so older results are never read: an
    unreadable one older than that day is not even reported; a newest day with nothing usable
    decides too (A39: "present but not usable"), so nothing older is read either."""
    unreadable = observation(EGFR, 50, "mL/min/{1.73_m2}", "2026-06-01")
    unreadable["valueQuantity"]["value"] = "fifty"          # invalid R4B decimal: skipped when read
    c = chart(observation("33914-3", 40, "mL/min/{1.73_m2}", "2026-11-01"),
              observation(EGFR, 38, "mL/min/{1.73_m2}", "2026-11-01"), unreadable,
              observation(CALCIUM_SERUM, 9.1, "mg/dL", "2026-11-20"), observation(CALCIUM_SERUM, "x", "mg/dL", "2026-11-02"))
    assert c.egfr(365).value == 38 and c.calcium(30).value == Decimal("9.1")
    assert c.skipped == []                                 # neither older result was read
    older = observation(EGFR, 61, "mL/min/{1.73_m2}", "2026-10-01")
    older["valueQuantity"]["value"] = "sixty-one"            # would be reported if it were read
    newest_unusable = chart(observation(EGFR, None, None, "2026-11-10"), older)
    assert newest_unusable.egfr(365) is None and newest_unusable.egfr_day(365).present_unusable
    assert newest_unusable.skipped == []                     # the latest date decided: 2026-10-01 unread
    beyond = observation(EGFR, 70, "mL/min/{1.73_m2}", "2025-01-01")
    beyond["valueQuantity"]["value"] = "seventy"             # outside the 365-day window
    none_in_window = chart(observation(EGFR, None, None, "2026-11-10"), beyond)
    assert none_in_window.egfr(365) is None and none_in_window.skipped == []
    assert len(list(c.labs("egfr"))) == 2 and len(c.skipped) == 1   # read when asked for: reported, left out


def test_d5_comparators_bound_values() -> None:
    from cds_service.chart import below
    gt = chart(observation(EGFR, 60, "mL/min/{1.73_m2}", "2026-11-01", comparator=">")).egfr(365)
    assert not below(gt, 90) and not below(gt, 30)
    s = chart(observation(EGFR, None, None, "2026-11-01", value_string="<15")).egfr(365)
    assert below(s, 15) and below(s, 30)


def test_d5_vitamin_d_in_nmol() -> None:
    assert chart(observation(VITD, 30, "nmol/L", "2026-06-01")).latest("vitamin-d-25oh", 365).value == Decimal("12.0")


# ---- D6/D7 conditions and procedures --------------------------------------------------------------

def test_d6_condition_status_and_text_fallback() -> None:
    c = chart(condition("N18.4", ICD10), condition("N18.5", ICD10, clinical="resolved"),
              condition("N18.6", ICD10, verification="refuted"), condition(None, text="MRONJ of mandible"),
              condition("M84.750A", ICD10, clinical=None))
    ckd = c.conditions_in("ckd-stage-4-5", "end-stage-renal-disease")
    assert sorted(x.active for x in ckd) == [False, True]
    onj = c.conditions_in("osteonecrosis-of-jaw")
    assert len(onj) == 1 and onj[0].by_text
    aff = c.conditions_in("atypical-femoral-fracture", active=True)
    assert len(aff) == 1   # no clinicalStatus, no abatement → active


def test_d7_procedures_completed_and_windowed() -> None:
    c = chart(procedure("D0150", "http://www.ada.org/cdt", "2026-01-10"),
              procedure("D0120", "http://www.ada.org/cdt", "2025-11-22"),
              procedure("D0140", "http://www.ada.org/cdt", "2026-10-01", status="not-done"))
    assert [p.date for p in c.procedures_in("dental-evaluation", within_days=365)] == [date(2026, 1, 10)]
    assert len(c.procedures_in("dental-evaluation")) == 2


# ---- robustness ---------------------------------------------------------------------------------

def test_unreadable_resource_is_skipped_and_reported() -> None:
    bad = administration(DMAB60, "2026-05-01")
    bad["dosage"] = {"dose": {"value": "lots"}}
    c = chart(bad, administration(DMAB60, "2025-11-01"))
    assert c.last_dose("denosumab").date == date(2025, 11, 1)
    assert len(c.skipped) == 1 and c.skipped[0].resource_type == "MedicationAdministration"


def test_value_sets_validated_at_load(tmp_path) -> None:
    p = tmp_path / "codes.json"
    p.write_text('{"denosumab-60mg": [{"system": "http://x", "code": ""}]}')
    with pytest.raises(ValueSetError, match=r"denosumab-60mg.*entry 0.*code"):
        load_value_sets(p)
    p.write_text("{nope")
    with pytest.raises(ValueSetError, match="codes.json"):
        load_value_sets(p)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
                     max_leaves=12)
_types = st.sampled_from(["Patient", "Observation", "Condition", "Procedure", "MedicationRequest",
                          "MedicationAdministration", "MedicationStatement", "MedicationDispense", "Medication",
                          "Bundle", "OperationOutcome", "Unknown", 7, None])
_fields = st.sampled_from(["status", "code", "medicationCodeableConcept", "medicationReference", "effectiveDateTime",
                           "valueQuantity", "valueString", "birthDate", "gender", "clinicalStatus", "entry",
                           "performedDateTime", "authoredOn", "dosageInstruction", "dosage", "contained",
                           "whenHandedOver", "verificationStatus", "onsetDateTime", "reasonCode", "id"])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.builds(lambda t, kv: {"resourceType": t, **kv}, _types, st.dictionaries(_fields, _json, max_size=6)),
                max_size=5),
       st.lists(st.dictionaries(_fields, _json, max_size=5).map(lambda d: {"resourceType": "MedicationRequest", **d}),
                max_size=2))
def test_property_no_resource_shape_makes_the_chart_raise(resources, drafts) -> None:
    """Issue "The chart": any resource shape is skipped or read, never raised."""
    c = build_chart(resources, NOW, hook="order-sign", draft_orders=drafts)
    c.calcium(30)
    c.egfr(365)
    c.dose_events()
    c.is_initiation(["denosumab", "bisphosphonate"])


def test_text_patterns_are_lower_case_and_match_any_case() -> None:
    """Text fallbacks (D3) are matched on lower-cased text (faster than re.IGNORECASE): the
    patterns must stay lower case, and names in any case must still be recognised."""
    from cds_service.chart.valuesets import TEXT_PATTERNS, default_value_sets
    assert all(p == p.lower() for p in TEXT_PATTERNS.values())
    vs = default_value_sets()
    assert "denosumab" in vs.text_matches(["PROLIA 60 MG/ML"])
    assert "denosumab" in vs.text_matches(["XGeva injection"])
    assert "zoledronic-acid" in vs.text_matches(["Zoledronic Acid 5 MG in 100 ML"])
    assert "calcium-supplement" in vs.text_matches(["CALCIUM CARBONATE 500 MG"])
    assert "osteonecrosis-of-jaw" in vs.text_matches(["Osteonecrosis Of The Jaw"])
    assert vs.text_matches(["Metformin 500 MG"]) == frozenset()


# ---- D5 / A39: the latest result in the window decides ----------------------------------------

_DAR = "http://terminology.hl7.org/CodeSystem/data-absent-reason"


def _absent(code: str, when: str, display: str | None = "Error", reason_code: str = "error") -> dict:
    obs = observation(code, None, None, when)
    obs["dataAbsentReason"] = {"coding": [{"system": _DAR, "code": reason_code,
                                           **({"display": display} if display else {})}]}
    return obs


@pytest.mark.parametrize("obs, kind, sent, words", [
    (lambda: observation(EGFR, 13.4, None, "2026-11-22"), "unit", None,
     "eGFR 13 on 2026-11-22: unit not recognised (no unit)"),
    (lambda: observation(EGFR, 13.5, "mL/s", "2026-11-22"), "unit", "mL/s",
     'eGFR 14 on 2026-11-22: unit not recognised ("mL/s")'),
    (lambda: observation(CALCIUM_SERUM, 2.1149, "mmol", "2026-11-22", ucum=False), "unit", "mmol",
     'Calcium 2.1 on 2026-11-22: unit not recognised ("mmol")'),
    (lambda: observation(CALCIUM_SERUM, 8.0, "mg/dL", "2026-11-22", comparator="<") | {"valueQuantity": {"value": 8.0, "comparator": "<", "unit": "furlongs"}},
     "unit", "furlongs", 'Calcium <8.0 on 2026-11-22: unit not recognised ("furlongs")'),
    (lambda: _absent(CALCIUM_SERUM, "2026-11-22"), "no-value", "Error", "Calcium on 2026-11-22: no value (Error)"),
    (lambda: _absent(CALCIUM_SERUM, "2026-11-22", display=None), "no-value", "error",
     "Calcium on 2026-11-22: no value (error)"),
    (lambda: observation(CALCIUM_SERUM, None, None, "2026-11-22"), "no-value", None, "Calcium on 2026-11-22: no value"),
    (lambda: observation(VITD, None, None, "2026-11-22", value_string="pending"), "not-a-number", "pending",
     '25-OH vitamin D on 2026-11-22: no numeric value ("pending")'),
    (lambda: observation(ALBUMIN, None, None, "2026-11-22", value_code=("http://snomed.info/sct", "260385009")),
     "not-a-number", "260385009", 'Albumin on 2026-11-22: no numeric value ("260385009")'),
    (lambda: observation(VITD, None, None, "2026-11-22", value_string="<5"), "unit", None,
     "25-OH vitamin D <5 on 2026-11-22: unit not recognised (no unit)"),
])
def test_a39_unusable_reason_and_wording(obs, kind, sent, words) -> None:
    resource = obs()
    concept = {EGFR: "egfr", CALCIUM_SERUM: "calcium-serum", VITD: "vitamin-d-25oh",
               ALBUMIN: "albumin"}[resource["code"]["coding"][0]["code"]]
    lab = chart(resource).labs(concept)[0]
    assert not lab.usable and lab.unusable == kind and lab.sent == sent
    assert lab.unusable_text() == words


def test_a39_usable_results_have_no_reason_and_a_value_string_may_carry_its_unit() -> None:
    c = chart(observation(VITD, None, None, "2026-11-22", value_string="<5 ng/mL"),
              observation(EGFR, None, None, "2026-11-22", value_string=">60 mL/min/1.73m2"))
    vitd, egfr = c.labs("vitamin-d-25oh")[0], c.labs("egfr")[0]
    assert vitd.usable and vitd.unusable is None and vitd.unusable_text() is None and vitd.value == Decimal("5.0")
    assert egfr.usable and egfr.value == 60 and egfr.comparator == ">"


def test_a39_latest_day_decides_usable_or_not_and_stops_reading_there() -> None:
    unreadable = observation(CALCIUM_SERUM, 9.0, "mg/dL", "2026-10-30")
    unreadable["valueQuantity"]["value"] = "nine"           # reported only if read
    c = chart(_absent(CALCIUM_SERUM, "2026-11-22"), observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-11-10"),
              unreadable)
    day = c.latest_day("calcium-serum", 30)
    assert day.date == date(2026, 11, 22) and day.present_unusable and day.decisive is None
    assert c.latest("calcium-serum", 30) is None and c.calcium(30) is None
    assert c.calcium_day(30).present_unusable and c.skipped == []   # nothing older was read
    prev = c.previous_calcium(30, day.date)
    assert prev is not None and prev.value == Decimal("7.0") and prev.low
    assert c.previous_usable("calcium-serum", day.date, 30).value == Decimal("7.0")
    # an unusable result older than a usable one changes nothing
    newer = chart(observation(CALCIUM_SERUM, 9.1, "mg/dL", "2026-11-22"), _absent(CALCIUM_SERUM, "2026-11-20"))
    assert newer.calcium(30).value == Decimal("9.1") and not newer.calcium_day(30).present_unusable


def test_a39_window_first_unusable_outside_the_window_is_not_the_latest() -> None:
    c = chart(_absent(EGFR, "2026-10-01"), observation(EGFR, 50, "mL/min/{1.73_m2}", "2026-09-01"))
    assert c.egfr_day(30).date is None and c.egfr(30) is None           # nothing in 30 days
    assert c.egfr_day(365).present_unusable and c.egfr(365) is None     # in 365 days the latest is unusable
    assert c.previous_egfr(365, date(2026, 10, 1)).value == 50


def test_a39_same_date_usable_egfr_decides_by_code_preference() -> None:
    c = chart(observation(EGFR, 20, None, "2026-11-20"), observation("33914-3", 44, "mL/min/{1.73_m2}", "2026-11-20"),
              observation("62238-1", 41, "mL/min/{1.73_m2}", "2026-11-20"), observation(EGFR, 12, "mL/min/{1.73_m2}", "2026-11-01"))
    assert c.egfr(365).value == 41                                      # 62238-1 ranks before 33914-3
    assert len(c.egfr_day(365).results) == 3 and len(c.egfr_day(365).usable) == 2


@pytest.mark.parametrize("resources, kind, value", [
    # the latest date holds an unusable ionized and a usable total: the total decides
    ([observation(CALCIUM_IONIZED, 1.0, "mg", "2026-11-20", ucum=False), observation(CALCIUM_SERUM, 8.2, "mg/dL", "2026-11-20"),
      observation(CALCIUM_IONIZED, 1.25, "mmol/L", "2026-11-18")], "measured", "8.2"),
    # usable ionized and total on the latest date: ionized first (step 1)
    ([observation(CALCIUM_IONIZED, 1.25, "mmol/L", "2026-11-20"), observation(CALCIUM_SERUM, 8.2, "mg/dL", "2026-11-20")],
     "ionized", "1.25"),
    # lab-corrected and total on the latest date: lab-corrected (step 2)
    ([observation("29265-6", 9.0, "mg/dL", "2026-11-20"), observation(CALCIUM_SERUM, 8.2, "mg/dL", "2026-11-20")],
     "lab-corrected", "9.0"),
    # an older ionized does not outrank a newer total (the latest date of any form decides)
    ([observation(CALCIUM_SERUM, 8.2, "mg/dL", "2026-11-20"), observation(CALCIUM_IONIZED, 1.25, "mmol/L", "2026-11-18")],
     "measured", "8.2"),
])
def test_a39_calcium_forms_on_the_latest_date(resources, kind, value) -> None:
    j = chart(*resources).calcium(30)
    assert j is not None and j.kind == kind and j.value == Decimal(value)


def test_a39_calcium_latest_date_all_forms_unusable_is_no_calcium() -> None:
    c = chart(observation(CALCIUM_IONIZED, 1.0, "mg", "2026-11-20", ucum=False), _absent(CALCIUM_SERUM, "2026-11-20"),
              observation(CALCIUM_IONIZED, 1.25, "mmol/L", "2026-11-18"))
    assert c.calcium(30) is None and len(c.calcium_day(30).results) == 2


def test_a39_latest_albumin_decides_unusable_means_no_correction() -> None:
    ca = observation(CALCIUM_SERUM, 8.0, "mg/dL", "2026-11-20")
    corrected = chart(ca, observation(ALBUMIN, 3.0, "g/dL", "2026-11-18")).calcium(30)
    assert corrected.kind == "albumin-corrected" and corrected.value == Decimal("8.8")
    j = chart(ca, observation(ALBUMIN, 3.0, "g/dL", "2026-11-18"), _absent(ALBUMIN, "2026-11-21")).calcium(30)
    assert j.kind == "measured" and j.value == Decimal("8.0") and j.low
    assert j.albumin_note() == "Not corrected for albumin: Albumin on 2026-11-21: no value (Error)"
    # an unusable albumin outside the pairing days is not the latest one: the usable one corrects
    far = chart(ca, observation(ALBUMIN, 3.0, "g/dL", "2026-11-18"), _absent(ALBUMIN, "2026-11-10")).calcium(30)
    assert far.kind == "albumin-corrected"


def test_d1_add_months_is_the_calendar_month_with_the_day_clamped_for_every_day() -> None:
    """Every day of 1999-2101 moved by -25..25 months: the target month of the calendar, the day
    clamped to that month's length (``calendar.monthrange``), as D1 defines it."""
    import calendar
    from datetime import timedelta

    d = date(1999, 1, 1)
    while d <= date(2101, 12, 31):
        for n in (-25, -13, -12, -7, -6, -1, 0, 1, 5, 6, 7, 12, 18, 25):
            year, month0 = divmod(d.year * 12 + d.month - 1 + n, 12)
            expected = date(year, month0 + 1, min(d.day, calendar.monthrange(year, month0 + 1)[1]))
            assert add_months(d, n) == expected, (d, n)
        d += timedelta(days=1)
