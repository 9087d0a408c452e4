"""Feedback batches decoded, validated and stored in a low-priority child process (issue 12).

Measured (``python -m bench.feedback_flood``): a 1,000-item batch is about 34 ms of Python
(JSON decode, :func:`~cds_service.feedback.parse_feedback` ~11 ms, :meth:`FeedbackStore.add`
~16 ms). In the worker that also answers hook calls it holds the interpreter lock for most of
that, and a hook call evaluated meanwhile waits for it: the flood's hook p95 was 1.3-3.4x idle.

So each worker hands a feedback batch, as the raw body bytes with the caller's service id and
tenant, to one child process of its own (:class:`FeedbackProcess`), started with the ``spawn``
method (a fresh interpreter: nothing of the worker's threads, locks or database connections is
inherited), niced (``os.nice(10)``: below the hook work on a busy machine) and holding its own
:class:`~cds_service.feedback.FeedbackStore` on the same database. The child runs exactly what
the route runs in-thread (:func:`take_batch`), so the answers are the same; the request thread
waits on a pipe, without the interpreter lock. The answer (200) is sent only after the child
has committed the batch.

When the child dies, or does not answer within ``timeout`` seconds (it is then killed), the
request is answered 503 with ``Retry-After`` and the next batch gets a new child: a batch
whose fate is unknown may have been committed, and sending it again is safe (duplicates are
recognised, :func:`~cds_service.feedback.dedup_key`). The child ends when its worker closes the
pipe (:meth:`FeedbackProcess.shutdown`, or the worker's death: the pipe's end of file), so no
child outlives its worker.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import multiprocessing.util  # noqa: F401 - registers its exit handler before ours (see the end)
import os
import signal
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from .errors import ApiError
from .feedback import FeedbackStore, FeedbackStoreError, parse_feedback
from .json_body import decode_json_body

log = logging.getLogger("cds_service.feedback_process")

#: Seconds a batch may take in the child (queueing behind another batch of the same worker
#: included) before the child is killed and the request answered 503: SQLite's busy timeout
#: (30 s, a writer waiting for another's lock) and some margin.
DEFAULT_TIMEOUT = 45.0
#: ``os.nice`` increment of the child: the hook work in the worker comes first.
CHILD_NICE = 10
#: ``Retry-After`` (seconds) of the 503 answered when the child failed.
RETRY_AFTER_SECONDS = 5
#: Seconds :meth:`FeedbackProcess.start` waits for the child to open its store (a worker's
#: startup: within gunicorn's 30 s worker timeout; past it the child is killed and the first
#: batch starts another).
START_TIMEOUT = 20.0
#: Seconds :meth:`FeedbackProcess.shutdown` waits for the child to finish its batch and exit.
SHUTDOWN_TIMEOUT = 10.0


@dataclass(frozen=True)
class BatchResult:
    """A stored batch: ``items`` in it, ``stored`` new (the others were already stored)."""

    items: int
    stored: int

    @property
    def duplicates(self) -> int:
        return self.items - self.stored


class BatchNotStored(Exception):
    """The store refused the batch (database down, locked, full): nothing of it was kept."""

    def __init__(self, items: int, error: FeedbackStoreError) -> None:
        super().__init__(str(error))
        self.items, self.error = items, error


class ProcessUnavailable(Exception):
    """The child died or did not answer in time; the batch may or may not have been stored."""


class ChildBug(Exception):
    """The child raised an unexpected exception; ``summary``: its class and frames (no message)."""

    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__(summary.get("exc_type", "error"))
        self.summary = summary


def take_batch(store: FeedbackStore, raw: bytes, service_id: str, tenant: str | None,
               now: datetime | None, pending_rules: dict[str, str] | None = None) -> BatchResult:
    """Decode, validate and store one feedback body: what the route does with a batch, in its
    thread or in the child. Raises ApiError (4xx naming the problem) or BatchNotStored."""
    items = parse_feedback(decode_json_body(raw))
    try:
        stored = store.add(service_id, items, now, tenant=tenant, pending_rules=pending_rules)
    except FeedbackStoreError as exc:
        raise BatchNotStored(len(items), exc) from None
    return BatchResult(len(items), stored)


# ---- the child --------------------------------------------------------------------------------


def _child_main(conn: Connection, store_url: str, log_level: str, nice: int) -> None:
    """The child's loop: one batch in, one tagged answer out, until the pipe closes."""
    # Ctrl-C or a stop signal sent to the whole group (a terminal, dumb-init, ``kill -- -PGID``):
    # the worker decides. It finishes its requests, this batch included, then closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.nice(nice)
    except OSError:
        pass
    from .logs import configure_logging, exception_summary
    configure_logging(log_level)
    try:
        store = FeedbackStore(store_url)
    except FeedbackStoreError as exc:
        conn.send(("fatal", str(exc)))
        return
    conn.send(("ready", os.getpid()))
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return                  # the worker closed the pipe or died
            if message is None:
                return
            raw, service_id, tenant, now, pending = message
            try:
                r = take_batch(store, raw, service_id, tenant, now, pending)
                reply: tuple[Any, ...] = ("ok", r.items, r.stored)
            except ApiError as exc:
                reply = ("client", exc.status, exc.code, exc.message, exc.extra)
            except BatchNotStored as exc:
                reply = ("store", exc.items, str(exc.error))
            except Exception as exc:  # noqa: BLE001 - answered 500 by the worker, like in-thread
                reply = ("bug", exception_summary(exc))
            conn.send(reply)
    finally:
        store.close()


class _Child:
    """One running child: its process and the worker's end of the pipe."""

    def __init__(self, process: Any, conn: Connection) -> None:
        self.process, self.conn = process, conn
        self.ready = False
        self.pid: int | None = None

    def stop(self, timeout: float) -> None:
        """Close the pipe (the child ends after its batch), then kill it if it has not."""
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.conn.close()
        self.process.join(timeout)
        if self.process.is_alive():
            self.kill()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.conn.close()


_instances: "weakref.WeakSet[FeedbackProcess]" = weakref.WeakSet()


class FeedbackProcess:
    """A worker's feedback child (module docstring): :meth:`run` one batch at a time.

    Started on first use or by :meth:`start` (a worker's startup); thread-safe (batches of
    several threads wait their turn, within ``timeout``); a forked copy (a gunicorn worker
    forked from a master that had one) starts a child of its own."""

    def __init__(self, store_url: str, *, log_level: str = "INFO", timeout: float = DEFAULT_TIMEOUT,
                 nice: int = CHILD_NICE) -> None:
        self._store_url = store_url          # may hold a password: never logged
        self.log_level, self.timeout, self.nice = log_level, timeout, nice
        self._lock = threading.Lock()
        self._child: _Child | None = None
        self._context = multiprocessing.get_context("spawn")
        _instances.add(self)

    def __repr__(self) -> str:
        return f"FeedbackProcess(pid={self.pid})"

    @property
    def pid(self) -> int | None:
        """The running child's process id (None before it started or after it ended)."""
        child = self._child
        return child.process.pid if child is not None else None

    def start(self) -> None:
        """Start the child now and wait until it has opened its store (a worker's startup: its
        first batch then waits for nothing, and the child's imports are done before the worker
        serves hook calls). A failure is logged; the next batch tries again."""
        with self._lock:
            try:
                self._ready_child(time.monotonic() + min(self.timeout, START_TIMEOUT))
            except ProcessUnavailable:
                pass

    def run(self, raw: bytes, *, service_id: str, tenant: str | None, now: datetime | None,
            pending_rules: dict[str, str] | None = None) -> BatchResult:
        """:func:`take_batch` in the child. Raises ApiError, BatchNotStored (as in-thread),
        ProcessUnavailable (the child died or timed out: replaced for the next batch) or
        ChildBug."""
        deadline = time.monotonic() + self.timeout
        if not self._lock.acquire(timeout=self.timeout):
            raise ProcessUnavailable("the feedback process is busy with other batches")
        try:
            message = (raw, service_id, tenant, now, pending_rules)
            child = self._ready_child(deadline)
            try:
                child.conn.send(message)
            except (OSError, ValueError):
                # it died while idle: the batch was not received, a new child takes it
                self._discard()
                child = self._ready_child(deadline)
                try:
                    child.conn.send(message)
                except (OSError, ValueError):
                    self._discard()
                    raise ProcessUnavailable("the feedback process ended before it took the batch") from None
            reply = self._receive(child, deadline, "a batch")
        finally:
            self._lock.release()
        return _answer(reply)

    def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """End the child (after the batch it is on); kill it after ``timeout`` seconds."""
        if not self._lock.acquire(timeout=timeout):
            log.warning("feedback process busy at shutdown: killed")
            child, self._child = self._child, None
            if child is not None:
                child.kill()
            return
        try:
            child, self._child = self._child, None
            if child is not None:
                child.stop(timeout)
        finally:
            self._lock.release()

    # ---- under the lock ----

    def _spawn(self) -> _Child:
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(target=_child_main, name="bone-cds-feedback",
                                        args=(theirs, self._store_url, self.log_level, self.nice),
                                        daemon=True)
        try:
            process.start()
        except (OSError, RuntimeError) as exc:   # no process left, or a main module re-running
            ours.close()
            theirs.close()
            log.error("feedback process could not be started", extra={"event": {"exc_type": type(exc).__name__}})
            raise ProcessUnavailable("the feedback process could not be started") from None
        theirs.close()     # the child holds the only other end: the worker's death is its EOF
        self._child = _Child(process, ours)
        return self._child

    def _discard(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.kill()

    def _ready_child(self, deadline: float) -> _Child:
        child = self._child
        if child is None or not child.process.is_alive():
            if child is not None:
                log.warning("feedback process had ended: a new one is started",
                            extra={"event": {"exitcode": child.process.exitcode}})
                self._discard()
            child = self._spawn()
        if not child.ready:
            tag, *rest = self._receive(child, deadline, "its start")
            if tag != "ready":
                self._discard()
                log.error("feedback process could not open the store", extra={"event": {"error": rest[0]}})
                raise ProcessUnavailable("the feedback process could not open the feedback store")
            child.ready, child.pid = True, rest[0]
        return child

    def _receive(self, child: _Child, deadline: float, what: str) -> tuple[Any, ...]:
        """The child's next message, or ProcessUnavailable (child killed and dropped)."""
        remaining = max(0.0, deadline - time.monotonic())
        try:
            if child.conn.poll(remaining):
                return child.conn.recv()
        except (EOFError, OSError):
            self._discard()
            log.error("feedback process died", extra={"event": {"during": what,
                                                                 "exitcode": child.process.exitcode}})
            raise ProcessUnavailable("the feedback process ended before it answered") from None
        self._discard()
        log.error("feedback process did not answer in time: killed",
                  extra={"event": {"during": what, "timeout_s": self.timeout}})
        raise ProcessUnavailable(f"the feedback process did not answer within {self.timeout:g} s")

    def _after_fork(self) -> None:
        """In a forked process: the parent's child and lock are not ours."""
        child, self._child = self._child, None
        if child is not None:
            child.conn.close()   # this copy of the pipe only: the child must see its worker's EOF
        self._lock = threading.Lock()


def _answer(reply: tuple[Any, ...]) -> BatchResult:
    """The child's tagged reply as the in-thread path's result or exception."""
    tag = reply[0]
    if tag == "ok":
        return BatchResult(reply[1], reply[2])
    if tag == "client":
        _, status, code, message, extra = reply
        raise ApiError(status, code, message, **extra)
    if tag == "store":
        raise BatchNotStored(reply[1], FeedbackStoreError(reply[2]))
    raise ChildBug(reply[1] if tag == "bug" else {"exc_type": f"unexpected reply {tag!r}"})


def _forget_after_fork() -> None:
    for instance in list(_instances):
        instance._after_fork()


def _shutdown_all() -> None:
    for instance in list(_instances):
        instance.shutdown(timeout=SHUTDOWN_TIMEOUT / 2)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
# Registered after multiprocessing's own exit handler (imported above), so run before it: that
# one joins the children without a timeout, and a child ends only once its pipe is closed here.
atexit.register(_shutdown_all)
