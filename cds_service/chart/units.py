"""Laboratory units, conversions and rounding (RULES.md D5, §8 item 18, A35).

eGFR units (A35): a result is an eGFR because of its code; on an ``egfr`` code each listed
spelling (compared after lower-casing and removing spaces), plain ``mL/min`` included, means
mL/min/1.73 m² and is used without conversion; ``mL/s`` forms and anything else are not
recognised. ``mL/min`` is accepted on an ``egfr`` code only. Body weight (A10) is kept in kg.

Values are converted to the rule's unit, then rounded half-up at the stated precision before
any comparison (2.12 mmol/L × 4.008 = 8.497 → 8.5 mg/dL, which is not below 8.5).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

#: Canonical unit and rounding (decimal places) per lab concept (value-set name).
CANONICAL: dict[str, tuple[str, int]] = {
    "calcium-serum": ("mg/dL", 1),
    "calcium-corrected": ("mg/dL", 1),
    "calcium-ionized": ("mmol/L", 2),
    "albumin": ("g/dL", 1),
    "vitamin-d-25oh": ("ng/mL", 1),
    "creatinine": ("mg/dL", 2),
    "magnesium": ("mg/dL", 1),
    "phosphate": ("mg/dL", 1),
    "egfr": ("mL/min/{1.73_m2}", 0),
    "creatinine-serum": ("mg/dL", 2),
    "body-weight": ("kg", 1),
    "pth-intact": ("pg/mL", 1),
    "pregnancy-test": ("m[IU]/mL", 1),
}

#: Spellings seen in the wild → UCUM code (D5 "Value forms").
_SPELLINGS: dict[str, str] = {
    "mg/dl": "mg/dL", "mmol/l": "mmol/L", "meq/l": "meq/L", "g/dl": "g/dL", "g/l": "g/L",
    "ng/ml": "ng/mL", "ug/l": "ng/mL", "µg/l": "ng/mL", "nmol/l": "nmol/L", "umol/l": "umol/L",
    "µmol/l": "umol/L", "μmol/l": "umol/L", "pg/ml": "pg/mL", "ng/l": "pg/mL", "pmol/l": "pmol/L",
    "ml/min/1.73m2": "mL/min/{1.73_m2}", "ml/min/{1.73_m2}": "mL/min/{1.73_m2}",
    "ml/min/1.73 m2": "mL/min/{1.73_m2}", "ml/min/1.73 m²": "mL/min/{1.73_m2}",
    "ml/min/1.73m²": "mL/min/{1.73_m2}", "ml/min/1.73_m2": "mL/min/{1.73_m2}",
    "ml/min/{1.73m2}": "mL/min/{1.73_m2}", "ml/min per 1.73 m2": "mL/min/{1.73_m2}",
    "ml/min/1.73sqm": "mL/min/{1.73_m2}", "ml/min/1.73 sq m": "mL/min/{1.73_m2}",
    "m[iu]/ml": "m[IU]/mL", "miu/ml": "m[IU]/mL", "[iu]/l": "m[IU]/mL", "iu/l": "m[IU]/mL",
    "mg": "mg", "ml": "mL", "kg": "kg", "[lb_av]": "[lb_av]", "lb": "[lb_av]", "g": "g",
}

#: eGFR unit spellings of D5 (A35), lower case without spaces: all mean mL/min/1.73 m².
EGFR_UNITS: frozenset[str] = frozenset({
    "ml/min/{1.73_m2}", "ml/min/1.73m2", "ml/min/1.73_m2", "ml/min/{1.73m2}", "ml/min/1.73m²",
    "ml/min/1.73sqm", "ml/minper1.73m2", "ml/minper1.73m²", "ml/min",
})
EGFR_UCUM = "mL/min/{1.73_m2}"

#: Multipliers from a normalised unit to the canonical unit, per concept.
_FACTORS: dict[str, dict[str, Decimal]] = {
    "calcium-serum": {"mg/dL": Decimal(1), "mmol/L": Decimal("4.008"), "meq/L": Decimal("2.004")},
    "calcium-ionized": {"mmol/L": Decimal(1), "mg/dL": Decimal(1) / Decimal("4.008"),
                        "meq/L": Decimal("0.5")},
    "albumin": {"g/dL": Decimal(1), "g/L": Decimal("0.1")},
    "vitamin-d-25oh": {"ng/mL": Decimal(1), "nmol/L": Decimal(1) / Decimal("2.496")},
    "creatinine": {"mg/dL": Decimal(1), "umol/L": Decimal(1) / Decimal("88.42")},
    "magnesium": {"mg/dL": Decimal(1), "mmol/L": Decimal("2.431"), "meq/L": Decimal("1.2155")},
    "phosphate": {"mg/dL": Decimal(1), "mmol/L": Decimal("3.097")},
    "egfr": {"mL/min/{1.73_m2}": Decimal(1)},
    "pth-intact": {"pg/mL": Decimal(1), "pmol/L": Decimal("9.43")},
    "pregnancy-test": {"m[IU]/mL": Decimal(1)},
    "body-weight": {"kg": Decimal(1), "[lb_av]": Decimal("0.45359237"), "g": Decimal("0.001")},
}
_FACTORS["calcium-corrected"] = _FACTORS["calcium-serum"]
_FACTORS["creatinine-serum"] = _FACTORS["creatinine"]


def normalise_unit(unit: str | None, concept: str | None = None) -> str | None:
    """UCUM code for a unit string, or None when the unit is not recognised. On an ``egfr``
    concept only the eGFR spellings of D5 are recognised, plain ``mL/min`` among them (A35)."""
    if not unit:
        return None
    key = unit.strip().lower()
    if concept == "egfr":
        return EGFR_UCUM if "".join(key.split()) in EGFR_UNITS else None
    return _SPELLINGS.get(key) or (_SPELLINGS.get(key.replace(" ", "")))


def round_half_up(value: Decimal, places: int) -> Decimal:
    """Half-up rounding at ``places`` decimals (D5: ``Rounding is half-up``)."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def convert(concept: str, value: Decimal, unit: str | None) -> Decimal | None:
    """``value`` in ``unit`` converted to the concept's canonical unit and rounded, or None.

    None means "unit not recognised for this analyte": the value is not used (D5).
    """
    factors = _FACTORS.get(concept)
    norm = normalise_unit(unit, concept)
    if factors is None or norm is None or norm not in factors:
        return None
    return round_half_up(value * factors[norm], CANONICAL[concept][1])


#: Display decimals per analyte and (normalised) unit (§1.2 rule 6); "*" = any other unit.
DISPLAY_PLACES_BY_UNIT: dict[str, dict[str, int]] = {
    "calcium-serum": {"mg/dL": 1, "mmol/L": 2, "meq/L": 1, "*": 1},
    "calcium-corrected": {"mg/dL": 1, "mmol/L": 2, "meq/L": 1, "*": 1},
    "calcium-ionized": {"mmol/L": 2, "mg/dL": 1, "*": 2},
    "albumin": {"g/dL": 1, "g/L": 0, "*": 1},
    "creatinine": {"mg/dL": 2, "umol/L": 0, "*": 2},
    "creatinine-serum": {"mg/dL": 2, "umol/L": 0, "*": 2},
    "egfr": {"*": 0},
    "vitamin-d-25oh": {"ng/mL": 0, "nmol/L": 0, "*": 0},
    "magnesium": {"mg/dL": 1, "mmol/L": 2, "*": 1},
    "phosphate": {"mg/dL": 1, "mmol/L": 2, "*": 1},
    "pth-intact": {"pg/mL": 0, "pmol/L": 1, "*": 0},
    "pregnancy-test": {"*": 0},
    "body-weight": {"kg": 1, "[lb_av]": 0, "g": 0, "*": 1},
}


def display_places(concept: str, unit: str | None) -> int:
    """Display decimals of ``concept`` in ``unit`` as sent or normalised (§1.2 rule 6, A40);
    an unknown unit takes the analyte's default."""
    table = DISPLAY_PLACES_BY_UNIT.get(concept, {"*": 2})
    norm = normalise_unit(unit, concept) if unit else None
    return table.get(norm or "", table.get(unit or "", table["*"]))
