"""Issue 12 "Feedback under load": the hook path's issued-card records are written by a background
writer (``cds_service.batch_writer``), so a hook answer never waits for the feedback writers'
lock; what is pending stays visible (repeat check, feedback attribution) and is written before
any report read and at exit. Issue 11 task: with plain JWT (no tenants file) the verified
issuer is the tenant label."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from cds_service.app import create_app
from cds_service.batch_writer import BatchWriter
from cds_service.config import Settings
from cds_service.feedback import FeedbackStore, parse_feedback
from cds_service.governance.report import build_report
from tests.factory import DMAB60, NOW, draft, hook_request, patient
from tests.trust_helpers import PUBLIC_BASE, Signer, db, postgres_url, probe_rule  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
OSIGN = "bone-safety-order-sign"


def _card(uuid: str, rule: str = "R", indicator: str = "info") -> dict:
    return {"uuid": uuid, "indicator": indicator, "source": {"topic": {"code": rule}},
            "suggestions": [{"uuid": f"{uuid}-s", "label": "Do it"}]}


class HeldWriter:
    """Holds the store's writer thread inside its write until :meth:`release`."""

    def __init__(self, store: FeedbackStore) -> None:
        self.go, self.entered = threading.Event(), threading.Event()
        writer = store._issued_writer
        real = writer._write

        def held(batch):  # noqa: ANN001, ANN202
            self.entered.set()
            assert self.go.wait(20), "the test never released the writer"
            return real(batch)

        writer._write = held

    def release(self) -> None:
        self.go.set()


def test_pending_cards_are_seen_by_the_repeat_check_once(db) -> None:
    store = FeedbackStore(db)
    held = HeldWriter(store)
    store.record_cards("svc", [_card("c1")], NOW, hook="order-select", patient_key="k", draft_keys=["d"],
                       background=True)
    assert held.entered.wait(10)
    assert store._pending_cards() and len(store._issued_writer.pending()) == 1
    [row] = store.recent_for_patient("k", ["R"], "order-select", NOW - timedelta(hours=1))
    assert (row["card_uuid"], row["draft_keys"], row["outcome"]) == ("c1", "d", None)
    assert store.recent_for_patient("other", ["R"], "order-select", NOW - timedelta(hours=1)) == []
    assert store.recent_for_patient("k", ["R"], "order-sign", NOW - timedelta(hours=1)) == []
    assert store.recent_for_patient("k", ["R"], "order-select", NOW + timedelta(hours=1)) == []
    # feedback sent before the card is written is attributed to its rule
    entry = {"card": "c1", "outcome": "overridden", "outcomeTimestamp": "2026-11-23T15:00:00Z",
             "overrideReason": {"reason": {"code": "x"}}}
    assert store.add("svc", parse_feedback({"feedback": [entry]}), NOW) == 1
    [row] = store.recent_for_patient("k", ["R"], "order-select", NOW - timedelta(hours=1))
    assert row["outcome"] == "overridden"
    held.release()
    assert store.flush(10)
    assert store._pending_cards() == []
    [row] = store.recent_for_patient("k", ["R"], "order-select", NOW - timedelta(hours=1))  # once, not twice
    assert row["card_uuid"] == "c1"
    assert [r["rule_id"] for r in store.rows()] == ["R"]
    assert [s["suggestion_uuid"] for s in store.suggestions()] == ["c1-s"]
    store.close()


def test_report_reads_wait_for_the_pending_cards(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    held = HeldWriter(store)
    store.record_cards("svc", [_card("c1")], NOW, hook="patient-view", background=True)
    assert held.entered.wait(10)
    threading.Timer(0.2, held.release).start()
    assert [r["card_uuid"] for r in store.issued()] == ["c1"]   # waited for the writer
    assert build_report(store, now=NOW + timedelta(hours=1), days=7)["rules"]["R"]["cards_issued"] == 1
    store.close()


def test_a_full_queue_is_written_by_the_caller(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    store._issued_writer.max_pending = 0
    store.record_cards("svc", [_card("c1")], NOW, hook="patient-view", background=True)
    assert store._issued_writer._thread is None         # no writer thread was needed
    with sqlite3.connect(tmp_path / "f.sqlite3") as conn:  # committed before record_cards returned
        assert conn.execute("SELECT card_uuid FROM issued_cards").fetchall() == [("c1",)]
    store.close()


def test_a_failed_background_write_is_logged_and_the_writer_goes_on(tmp_path: Path, caplog) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    writer = store._issued_writer
    real, calls = writer._write, []

    def once_broken(batch):  # noqa: ANN001, ANN202
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real(batch)

    writer._write = once_broken
    store.record_cards("svc", [_card("c1")], NOW, background=True)
    assert store.flush(10)
    store.record_cards("svc", [_card("c2")], NOW, background=True)
    assert [r["card_uuid"] for r in store.issued()] == ["c2"]
    assert "background write failed: 1 items dropped (RuntimeError)" in caplog.text
    store.close()


def test_pending_cards_are_written_at_exit(tmp_path: Path) -> None:
    """A worker's normal exit (atexit) writes what the writer holds; the daemon thread alone
    would be killed with the interpreter."""
    path = tmp_path / "f.sqlite3"
    code = f"""
import time
from datetime import datetime, timezone
from cds_service.feedback import FeedbackStore
store = FeedbackStore({str(path)!r})
writer = store._issued_writer
real = writer._write
writer._write = lambda batch: (time.sleep(0.5), real(batch))
card = {{"uuid": "late", "indicator": "info", "source": {{"topic": {{"code": "R"}}}}}}
store.record_cards("svc", [card], datetime.now(timezone.utc), background=True)
"""
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT card_uuid FROM issued_cards").fetchall() == [("late",)]


def test_bookkeeping_commits_do_not_wait_for_the_disk_feedback_commits_do(tmp_path: Path) -> None:
    """SQLite: issued cards ``synchronous=NORMAL`` (1), feedback ``FULL`` (2), per transaction on
    the same pooled connection."""
    store = FeedbackStore(tmp_path / "f.sqlite3")
    seen = []
    for bookkeeping in (True, False, True, False):
        with store.engine.connect().execution_options(bone_cds_bookkeeping=bookkeeping) as conn, conn.begin():
            seen.append(conn.exec_driver_sql("PRAGMA synchronous").scalar())
    assert seen == [1, 2, 1, 2]
    store.close()


def test_batch_writer_writes_in_order_and_flush_waits_only_for_earlier_items() -> None:
    written: list[int] = []
    gate = threading.Event()

    def write(batch: list[int]) -> None:
        gate.wait(10)
        written.extend(batch)

    writer: BatchWriter[int] = BatchWriter(write, max_pending=3, max_batch=2)
    assert all(writer.submit(i) for i in range(3))
    assert writer.submit(99) is False                   # bounded: the caller writes it itself
    assert writer.flush(0.05) is False                  # the write is held
    gate.set()
    assert writer.flush(10) and written == [0, 1, 2]
    assert writer.pending() == []


# ---- the tenant label with plain JWT ------------------------------------------------------------


def test_plain_jwt_records_the_issuer_as_the_tenant(tmp_path: Path, probe_rule) -> None:
    """No tenants file: the verified token's ``iss`` labels the issued cards and the feedback, and
    the governance report groups by it instead of "(no tenant)"."""
    signer = Signer()
    settings = Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path / "data"), **signer.env()})
    app = create_app(settings, clock=lambda: NOW)
    client = app.test_client()
    path = f"/cds-services/{OSIGN}"
    r = client.post(path, headers=signer.bearer(PUBLIC_BASE + path),
                    json=hook_request("order-sign", [patient()], drafts=[draft(DMAB60)]))
    assert r.status_code == 200
    probe = next(c for c in r.get_json()["cards"] if c["source"]["topic"]["code"] == probe_rule)
    fb_path = path + "/feedback"
    r = client.post(fb_path, headers=signer.bearer(PUBLIC_BASE + fb_path), json={"feedback": [
        {"card": probe["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-23T15:01:00Z"},
        {"card": "never-issued", "outcome": "overridden", "outcomeTimestamp": "2026-11-23T15:01:00Z"}]})
    assert r.status_code == 200, r.get_json()
    store: FeedbackStore = app.config["FEEDBACK_STORE"]
    assert {row["tenant"] for row in store.issued()} == {signer.iss}
    assert {row["tenant"] for row in store.rows()} == {signer.iss}
    report = build_report(store, now=NOW + timedelta(hours=1), days=7)
    assert list(report["rules"][probe_rule]["by_tenant"]) == [signer.iss]
    assert list(report["unknown_card_feedback"]["by_tenant"]) == [signer.iss]
    assert "(no tenant)" not in json.dumps(report)


def test_without_authentication_there_is_no_tenant(tmp_path: Path, probe_rule) -> None:
    from cds_service.governance.record import tenant_of
    assert tenant_of({}) is None
    assert tenant_of({"bone_cds.caller": {"iss": "https://a.example", "tenant": None}}) == "https://a.example"
    assert tenant_of({"bone_cds.caller": {"iss": "https://a.example", "tenant": "north"}}) == "north"
    assert tenant_of({"bone_cds.caller": "garbage"}) is None


@pytest.mark.parametrize("hook", ["order-sign"])
def test_the_hook_answers_while_a_feedback_writer_holds_the_lock(tmp_path: Path, probe_rule, hook) -> None:
    """Issue 12: the hook's bookkeeping is off the feedback writers' lock. Another connection
    holds SQLite's write lock (as a 1,000-item feedback batch does); the hook call still answers,
    and its cards are written once the lock is free. Before, the call waited for the lock."""
    settings = Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path / "data")})
    app = create_app(settings, clock=lambda: NOW)
    client = app.test_client()
    store: FeedbackStore = app.config["FEEDBACK_STORE"]
    store.issued()  # tables exist
    locker = sqlite3.connect(store.path, timeout=1, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    answered: list[int] = []
    body = hook_request("order-sign", [patient()], drafts=[draft(DMAB60)])
    t = threading.Thread(target=lambda: answered.append(client.post(f"/cds-services/{OSIGN}", json=body).status_code))
    t.start()
    t.join(20)        # a bound, not a speed measurement: the write lock is still held
    held = not t.is_alive()
    locker.execute("ROLLBACK")
    locker.close()
    t.join(60)
    assert held and answered == [200], "the hook call waited for the feedback writers' lock"
    assert probe_rule in {r["rule_id"] for r in store.issued()}
