"""One clock (RULES.md §1.3 Clock, D1, A3): today is the date of now in ``clock_time_zone``;
every dateTime with a time is converted to that zone; a time without offset is local to it;
records later than now + ``future_skew_minutes`` (date-only: later than today) are ignored,
planned dates exempt."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from cards.thresholds import Thresholds
from cds_service.chart import build_chart, fhir_date, is_future, today_in
from tests.factory import (CALCIUM_SERUM, DMAB60, PID, ZOL5, administration, draft, evaluate_rules,
                           observation, patient, request, rule_ids)

TOKYO = ZoneInfo("Asia/Tokyo")
UTC = timezone.utc


def _chart(resources, now, zone=None, skew=5, **kw):
    return build_chart(list(resources), now, zone=zone, future_skew_minutes=skew, **kw)


# ---- dates.py ------------------------------------------------------------------------------

def test_today_is_the_date_of_now_in_the_zone() -> None:
    now = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)        # 08:30 on 1 December in Tokyo
    assert today_in(now, UTC) == date(2026, 11, 30)
    assert today_in(now, TOKYO) == date(2026, 12, 1)


def test_a_datetime_is_converted_to_the_zone_before_its_date_is_taken() -> None:
    # D1 example: 23:30 -06:00 is 05:30 the next day in UTC
    assert fhir_date("2026-04-30T23:30:00-06:00", UTC) == date(2026, 5, 1)
    assert fhir_date("2026-04-30T23:30:00-06:00", ZoneInfo("America/Regina")) == date(2026, 4, 30)
    assert fhir_date("2026-12-01T07:00:00+09:00", UTC) == date(2026, 11, 30)
    assert fhir_date("2026-12-01T07:00:00+09:00", TOKYO) == date(2026, 12, 1)
    assert fhir_date("2026-12-01T07:00:00Z", TOKYO) == date(2026, 12, 1)
    assert fhir_date("2026-12-01T20:00:00.123Z", TOKYO) == date(2026, 12, 2)


def test_a_time_without_offset_is_local_to_the_zone() -> None:
    assert fhir_date("2026-12-01T23:30:00", TOKYO) == date(2026, 12, 1)
    assert fhir_date("2026-12-01T23:30:00", UTC) == date(2026, 12, 1)


def test_bare_and_partial_dates_are_used_as_is() -> None:
    assert fhir_date("2026-12-01", TOKYO) == date(2026, 12, 1)
    assert fhir_date("2026-05", TOKYO) == date(2026, 5, 1)
    assert fhir_date("2026", UTC) == date(2026, 1, 1)
    assert fhir_date("garbage", UTC) is None
    assert fhir_date(None, UTC) is None


def test_future_is_now_plus_the_skew_for_instants_and_after_today_for_dates() -> None:
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    today = date(2026, 12, 1)
    assert not is_future("2026-12-01T10:04:59Z", now, today, 5, UTC)
    assert not is_future("2026-12-01T10:05:00Z", now, today, 5, UTC)     # at the skew: kept
    assert is_future("2026-12-01T10:05:01Z", now, today, 5, UTC)
    assert is_future("2026-12-01T10:06:00Z", now, today, 5, UTC)
    assert not is_future("2026-12-01", now, today, 5, UTC)                 # today: kept
    assert is_future("2026-12-02", now, today, 5, UTC)                     # tomorrow: ignored
    assert not is_future("2026-12-01T19:03:00+09:00", now, today, 5, UTC)  # 10:03 UTC


# ---- the chart and the rules ---------------------------------------------------------------

NOW_TOKYO_MORNING = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)   # 1 December, 08:30 in Tokyo
CALCIUM_0700_TOKYO = "2026-12-01T07:00:00+09:00"                # 1.5 hours before now


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "UTC"])
def test_a_calcium_drawn_this_morning_in_tokyo_is_used_not_read_as_tomorrow(zone: str) -> None:
    """A3 example: 7.9 mg/dL at 07:00 +09:00 is in the past in every zone: it is judged."""
    t = Thresholds.from_mapping({"clock_time_zone": zone})
    ca = observation(CALCIUM_SERUM, 7.9, "mg/dL", CALCIUM_0700_TOKYO)
    chart = _chart([patient(), ca], NOW_TOKYO_MORNING, t.zone)
    assert not chart.skipped
    lab = chart.latest("calcium-serum", 30)
    assert lab is not None and str(lab.value) == "7.9"
    assert lab.date == (date(2026, 12, 1) if zone == "Asia/Tokyo" else date(2026, 11, 30))
    assert chart.today == lab.date
    cards = evaluate_rules([patient(), ca], drafts=[draft(DMAB60)], now=NOW_TOKYO_MORNING, thresholds=t)
    assert "DMAB-HYPOCALCEMIA" in rule_ids(cards)
    assert "AR-CALCIUM-NOT-CHECKED" not in rule_ids(cards)


def test_an_injection_at_2330_minus_six_dates_to_the_next_day_in_utc() -> None:
    given = administration(DMAB60, "2026-04-30T23:30:00-06:00")
    now = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    utc = _chart([patient(), given], now, UTC)
    chicago = _chart([patient(), given], now, ZoneInfo("America/Regina"))
    assert [r.date for r in utc.medications] == [date(2026, 5, 1)]
    assert [r.date for r in chicago.medications] == [date(2026, 4, 30)]


def test_a_result_timed_beyond_the_skew_is_ignored_within_it_kept() -> None:
    now = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    soon = observation(CALCIUM_SERUM, 9.1, "mg/dL", "2026-11-23T15:04:00Z")
    later = observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-11-23T15:06:00Z")
    chart = _chart([patient(), soon, later], now, UTC)
    assert [s.id for s in chart.skipped if s.reason == "dated in the future"] == [later["id"]]
    assert chart.latest("calcium-serum", 30).id == soon["id"]
    # a larger configured skew keeps the second one too
    chart = _chart([patient(), soon, later], now, UTC, skew=10)
    assert not chart.skipped


def test_a_result_later_today_than_now_is_ignored_though_its_date_is_today() -> None:
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    evening = observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-11-23T18:00:00Z")
    chart = _chart([patient(), evening], now, UTC)
    assert chart.latest("calcium-serum", 30) is None
    assert [s.reason for s in chart.skipped] == ["dated in the future"]
    assert not chart.unreadable          # logged, not shown to the clinician as unreadable


def test_a_date_only_result_of_tomorrow_is_ignored_of_today_kept() -> None:
    now = datetime(2026, 11, 23, 23, 59, tzinfo=UTC)
    today = observation(CALCIUM_SERUM, 9.0, "mg/dL", "2026-11-23")
    tomorrow = observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-11-24")
    chart = _chart([patient(), today, tomorrow], now, UTC)
    assert chart.latest("calcium-serum", 30).id == today["id"]


def test_a_future_administration_is_ignored_a_planned_order_is_not() -> None:
    now = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    future_dose = administration(ZOL5, "2026-11-23T18:00:00Z")
    planned = request(DMAB60, "2026-12-20", status="active")
    chart = _chart([patient(), future_dose, planned], now, UTC)
    assert [r.resource_type for r in chart.medications] == ["MedicationRequest"]
    assert [s.id for s in chart.skipped] == [future_dose["id"]]


def test_the_zone_decides_a_look_back_edge() -> None:
    """The calcium window counts days from today in the zone: 30 days before today in Tokyo."""
    now = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)        # Tokyo: 1 December
    edge = observation(CALCIUM_SERUM, 9.0, "mg/dL", "2026-10-31T20:00:00+09:00")
    tokyo = _chart([patient(), edge], now, TOKYO)           # 31 October, 31 days before 1 Dec
    utc = _chart([patient(), edge], now, UTC)               # 31 October 11:00 UTC, 30 days
    assert tokyo.latest("calcium-serum", 30) is None
    assert utc.latest("calcium-serum", 30) is not None


def test_the_service_uses_the_configured_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline passes ``clock_time_zone`` to the chart: the Tokyo calcium is judged."""
    from cds_service.pipeline import evaluate_hook
    from hooks.services import service_by_id
    from tests.factory import hook_request
    t = Thresholds.from_mapping({"clock_time_zone": "Asia/Tokyo"})
    ca = observation(CALCIUM_SERUM, 7.9, "mg/dL", CALCIUM_0700_TOKYO)
    body = hook_request("order-sign", [patient(), ca], drafts=[draft(DMAB60)])
    out = evaluate_hook(service_by_id("bone-safety-order-sign"), body, now=NOW_TOKYO_MORNING,
                        thresholds=t)
    assert "DMAB-HYPOCALCEMIA" in rule_ids(out.response["cards"])


def test_future_records_are_logged_by_the_service_not_shown(caplog: pytest.LogCaptureFixture) -> None:
    """§1.3 Clock: ignored and logged at the edge (the pipeline), not as a card."""
    import logging
    from cds_service.pipeline import evaluate_hook
    from hooks.services import service_by_id
    from tests.factory import hook_request
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    later = observation(CALCIUM_SERUM, 7.0, "mg/dL", "2026-11-23T18:00:00Z")
    body = hook_request("order-sign", [patient(), later], drafts=[draft(DMAB60)])
    with caplog.at_level(logging.INFO, logger="cds_service.pipeline"):
        out = evaluate_hook(service_by_id("bone-safety-order-sign"), body, now=now)
    assert any("dated in the future" in r.getMessage() for r in caplog.records)
    assert "DMAB-HYPOCALCEMIA" not in rule_ids(out.response["cards"])
    assert "AR-CALCIUM-NOT-CHECKED" in rule_ids(out.response["cards"])


def test_conditions_and_procedures_recorded_in_the_future_are_ignored() -> None:
    from tests.factory import ICD10, condition, procedure
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    ckd_later = condition("N18.4", ICD10, recorded="2026-11-23T12:00:00Z")
    ckd_now = condition("N18.5", ICD10, recorded="2026-11-23T09:03:00Z")
    dialysis_later = procedure("302497006", when="2026-11-23T10:00:00Z")
    chart = _chart([patient(), ckd_later, ckd_now, dialysis_later], now, UTC)
    assert [c.id for c in chart.conditions] == [ckd_now["id"]]
    assert chart.procedures == ()
    assert {s.id for s in chart.skipped} == {ckd_later["id"], dialysis_later["id"]}
