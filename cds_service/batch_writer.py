"""A background writer: items handed over by request threads, written in batches by one thread.

Issue 12 "Feedback under load": a hook call waited up to 21 s for its issued-card rows while two
clients posted feedback batches (one SQLite write lock). The hook path now only appends its rows
here (a list append under a lock held for microseconds) and a thread of the worker writes
whatever has accumulated, one transaction per batch. Until a batch is committed its items stay
visible through :meth:`BatchWriter.pending` (read-your-writes for the repeat check).

Bounded: past ``max_pending`` items :meth:`submit` refuses and the caller writes the item itself
(back-pressure, nothing dropped). :meth:`flush` waits until every item submitted before it is
written; it is called at interpreter exit (``atexit``: a gunicorn worker's normal exit, a test
run's end) and before the reports read the store. A forked child (a gunicorn worker) starts with
an empty writer of its own: the parent keeps what it had pending.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from typing import Callable, Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger("cds_service.batch_writer")

#: Items waiting (queued or being written) before :meth:`BatchWriter.submit` refuses.
DEFAULT_MAX_PENDING = 10_000
#: Items per transaction at most.
DEFAULT_MAX_BATCH = 500
#: Seconds the writer waits after the first item of a batch arrives before it writes: the request
#: that handed the item over sends its answer first (the writer's Python work would otherwise
#: compete with it for the interpreter lock), and items arriving meanwhile share the transaction.
DEFAULT_DELAY = 0.025
#: Seconds the writer thread waits for new items before it ends (a new one starts on demand).
IDLE_EXIT_SECONDS = 2.0
#: Seconds :func:`_flush_all` waits at interpreter exit.
EXIT_FLUSH_SECONDS = 10.0

_writers: "weakref.WeakSet[BatchWriter]" = weakref.WeakSet()


class BatchWriter(Generic[T]):
    """Writes submitted items with ``write(batch)`` on a daemon thread, oldest first.

    ``write`` must not raise for a bad batch it can report itself; an exception it lets through
    is logged (type only) and the batch is dropped, like a failed inline write would be."""

    def __init__(self, write: Callable[[list[T]], None], *, name: str = "bone-cds-writer",
                 max_pending: int = DEFAULT_MAX_PENDING, max_batch: int = DEFAULT_MAX_BATCH,
                 delay: float = DEFAULT_DELAY) -> None:
        self._write = write
        self.delay = delay
        self.name = name
        self.max_pending = max_pending
        self.max_batch = max_batch
        self._reset()
        _writers.add(self)

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._pending: list[T] = []     # oldest first; the head ``_writing`` items are in flight
        self._writing = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self._submitted = 0             # items ever queued
        self._done = 0                  # items ever handed to ``write`` and returned from it

    def submit(self, item: T) -> bool:
        """Queue ``item``; False (nothing queued) when ``max_pending`` items already wait."""
        with self._cond:
            if self._closed or len(self._pending) >= self.max_pending:
                return False
            self._pending.append(item)
            self._submitted += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return True

    def pending(self) -> list[T]:
        """The items submitted and not yet committed, oldest first (a copy)."""
        with self._cond:
            return list(self._pending)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every item submitted before this call is written (items submitted meanwhile
        are not waited for); False when ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            while self._done < target:
                if self._thread is None or not self._thread.is_alive():
                    break   # no writer thread (it died, or the interpreter is exiting): write here
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            if self._done >= target:
                return True
            leftover, self._pending, self._writing = list(self._pending), [], 0
            self._done += len(leftover)
        self._write_logged(leftover)
        return True

    def close(self, timeout: float | None = EXIT_FLUSH_SECONDS) -> None:
        """Flush, then refuse new items (:meth:`submit` returns False: callers write inline)."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending and not self._closed:
                    self._cond.wait(IDLE_EXIT_SECONDS)
                if not self._pending:
                    if self._thread is threading.current_thread():
                        self._thread = None    # idle: end (the next submit starts another)
                    return
            if self.delay > 0 and not self._closed:
                time.sleep(self.delay)
            with self._cond:
                batch = self._pending[: self.max_batch]
                self._writing = len(batch)
            self._write_logged(batch)
            with self._cond:
                del self._pending[: self._writing]
                self._done += self._writing
                self._writing = 0
                self._cond.notify_all()

    def _write_logged(self, batch: list[T]) -> None:
        try:
            self._write(batch)
        except Exception as exc:  # noqa: BLE001 - the writer thread must survive any batch
            log.error("background write failed: %d items dropped (%s)", len(batch), type(exc).__name__)


def _flush_all() -> None:
    for writer in list(_writers):
        writer.flush(EXIT_FLUSH_SECONDS)


def _after_fork_in_child() -> None:
    for writer in list(_writers):
        writer._reset()


atexit.register(_flush_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


__all__ = ["BatchWriter", "DEFAULT_MAX_BATCH", "DEFAULT_MAX_PENDING"]
