"""Feedback that is never lost (checklist FB-1 … FB-6, IOP-4), on SQLite and on PostgreSQL.

Every store test runs twice: on SQLite (the embedded default) and, marked ``postgres``, on a
real PostgreSQL server when ``BONE_CDS_TEST_POSTGRES_URL`` is set (each test in a schema of its
own, dropped afterwards); without that variable the PostgreSQL half is skipped.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from cds_service import cli
from cds_service.app import create_app
from cds_service.config import ConfigError, Settings
from cds_service.errors import ApiError
from cds_service.feedback import FeedbackStore, database_url, parse_feedback
from hooks.services import services
from tests.factory import DMAB60, NOW, draft, hook_request, patient
from tests.trust_helpers import db, postgres_url, probe_rule  # noqa: F401 - fixtures

PV, OSEL, OSIGN = (s.id for s in services())
TS = "2026-11-23T15:05:00Z"


# ---- the two databases ----------------------------------------------------------------------


@pytest.fixture
def store(db) -> Iterator[FeedbackStore]:
    s = FeedbackStore(db)
    yield s
    s.close()


def settings_for(db: str, tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path / "data"), "BONE_CDS_FEEDBACK_DB": db, **env})


@pytest.fixture
def app(db, tmp_path):
    return create_app(settings_for(db, tmp_path), clock=lambda: NOW)


@pytest.fixture
def client(app):
    return app.test_client()


def item(card: str | None = None, outcome: str = "overridden", **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"card": card or str(uuid.uuid4()), "outcome": outcome, "outcomeTimestamp": TS}
    if outcome == "accepted" and "acceptedSuggestions" not in extra:
        entry["acceptedSuggestions"] = [{"id": str(uuid.uuid4())}]
    entry.update(extra)
    return entry


def post_feedback(client, *entries: dict[str, Any], service: str = OSIGN):
    return client.post(f"/cds-services/{service}/feedback", json={"feedback": list(entries)})


def issue_cards(client, hook: str = "order-sign") -> list[dict[str, Any]]:
    sid = {"patient-view": PV, "order-select": OSEL, "order-sign": OSIGN}[hook]
    r = client.post(f"/cds-services/{sid}", json=hook_request(hook, [patient()], drafts=[draft(DMAB60)]))
    assert r.status_code == 200
    return r.get_json()["cards"]


# ---- durability and shapes (through the app) --------------------------------------------------


def test_feedback_survives_app_recreation(db, tmp_path) -> None:
    """FB-6: 200 only once stored; a new app on the same store (a restart) still has the row."""
    card = str(uuid.uuid4())
    app = create_app(settings_for(db, tmp_path), clock=lambda: NOW)
    r = post_feedback(app.test_client(), item(card, overrideReason={"reason": {"code": "patient-declined"}}))
    assert r.status_code == 200 and r.get_json() == {"stored": 1, "duplicates": 0}
    app.config["FEEDBACK_STORE"].close()
    app2 = create_app(settings_for(db, tmp_path), clock=lambda: NOW)
    rows = app2.config["FEEDBACK_STORE"].rows()
    assert [(r["card_uuid"], r["outcome"], r["override_code"], r["service_id"]) for r in rows] == [
        (card, "overridden", "patient-declined", OSIGN)
    ]
    assert rows[0]["received_at"].startswith("2026-11-23T15:00:00")


def test_a_batch_is_stored_entry_by_entry_in_order(client, app) -> None:
    """FB-5: several cards (and hook instances) in one POST."""
    entries = [item(), item(outcome="accepted"), item(overrideReason={"userComment": "seen last week"})]
    r = post_feedback(client, *entries)
    assert r.status_code == 200 and r.get_json() == {"stored": 3, "duplicates": 0}
    rows = app.config["FEEDBACK_STORE"].rows()
    assert [r["card_uuid"] for r in rows] == [e["card"] for e in entries]
    assert [json.loads(r["raw"]) for r in rows] == entries
    assert json.loads(rows[1]["accepted_suggestions"]) == [entries[1]["acceptedSuggestions"][0]["id"]]
    assert rows[2]["override_comment"] == "seen last week"


def test_the_same_feedback_sent_again_is_stored_once_and_answered_200(client, app) -> None:
    """FB-5 (repeated feedback), issue 12: a client that lost the answer sends the batch again;
    every send is a 200, the feedback is kept once (card, outcome, outcomeTimestamp, accepted
    suggestions, override reason), within one batch too."""
    accepted = item(outcome="accepted", acceptedSuggestions=[{"id": "s1"}, {"id": "s2"}])
    overridden = item(overrideReason={"reason": {"code": "patient-declined"}, "userComment": "asked"})
    first = post_feedback(client, accepted, overridden)
    assert first.status_code == 200 and first.get_json() == {"stored": 2, "duplicates": 0}
    again = post_feedback(client, overridden, accepted)
    assert again.status_code == 200 and again.get_json() == {"stored": 0, "duplicates": 2}
    reordered = dict(accepted, acceptedSuggestions=[{"id": "s2"}, {"id": "s1"}])   # the same set
    assert post_feedback(client, reordered, reordered).get_json() == {"stored": 0, "duplicates": 2}
    rows = app.config["FEEDBACK_STORE"].rows()
    assert [r["card_uuid"] for r in rows] == [accepted["card"], overridden["card"]]
    assert [json.loads(r["raw"]) for r in rows] == [accepted, overridden]


@pytest.mark.parametrize("change", [
    {"outcomeTimestamp": "2026-11-23T15:06:00Z"},
    {"outcome": "accepted", "acceptedSuggestions": [{"id": "s1"}]},
    {"overrideReason": {"reason": {"code": "already-done"}}},
    {"overrideReason": {"reason": {"code": "patient-declined"}, "userComment": "asked twice"}},
    {"overrideReason": {"reason": {"code": "patient-declined", "system": "urn:other"}}},
    {"overrideReason": None, "overrideReasons": [{"reason": {"code": "patient-declined"}}]},
])
def test_another_feedback_on_the_same_card_is_kept(client, app, change) -> None:
    """FB-5: only the very same feedback is merged; a later answer, another outcome or another
    reason for the same card is a feedback of its own."""
    base = item(overrideReason={"reason": {"code": "patient-declined"}})
    other = {k: v for k, v in {**base, **change}.items() if v is not None}
    assert post_feedback(client, base).get_json() == {"stored": 1, "duplicates": 0}
    assert post_feedback(client, other).get_json() == {"stored": 1, "duplicates": 0}
    assert [json.loads(r["raw"]) for r in app.config["FEEDBACK_STORE"].rows()] == [base, other]


def test_the_same_feedback_from_two_tenants_is_two_feedbacks(store) -> None:
    """A card id (the service's own uuids never collide, but unknown ids may) sent by two tenants
    is kept for each; the tenant is stored with the row."""
    entry = item("shared-id")
    assert store.add(OSIGN, parse_feedback({"feedback": [entry]}), NOW, tenant="a") == 1
    assert store.add(OSIGN, parse_feedback({"feedback": [entry]}), NOW, tenant="b") == 1
    assert store.add(OSIGN, parse_feedback({"feedback": [entry]}), NOW, tenant="a") == 0
    assert [r["tenant"] for r in store.rows()] == ["a", "b"]


def test_concurrent_retries_of_one_batch_store_it_once(store) -> None:
    """Eight threads send the same batch at once (a client retrying on several connections):
    each call succeeds, the batch is stored once, and the new-row counts add up to the batch."""
    batch = [item(f"retry-{i}") for i in range(20)]
    counts: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            counts.append(store.add(OSIGN, parse_feedback({"feedback": batch}), NOW))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and sum(counts) == 20
    assert sorted(r["card_uuid"] for r in store.rows()) == sorted(e["card"] for e in batch)


def test_unknown_card_is_stored_without_a_rule_and_ours_with_its_rule(client, app, probe_rule) -> None:
    cards = issue_cards(client)
    ours = next(c for c in cards if c["source"]["topic"]["code"] == probe_rule)
    stranger = str(uuid.uuid4())
    r = post_feedback(
        client,
        item(stranger),
        item(ours["uuid"], outcome="accepted", acceptedSuggestions=[{"id": ours["suggestions"][0]["uuid"]}]),
    )
    assert r.status_code == 200
    rows = {r["card_uuid"]: r for r in app.config["FEEDBACK_STORE"].rows()}
    assert rows[stranger]["rule_id"] is None
    assert rows[ours["uuid"]]["rule_id"] == probe_rule
    issued = {c["card_uuid"]: c for c in app.config["FEEDBACK_STORE"].issued()}
    assert {c["uuid"] for c in cards} <= set(issued)
    assert issued[ours["uuid"]]["rule_id"] == probe_rule and issued[ours["uuid"]]["service_id"] == OSIGN


def test_feedback_on_another_services_card_keeps_the_rule(client, app, probe_rule) -> None:
    """The card uuid is what counts: feedback posted to another service's URL is still attributed."""
    ours = next(c for c in issue_cards(client, "patient-view") if c["source"]["topic"]["code"] == probe_rule)
    assert post_feedback(client, item(ours["uuid"]), service=OSIGN).status_code == 200
    row = app.config["FEEDBACK_STORE"].rows()[-1]
    assert row["rule_id"] == probe_rule and row["service_id"] == OSIGN


@pytest.mark.parametrize("suggestions", [None, [], "s-1", [{"uuid": "s-1"}], [{"id": 7}]])
def test_accepted_without_accepted_suggestions_is_400(client, app, suggestions) -> None:
    """FB-3: acceptedSuggestions is REQUIRED with outcome accepted (a list of {id})."""
    entry = item(outcome="accepted")
    if suggestions is None:
        del entry["acceptedSuggestions"]
    else:
        entry["acceptedSuggestions"] = suggestions
    r = post_feedback(client, entry)
    assert r.status_code == 400 and r.get_json()["field"] == "feedback[0].acceptedSuggestions"
    assert app.config["FEEDBACK_STORE"].rows() == []


def test_one_bad_entry_rejects_the_whole_batch(client, app) -> None:
    """All or nothing: the client can resend the batch without creating duplicates."""
    r = post_feedback(client, item(), item(), item(outcome="accepted", acceptedSuggestions=[]))
    assert r.status_code == 400 and r.get_json()["field"] == "feedback[2].acceptedSuggestions"
    assert app.config["FEEDBACK_STORE"].rows() == []


@pytest.mark.parametrize(
    "ts",
    [
        "2026-13-01T00:00:00Z",
        "2026-02-30T10:00:00Z",
        "2026-11-23T25:00:00Z",
        "2026-11-23T15:61:00Z",
        "2026-11-23T15:05:61Z",
        "2026-11-23",
        "2026-11-23T15:05:00",
        "2026-11-23 15:05:00Z",
        "yesterday",
        "",
        "2026-11-23T15:05:00+25:00",
        "2026-11-23T15:05:00+02:60",
        "0000-01-01T00:00:00Z",
        1732374300,
        None,
        ["2026-11-23T15:05:00Z"],
    ],
)
def test_invalid_outcome_timestamps_are_400(client, app, ts) -> None:
    """FB-3: outcomeTimestamp is REQUIRED, an RFC 3339 date-time with real calendar values."""
    entry = item()
    if ts is None:
        del entry["outcomeTimestamp"]
    else:
        entry["outcomeTimestamp"] = ts
    r = post_feedback(client, entry)
    assert r.status_code == 400 and r.get_json()["field"] == "feedback[0].outcomeTimestamp"
    assert app.config["FEEDBACK_STORE"].rows() == []


@pytest.mark.parametrize(
    "ts",
    [
        "2026-11-23T15:05:00Z",
        "2026-11-23T15:05:00.123456Z",
        "2026-11-23t15:05:00z",
        "2026-11-23T16:05:00+01:00",
        "2026-11-23T10:05:00-05:00",
        "2016-12-31T23:59:60Z",
        "2028-02-29T00:00:00Z",
    ],
)
def test_valid_outcome_timestamps_are_stored_as_sent(client, app, ts) -> None:
    assert post_feedback(client, item(outcomeTimestamp=ts)).status_code == 200
    assert app.config["FEEDBACK_STORE"].rows()[-1]["outcome_timestamp"] == ts


@pytest.mark.parametrize(
    "reason, system, code",
    [
        ({"reason": {"code": "not-relevant"}}, None, "not-relevant"),  # IOP-4 sandbox
        (
            {"reason": {"code": "x", "system": "urn:bone-safety-cds:override-reason"}},
            "urn:bone-safety-cds:override-reason",
            "x",
        ),
        ({"reason": {"code": "x", "system": "s", "display": "X"}, "userComment": "ok"}, "s", "x"),
        ({"userComment": "no coded reason"}, None, None),
        ({}, None, None),
        (None, None, None),
    ],
)
def test_override_reasons_in_every_shape_the_spec_allows(client, app, reason, system, code) -> None:
    """FB-4, IOP-4: the sandbox sends ``reason`` with only ``code`` (no display); overridden may
    come without any overrideReason."""
    entry = item() if reason is None else item(overrideReason=reason)
    assert post_feedback(client, entry).status_code == 200
    row = app.config["FEEDBACK_STORE"].rows()[-1]
    assert (row["override_system"], row["override_code"]) == (system, code)


@pytest.mark.parametrize(
    "entry, field",
    [
        (item(card="c\x00d"), "feedback[0].card"),
        (item(card="\ud800"), "feedback[0].card"),
        (item(overrideReason={"userComment": "a\x00b"}), "feedback[0].overrideReason.userComment"),
        (item(overrideReason={"reason": {"code": "\udfff"}}), "feedback[0].overrideReason.reason.code"),
        (
            item(outcome="accepted", acceptedSuggestions=[{"id": "\x00"}]),
            "feedback[0].acceptedSuggestions[0].id",
        ),
    ],
)
def test_text_no_database_can_store_is_400_not_500(client, app, entry, field) -> None:
    """PostgreSQL refuses NUL in text; no driver encodes a lone surrogate (fuzzing found both)."""
    raw = json.dumps({"feedback": [entry]})  # ensure_ascii keeps the surrogate as \\u escape
    r = client.post(f"/cds-services/{OSIGN}/feedback", data=raw, content_type="application/json")
    assert r.status_code == 400 and r.get_json()["field"] == field
    assert app.config["FEEDBACK_STORE"].rows() == []


def test_odd_text_elsewhere_in_an_entry_is_stored_escaped(client, app) -> None:
    entry = item(extension={"org.example.note": "nul \x00 and lone \ud800"})
    raw = json.dumps({"feedback": [entry]})
    assert (
        client.post(f"/cds-services/{OSIGN}/feedback", data=raw, content_type="application/json").status_code
        == 200
    )
    assert json.loads(app.config["FEEDBACK_STORE"].rows()[-1]["raw"]) == entry


def test_concurrent_writers_lose_nothing(store) -> None:
    """Eight threads, one store: every item of every batch is there (WAL + BEGIN IMMEDIATE)."""
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(25):
                store.add(OSIGN, parse_feedback({"feedback": [item(f"w{n}-{i}-a"), item(f"w{n}-{i}-b")]}))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(r["card_uuid"] for r in store.rows()) == sorted(
        f"w{n}-{i}-{x}" for n in range(8) for i in range(25) for x in "ab"
    )


# ---- the store on its own ---------------------------------------------------------------------


def _card(rule: str, uuid_: str | None = None, indicator: str = "warning") -> dict[str, Any]:
    return {
        "uuid": uuid_ or str(uuid.uuid4()),
        "indicator": indicator,
        "summary": "s",
        "source": {"label": "l", "topic": {"system": "urn:bone-safety-cds:rule", "code": rule}},
    }


def test_record_cards_is_idempotent_and_skips_cards_without_rule(store) -> None:
    card = _card("DMAB-DOSE-DUE")
    store.record_cards(PV, [card, {"uuid": "no-topic", "indicator": "info", "source": {"label": "x"}}], NOW)
    store.record_cards(PV, [card], NOW + timedelta(days=1))
    issued = store.issued()
    assert [(c["card_uuid"], c["rule_id"]) for c in issued] == [(card["uuid"], "DMAB-DOSE-DUE")]
    assert issued[0]["issued_at"].startswith("2026-11-23T15:00:00")


def _report_fixture(store: FeedbackStore) -> None:
    """Two rules, shown on two days; feedback on both days plus one unknown card."""
    day1, day2 = NOW, NOW + timedelta(days=2)
    a = [_card("DMAB-DOSE-DUE") for _ in range(4)]
    b = [_card("AR-CALCIUM-NOT-CHECKED") for _ in range(2)]
    store.record_cards(PV, a[:3] + b, day1)
    store.record_cards(PV, a[3:], day2)

    def fb(card: dict, outcome: str = "overridden", code: str | None = None, when=day1) -> None:
        extra: dict[str, Any] = {"overrideReason": {"reason": {"code": code}}} if code else {}
        store.add(PV, parse_feedback({"feedback": [item(card["uuid"], outcome, **extra)]}), when)

    fb(a[0], code="patient-declined")
    fb(a[0], code="patient-declined", when=day1 + timedelta(hours=1))  # sent again: one card
    store.add(PV, parse_feedback({"feedback": [item(a[0]["uuid"], outcomeTimestamp="2026-11-23T16:00:00Z",
                                                    overrideReason={"reason": {"code": "patient-declined"}})]}),
              day1)                                                      # a second answer: one card
    fb(a[1], code="patient-declined")
    fb(a[2], code="already-done")
    fb(a[3], code="not-relevant", when=day2)
    fb(b[0], "accepted")
    fb(b[1], code="zzz-other")
    fb(b[1], code="aaa-other")
    fb(b[1], code="mmm-other")
    fb({"uuid": "not-ours"}, code="x", when=day2)
    store.add(PV, parse_feedback({"feedback": [item("not-ours", outcomeTimestamp="2026-11-25T16:00:00Z"),
                                               item("also-not-ours")]}), day2, tenant="clinic-a")


def test_report_counts_cards_per_rule(store) -> None:
    _report_fixture(store)
    full = store.report()
    report = {r["rule"]: r for r in full["rules"]}
    assert report["DMAB-DOSE-DUE"] == {
        "rule": "DMAB-DOSE-DUE",
        "shown": 4,
        "accepted": 0,
        "overridden": 4,
        "top_override_reasons": [
            {"code": "patient-declined", "count": 2},
            {"code": "already-done", "count": 1},
            {"code": "not-relevant", "count": 1},
        ],
    }
    assert report["AR-CALCIUM-NOT-CHECKED"] == {
        "rule": "AR-CALCIUM-NOT-CHECKED",
        "shown": 2,
        "accepted": 1,
        "overridden": 1,
        "top_override_reasons": [
            {"code": "aaa-other", "count": 1},
            {"code": "mmm-other", "count": 1},
            {"code": "zzz-other", "count": 1},
        ],
    }
    assert list(report) == ["AR-CALCIUM-NOT-CHECKED", "DMAB-DOSE-DUE"]   # no pseudo-rule for unknown cards
    assert full["unknown_cards"] == {
        "feedback": 3, "cards": 3,
        "by_tenant": {"(no tenant)": {"feedback": 1, "cards": 1}, "clinic-a": {"feedback": 2, "cards": 2}}}


def test_feedback_that_arrived_before_its_card_was_recorded_is_not_unknown(store) -> None:
    """A card recorded after its feedback (the hook's bookkeeping was late) counts for its rule,
    not as an unknown card, in both reports."""
    card = _card("DMAB-DOSE-DUE")
    store.add(PV, parse_feedback({"feedback": [item(card["uuid"])]}), NOW)
    assert store.report()["unknown_cards"]["feedback"] == 1
    store.record_cards(PV, [card], NOW)
    report = store.report()
    assert report["unknown_cards"] == {"feedback": 0, "cards": 0, "by_tenant": {}}
    assert report["rules"] == [{"rule": "DMAB-DOSE-DUE", "shown": 1, "accepted": 0, "overridden": 1,
                                "top_override_reasons": []}]


def test_report_since(store) -> None:
    _report_fixture(store)
    later = {r["rule"]: r for r in store.report("2026-11-24")["rules"]}
    assert later["DMAB-DOSE-DUE"]["shown"] == 1 and later["DMAB-DOSE-DUE"]["overridden"] == 1
    assert "AR-CALCIUM-NOT-CHECKED" not in later
    assert store.report("2026-11-25T16:00:00+01:00") == store.report(
        datetime(2026, 11, 25, 15, tzinfo=timezone.utc)
    )
    assert store.report("2027-01-01") == {"rules": [], "unknown_cards": {"feedback": 0, "cards": 0, "by_tenant": {}}}
    assert store.report("2026-11-24")["unknown_cards"]["feedback"] == 3
    with pytest.raises(ValueError):
        store.report("last tuesday")


# ---- bone-cds feedback-report ------------------------------------------------------------------


@pytest.fixture
def report_env(db, tmp_path, monkeypatch) -> FeedbackStore:
    for name in ("BONE_CDS_FEEDBACK", "BONE_CDS_AUTH", "BONE_CDS_TRUSTED_ISSUERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BONE_CDS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BONE_CDS_FEEDBACK_DB", db)
    store = FeedbackStore(db)
    _report_fixture(store)
    return store


def test_cli_feedback_report_table(report_env, capsys) -> None:
    assert cli.main(["feedback-report"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rule", "shown", "accepted", "overridden", "top", "override", "reasons"]
    rows = {line.split()[0]: line for line in lines[1:3]}
    assert set(rows) == {"AR-CALCIUM-NOT-CHECKED", "DMAB-DOSE-DUE"}
    assert lines[3] == "feedback for unknown cards: 3 (on 3 card ids this service never issued)"
    assert lines[4:] == ["  (no tenant): 1 (1 cards)", "  clinic-a: 2 (2 cards)"]
    assert rows["DMAB-DOSE-DUE"].split()[1:4] == ["4", "0", "4"]
    assert "patient-declined (2), already-done (1), not-relevant (1)" in rows["DMAB-DOSE-DUE"]
    assert rows["AR-CALCIUM-NOT-CHECKED"].split()[1:4] == ["2", "1", "1"]


def test_cli_feedback_report_since_and_json(report_env, capsys) -> None:
    assert cli.main(["feedback-report", "--since", "2026-11-24", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == report_env.report("2026-11-24")
    assert {r["rule"] for r in data["rules"]} == {"DMAB-DOSE-DUE"}
    assert data["unknown_cards"]["by_tenant"]["clinic-a"] == {"feedback": 2, "cards": 2}


def test_cli_feedback_report_bad_since(report_env, capsys) -> None:
    assert cli.main(["feedback-report", "--since", "last tuesday"]) == 2
    assert "--since" in capsys.readouterr().err


# ---- configuration ---------------------------------------------------------------------------


def test_feedback_db_accepts_a_path_or_a_url(tmp_path) -> None:
    path = tmp_path / "a" / "b.sqlite3"
    assert database_url(str(path)).database == str(path)
    assert database_url(f"sqlite:///{path}").database == str(path)
    assert database_url("postgresql+psycopg://u:secret@db/x").get_backend_name() == "postgresql"
    store = FeedbackStore(f"sqlite:///{path}")
    store.add(PV, parse_feedback({"feedback": [item("c")]}), NOW)
    assert FeedbackStore(str(path)).rows()[0]["card_uuid"] == "c"


def test_sqlite_is_set_up_for_durability(tmp_path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000


def test_a_bad_feedback_db_stops_start_up_naming_the_variable(tmp_path) -> None:
    for bad in ("nosuchdb://x", "postgresql+nosuchdriver://u@h/d"):
        with pytest.raises(ConfigError, match="BONE_CDS_FEEDBACK_DB"):
            create_app(settings_for(bad, tmp_path))


def test_password_never_shown(tmp_path) -> None:
    url = database_url("postgresql+psycopg://user:s3cret-pw@127.0.0.1:1/db")
    assert "s3cret-pw" not in url.render_as_string(hide_password=True)
    with pytest.raises(ConfigError) as err:
        create_app(settings_for("postgresql+nosuchdriver://user:s3cret-pw@h/d", tmp_path))
    assert "s3cret-pw" not in str(err.value)


def test_an_existing_store_of_the_first_schema_is_opened_and_extended(tmp_path) -> None:
    """Files written by the first (sqlite3-module) store stay readable and writable."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript("""
            CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, received_at TEXT NOT NULL,
              service_id TEXT NOT NULL, card_uuid TEXT NOT NULL, rule_id TEXT, outcome TEXT NOT NULL,
              outcome_timestamp TEXT NOT NULL, accepted_suggestions TEXT, override_system TEXT,
              override_code TEXT, override_comment TEXT, raw TEXT NOT NULL);
            CREATE INDEX feedback_rule ON feedback(rule_id, received_at);
            CREATE TABLE issued_cards (card_uuid TEXT PRIMARY KEY, rule_id TEXT NOT NULL,
              service_id TEXT NOT NULL, indicator TEXT NOT NULL, issued_at TEXT NOT NULL);
            CREATE INDEX issued_rule ON issued_cards(rule_id, issued_at);
            INSERT INTO issued_cards
              VALUES ('old-card', 'DMAB-DOSE-DUE', 'x', 'warning', '2026-01-01T00:00:00+00:00');
            INSERT INTO feedback (received_at, service_id, card_uuid, rule_id, outcome,
                                  outcome_timestamp, raw)
              VALUES ('2026-01-02T00:00:00+00:00', 'x', 'old-card', 'DMAB-DOSE-DUE', 'overridden',
                      'T', '{}');
        """)
    store = FeedbackStore(path)
    store.add(PV, parse_feedback({"feedback": [item("old-card")]}), NOW)
    rows = store.rows()
    assert [r["id"] for r in rows] == [1, 2] and rows[1]["rule_id"] == "DMAB-DOSE-DUE"


def _old_schema_store(db: str, rows: list[tuple[str, str, str]]) -> None:
    """A store as the version before duplicate keys wrote it (no ``tenant``/``dedup_key`` in
    ``feedback``, no ``member_rule`` in ``issued_suggestions``), holding ``rows`` of
    (card, outcome, raw entry JSON)."""
    from sqlalchemy import create_engine, text
    from cds_service.feedback import database_url
    url = database_url(db)
    if url.get_backend_name() == "sqlite":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    serial = "SERIAL PRIMARY KEY" if engine.dialect.name == "postgresql" else "INTEGER PRIMARY KEY AUTOINCREMENT"
    with engine.begin() as conn:
        conn.execute(text(f"""CREATE TABLE feedback (id {serial}, received_at TEXT NOT NULL,
              service_id TEXT NOT NULL, card_uuid TEXT NOT NULL, rule_id TEXT, outcome VARCHAR(16) NOT NULL,
              outcome_timestamp TEXT NOT NULL, accepted_suggestions TEXT, override_system TEXT,
              override_code TEXT, override_comment TEXT, raw TEXT NOT NULL)"""))
        conn.execute(text("""CREATE TABLE issued_suggestions (card_uuid TEXT NOT NULL, position INTEGER NOT NULL,
              suggestion_uuid TEXT, label TEXT NOT NULL, PRIMARY KEY (card_uuid, position))"""))
        for card, outcome, raw in rows:
            conn.execute(text("INSERT INTO feedback (received_at, service_id, card_uuid, outcome, outcome_timestamp, raw) "
                              "VALUES ('2026-01-02T00:00:00+00:00', 'x', :card, :outcome, 'T', :raw)"),
                         {"card": card, "outcome": outcome, "raw": raw})
    engine.dispose()


def test_an_old_store_gets_duplicate_keys_and_keeps_every_row(db) -> None:
    """Issue 12: a store written before duplicates were recognised is migrated at start: every row
    is kept (old repeats too), each gets its key, and a retry of an old feedback is a duplicate."""
    old = item("old-card", overrideReason={"reason": {"code": "patient-declined"}})
    other = item("old-card", outcomeTimestamp="2026-11-23T16:00:00Z")
    raw = json.dumps(old, separators=(",", ":"))
    _old_schema_store(db, [("old-card", "overridden", raw), ("old-card", "overridden", raw),
                           ("old-card", "overridden", json.dumps(other)), ("broken", "overridden", "{not json")])
    store = FeedbackStore(db)
    try:
        rows = store.rows()
        assert [r["card_uuid"] for r in rows] == ["old-card", "old-card", "old-card", "broken"]
        assert all(r["dedup_key"] for r in rows) and len({r["dedup_key"] for r in rows}) == 4
        assert store.add(PV, parse_feedback({"feedback": [old, other]}), NOW) == 0        # retries
        assert store.add(PV, parse_feedback({"feedback": [item("old-card")]}), NOW) == 1  # new
        assert len(store.rows()) == 5
        store.record_cards(PV, [dict(_card("R"), suggestions=[{"uuid": "s", "label": "L"}])], NOW)
        assert store.suggestions()[0]["member_rule"] is None
    finally:
        store.close()
    again = FeedbackStore(db)     # the next start: nothing left to migrate, nothing changed
    try:
        assert [r["dedup_key"] for r in again.rows()] == [r["dedup_key"] for r in rows] + [again.rows()[-1]["dedup_key"]]
    finally:
        again.close()


def test_parse_feedback_is_usable_without_the_app() -> None:
    with pytest.raises(ApiError) as err:
        parse_feedback({"feedback": [item(outcome="accepted", acceptedSuggestions=None)]})
    assert err.value.status == 400


def test_epic_plural_override_reasons_are_accepted_and_the_first_coded_one_counts(client, app) -> None:
    """Issue 12: Epic sends ``overrideReasons`` (a list); each is checked, the first with a code
    is the one counted, and the entry is stored as sent."""
    entry = item(overrideReasons=[{"userComment": "see note"},
                                  {"reason": {"code": "patient-declined", "system": "urn:bone-safety-cds:override-reason"}},
                                  {"reason": {"code": "edentulous"}}])
    assert post_feedback(client, entry).status_code == 200
    row = app.config["FEEDBACK_STORE"].rows()[-1]
    assert row["override_code"] == "patient-declined"
    assert json.loads(row["raw"])["overrideReasons"][2]["reason"]["code"] == "edentulous"


def test_extensions_on_an_entry_or_a_reason_are_accepted_and_kept_as_sent(client, app) -> None:
    """Issue 12 "Epic's extension-based reason shape": no public description of it was found
    (cds_service.feedback.parse_feedback), so whatever an EHR sends in ``extension`` objects is
    accepted and kept in the stored entry; the standard ``reason`` Coding, when present, counts."""
    entry = item(extension={"com.epic.cdshooks.feedback.example": {"reason": "Not applicable"}},
                 overrideReasons=[{"extension": {"com.example.reason": {"code": "x1", "display": "X"}}},
                                  {"reason": {"code": "patient-declined"}, "extension": {"k": [1, 2]}}])
    bare = item(overrideReason={"extension": {"com.example.reason": "free text only"}})
    assert post_feedback(client, entry, bare).get_json() == {"stored": 2, "duplicates": 0}
    rows = app.config["FEEDBACK_STORE"].rows()
    assert [json.loads(r["raw"]) for r in rows] == [entry, bare]
    assert [r["override_code"] for r in rows] == ["patient-declined", None]


@pytest.mark.parametrize("bad,field", [
    ({"overrideReasons": {"reason": {"code": "x"}}}, "feedback[0].overrideReasons"),
    ({"overrideReasons": ["x"]}, "feedback[0].overrideReasons[0]"),
    ({"overrideReasons": [{"reason": {"system": "s"}}]}, "feedback[0].overrideReasons[0].reason"),
])
def test_malformed_plural_override_reasons_are_a_400_naming_the_entry(client, bad, field) -> None:
    r = post_feedback(client, item(**bad))
    assert r.status_code == 400 and r.get_json()["field"] == field
