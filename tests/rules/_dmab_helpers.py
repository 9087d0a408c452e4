"""Helpers for the denosumab order-rule tests: run one registered rule on a chart, and a small
"complete, normal" chart to vary one fact at a time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cds_service.chart import add_months
from tests.factory import (ALBUMIN, CALCIUM_SERUM, DMAB60, EGFR, VITD, administration, observation,
                           patient, statement)
from tests.rules._helpers import (CDT, EGFR_UNIT, ICD10, LOINC, SNOMED, TODAY, ago,  # noqa: F401
                                  override_codes, run)
from tests.rules._helpers import ORDER_HOOKS as HOOKS  # noqa: F401

CHOLECALCIFEROL = "2418"
CALCIUM_CARBONATE = "1897"
CINACALCET_30 = "432402"


def suggestion_resources(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The resources of the ``create`` actions (a ``delete`` of the draft carries none)."""
    return [a["resource"] for s in card.get("suggestions", []) for a in s["actions"] if "resource" in a]


def resource_codes(res: dict[str, Any]) -> list[str]:
    concept = res.get("code") or res.get("medicationCodeableConcept") or {}
    return [c["code"] for c in concept.get("coding", [])]


def continuation() -> list[dict[str, Any]]:
    """A 60 mg dose 6 months ago (so the draft is a continuation, not an initiation)."""
    return [administration(DMAB60, ago(3, months=6))]


def normal_labs() -> list[dict[str, Any]]:
    """Calcium 9.4 mg/dL with albumin 4.1 ten days ago, eGFR 72, 25-OH vitamin D 31."""
    return [observation(CALCIUM_SERUM, 9.4, "mg/dL", ago(10)), observation(ALBUMIN, 4.1, "g/dL", ago(10)),
            observation(EGFR, 72, EGFR_UNIT, ago(10)), observation(VITD, 31, "ng/mL", ago(60))]


def supplement() -> list[dict[str, Any]]:
    return [statement(CHOLECALCIFEROL, ago(400), text="Cholecalciferol 1000 unit tablet")]


def woman(age_years: int = 68, *, birthday_offset_days: int = 200) -> dict[str, Any]:
    """A female patient who is ``age_years`` old today (birthday ``birthday_offset_days`` ago)."""
    birth = add_months(TODAY - timedelta(days=birthday_offset_days), -12 * age_years)
    return patient(birth.isoformat(), "female")
