"""Helpers shared by every rule test (tests/rules): the tests' today, dates before it, running one
registered rule the way the engine calls it, and reading a card's JSON. Family helpers
(``_ar_helpers``, ``_dmab_helpers``, ``_dmab_dosing_helpers``, ``_bp_helpers``) add what is
specific to their rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any, Iterable

from cards.registry import REGISTRY, RuleInput, load_rules
from cards.thresholds import DEFAULT_THRESHOLDS, Thresholds
from cds_service.chart import add_months, build_chart
from tests.factory import MEMBERS_EXTENSION, CDT, ICD10, LOINC, NOW, PID, RXNORM, SNOMED, evaluate_rules, rule_ids

#: The tests' today (2026-11-23).
TODAY: date = NOW.date()
#: The hooks with draft orders (RULES.md §1 "Hooks").
ORDER_HOOKS = ("order-select", "order-sign")
#: UCUM unit of eGFR (D5).
EGFR_UNIT = "mL/min/{1.73_m2}"

__all__ = ["CDT", "EGFR_UNIT", "ICD10", "LOINC", "MEMBERS_EXTENSION", "ORDER_HOOKS", "UNMERGED", "RXNORM", "SNOMED", "TODAY", "ago",
           "engine_ids", "fired", "ids", "override_codes", "run"]


def ago(days: int = 0, *, months: int = 0, years: int = 0) -> date:
    """A date ``years``/``months`` (calendar, D1) and ``days`` before the tests' today."""
    return add_months(TODAY, -(12 * years + months)) - timedelta(days=days)


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
                        zone=thresholds.zone, future_skew_minutes=thresholds.future_skew_minutes,
                        unavailable=unavailable)
    card = spec.fn(RuleInput(chart=chart, hook=hook, now=now, thresholds=thresholds,
                             patient_id=PID, user_id="Practitioner/prac-1"))
    return card.to_json() if card is not None else None


def fired(rule_id: str, resources: Iterable[dict[str, Any]], **kwargs: Any) -> bool:
    return run(rule_id, resources, **kwargs) is not None


#: Thresholds under which no work-up merge happens (to read a member card through the engine).
UNMERGED = replace(DEFAULT_THRESHOLDS, workup_min_members=99)


def engine_ids(resources: Iterable[dict[str, Any]], **kwargs: Any) -> list[str]:
    """Rule IDs the whole engine answers (every registered rule, §7 exclusive pairs included),
    merged work-up cards expanded into their members (A12, :func:`tests.factory.rule_ids`)."""
    return ids(evaluate_rules(list(resources), **kwargs))


def ids(cards: list[dict[str, Any]]) -> list[str]:
    """Rule IDs of a list of card JSONs, merged work-up cards expanded (:func:`tests.factory.rule_ids`)."""
    return rule_ids(cards)


def override_codes(card: dict[str, Any]) -> list[str]:
    """Codes of a card's override reasons (§6.3)."""
    return [r["code"] for r in card.get("overrideReasons", [])]
