"""Feedback batches in a worker's child process (issue 12 "Feedback under load";
cds_service.feedback_process): the same answers and rows as in the request thread (FB-1..FB-6),
a 503 with Retry-After and a new child when the child dies or hangs, no child left behind.

Store tests run on SQLite and, marked ``postgres``, on PostgreSQL when
``BONE_CDS_TEST_POSTGRES_URL`` is set (trust_helpers.db).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from cds_service.app import create_app
from cds_service.cli import gunicorn_server
from cds_service.config import ConfigError, Settings
from cds_service.feedback import MAX_FEEDBACK_ITEMS, feedback_table
from cds_service.feedback_process import CHILD_NICE, FeedbackProcess, ProcessUnavailable
from hooks.services import services
from tests.factory import NOW
from tests.trust_helpers import db, live_server, postgres_url  # noqa: F401 - fixtures

PV, OSEL, OSIGN = (s.id for s in services())
TS = "2026-11-23T15:05:00Z"
URL = f"/cds-services/{OSIGN}/feedback"


def entry(card: str, outcome: str = "overridden", **extra: Any) -> dict[str, Any]:
    return {"card": card, "outcome": outcome, "outcomeTimestamp": TS, **extra}


def batch(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"feedback": list(entries)}).encode()


def _alive(pid: int) -> bool:
    """The process runs (a zombie left to a non-reaping init counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def _wait_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _settings(tmp_path: Path, db: str, mode: str) -> Settings:
    return Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path / "data"), "BONE_CDS_FEEDBACK_DB": db,
                              "BONE_CDS_FEEDBACK_PROCESS": mode})


@pytest.fixture
def process_app(tmp_path: Path) -> Iterator[Any]:
    """An app whose feedback goes through a child process (SQLite file store)."""
    app = create_app(_settings(tmp_path, str(tmp_path / "store" / "feedback.sqlite3"), "on"), clock=lambda: NOW)
    yield app
    app.config["FEEDBACK_PROCESS"].shutdown()


# ---- the same answers, the same rows ---------------------------------------------------------

#: (name, body bytes, tenant): every kind of batch a caller can send, in order (later ones repeat
#: earlier ones: duplicates, partial duplicates, another tenant's copy)
CASES: list[tuple[str, bytes, str | None]] = [
    ("valid", batch(entry("c1"), entry("c2", "accepted", acceptedSuggestions=[{"id": "s1"}]),
                    entry("c3", overrideReason={"reason": {"system": "http://x.org", "code": "r1"},
                                                "userComment": "why"})), None),
    ("epic plural reasons", batch(entry("c4", overrideReasons=[{"userComment": "a"}, {"reason": {"code": "r2"}}],
                                        extension={"x": 1})), None),
    ("duplicate", batch(entry("c1")), None),
    ("partly duplicate", batch(entry("c1"), entry("c5"), entry("c5")), None),
    ("another tenant's copy", batch(entry("c1")), "tenant-b"),
    ("tenant's retry", batch(entry("c1")), "tenant-b"),
    ("bad outcome", batch(entry("c6"), entry("c7", "ignored")), None),
    ("bad timestamp", batch({"card": "c8", "outcome": "overridden", "outcomeTimestamp": "2026-13-01T00:00:00Z"}),
     None),
    ("accepted without suggestions", batch(entry("c9", "accepted", acceptedSuggestions=[])), None),
    ("NUL in a card", batch(entry("c\u0000")), None),
    ("not JSON", b'{"feedback": [', None),
    ("empty body", b"", None),
    ("not an object", b"[1, 2]", None),
    ("empty list", batch(), None),
    ("too deep", b'{"feedback": ' + b"[" * 150 + b"]" * 150 + b"}", None),
    ("over the item limit", batch(*[entry(f"big-{i}") for i in range(MAX_FEEDBACK_ITEMS + 1)]), None),
    ("at the item limit", batch(*[entry(f"lim-{i}") for i in range(MAX_FEEDBACK_ITEMS)]), None),
]


def _answers(client: Any) -> list[tuple[str, int, Any]]:
    out = []
    for name, body, tenant in CASES:
        environ = {"bone_cds.caller": {"tenant": tenant}} if tenant else {}
        r = client.post(URL, data=body, content_type="application/json", environ_base=environ)
        out.append((name, r.status_code, r.get_json()))
    return out


def _rows(store: Any) -> list[tuple[Any, ...]]:
    keep = ("received_at", "service_id", "card_uuid", "rule_id", "outcome", "outcome_timestamp",
            "accepted_suggestions", "override_system", "override_code", "override_comment", "raw",
            "tenant", "dedup_key")
    return [tuple(r[k] for k in keep) for r in store.rows()]


def test_the_child_answers_and_stores_exactly_what_the_request_thread_does(tmp_path: Path, db: str) -> None:
    """Valid, duplicate, invalid (400 naming the entry), oversize (413) and limit-sized batches:
    the same status and JSON body from both paths, and the same rows (tenant, rule, dedup key),
    and the same unknown-card count in the report."""
    results = {}
    for mode in ("off", "on"):
        app = create_app(_settings(tmp_path, db, mode), clock=lambda: NOW)
        store = app.config["FEEDBACK_STORE"]
        child = app.config["FEEDBACK_PROCESS"]
        assert (child is None) == (mode == "off")
        with store.engine.begin() as conn:      # the same empty store for both paths
            conn.execute(feedback_table.delete())
        try:
            answers = _answers(app.test_client())
            if child is not None:
                assert child.pid is not None and child.pid != os.getpid()   # it did run in a child
            results[mode] = (answers, _rows(store), store.report()["unknown_cards"])
        finally:
            if child is not None:
                child.shutdown()
            store.close()
    (thread_answers, thread_rows, thread_unknown), (child_answers, child_rows, child_unknown) = \
        results["off"], results["on"]
    assert child_answers == thread_answers
    assert child_rows == thread_rows
    assert child_unknown == thread_unknown
    # and the answers are the ones callers rely on
    by_name = {name: (status, body) for name, status, body in thread_answers}
    assert by_name["valid"] == (200, {"stored": 3, "duplicates": 0})
    assert by_name["duplicate"] == (200, {"stored": 0, "duplicates": 1})
    assert by_name["partly duplicate"] == (200, {"stored": 1, "duplicates": 2})
    assert by_name["another tenant's copy"] == (200, {"stored": 1, "duplicates": 0})
    assert by_name["tenant's retry"] == (200, {"stored": 0, "duplicates": 1})
    assert by_name["bad outcome"][0] == 400 and by_name["bad outcome"][1]["field"] == "feedback[1].outcome"
    assert by_name["not JSON"][0] == 400 and by_name["not JSON"][1]["error"] == "invalid_json"
    assert by_name["over the item limit"][0] == 413
    assert by_name["over the item limit"][1]["error"] == "too_many_feedback_items"
    assert by_name["at the item limit"] == (200, {"stored": MAX_FEEDBACK_ITEMS, "duplicates": 0})
    assert {r[11] for r in thread_rows} == {None, "tenant-b"}
    assert thread_unknown["feedback"] == len(thread_rows)


def test_a_card_still_in_the_workers_writer_gives_its_rule_to_the_childs_row(process_app: Any,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The child cannot see the worker's uncommitted issued cards: the route hands them over."""
    store = process_app.config["FEEDBACK_STORE"]
    monkeypatch.setattr(store, "pending_rules", lambda: {"pending-card": "RULE-PENDING"})
    r = process_app.test_client().post(URL, data=batch(entry("pending-card"), entry("other-card")),
                                       content_type="application/json")
    assert r.status_code == 200, r.get_json()
    assert {row["card_uuid"]: row["rule_id"] for row in store.rows()} == {
        "pending-card": "RULE-PENDING", "other-card": None}


def test_a_store_failure_in_the_child_is_the_same_503_as_in_the_thread(tmp_path: Path) -> None:
    """The database refuses the batch (its table was dropped behind the service's back): both
    paths answer 503 ``feedback_store_unavailable``, and the log names no request data."""
    answers = {}
    for mode in ("off", "on"):
        app = create_app(_settings(tmp_path / mode, str(tmp_path / mode / "feedback.sqlite3"), mode),
                         clock=lambda: NOW)
        child = app.config["FEEDBACK_PROCESS"]
        try:
            if child is not None:
                child.start()
            with sqlite3.connect(tmp_path / mode / "feedback.sqlite3") as conn:
                conn.execute("DROP TABLE feedback")
            r = app.test_client().post(URL, data=batch(entry("lost")), content_type="application/json")
            answers[mode] = (r.status_code, r.get_json())
        finally:
            if child is not None:
                child.shutdown()
    assert answers["on"] == answers["off"]
    assert answers["on"][0] == 503 and answers["on"][1]["error"] == "feedback_store_unavailable"


def test_an_unexpected_error_in_the_child_is_a_json_500(process_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the child (its class and frames come back, no message) is answered like a bug
    in the route: 500 ``internal_error``."""
    from cds_service.feedback_process import ChildBug

    def failing_run(*_args: Any, **_kw: Any) -> Any:
        raise ChildBug({"exc_type": "builtins.KeyError", "exc_where": ["x.py:1 f"]})

    monkeypatch.setattr(process_app.config["FEEDBACK_PROCESS"], "run", failing_run)
    r = process_app.test_client().post(URL, data=batch(entry("x")), content_type="application/json")
    assert r.status_code == 500
    assert r.get_json() == {"error": "internal_error", "message": "the service failed to process this request"}


def test_a_bug_in_the_child_comes_back_as_its_class_and_the_child_serves_on(tmp_path: Path) -> None:
    from cds_service.feedback_process import ChildBug

    child = FeedbackProcess(str(tmp_path / "feedback.sqlite3"))
    try:
        with pytest.raises(ChildBug) as bug:     # pending_rules must be a mapping: a TypeError there
            child.run(batch(entry("x")), service_id=OSIGN, tenant=None, now=NOW, pending_rules=["x"])
        assert bug.value.summary["exc_type"] == "builtins.TypeError"
        pid = child.pid
        result = child.run(batch(entry("x")), service_id=OSIGN, tenant=None, now=NOW)
        assert (result.items, result.stored, child.pid) == (1, 1, pid)
    finally:
        child.shutdown()


# ---- failures: 503 with Retry-After, then a new child -----------------------------------------


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=1)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_a_child_killed_mid_batch_is_a_503_and_the_next_post_is_stored(process_app: Any, tmp_path: Path) -> None:
    client = process_app.test_client()
    child = process_app.config["FEEDBACK_PROCESS"]
    assert client.post(URL, data=batch(entry("first")), content_type="application/json").status_code == 200
    first_pid = child.pid
    lock = _hold_write_lock(tmp_path / "store" / "feedback.sqlite3")   # the child's batch waits for it
    answer: list[Any] = []
    t = threading.Thread(target=lambda: answer.append(
        client.post(URL, data=batch(entry("cut")), content_type="application/json")))
    t.start()
    time.sleep(0.7)
    assert not answer, "the batch should be waiting for the database lock"
    os.kill(first_pid, signal.SIGKILL)
    t.join(10)
    lock.rollback()
    lock.close()
    r = answer[0]
    assert r.status_code == 503
    assert r.headers["Retry-After"].isdigit()
    assert r.get_json()["error"] == "feedback_process_unavailable"
    assert _wait_gone(first_pid)
    # the next batch gets a new child; the cut one, sent again, is stored once
    r = client.post(URL, data=batch(entry("cut"), entry("after")), content_type="application/json")
    assert r.status_code == 200 and r.get_json() == {"stored": 2, "duplicates": 0}
    assert child.pid not in (None, first_pid)
    cards = [row["card_uuid"] for row in process_app.config["FEEDBACK_STORE"].rows()]
    assert cards == ["first", "cut", "after"]


def test_a_child_killed_while_idle_is_replaced_for_the_next_post(process_app: Any) -> None:
    client = process_app.test_client()
    child = process_app.config["FEEDBACK_PROCESS"]
    assert client.post(URL, data=batch(entry("one")), content_type="application/json").status_code == 200
    old = child.pid
    os.kill(old, signal.SIGKILL)
    assert _wait_gone(old)
    r = client.post(URL, data=batch(entry("two")), content_type="application/json")
    assert r.status_code == 200 and r.get_json() == {"stored": 1, "duplicates": 0}
    assert child.pid not in (None, old)


def test_a_child_that_does_not_answer_in_time_is_killed_and_replaced(process_app: Any, tmp_path: Path) -> None:
    client = process_app.test_client()
    child = process_app.config["FEEDBACK_PROCESS"]
    child.start()
    child.timeout = 1.0
    stuck = child.pid
    lock = _hold_write_lock(tmp_path / "store" / "feedback.sqlite3")   # SQLite waits 30 s for it
    t0 = time.monotonic()
    r = client.post(URL, data=batch(entry("slow")), content_type="application/json")
    waited = time.monotonic() - t0
    lock.rollback()
    lock.close()
    assert r.status_code == 503 and "Retry-After" in r.headers
    assert waited < 10, f"the wait was not bounded: {waited:.1f} s"
    assert _wait_gone(stuck), "the stuck child was not killed"
    child.timeout = 30.0
    r = client.post(URL, data=batch(entry("slow")), content_type="application/json")
    assert r.status_code == 200 and r.get_json() == {"stored": 1, "duplicates": 0}


def test_a_child_that_cannot_open_the_store_is_a_503_not_a_500(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    child = FeedbackProcess(str(blocker / "sub" / "feedback.sqlite3"), timeout=20)
    try:
        with pytest.raises(ProcessUnavailable):
            child.run(batch(entry("x")), service_id=OSIGN, tenant=None, now=NOW)
    finally:
        child.shutdown()


# ---- no child left behind --------------------------------------------------------------------


def test_shutdown_ends_the_child_and_it_runs_niced(process_app: Any) -> None:
    child = process_app.config["FEEDBACK_PROCESS"]
    child.start()
    pid = child.pid
    assert _alive(pid)
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        nice = int(f.read().rsplit(")", 1)[1].split()[16])
    assert nice == os.nice(0) + CHILD_NICE
    child.shutdown()
    assert child.pid is None
    assert not _alive(pid)


def test_the_child_ends_when_its_worker_is_killed(tmp_path: Path) -> None:
    """SIGKILL to the worker (no shutdown, no atexit): the child sees the pipe's end and exits."""
    script = (
        "import os, signal, sys\n"
        "from cds_service.feedback_process import FeedbackProcess\n"
        "if __name__ == '__main__':\n"
        f"    p = FeedbackProcess({str(tmp_path / 'feedback.sqlite3')!r})\n"
        "    p.start()\n"
        "    print(p.pid, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    path = tmp_path / "worker.py"
    path.write_text(script)
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=60, env=env,
                         cwd=root)
    assert out.returncode == -signal.SIGKILL, out.stderr
    pid = int(out.stdout.split()[0])
    assert _wait_gone(pid), "the child outlived its killed worker"


def test_a_worker_that_exits_without_shutdown_ends_its_child_and_does_not_hang(tmp_path: Path) -> None:
    """A normal interpreter exit (no :meth:`shutdown` called): the exit handler closes the pipe
    first, so neither the exit waits for ever nor the child outlives it."""
    script = (
        "from cds_service.feedback_process import FeedbackProcess\n"
        "if __name__ == '__main__':\n"
        f"    p = FeedbackProcess({str(tmp_path / 'feedback.sqlite3')!r})\n"
        "    p.start()\n"
        "    print(p.pid, flush=True)\n"
    )
    path = tmp_path / "worker.py"
    path.write_text(script)
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(root)}, cwd=root)
    assert out.returncode == 0, out.stderr
    assert not _alive(int(out.stdout.split()[0]))


def test_a_stop_signal_to_the_whole_group_lets_the_child_finish_its_batch(process_app: Any,
                                                                          tmp_path: Path) -> None:
    """SIGTERM to the child (a group-wide stop) is ignored: the worker ends it after its requests."""
    child = process_app.config["FEEDBACK_PROCESS"]
    child.start()
    os.kill(child.pid, signal.SIGTERM)
    time.sleep(0.3)
    assert _alive(child.pid)
    r = process_app.test_client().post(URL, data=batch(entry("after-term")), content_type="application/json")
    assert r.status_code == 200 and r.get_json() == {"stored": 1, "duplicates": 0}


# ---- configuration ---------------------------------------------------------------------------


def test_the_setting_is_checked_and_auto_means_on_only_when_served(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="BONE_CDS_FEEDBACK_PROCESS"):
        Settings.from_env({"BONE_CDS_FEEDBACK_PROCESS": "sometimes"})
    file_db = str(tmp_path / "f.sqlite3")
    assert create_app(_settings(tmp_path, file_db, "auto")).config["FEEDBACK_PROCESS"] is None
    served = create_app(_settings(tmp_path, file_db, "auto"), served=True).config["FEEDBACK_PROCESS"]
    assert isinstance(served, FeedbackProcess) and served.pid is None    # nothing started in the master
    assert create_app(_settings(tmp_path, file_db, "off"), served=True).config["FEEDBACK_PROCESS"] is None
    assert create_app(_settings(tmp_path, ":memory:", "auto"), served=True).config["FEEDBACK_PROCESS"] is None
    with pytest.raises(ConfigError, match="in-memory"):
        create_app(_settings(tmp_path, ":memory:", "on"))
    # the gunicorn application starts and ends it in each worker (ASGI lifespan)
    server = gunicorn_server(create_app(_settings(tmp_path, file_db, "auto"), served=True), host="127.0.0.1",
                             port=1, workers=1, threads=1)
    asgi = server.load()
    assert asgi.on_startup is not None and asgi.on_shutdown is not None


# ---- through a real server -------------------------------------------------------------------


def _group(pgid: int) -> set[int]:
    """Running processes of the process group ``pgid``."""
    found = set()
    for entry_ in os.listdir("/proc"):
        if entry_.isdigit():
            try:
                with open(f"/proc/{entry_}/stat", encoding="ascii") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                found.add(int(entry_))
    return found


def _feedback_children(pgid: int) -> set[int]:
    out = set()
    for pid in _group(pgid):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmd:
            out.add(pid)
    return out


def _wait_children(pgid: int, n: int, seconds: float = 30.0) -> set[int]:
    """The feedback children of the group once there are ``n`` (a worker may still be booting)."""
    deadline = time.monotonic() + seconds
    while True:
        found = _feedback_children(pgid)
        if len(found) == n or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_a_served_worker_stores_through_its_child_and_stopping_leaves_no_process(tmp_path: Path) -> None:
    """``bone-cds serve`` (2 workers): batches answered as usual, a 400 still names the entry,
    each worker has a niced child; a worker killed outright takes its child with it; SIGTERM to
    the server leaves no process of its group."""
    with live_server(tmp_path, workers=2, threads=2) as server:
        url = f"{server.base}{URL}"
        r = requests.post(url, data=batch(entry("live-1"), entry("live-2")),
                          headers={"Content-Type": "application/json"}, timeout=30)
        assert r.status_code == 200 and r.json() == {"stored": 2, "duplicates": 0}
        r = requests.post(url, data=batch(entry("live-1")), headers={"Content-Type": "application/json"}, timeout=30)
        assert r.json() == {"stored": 0, "duplicates": 1}
        r = requests.post(url, data=batch(entry("live-3", "maybe")), headers={"Content-Type": "application/json"},
                          timeout=30)
        assert r.status_code == 400 and r.json()["field"] == "feedback[0].outcome"
        pgid = server.proc.pid
        children = _wait_children(pgid, 2)
        assert len(children) == 2, f"one feedback child per worker expected: {children}\n{server.log()}"
        # a worker killed outright: its child ends too (the master starts a new worker and child)
        child = min(children)
        worker = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1])
        os.kill(worker, signal.SIGKILL)
        assert _wait_gone(child), "a feedback child outlived its killed worker"
        renewed = _wait_children(pgid, 2)
        assert len(renewed) == 2 and child not in renewed, f"{renewed}\n{server.log()}"
        r = requests.post(url, data=batch(entry("live-4")), headers={"Content-Type": "application/json"}, timeout=30)
        assert r.json() == {"stored": 1, "duplicates": 0}
        # graceful stop: master, workers and children all end
        os.killpg(pgid, signal.SIGTERM)
        server.proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _group(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _group(pgid), f"processes left after the server stopped: {_group(pgid)}\n{server.log()}"
        log = server.log()
    assert "live-1" not in log and "Traceback" not in log


def test_a_served_batchs_cpu_is_spent_in_the_child_not_in_the_worker() -> None:
    """Where the work goes, not how fast (``python -m bench.feedback_flood --cpu``): with the child,
    most of a 1,000-item batch's CPU is the child's; without it, all of it is the worker's."""
    from bench.feedback_flood import cpu_per_post

    on = cpu_per_post(10, MAX_FEEDBACK_ITEMS, "on")
    assert on["child_ms"] > 3 * on["worker_ms"], on
    off = cpu_per_post(10, MAX_FEEDBACK_ITEMS, "off")
    assert off["child_ms"] == 0 and off["worker_ms"] > on["worker_ms"], (on, off)
