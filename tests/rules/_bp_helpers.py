"""Small builders shared by the BP-* rule tests (RULES.md §4)."""

from __future__ import annotations

from typing import Any, Iterable

from tests.factory import (
    ALBUMIN,
    CALCIUM_IONIZED,
    CALCIUM_SERUM,
    CREATININE,
    EGFR,
    RXNORM,
    card_for,
    evaluate_rules,
    observation,
    patient,
)
from tests.rules import _helpers
from tests.rules._helpers import EGFR_UNIT, TODAY, ids, override_codes  # noqa: F401

# RxNorm codes (cds_service/data/codes.json)
ZOL5 = "705824"
RECLAST = "705875"
ZOL4 = "351114"
ZOL4_BAG = "1114085"
ZOL_IN = "77655"
ALENDRONATE_70 = "904431"
ALENDRONATE_35 = "904396"
ALENDRONATE_PILL = "1367009"
RISEDRONATE_150 = "905028"
RISEDRONATE_5 = "905041"
RISEDRONATE_35 = "905024"
IBANDRONATE_150 = "904932"
IBANDRONATE_IV = "904952"
IBANDRONATE_IN = "115264"
PAMIDRONATE = "1737449"
ETIDRONATE = "904535"
DMAB60 = "993452"


def ago(days: int = 0, *, months: int = 0, years: int = 0) -> str:
    """ISO date ``years``/``months`` (calendar) and ``days`` before today."""
    return _helpers.ago(days, months=months, years=years).isoformat()


def egfr(value: float | None, when: str, **kw: Any) -> dict[str, Any]:
    return observation(EGFR, value, kw.pop("unit", EGFR_UNIT), when, **kw)


def calcium(value: float, when: str, unit: str = "mg/dL", **kw: Any) -> dict[str, Any]:
    return observation(CALCIUM_SERUM, value, unit, when, **kw)


def ionized(value: float, when: str, unit: str = "mmol/L", **kw: Any) -> dict[str, Any]:
    return observation(CALCIUM_IONIZED, value, unit, when, **kw)


def albumin(value: float, when: str, unit: str = "g/dL", **kw: Any) -> dict[str, Any]:
    return observation(ALBUMIN, value, unit, when, **kw)


def creatinine(value: float, when: str, unit: str = "mg/dL", **kw: Any) -> dict[str, Any]:
    return observation(CREATININE, value, unit, when, **kw)


def good_labs(days: int = 10) -> list[dict[str, Any]]:
    """Fresh normal eGFR and calcium (inside every BP window)."""
    return [egfr(78, ago(days)), calcium(9.4, ago(days)), albumin(4.2, ago(days))]


def pt(**kw: Any) -> dict[str, Any]:
    return patient(kw.pop("birth", "1952-03-14"), kw.pop("gender", "female"))


def run(
    resources: Iterable[dict[str, Any]],
    drafts: Iterable[dict[str, Any]] = (),
    hook: str = "order-sign",
    **kw: Any,
) -> list[dict[str, Any]]:
    return evaluate_rules([pt(), *resources], hook=hook, drafts=list(drafts), **kw)


def card(cards: list[dict[str, Any]], rule_id: str) -> dict[str, Any] | None:
    return card_for(cards, rule_id)


def reason(text: str | None = None, code: tuple[str, str] | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {}
    if code:
        concept["coding"] = [{"system": code[0], "code": code[1]}]
    if text:
        concept["text"] = text
    return concept


def with_route(body: dict[str, Any], route: str) -> dict[str, Any]:
    """Add a route (``iv`` / ``oral``) to a draft/request's first dosage."""
    codes = {"iv": ("47625008", "Intravenous route"), "oral": ("26643006", "Oral route")}
    code, display = codes[route]
    dosage = (body.get("dosageInstruction") or [{}])[0]
    dosage["route"] = {"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}]}
    body["dosageInstruction"] = [dosage]
    return body


__all__ = [
    "RXNORM",
    "TODAY",
    "ago",
    "egfr",
    "calcium",
    "ionized",
    "albumin",
    "creatinine",
    "good_labs",
    "pt",
    "run",
    "ids",
    "card",
    "override_codes",
    "reason",
    "with_route",
]
