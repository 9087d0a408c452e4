"""Helpers for the denosumab dosing-rule tests (OVERDUE-TRANSITION, DOSE-DUE, ONCOLOGY-INTERVAL,
HYPOCALCEMIA, DUPLICATE, DOSE-INDICATION-MISMATCH)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from tests import factory as f
from tests.rules._helpers import EGFR_UNIT, ICD10, RXNORM, SNOMED, TODAY, ids, override_codes  # noqa: F401


def at(d: date | str) -> datetime:
    """``now`` at 15:00 UTC on a calendar day."""
    d = date.fromisoformat(d) if isinstance(d, str) else d
    return datetime(d.year, d.month, d.day, 15, 0, tzinfo=timezone.utc)


def days_before(today: date, n: int) -> date:
    return today - timedelta(days=n)


def normal_labs(today: date = TODAY) -> list[dict[str, Any]]:
    """Normal recent calcium and eGFR (so the charts are otherwise clean)."""
    return [f.observation(f.CALCIUM_SERUM, 9.4, "mg/dL", today - timedelta(days=10)),
            f.observation(f.EGFR, 72, EGFR_UNIT, today - timedelta(days=10))]


def pv(resources: Iterable[dict[str, Any]], today: date = TODAY, **kw: Any) -> list[dict[str, Any]]:
    """Cards on patient-view for ``resources`` at 15:00 UTC on ``today``."""
    return f.evaluate_rules([f.patient(), *resources], hook="patient-view", now=at(today), **kw)


#: A denosumab dose of each record type (D4), as (name, builder(code, date, dose_mg)).
def _adm(code: str | None, when: date, dose: float | None = None, text: str | None = None) -> dict[str, Any]:
    return f.administration(code, when, dose_mg=dose, text=text)


def _disp(code: str | None, when: date, dose: float | None = None, text: str | None = None) -> dict[str, Any]:
    return f.dispense(code, when, text=text)


def _stmt_active(code: str | None, when: date, dose: float | None = None, text: str | None = None) -> dict[str, Any]:
    return f.statement(code, when, status="active", text=text)


def _stmt_completed(code: str | None, when: date, dose: float | None = None, text: str | None = None) -> dict[str, Any]:
    return f.statement(code, when, status="completed", end=when, text=text)


def _req_completed(code: str | None, when: date, dose: float | None = None, text: str | None = None) -> dict[str, Any]:
    return f.request(code, when, status="completed", dose_mg=dose, text=text)


DOSE_RECORDS: list[tuple[str, Callable[..., dict[str, Any]]]] = [
    ("administration", _adm), ("dispense", _disp), ("statement-active", _stmt_active),
    ("statement-completed", _stmt_completed), ("completed-request", _req_completed),
]


def codes_of(card: dict[str, Any]) -> list[str]:
    """Every RxNorm/LOINC/SNOMED code in the card's suggestion resources."""
    out: list[str] = []
    for s in card.get("suggestions", []):
        for a in s.get("actions", []):
            res = a.get("resource", {})   # a delete action (remove the draft) carries none
            for key in ("medicationCodeableConcept", "code"):
                for c in (res.get(key) or {}).get("coding", []):
                    out.append(c["code"])
    return out
