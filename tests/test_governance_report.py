"""Issue 16 report: change points on known series, the per-rule figures, /admin/report(.json)
behind its token, and ``bone-cds feedback-report --html``."""

from __future__ import annotations

import math
import re
import random
from datetime import datetime, timedelta, timezone

import pytest

from cds_service import cli
from cds_service.app import create_app
from cds_service.config import Settings
from cds_service.feedback import FeedbackStore
from cds_service.governance.changepoint import change_points
from cds_service.governance.report import build_report, week_start
from tests.governance_data import issue, scenario
from tests.trust_helpers import Signer, db, postgres_url  # noqa: F401

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)   # a Wednesday
TOKEN = "admin-token-for-tests-0123456789"


# ---- change points ----------------------------------------------------------------------------


def _poisson(lam: float, rng: random.Random) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p < limit:
            return k
        k += 1


def test_a_flat_series_has_no_change_point() -> None:
    assert change_points([10] * 26) == [] and change_points([0] * 26) == []
    assert change_points([10] * 8) == []                   # too short to say anything


def test_a_step_up_and_a_step_down_are_found_at_their_onset() -> None:
    [up] = change_points([10] * 12 + [30] * 14)
    assert (up.onset, up.direction, up.before, up.after) == (12, "up", 10.0, 30.0) and up.alarm <= 13
    [down] = change_points([20] * 12 + [5] * 14)
    assert (down.onset, down.direction) == (12, "down")


def test_the_cusum_restarts_after_a_change() -> None:
    found = change_points([10] * 10 + [30] * 10 + [10] * 10)
    assert [(c.onset, c.direction) for c in found] == [(10, "up"), (20, "down")]


def test_one_busy_week_is_not_a_change() -> None:
    assert change_points([10] * 12 + [25] + [10] * 13) == []


def test_false_alarms_are_rare_and_doublings_found_fast() -> None:
    """The parameters' measured behaviour (module docstring), on seeded Poisson series."""
    rng = random.Random(7)
    alarms = sum(bool(change_points([_poisson(10, rng) for _ in range(26)])) for _ in range(300))
    assert alarms / 300 < 0.08
    delays = []
    for _ in range(100):
        cps = [c for c in change_points([_poisson(10, rng) for _ in range(12)] +
                                        [_poisson(20, rng) for _ in range(14)]) if c.alarm >= 12]
        delays.append(cps[0].alarm - 12 if cps else 99)
    assert sorted(delays)[50] <= 4 and max(delays) < 14


# ---- the report -------------------------------------------------------------------------------


@pytest.fixture
def store(db):
    s = FeedbackStore(db)
    yield s
    s.close()


def test_per_rule_figures(store) -> None:
    scenario(store, NOW)
    r = build_report(store, now=NOW, days=30)
    due = r["rules"]["DMAB-DOSE-DUE"]
    assert {k: due[k] for k in ("cards_issued", "unique_patients", "cards_answered", "accepted", "overridden")} == \
        {"cards_issued": 25, "unique_patients": 10, "cards_answered": 24, "accepted": 1, "overridden": 23}
    assert due["feedback_coverage"] == 0.96
    assert due["override_rate_over_issued"] == 0.92 and due["override_rate_over_answered"] == round(23 / 24, 4)
    assert due["accept_rate_over_issued"] == 0.04 and due["accept_rate_over_answered"] == round(1 / 24, 4)
    assert [(x["code"], x["count"], x["hl7"]["code"]) for x in due["override_reasons"]] == \
        [("edentulous", 13, "patient-ineligible"), ("patient-declined", 10, "patient-refuses")]
    assert due["median_seconds_to_feedback"] == 600.0
    assert {h: v["cards_issued"] for h, v in due["by_hook"].items()} == {"order-select": 10, "order-sign": 15}
    assert {t: v["cards_issued"] for t, v in due["by_tenant"].items()} == {"(no tenant)": 20, "north": 5}
    assert due["by_tenant"]["north"]["accepted"] == 1
    assert due["governance_flag"] and "override rate 96%" in due["flag_reasons"][0]
    ca = r["rules"]["AR-CALCIUM-NOT-CHECKED"]
    assert ca["feedback_coverage"] == 0.1 and ca["governance_flag"] and "coverage 10%" in ca["flag_reasons"][0]
    assert ca["accepted_suggestions"] == [{"label": "Order calcium", "count": 1}]
    assert ca["median_seconds_to_feedback"] == 7200.0
    vd = r["rules"]["DMAB-VITD-NOT-CHECKED"]
    assert not vd["governance_flag"] and vd["override_reasons"] == [
        {"code": "(no reason given)", "display": None, "count": 2, "share": 1.0, "hl7": None}]
    assert vd["accepted_suggestions"] == [{"label": "Order 25-OH vitamin D", "count": 1},
                                          {"label": "Start vitamin D", "count": 1}]
    assert r["totals"]["cards_issued"] == 39 and r["latency"]["order-select"]["calls"] == 20
    assert sum(b["calls"] for b in r["latency"]["order-sign"]["histogram"]) == 15


def test_the_latest_feedback_decides_and_repeats_count_once(store) -> None:
    from tests.governance_data import answer
    c = issue(store, "R", NOW - timedelta(days=1))
    answer(store, c, "overridden", NOW - timedelta(hours=5), "patient-declined")
    answer(store, c, "overridden", NOW - timedelta(hours=4), "patient-declined")
    answer(store, c, "accepted", NOW - timedelta(hours=3))
    r = build_report(store, now=NOW, days=7)["rules"]["R"]
    assert (r["cards_answered"], r["accepted"], r["overridden"]) == (1, 1, 0)
    assert r["median_seconds_to_feedback"] == 19 * 3600


def test_windows_and_unknown_cards(store) -> None:
    from tests.governance_data import answer
    issue(store, "R", NOW - timedelta(days=10))
    issue(store, "R", NOW - timedelta(days=60))
    answer(store, {"uuid": "not-ours", "suggestions": []}, "overridden", NOW - timedelta(days=1))
    assert build_report(store, now=NOW, days=7)["rules"]["R"]["cards_issued"] == 0   # still listed: its series
    assert build_report(store, now=NOW, days=30)["rules"]["R"]["cards_issued"] == 1
    r90 = build_report(store, now=NOW, days=90)
    assert r90["rules"]["R"]["cards_issued"] == 2 and r90["unknown_card_feedback"] == {
        "feedback": 1, "cards": 1, "by_tenant": {"(no tenant)": {"feedback": 1, "cards": 1}}}
    with pytest.raises(ValueError):
        build_report(store, now=NOW, days=14)


def test_feedback_for_unknown_cards_is_counted_apart_per_tenant_in_json_and_page(store) -> None:
    """Issue 12: feedback for card ids never issued is no rule's; it is counted in the window,
    per tenant, and shown on the page."""
    from cds_service.feedback import parse_feedback
    from cds_service.governance.page import render_page
    from tests.governance_data import answer
    c = issue(store, "R", NOW - timedelta(days=1))
    answer(store, c, "overridden", NOW - timedelta(hours=2))
    for tenant, cards in (("north", ["x1", "x2", "x2"]), (None, ["y1"])):
        entries = [{"card": card, "outcome": "overridden", "outcomeTimestamp": f"2026-11-2{i}T10:00:00Z"}
                   for i, card in enumerate(cards)]
        store.add("bone-safety-order-sign", parse_feedback({"feedback": entries}), NOW - timedelta(days=2),
                  tenant=tenant)
    store.add("bone-safety-order-sign", parse_feedback({"feedback": [
        {"card": "old", "outcome": "overridden", "outcomeTimestamp": "2026-01-01T00:00:00Z"}]}),
        NOW - timedelta(days=20), tenant="north")                     # outside 7 days, inside 30
    r = build_report(store, now=NOW, days=7)
    assert r["unknown_card_feedback"] == {"feedback": 4, "cards": 3, "by_tenant": {
        "(no tenant)": {"feedback": 1, "cards": 1}, "north": {"feedback": 3, "cards": 2}}}
    assert r["rules"]["R"]["cards_answered"] == 1 and r["totals"]["cards_answered"] == 1
    assert build_report(store, now=NOW, days=30)["unknown_card_feedback"]["by_tenant"]["north"] == {
        "feedback": 4, "cards": 3}
    html = render_page(r)
    assert '<td data-field="unknown_card_feedback">4</td>' in html
    assert "<tr><td>north</td><td>3</td><td>2</td></tr>" in html
    assert "unknown-cards" not in render_page(build_report(FeedbackStore(":memory:"), now=NOW, days=7))


def test_accepted_suggestions_of_a_merged_card_count_per_member_rule(store) -> None:
    """Issue 16: each suggestion of the merged work-up card names its member rule
    (``urn:bone-safety-cds:member``); accepted ones are counted per member in JSON and page."""
    from cds_service.feedback import parse_feedback
    from cds_service.governance.page import render_page
    from tests.governance_data import answer, card

    fresh = []
    for _ in range(3):
        c = card("AR-PRETREATMENT-WORKUP",
                 labels=("Refer for a dental check", "Order calcium", "Order 25-OH vitamin D"))
        for sug, member in zip(c["suggestions"], ("DMAB-DENTAL-CLEARANCE", "AR-CALCIUM-NOT-CHECKED",
                                                  "DMAB-VITD-NOT-CHECKED")):
            sug["extension"] = {"urn:bone-safety-cds:member": member}
        store.record_cards("bone-safety-order-sign", [c], NOW - timedelta(days=1), hook="order-sign",
                           patient_key="k", call_id="c", latency_ms=5.0)
        fresh.append(c)
    both = [{"id": fresh[0]["suggestions"][0]["uuid"]}, {"id": fresh[0]["suggestions"][1]["uuid"]}]
    store.add("bone-safety-order-sign", parse_feedback({"feedback": [
        {"card": fresh[0]["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-24T10:00:00Z",
         "acceptedSuggestions": both}]}), NOW - timedelta(hours=3))
    answer(store, fresh[1], "accepted", NOW - timedelta(hours=2), suggestion=0)
    answer(store, fresh[2], "overridden", NOW - timedelta(hours=2), "work-up-in-progress")
    plain = issue(store, "AR-CALCIUM-NOT-CHECKED", NOW - timedelta(days=1))
    answer(store, plain, "accepted", NOW - timedelta(hours=1))
    r = build_report(store, now=NOW, days=7)
    workup = r["rules"]["AR-PRETREATMENT-WORKUP"]
    assert workup["accepted_by_member"] == {"DMAB-DENTAL-CLEARANCE": 2, "AR-CALCIUM-NOT-CHECKED": 1}
    assert workup["by_hook"]["order-sign"]["accepted_by_member"] == workup["accepted_by_member"]
    assert r["rules"]["AR-CALCIUM-NOT-CHECKED"]["accepted_by_member"] == {}
    html = render_page(r)
    assert ('<tr data-rule="AR-PRETREATMENT-WORKUP" data-member="DMAB-DENTAL-CLEARANCE">'
            '<td>AR-PRETREATMENT-WORKUP</td><td>DMAB-DENTAL-CLEARANCE</td><td>2</td></tr>') in html
    assert 'data-member="DMAB-VITD-NOT-CHECKED"' not in html        # offered, never accepted


def test_weekly_series_and_a_recent_change_point_flag(store) -> None:
    monday = week_start(NOW)
    for w in range(26):
        n = 4 if w < 23 else 20                       # a jump in the last 3 complete weeks
        for _ in range(n):
            issue(store, "JUMPY", monday - timedelta(weeks=26 - w) + timedelta(hours=30))
    for _ in range(5):
        issue(store, "JUMPY", NOW - timedelta(hours=1))   # the current week is not in the series
    r = build_report(store, now=NOW, days=30)["rules"]["JUMPY"]
    assert len(r["weekly"]) == 26 and r["weekly"][-1] == {"week": (monday - timedelta(weeks=1)).date().isoformat(),
                                                          "cards": 20}
    assert [w["cards"] for w in r["weekly"]][:3] == [4, 4, 4]
    [cp] = r["change_points"]
    assert cp["direction"] == "up" and cp["onset_week"] == (monday - timedelta(weeks=3)).date().isoformat()
    assert r["governance_flag"] and any("changed up" in f for f in r["flag_reasons"])


# ---- the routes -------------------------------------------------------------------------------


def _app(tmp_path, token: str | None = TOKEN, **env: str):
    base = {"BONE_CDS_DATA_DIR": str(tmp_path / "data"), **env}
    if token is not None:
        base["BONE_CDS_ADMIN_TOKEN"] = token
    app = create_app(Settings.from_env(base), clock=lambda: NOW)
    scenario(app.config["FEEDBACK_STORE"], NOW)
    return app


def test_report_routes_are_off_without_the_setting(tmp_path) -> None:
    client = _app(tmp_path, token=None).test_client()
    for path in ("/admin/report", "/admin/report.json"):
        r = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 404 and r.get_json()["error"] == "not_found"


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer "])
def test_report_routes_refuse_a_missing_or_wrong_token(tmp_path, header) -> None:
    client = _app(tmp_path).test_client()
    for path in ("/admin/report", "/admin/report.json"):
        r = client.get(path, headers={"Authorization": header} if header else {})
        assert r.status_code == 401 and r.get_json()["error"] == "unauthorized"
        assert "DMAB" not in r.get_data(as_text=True)


def test_report_json_and_html_with_the_token(tmp_path) -> None:
    client = _app(tmp_path).test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = client.get("/admin/report.json?days=30", headers=auth)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    body = r.get_json()
    assert body["window"]["days"] == 30 and body["rules"]["DMAB-DOSE-DUE"]["cards_issued"] == 25
    page = client.get("/admin/report?days=7", headers=auth)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    assert 'data-rule="DMAB-DOSE-DUE"' in html and html.count("<svg") == 4
    # offline: no script, nothing loaded from anywhere (namespace URIs and comments aside)
    assert "<script" not in html and " src=" not in html and "url(http" not in html
    assert not re.search(r'href="(https?:)?//', html)


@pytest.mark.parametrize("days", ["14", "abc", "0", "-7", "30.0"])
def test_other_windows_are_400(tmp_path, days) -> None:
    r = _app(tmp_path).test_client().get(f"/admin/report.json?days={days}",
                                         headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_parameter"


def test_the_jwt_guard_leaves_the_admin_token_in_charge(tmp_path) -> None:
    """With BONE_CDS_AUTH=jwt the report still takes the admin token (not a CDS Hooks JWT)."""
    signer = Signer()
    client = _app(tmp_path, **signer.env()).test_client()
    assert client.get("/admin/report.json", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/admin/report.json").status_code == 401
    assert client.get("/cds-services").status_code == 401        # the hooks still need a JWT


def test_cli_writes_the_same_page_as_a_static_file(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("BONE_CDS_DATA_DIR", str(tmp_path / "data"))
    for name in ("BONE_CDS_FEEDBACK_DB", "BONE_CDS_AUTH", "BONE_CDS_TRUSTED_ISSUERS", "BONE_CDS_TENANTS"):
        monkeypatch.delenv(name, raising=False)
    store = FeedbackStore(tmp_path / "data" / "feedback.sqlite3")
    scenario(store, datetime.now(timezone.utc))
    out = tmp_path / "report.html"
    assert cli.main(["feedback-report", "--html", str(out), "--days", "7"]) == 0
    html = out.read_text()
    assert 'data-rule="AR-CALCIUM-NOT-CHECKED"' in html and html.count("<svg") == 4 and "?days=" not in html
    assert cli.main(["feedback-report", "--html", str(tmp_path / "no" / "such" / "dir.html")]) == 2


def test_a_short_admin_token_stops_start_up() -> None:
    from cds_service.config import ConfigError
    with pytest.raises(ConfigError, match="BONE_CDS_ADMIN_TOKEN"):
        Settings.from_env({"BONE_CDS_ADMIN_TOKEN": "change-me"})
