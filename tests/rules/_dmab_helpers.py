"""Helpers for the denosumab order-rule tests: run one registered rule on a chart, and a small
"complete, normal" chart to vary one fact at a time."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Iterable

from cards.registry import REGISTRY, RuleInput, load_rules
from cards.thresholds import DEFAULT_THRESHOLDS, Thresholds
from cds_service.chart import add_months, build_chart
from tests.factory import (ALBUMIN, CALCIUM_SERUM, DMAB60, EGFR, NOW, PID, VITD, administration,
                           observation, patient, statement)

TODAY = NOW.date()
HOOKS = ("order-select", "order-sign")
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
CDT = "http://www.ada.org/cdt"
EGFR_UNIT = "mL/min/{1.73_m2}"
CHOLECALCIFEROL = "2418"
CALCIUM_CARBONATE = "1897"
CINACALCET_30 = "432402"


def ago(days: int = 0, *, months: int = 0) -> date:
    """A date ``days`` (and calendar ``months``) before the tests' today (2026-11-23)."""
    return add_months(TODAY, -months) - timedelta(days=days)


def run(rule_id: str, resources: Iterable[dict[str, Any]], *, hook: str = "order-sign",
        drafts: Iterable[dict[str, Any]] = (), selections: Iterable[str] | None = None,
        now: datetime = NOW, thresholds: Thresholds = DEFAULT_THRESHOLDS,
        unavailable: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The card JSON of one rule, called the way the engine calls it (None when silent or when the
    rule is not registered for ``hook``)."""
    load_rules()
    spec = REGISTRY[rule_id]
    if hook not in spec.hooks:
        return None
    drafts = list(drafts)
    if selections is None:
        selections = [f"MedicationRequest/{d['id']}" for d in drafts]
    chart = build_chart(list(resources), now, hook=hook, draft_orders=drafts, selections=selections,
                        unavailable=unavailable)
    card = spec.fn(RuleInput(chart=chart, hook=hook, now=now, thresholds=thresholds,
                             patient_id=PID, user_id="Practitioner/prac-1"))
    return card.to_json() if card is not None else None


def override_codes(card: dict[str, Any]) -> list[str]:
    return [r["code"] for r in card.get("overrideReasons", [])]


def suggestion_resources(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [a["resource"] for s in card.get("suggestions", []) for a in s["actions"]]


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
