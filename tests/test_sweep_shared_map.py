"""The local engine's work sharing (``sweep.local.shared_map``): the main process is one of the
``--workers`` and the pool's children are handed their next task as they finish one (issue 15).

A thread pool stands in for the process pool here (the same ``submit``/future interface); the
process pool itself is exercised by the engine tests (``test_sweep_worklist.py``)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sweep.local import shared_map


def _who(task: int) -> tuple[int, str]:
    if threading.current_thread() is threading.main_thread():
        time.sleep(0.02)   # this process is slow: the child must not wait for it between tasks
        return task, "main"
    return task, "child"


def test_every_task_runs_once_in_this_process_or_a_child() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        results = list(shared_map(_who, list(range(12)), pool, children=1))
    assert sorted(t for t, _ in results) == list(range(12))
    by = {who for _, who in results}
    assert by == {"main", "child"}   # both took tasks


def test_a_child_is_fed_while_this_process_is_busy() -> None:
    """The main process sleeps 20 ms a task; the child takes ~0 ms: it must have taken far more
    than one task per main-process task (it is fed from its own results, not between them)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        results = list(shared_map(_who, list(range(40)), pool, children=1))
    child = sum(1 for _, who in results if who == "child")
    main = len(results) - child
    assert child > 2 * main


def _boom(task: int) -> int:
    if task == 0 and threading.current_thread() is not threading.main_thread():
        raise ValueError("a child's task failed")
    time.sleep(0.005)
    return task


def test_a_failed_child_task_is_raised_and_nothing_more_is_handed_out() -> None:
    ran: list[int] = []

    def task(n: int) -> int:
        ran.append(n)
        return _boom(n)
    with ThreadPoolExecutor(max_workers=1) as pool:
        with pytest.raises(ValueError, match="a child's task failed"):
            list(shared_map(task, list(range(50)), pool, children=1))
    assert len(ran) < 50


def test_no_tasks() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert list(shared_map(_who, [], pool, children=1)) == []
