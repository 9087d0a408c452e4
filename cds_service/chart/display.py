"""Numbers as clinician-facing text shows them (RULES.md §1.2 rule 6, A40). Pure, no I/O.

Every number is rounded half-up to its quantity's display precision and written in plain
decimal notation with its decimals kept ("9.0 mg/dL", "1.10 mg/dL"); a comparator is kept
(">60"). Display rounding never replaces D5's comparison rounding: decisions use the Lab's
``value``; these functions only write. One exception (only 25-OH vitamin D, whose display is an
integer but whose comparison has one decimal): when the integer would reach or cross the
threshold the card states, the value is written with one decimal ("19.6 ng/mL", never "20").

API (all return ``str``; ``None`` values give ``"?"``):

- :func:`number` (value, places) — the primitive;
- per quantity, value and unit → "value unit": :func:`calcium`, :func:`ionized_calcium`,
  :func:`albumin`, :func:`creatinine`, :func:`egfr`, :func:`crcl`, :func:`vitamin_d`,
  :func:`magnesium`, :func:`phosphate`, :func:`pth`, :func:`hcg`, :func:`weight`;
  :func:`count` (ages, days, counts) and :func:`dose` (strengths as the product states them);
- for a :class:`~cds_service.chart.model.Lab`: :func:`lab_measured` (the value *as sent*, with
  the unit as sent, rounded for its analyte and unit), :func:`lab_value` (the same without the
  unit), :func:`lab_judged` (the value used, in the analyte's canonical unit).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Union

from .model import Lab
from .units import DISPLAY_PLACES_BY_UNIT as PLACES, display_places  # noqa: F401

Number = Union[Decimal, int, float, str, None]

EGFR_UNIT_TEXT = "mL/min/1.73 m²"
CRCL_UNIT_TEXT = "mL/min"

#: Canonical unit of each analyte as written on a card.
UNIT_TEXT: dict[str, str] = {
    "calcium-serum": "mg/dL", "calcium-corrected": "mg/dL", "calcium-ionized": "mmol/L",
    "albumin": "g/dL", "creatinine": "mg/dL", "creatinine-serum": "mg/dL", "egfr": EGFR_UNIT_TEXT,
    "vitamin-d-25oh": "ng/mL", "magnesium": "mg/dL", "phosphate": "mg/dL", "pth-intact": "pg/mL",
    "pregnancy-test": "mIU/mL", "body-weight": "kg",
}


def _decimal(value: Number) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def number(value: Number, places: int) -> str:
    """``value`` rounded half-up to ``places`` decimals, plain notation, decimals kept
    ("9.0", "0.45", "28"); "?" for None or not a number."""
    d = _decimal(value)
    if d is None:
        return "?"
    q = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if q == 0:
        q = abs(q)   # no "-0.0"
    return f"{q:f}"


def places_for(concept: str, unit: str | None) -> int:
    """Display decimals of ``concept`` in ``unit`` (as sent or normalised)."""
    return display_places(concept, unit)


def _with_unit(text: str, unit: str | None) -> str:
    return f"{text} {unit}" if unit else text


def _quantity(concept: str, value: Number, unit: str | None, comparator: str | None = None) -> str:
    return _with_unit(f"{comparator or ''}{number(value, places_for(concept, unit))}", unit)


def calcium(value: Number, unit: str = "mg/dL", comparator: str | None = None) -> str:
    """Total or corrected calcium: 1 decimal mg/dL, 2 mmol/L, 1 mEq/L ("8.5 mg/dL")."""
    return _quantity("calcium-serum", value, unit, comparator)


def ionized_calcium(value: Number, unit: str = "mmol/L", comparator: str | None = None) -> str:
    """Ionized calcium: 2 decimals mmol/L, 1 mg/dL ("1.08 mmol/L")."""
    return _quantity("calcium-ionized", value, unit, comparator)


def albumin(value: Number, unit: str = "g/dL", comparator: str | None = None) -> str:
    """Albumin: 1 decimal g/dL, integer g/L."""
    return _quantity("albumin", value, unit, comparator)


def creatinine(value: Number, unit: str = "mg/dL", comparator: str | None = None) -> str:
    """Creatinine: 2 decimals mg/dL, integer µmol/L ("0.45 mg/dL")."""
    return _quantity("creatinine", value, unit, comparator)


def egfr(value: Number, comparator: str | None = None) -> str:
    """eGFR, integer, always per 1.73 m² ("28 mL/min/1.73 m²", ">60 mL/min/1.73 m²"; A35)."""
    return _with_unit(f"{comparator or ''}{number(value, 0)}", EGFR_UNIT_TEXT)


def crcl(value: Number) -> str:
    """Cockcroft-Gault creatinine clearance, integer, mL/min ("29 mL/min"; A35)."""
    return _with_unit(number(value, 0), CRCL_UNIT_TEXT)


def vitamin_d(value: Number, unit: str = "ng/mL", threshold: Number = None,
              comparator: str | None = None) -> str:
    """25-OH vitamin D: integer, except one decimal when the integer would reach or cross
    ``threshold`` (in the same unit) while the value does not (19.6 → "19.6 ng/mL" against 20)."""
    d, limit = _decimal(value), _decimal(threshold)
    places = places_for("vitamin-d-25oh", unit)
    if d is not None and limit is not None:
        shown = d.quantize(Decimal(1), rounding=ROUND_HALF_UP)
        if (d < limit) != (shown < limit):
            places = 1
    return _with_unit(f"{comparator or ''}{number(value, places)}", unit)


def magnesium(value: Number, unit: str = "mg/dL", comparator: str | None = None) -> str:
    """Magnesium: 1 decimal mg/dL, 2 mmol/L."""
    return _quantity("magnesium", value, unit, comparator)


def phosphate(value: Number, unit: str = "mg/dL", comparator: str | None = None) -> str:
    """Phosphate: 1 decimal mg/dL, 2 mmol/L."""
    return _quantity("phosphate", value, unit, comparator)


def pth(value: Number, unit: str = "pg/mL", comparator: str | None = None) -> str:
    """PTH: integer pg/mL, 1 decimal pmol/L."""
    return _quantity("pth-intact", value, unit, comparator)


def hcg(value: Number, unit: str = "mIU/mL", comparator: str | None = None) -> str:
    """hCG: integer mIU/mL (= IU/L)."""
    return _quantity("pregnancy-test", value, unit, comparator)


def weight(value: Number, unit: str = "kg") -> str:
    """Body weight: 1 decimal kg, integer lb ("44.0 kg")."""
    return _quantity("body-weight", value, "lb" if unit == "[lb_av]" else unit)


def count(value: Number) -> str:
    """Ages, days, weeks, months, years and counts: integer."""
    return number(value, 0)


def dose(mg: Number, unit: str = "mg") -> str:
    """A dose or strength as the product states it, without trailing zeros ("3.5 mg", "60 mg")."""
    d = _decimal(mg)
    if d is None:
        return _with_unit("?", unit)
    text = f"{d.normalize():f}" if d != d.to_integral() else f"{d.to_integral():f}"
    return _with_unit(text, unit)


def lab_value(lab: Lab, threshold: Number = None) -> str | None:
    """The value *as sent* (measured, with its comparator), rounded for its analyte and the unit
    sent; None without a number. ``threshold``: vitamin D's exception (in the unit sent)."""
    if lab.measured is None:
        return None
    if lab.concept == "vitamin-d-25oh":
        return vitamin_d(lab.measured, None, threshold, lab.comparator)   # type: ignore[arg-type]
    return f"{lab.comparator or ''}{number(lab.measured, places_for(lab.concept, lab.measured_unit))}"


def lab_measured(lab: Lab, threshold: Number = None) -> str:
    """"value unit-as-sent" ("0.45 mg/dL", "2.11 mmol/L"); an eGFR's UCUM unit is written for a
    reader ("28 mL/min/1.73 m²"); "result" without a number."""
    value = lab_value(lab, threshold)
    if value is None:
        return "result"
    unit = lab.measured_unit
    if lab.concept == "egfr" and lab.unit is not None:
        unit = EGFR_UNIT_TEXT          # any accepted eGFR spelling is per 1.73 m² (A35)
    return _with_unit(value, unit)


def lab_judged(lab: Lab, threshold: Number = None) -> str:
    """The value used (``lab.value``, canonical unit of the analyte) as text ("8.5 mg/dL",
    "28 mL/min/1.73 m²"); falls back to :func:`lab_measured` when there is none."""
    if lab.value is None:
        return lab_measured(lab, threshold)
    unit = UNIT_TEXT.get(lab.concept)
    canonical = {"mg/dL": "mg/dL", "mmol/L": "mmol/L", "g/dL": "g/dL", "ng/mL": "ng/mL",
                 "pg/mL": "pg/mL", "kg": "kg"}.get(unit or "", None)
    if lab.concept == "egfr":
        return egfr(lab.value, lab.comparator)
    if lab.concept == "vitamin-d-25oh":
        return vitamin_d(lab.value, "ng/mL", threshold, lab.comparator)
    places = places_for(lab.concept, canonical)
    return _with_unit(f"{lab.comparator or ''}{number(lab.value, places)}", unit)
