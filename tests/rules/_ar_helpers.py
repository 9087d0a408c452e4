"""Helpers for the AR-* rule tests: run one registered rule (or the whole engine) on a chart."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Iterable

from cards.registry import REGISTRY, RuleInput, load_rules
from cards.thresholds import DEFAULT_THRESHOLDS, Thresholds
from cds_service.chart import build_chart
from tests.factory import NOW, PID, evaluate_rules, rule_ids

TODAY = NOW.date()
ORDER_HOOKS = ("order-select", "order-sign")


def ago(days: int = 0, *, months: int = 0) -> date:
    """A date ``days`` (and calendar ``months``) before the test's today (2026-11-23)."""
    from cds_service.chart import add_months
    return add_months(TODAY, -months) - timedelta(days=days)


def run(rule_id: str, resources: Iterable[dict[str, Any]], *, hook: str = "order-sign",
        drafts: Iterable[dict[str, Any]] = (), selections: Iterable[str] | None = None,
        now: datetime = NOW, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, Any] | None:
    """The card JSON of one rule (None when silent or when the rule does not run on ``hook``)."""
    load_rules()
    spec = REGISTRY[rule_id]
    if hook not in spec.hooks:
        return None
    drafts = list(drafts)
    if selections is None:
        selections = [f"MedicationRequest/{d['id']}" for d in drafts]
    chart = build_chart(list(resources), now, hook=hook, draft_orders=drafts, selections=selections)
    card = spec.fn(RuleInput(chart=chart, hook=hook, now=now, thresholds=thresholds,
                             patient_id=PID, user_id="Practitioner/prac-1"))
    return card.to_json() if card is not None else None


def fired(rule_id: str, resources: Iterable[dict[str, Any]], **kwargs: Any) -> bool:
    return run(rule_id, resources, **kwargs) is not None


def engine_ids(resources: Iterable[dict[str, Any]], **kwargs: Any) -> list[str]:
    """Rule IDs the whole engine answers (every registered rule, §7 safety net included)."""
    return rule_ids(evaluate_rules(list(resources), **kwargs))


def override_codes(card: dict[str, Any]) -> list[str]:
    return [r["code"] for r in card.get("overrideReasons", [])]


def suggestion_codes(card: dict[str, Any]) -> list[list[str]]:
    """Per suggestion, the codes of the resources its actions create."""
    out = []
    for s in card.get("suggestions", []):
        codes = []
        for a in s["actions"]:
            res = a["resource"]
            concept = res.get("code") or res.get("medicationCodeableConcept") or {}
            codes += [c["code"] for c in concept.get("coding", [])]
        out.append(codes)
    return out
