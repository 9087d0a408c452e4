"""Display rounding of numbers in card text (RULES.md §1.2 rule 6, A40)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cds_service.chart import build_chart, display
from tests.factory import NOW, observation, patient
from tests.rules._helpers import ago


@pytest.mark.parametrize("fn, args, expected", [
    (display.creatinine, (0.4522232972528771,), "0.45 mg/dL"),
    (display.creatinine, (1.1,), "1.10 mg/dL"),
    (display.creatinine, (1.005,), "1.01 mg/dL"),            # half-up, not banker's
    (display.creatinine, (88.5, "umol/L"), "89 umol/L"),
    (display.calcium, (9,), "9.0 mg/dL"),
    (display.calcium, (8.45,), "8.5 mg/dL"),
    (display.calcium, (2.1149, "mmol/L"), "2.11 mmol/L"),
    (display.calcium, (4.25, "meq/L"), "4.3 meq/L"),
    (display.ionized_calcium, (1.125,), "1.13 mmol/L"),
    (display.albumin, (3.25,), "3.3 g/dL"),
    (display.albumin, (32.5, "g/L"), "33 g/L"),
    (display.egfr, (27.5,), "28 mL/min/1.73 m²"),
    (display.egfr, (60, ">"), ">60 mL/min/1.73 m²"),
    (display.crcl, (28.05,), "28 mL/min"),
    (display.weight, (44,), "44.0 kg"),
    (display.weight, (97.06, "[lb_av]"), "97 lb"),
    (display.magnesium, (0.825, "mmol/L"), "0.83 mmol/L"),
    (display.phosphate, (3.05,), "3.1 mg/dL"),
    (display.pth, (65.5,), "66 pg/mL"),
    (display.pth, (6.95, "pmol/L"), "7.0 pmol/L"),
    (display.hcg, (24.5,), "25 mIU/mL"),
    (display.vitamin_d, (18.4,), "18 ng/mL"),
    (display.vitamin_d, (19.6, "ng/mL", 20), "19.6 ng/mL"),  # would read "20" on a < 20 card
    (display.vitamin_d, (19.4, "ng/mL", 20), "19 ng/mL"),
    (display.vitamin_d, (20.0, "ng/mL", 20), "20 ng/mL"),
    (display.vitamin_d, (11.5, "ng/mL", 12), "11.5 ng/mL"),
    (display.vitamin_d, (11.4, "ng/mL", 12), "11 ng/mL"),
    (display.dose, (Decimal("3.50"),), "3.5 mg"),
    (display.dose, (60.0,), "60 mg"),
    (display.dose, (0.25, "mcg"), "0.25 mcg"),
    (display.count, (3.0,), "3"),
    (display.number, (1e-7, 2), "0.00"),
    (display.number, (None, 1), "?"),
])
def test_display_precision_per_quantity(fn, args, expected) -> None:
    assert fn(*args) == expected


def test_no_exponent_ever() -> None:
    assert display.number(Decimal("1E+2"), 0) == "100"
    assert "E" not in display.creatinine(Decimal("4.5E-1"))


def test_lab_helpers_round_the_value_as_sent_with_the_unit_sent() -> None:
    chart = build_chart([patient(),
                         observation("2160-0", 0.4522232972528771, "mg/dL", ago(3)),
                         observation("2000-8", 2.1149, "mmol/L", ago(3)),
                         observation("33914-3", 27.6, "mL/min", ago(3)),
                         observation("62292-8", 19.64, "ng/mL", ago(3))], NOW)
    cr = chart.latest("creatinine", 30)
    assert display.lab_measured(cr) == "0.45 mg/dL"
    ca = chart.latest("calcium-serum", 30)
    assert display.lab_measured(ca) == "2.11 mmol/L" and display.lab_judged(ca) == "8.5 mg/dL"
    eg = chart.latest("egfr", 365)
    assert display.lab_measured(eg) == "28 mL/min/1.73 m²" and display.lab_judged(eg) == "28 mL/min/1.73 m²"
    vd = chart.latest("vitamin-d-25oh", 365)
    assert display.lab_judged(vd, 20) == "19.6 ng/mL" and display.lab_value(vd) == "20"
