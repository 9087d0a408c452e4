"""Kidney function and lab codes of catalog v2 at the chart level (RULES.md D5): eGFR units
(A35), Cockcroft-Gault CrCl (A10, A39), eGFR code preference (A28), the whole-blood calcium
49765-1 (A36), and the Observation query (§1.3)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from cds_service.chart import build_chart, default_value_sets
from cds_service.chart.labs import (CRCL_AGE_UNKNOWN, CRCL_CREATININE_UNUSABLE, CRCL_NO_CREATININE,
                                    CRCL_NO_WEIGHT, CRCL_SEX_UNKNOWN, CRCL_WEIGHT_UNUSABLE,
                                    cockcroft_gault)
from hooks.services import prefetch_templates
from tests.factory import NOW, observation, patient
from tests.rules._helpers import TODAY, ago

WEIGHT = "29463-7"
CREAT = "2160-0"
CREAT_URINE = "2161-8"


def chart(*resources: Any, birth: str | None = "1952-03-14", gender: str | None = "female"):
    return build_chart([patient(birth, gender), *resources], NOW)


def egfr(code: str, value: float, unit: str | None = "mL/min/{1.73_m2}", days: int = 3, **kw: Any):
    return observation(code, value, unit, ago(days), **kw)


# ---- A35: eGFR units ------------------------------------------------------------------------

@pytest.mark.parametrize("unit", [
    "mL/min/{1.73_m2}", "mL/min/1.73m2", "mL/min/1.73_m2", "mL/min/{1.73m2}", "mL/min/1.73m²",
    "mL/min/1.73sqm", "mL/min/1.73 sq m", "mL/min per 1.73 m2", "mL/min per 1.73 m²", "mL/min",
    "ML/MIN", "ml/min", "mL / min", "mL/min/1.73 m2", "ML/MIN/1.73M2"])
def test_every_listed_egfr_spelling_means_per_1_73_m2(unit: str) -> None:
    for ucum in (True, False):
        lab = chart(egfr("33914-3", 28.4, unit, ucum=ucum)).egfr(365)
        assert lab is not None and lab.value == Decimal(28) and lab.unit == "mL/min/{1.73_m2}"


@pytest.mark.parametrize("unit", ["mL/s", "mL/s/1.73m2", "mL/min/m2", "L/min", "%", "mg/dL", None])
def test_other_egfr_units_are_not_recognised(unit: str | None) -> None:
    c = chart(egfr("33914-3", 28, unit))
    assert c.egfr(365) is None
    day = c.egfr_day(365)
    assert day.present_unusable and day.results[0].unusable == "unit"


def test_ml_min_is_an_egfr_unit_only_on_an_egfr_code() -> None:
    c = chart(observation(CREAT, 1.1, "mL/min", ago(3)))
    assert c.latest("creatinine", 30) is None
    assert c.latest_day("creatinine", 30).results[0].unusable == "unit"


def test_an_egfr_string_with_a_listed_unit_is_parsed() -> None:
    lab = chart(egfr("98979-8", None, None, value_string=">60 mL/min")).egfr(365)   # type: ignore[arg-type]
    assert lab is not None and lab.comparator == ">" and lab.value == 60


# ---- A28: eGFR code preference from codes.json ------------------------------------------------

def test_codes_json_ranks_are_loaded() -> None:
    ranks = default_value_sets().egfr_preference()
    assert ranks["98979-8"] == 1 and ranks["98980-6"] == 2 and ranks["33914-3"] == 3
    assert ranks["50044-7"] == 4 and ranks["70969-1"] == 4 and ranks["88293-6"] == 5


@pytest.mark.parametrize("pair, expected", [
    (("98979-8", 40, "33914-3", 25), 40),     # CKD-EPI 2021 first, whatever the values
    (("98980-6", 45, "98979-8", 50), 50),     # rank 1 beats rank 2
    (("33914-3", 50, "50044-7", 20), 50),     # generic beats sex-specific MDRD (A28)
    (("50044-7", 33, "88293-6", 20), 33),     # MDRD beats race-split pairs
    (("88293-6", 31, "88294-4", 37), 31),     # race-split pair: the lower value
])
def test_same_day_egfr_results_by_preference(pair: tuple, expected: int) -> None:
    a, va, b, vb = pair
    lab = chart(egfr(a, va), egfr(b, vb)).egfr(365)
    assert lab is not None and lab.value == expected


def test_preference_only_among_the_latest_date() -> None:
    lab = chart(egfr("98979-8", 60, days=10), egfr("33914-3", 29, days=3)).egfr(365)
    assert lab is not None and lab.value == 29


# ---- A10, A39: Cockcroft-Gault CrCl -----------------------------------------------------------

def weight(value: float | None, unit: str | None = "kg", days: int = 30, **kw: Any):
    return observation(WEIGHT, value, unit, ago(days), **kw)


def creat(value: float | None, unit: str | None = "mg/dL", days: int = 5, code: str = CREAT, **kw: Any):
    return observation(code, value, unit, ago(days), **kw)


def test_cockcroft_gault_formula_and_rounding() -> None:
    # (140 - 86) × 44 / (72 × 1.0) × 0.85 = 28.05 → 28 (A10 example: the 44-kg 86-year-old)
    assert cockcroft_gault(86, "female", Decimal(44), Decimal("1.0")) == 28
    assert cockcroft_gault(86, "male", Decimal(44), Decimal("1.0")) == 33
    # 34.5 rounds half-up to 35: (140 − 71) × 36 / (72 × 1.0) = 34.5
    assert cockcroft_gault(71, "male", Decimal(36), Decimal("1.0")) == 35


def test_crcl_computed_from_the_latest_creatinine_and_weight() -> None:
    c = chart(creat(1.0), creat(2.0, days=20), weight(60), weight(90, days=200))
    crcl = c.crcl(30, 365)
    # age 74 female, 60 kg, creatinine 1.0: 66 × 60 / 72 × 0.85 = 46.75 → 47
    assert crcl.computable and crcl.value == 47 and crcl.date == c.today.replace(day=18)
    assert crcl.creatinine.value == Decimal("1.00") and crcl.weight.value == Decimal("60.0")


def test_crcl_converts_umol_and_pounds() -> None:
    crcl = chart(creat(88.42, "umol/L", code="14682-9"), weight(132.277, "[lb_av]")).crcl(30, 365)
    assert crcl.value == 47                       # 1.00 mg/dL, 60.0 kg
    assert chart(creat(1.0), weight(60000, "g")).crcl(30, 365).value == 47
    assert chart(creat(1.0), weight(132.277, "lb", ucum=False)).crcl(30, 365).value == 47


def test_crcl_windows_creatinine_30_weight_365() -> None:
    assert chart(creat(1.0, days=30), weight(60, days=365)).crcl(30, 365).computable
    late_cr = chart(creat(1.0, days=31), weight(60)).crcl(30, 365)
    assert not late_cr.computable and late_cr.reason == CRCL_NO_CREATININE
    late_wt = chart(creat(1.0), weight(60, days=366)).crcl(30, 365)
    assert not late_wt.computable and late_wt.reason == CRCL_NO_WEIGHT


def test_only_serum_creatinine_counts() -> None:
    urine = chart(creat(1.0, code=CREAT_URINE), weight(60)).crcl(30, 365)
    assert not urine.computable


def test_unusable_latest_creatinine_or_weight_makes_crcl_not_computable() -> None:
    """A39: the latest result decides; an older usable one does not stand in."""
    bad_cr = chart(creat(1.0, days=10), creat(1.1, unit="mg", days=2), weight(60)).crcl(30, 365)
    assert not bad_cr.computable and bad_cr.reason == CRCL_CREATININE_UNUSABLE
    bad_wt = chart(creat(1.0), weight(60, days=40), weight(None, days=2)).crcl(30, 365)
    assert not bad_wt.computable and bad_wt.reason == CRCL_WEIGHT_UNUSABLE
    no_unit = chart(creat(1.0), weight(60, unit=None)).crcl(30, 365)
    assert no_unit.reason == CRCL_WEIGHT_UNUSABLE
    zero = chart(creat(0.0), weight(60)).crcl(30, 365)
    assert zero.reason == CRCL_CREATININE_UNUSABLE
    comparator = chart(creat(0.3, comparator="<"), weight(60)).crcl(30, 365)
    assert comparator.reason == CRCL_CREATININE_UNUSABLE


def test_unknown_age_or_sex_gives_no_crcl() -> None:
    assert chart(creat(1.0), weight(60), birth=None).crcl(30, 365).reason == CRCL_AGE_UNKNOWN
    assert chart(creat(1.0), weight(60), gender="unknown").crcl(30, 365).reason == CRCL_SEX_UNKNOWN
    assert chart(creat(1.0), weight(60), gender=None).crcl(30, 365).reason == CRCL_SEX_UNKNOWN


def test_a_creatinine_filed_twice_is_read_once() -> None:
    c = chart(creat(1.0), weight(60))
    assert c.latest("creatinine", 30) is c.latest("creatinine-serum", 30)


# ---- A36: whole-blood calcium 49765-1 ---------------------------------------------------------

def test_whole_blood_calcium_is_a_total_calcium_judged_like_17861_6() -> None:
    c = chart(observation("49765-1", 8.4, "mg/dL", ago(3)))
    judged = c.calcium(30)
    assert judged is not None and judged.kind == "measured" and judged.low
    c = chart(observation("49765-1", 8.5, "mg/dL", ago(3)),
              observation("1751-7", 3.0, "g/dL", ago(3)))
    judged = c.calcium(30)
    assert judged is not None and judged.kind == "albumin-corrected" and str(judged.value) == "9.3"
    c = chart(observation("49765-1", 2.12, "mmol/L", ago(3)))
    assert not c.calcium(30).low              # 8.497 → 8.5: not below 8.5


# ---- §1.3 Observation query -----------------------------------------------------------------

def test_the_observation_query_asks_for_weight_whole_blood_calcium_and_serum_creatinine() -> None:
    query = prefetch_templates(default_value_sets())["observations"]
    for code in ("29463-7", "49765-1", "17861-6", "2160-0", "14682-9", "77140-2", "98979-8",
                 "33914-3", "50044-7", "70969-1"):
        assert f"http://loinc.org|{code}" in query
    assert "2164-2" not in query                # laboratory creatinine clearance: not used (A35)


def test_whole_blood_calcium_drives_the_calcium_rules() -> None:
    """A36: with 49765-1 only, a low calcium gives the hypocalcemia card and a normal one
    silences AR-CALCIUM-NOT-CHECKED (before v2 every order saw no calcium at all)."""
    from tests.factory import DMAB60, draft, evaluate_rules, rule_ids
    low = evaluate_rules([patient(), observation("49765-1", 7.9, "mg/dL", ago(3))], drafts=[draft(DMAB60)])
    assert "DMAB-HYPOCALCEMIA" in rule_ids(low) and "AR-CALCIUM-NOT-CHECKED" not in rule_ids(low)
    ok = evaluate_rules([patient(), observation("49765-1", 9.4, "mg/dL", ago(3))], drafts=[draft(DMAB60)])
    assert "AR-CALCIUM-NOT-CHECKED" not in rule_ids(ok) and "DMAB-HYPOCALCEMIA" not in rule_ids(ok)


def test_an_egfr_sent_in_ml_min_keeps_the_egfr_wording() -> None:
    """A35: "eGFR 28 mL/min/1.73 m²", never "28 mL/min" (which would read as a clearance)."""
    lab = chart(egfr("33914-3", 28, "mL/min")).egfr(365)
    assert lab.describe() == "28 mL/min/1.73 m²"
    bad = chart(egfr("33914-3", 28, "mL/s")).egfr_day(365).results[0]
    assert bad.describe() == "28 mL/s"            # not recognised: shown as sent
