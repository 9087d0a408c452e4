"""Generated issued cards and feedback for the governance tests (report, page, browser)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from cds_service.feedback import FeedbackStore, parse_feedback


@dataclass
class Posted:
    """What a test posted, to compare with the report."""

    cards: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def card(rule: str, indicator: str = "warning", labels: tuple[str, ...] = ("Order calcium",)) -> dict[str, Any]:
    return {"uuid": str(uuid.uuid4()), "indicator": indicator, "summary": "s",
            "source": {"label": "l", "topic": {"system": "urn:bone-safety-cds:rule", "code": rule}},
            "suggestions": [{"uuid": str(uuid.uuid4()), "label": lab} for lab in labels]}


def issue(store: FeedbackStore, rule: str, when: datetime, *, hook: str = "order-sign",
          patient: str = "p1", tenant: str | None = None, latency_ms: float = 20.0,
          labels: tuple[str, ...] = ("Order calcium",)) -> dict[str, Any]:
    c = card(rule, labels=labels)
    store.record_cards(f"bone-safety-{hook}", [c], when, hook=hook, tenant=tenant, patient_key=f"key-{patient}",
                       call_id=uuid.uuid4().hex, latency_ms=latency_ms)
    return c


def answer(store: FeedbackStore, c: dict[str, Any], outcome: str, when: datetime, code: str | None = None,
           suggestion: int = 0) -> None:
    # the moment of the answer (two answers at one moment with one reason are one feedback)
    stamp = when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    e: dict[str, Any] = {"card": c["uuid"], "outcome": outcome, "outcomeTimestamp": stamp}
    if outcome == "accepted":
        e["acceptedSuggestions"] = [{"id": c["suggestions"][suggestion]["uuid"]}]
    if code:
        e["overrideReason"] = {"reason": {"system": "urn:bone-safety-cds:override-reason", "code": code}}
    store.add(f"bone-safety-{'order-sign'}", parse_feedback({"feedback": [e]}), when)


def history(store: FeedbackStore, now: datetime) -> None:
    """Older weeks (more than 30 days ago), so the weekly chart has a past: DMAB-DOSE-DUE 12 cards
    a week from 25 to 12 weeks ago, then 5 a week (a change point down), AR-CALCIUM-NOT-CHECKED
    3 a week. One write per week and rule."""
    for weeks_ago in range(25, 5, -1):
        when = now - timedelta(weeks=weeks_ago)
        for rule, n in (("DMAB-DOSE-DUE", 12 if weeks_ago >= 12 else 5), ("AR-CALCIUM-NOT-CHECKED", 3)):
            store.record_cards("bone-safety-order-sign", [card(rule) for _ in range(n)], when, hook="order-sign",
                               patient_key=f"key-h{weeks_ago % 7}", call_id=uuid.uuid4().hex, latency_ms=30.0)


def scenario(store: FeedbackStore, now: datetime, *, with_history: bool = True) -> None:
    """Three rules in the last 30 days with known figures (see the tests):

    * DMAB-DOSE-DUE: 25 cards (patients p0..p9), 24 answered — 23 overridden (10 patient-declined,
      13 edentulous), 1 accepted — answered 10 minutes after issue; 10 on order-select, 15 on
      order-sign; 5 from tenant north. Flag: override rate 96% of 24.
    * AR-CALCIUM-NOT-CHECKED: 10 cards, 1 answered (accepted "Order calcium"). Flag: coverage 10%.
    * DMAB-VITD-NOT-CHECKED: 4 cards, 4 answered: 2 accepted, 2 overridden without a reason.

    ``with_history``: plus :func:`history` (outside the 30-day window).
    """
    if with_history:
        history(store, now)
    t = now - timedelta(days=3)
    for i in range(25):
        hook = "order-select" if i < 10 else "order-sign"
        c = issue(store, "DMAB-DOSE-DUE", t, hook=hook, patient=f"p{i % 10}", tenant="north" if i < 5 else None,
                  latency_ms=5.0 + i * 10)
        if i == 0:
            answer(store, c, "accepted", t + timedelta(minutes=10))
        elif i < 24:
            answer(store, c, "overridden", t + timedelta(minutes=10),
                   "patient-declined" if i <= 10 else "edentulous")
    for i in range(10):
        c = issue(store, "AR-CALCIUM-NOT-CHECKED", t, hook="order-select", patient=f"q{i}")
        if i == 0:
            answer(store, c, "accepted", t + timedelta(hours=2))
    for i in range(4):
        c = issue(store, "DMAB-VITD-NOT-CHECKED", t, hook="patient-view", patient="r",
                  labels=("Order 25-OH vitamin D", "Start vitamin D"))
        answer(store, c, "accepted" if i < 2 else "overridden", t + timedelta(seconds=30), suggestion=i % 2)
