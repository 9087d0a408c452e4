"""A tenant's (or the service's) clock zone reaches the chart: the whole evaluation uses it (A3)."""

from __future__ import annotations

from datetime import datetime, timezone

from cards.thresholds import Thresholds
from cds_service.pipeline import evaluate_hook
from hooks.services import service_by_id
from tests.factory import DMAB60, draft, hook_request, observation, patient, rule_ids


def test_the_zone_decides_the_calcium_window_edge_through_the_service() -> None:
    """now 2026-11-30T23:30Z: in Tokyo today is 1 December, so a calcium of 31 October 20:00
    +09:00 is 31 days old (stale: not checked); in UTC it is 30 days old (judged, low)."""
    now = datetime(2026, 11, 30, 23, 30, tzinfo=timezone.utc)
    ca = observation("17861-6", 7.9, "mg/dL", "2026-10-31T20:00:00+09:00")
    body = hook_request("order-sign", [patient(), ca], drafts=[draft(DMAB60)])
    svc = service_by_id("bone-safety-order-sign")
    tokyo = evaluate_hook(svc, body, now=now, thresholds=Thresholds.from_mapping({"clock_time_zone": "Asia/Tokyo"}))
    utc = evaluate_hook(svc, body, now=now, thresholds=Thresholds())
    assert "AR-CALCIUM-NOT-CHECKED" in rule_ids(tokyo.response["cards"])
    assert "DMAB-HYPOCALCEMIA" not in rule_ids(tokyo.response["cards"])
    assert "DMAB-HYPOCALCEMIA" in rule_ids(utc.response["cards"])
