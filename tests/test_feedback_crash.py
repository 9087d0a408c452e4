"""Feedback acknowledged is feedback kept, even when the server is killed (FB-6, issue "Trust").

The real service runs (``bone-cds serve``: gunicorn, two workers, threads) on a free loopback
port with a temporary data directory. Client threads post a stream of feedback; once a number
of items are acknowledged the whole process group gets SIGKILL — no shutdown, no flush. Every
item that got a 200 must then be in the database. Bounded: at most ``MAX_POSTS`` posts and
``MAX_SECONDS`` of streaming.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from cds_service.feedback import FeedbackStore
from hooks.services import services
from tests.trust_helpers import db, live_server, postgres_url  # noqa: F401 - fixtures

OSIGN = services()[2].id
CLIENTS = 3
MAX_POSTS = 3000
MAX_SECONDS = 8.0
KILL_AFTER_ACKS = 60


def _stream(
    base: str,
    stop: threading.Event,
    acked: list[str],
    failed: list[str],
    lock: threading.Lock,
    budget: list[int],
    client: int,
) -> None:
    """Post batches of 1–3 entries until told to stop or the server is gone."""
    session = requests.Session()
    n = 0
    while not stop.is_set():
        with lock:
            if budget[0] <= 0:
                return
            budget[0] -= 1
        n += 1
        cards = [f"crash-{client}-{n}-{k}-{uuid.uuid4().hex[:6]}" for k in range(1 + n % 3)]
        body = {
            "feedback": [
                {
                    "card": c,
                    "outcome": "overridden",
                    "outcomeTimestamp": "2026-11-23T15:05:00Z",
                    "overrideReason": {"reason": {"code": "crash-test"}},
                }
                for c in cards
            ]
        }
        try:
            r = session.post(f"{base}/cds-services/{OSIGN}/feedback", json=body, timeout=5)
        except requests.RequestException:
            with lock:
                failed.extend(cards)
            return  # the server is gone
        with lock:
            if r.status_code == 200 and r.json() == {"stored": len(cards), "duplicates": 0}:
                acked.extend(cards)
            else:
                failed.extend(cards)


def test_sigkill_mid_stream_loses_no_acknowledged_feedback(tmp_path: Path, db: str) -> None:
    env = {} if not db.startswith("postgresql") else {"BONE_CDS_FEEDBACK_DB": db}
    acked: list[str] = []
    failed: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    budget = [MAX_POSTS]
    with live_server(tmp_path, workers=2, threads=4, env=env) as server:
        threads = [
            threading.Thread(
                target=_stream, args=(server.base, stop, acked, failed, lock, budget, i), daemon=True
            )
            for i in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + MAX_SECONDS
        while time.monotonic() < deadline:
            with lock:
                if len(acked) >= KILL_AFTER_ACKS:
                    break
            time.sleep(0.005)
        with lock:
            acked_at_kill = len(acked)
        server.kill()  # SIGKILL to the process group: master and workers, mid-stream
        killed_at = time.monotonic()
        stop.set()
        for t in threads:
            t.join(10)
        assert not any(t.is_alive() for t in threads)
        log = server.log()
    assert server.proc.returncode is not None and server.proc.returncode < 0, "the server was not killed"
    assert acked_at_kill >= KILL_AFTER_ACKS, f"only {acked_at_kill} acknowledged in {MAX_SECONDS} s:\n{log}"
    assert failed, "no request was cut off: the kill did not happen mid-stream"
    assert time.monotonic() - killed_at < 15

    if db.startswith("postgresql"):
        store = FeedbackStore(db)
        stored = {r["card_uuid"] for r in store.rows()}
        store.close()
    else:
        path = tmp_path / "data" / "feedback.sqlite3"
        conn = sqlite3.connect(path)  # recovers the WAL left by the killed workers
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            stored = {row[0] for row in conn.execute("SELECT card_uuid FROM feedback")}
        finally:
            conn.close()
    lost = sorted(set(acked) - stored)
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged items lost, e.g. {lost[:5]}"
    # Items cut off by the kill may or may not have been committed; nothing else is there.
    assert stored <= set(acked) | set(failed)


@pytest.mark.parametrize("workers", [2])
def test_the_server_restarts_on_the_same_store(tmp_path: Path, workers: int) -> None:
    """After a kill, a new server on the same data directory serves and appends to the store."""
    with live_server(tmp_path, workers=workers) as first:
        body = {
            "feedback": [
                {"card": "before", "outcome": "overridden", "outcomeTimestamp": "2026-11-23T15:05:00Z"}
            ]
        }
        assert (
            requests.post(f"{first.base}/cds-services/{OSIGN}/feedback", json=body, timeout=5).status_code
            == 200
        )
        first.kill()
    with live_server(tmp_path, workers=workers) as second:
        body["feedback"][0]["card"] = "after"
        assert (
            requests.post(f"{second.base}/cds-services/{OSIGN}/feedback", json=body, timeout=5).status_code
            == 200
        )
    rows = FeedbackStore(tmp_path / "data" / "feedback.sqlite3").rows()
    assert [r["card_uuid"] for r in rows] == ["before", "after"]
