"""The service on an event loop: slow and idle clients cost a coroutine, not a worker thread.

Issue 12 measured that 8 clients dripping headers or a body (2 workers × 4 threads) stopped the
service for everyone. ``bone-cds serve`` therefore runs gunicorn with uvicorn's worker: each
connection is parsed by h11 on the worker's event loop, and the request is handed to the Flask app
(a WSGI app, run in a thread pool by a2wsgi) only once its headers **and whole body** have arrived
(:class:`BufferedWsgi`). A thread is busy only while a complete request is evaluated.

A request that is not valid HTTP/1.1 (a chunk size of ``zz``, a malformed ``Content-Length``)
is refused by the protocol layer with a JSON 400 (:class:`JsonErrorH11Protocol`), like every
other bad input, and nothing of the request reaches the log.

uvicorn times out only idle keep-alive connections *between* requests: a client that opens a
connection and never completes its request head (or body) would hold it for ever. Each request
therefore has :attr:`JsonErrorH11Protocol.read_timeout` seconds (``BONE_CDS_REQUEST_READ_TIMEOUT``)
from the connection's opening, or from its first byte after the previous answer, until its whole
body has arrived; then the connection is closed (with a JSON 408 when part of a request came).
The bound is on the total, not on the gap between bytes: a client dripping a byte every half
second is cut at the limit however steadily it progresses. Time spent evaluating a complete
request does not count.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable

import h11
from a2wsgi import WSGIMiddleware
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn_worker import UvicornWorker

from .config import DEFAULT_REQUEST_READ_TIMEOUT

log = logging.getLogger("cds_service.asgi")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_INVALID_HTTP = json.dumps({
    "error": "invalid_body",
    "message": "the request is not valid HTTP/1.1 (request line, headers or chunked transfer framing)",
}).encode()


def _json_response(status: int, error: str, message: str) -> tuple[dict[str, Any], dict[str, Any]]:
    body = json.dumps({"error": error, "message": message}).encode()
    return ({"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         (b"connection", b"close")]},
            {"type": "http.response.body", "body": body})


#: Feedback POSTs evaluated at once per worker; the others wait on the event loop (issue 12).
FEEDBACK_SLOTS = 1


def is_feedback(scope: Scope) -> bool:
    """A POST to ``/cds-services/<id>/feedback`` (any trailing or doubled slashes)."""
    return scope.get("method") == "POST" and str(scope.get("path", "")).rstrip("/").endswith("/feedback")


async def _run_off_loop(callback: Callable[[], None] | None, what: str) -> None:
    """``callback`` in a thread (it may block); a failure is logged (class only), not raised."""
    if callback is None:
        return
    try:
        await asyncio.get_running_loop().run_in_executor(None, callback)
    except Exception as exc:  # noqa: BLE001 - a worker still serves (or stops) without it
        log.error("worker %s step failed", what, extra={"event": {"exc_type": type(exc).__name__}})


class BufferedWsgi:
    """ASGI app running a WSGI app once the whole request body has arrived.

    The body is read on the event loop up to ``max_body_bytes`` (beyond it: 413 with a JSON body,
    without reading the rest) and handed to the WSGI app with a ``Content-Length``, so a chunked
    upload looks like any other to Flask.

    Feedback under load (issue 12): at most :data:`FEEDBACK_SLOTS` feedback POSTs are in the
    worker's threads at a time; the rest wait here, on the event loop, holding no thread. A flood
    of 1,000-item batches then takes at most one thread of each worker, and hook calls always
    find a thread free instead of queueing behind feedback. That thread only waits: the batch's
    decoding, validation and storing run in the worker's feedback child
    (:mod:`cds_service.feedback_process`, started and ended by ``on_startup``/``on_shutdown``)."""

    def __init__(self, wsgi_app: Any, *, max_body_bytes: int, threads: int,
                 feedback_slots: int = FEEDBACK_SLOTS, on_startup: Callable[[], None] | None = None,
                 on_shutdown: Callable[[], None] | None = None) -> None:
        self.max_body_bytes = max_body_bytes
        #: run in each worker when it starts and stops (ASGI lifespan), off the event loop
        self.on_startup, self.on_shutdown = on_startup, on_shutdown
        self.inner = WSGIMiddleware(wsgi_app, workers=max(1, threads))
        self.feedback_slots = max(1, feedback_slots)
        self._feedback_gate: asyncio.Semaphore | None = None   # made on the worker's event loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await _run_off_loop(self.on_startup, "startup")
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await _run_off_loop(self.on_shutdown, "shutdown")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return                      # the client left before its request was complete
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                start, end = _json_response(413, "body_too_large",
                                            f"the request body exceeds the limit of {self.max_body_bytes} bytes")
                await send(start)
                await send(end)
                return
            if not message.get("more_body", False):
                break
        headers = [(k, v) for k, v in scope.get("headers", [])
                   if k.lower() not in (b"content-length", b"transfer-encoding")]
        if body or scope.get("method") not in ("GET", "HEAD", "OPTIONS"):
            headers.append((b"content-length", str(len(body)).encode()))
        delivered = False

        async def replay() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        if not is_feedback(scope):
            await self.inner({**scope, "headers": headers}, replay, send)
            return
        if self._feedback_gate is None:
            self._feedback_gate = asyncio.Semaphore(self.feedback_slots)
        async with self._feedback_gate:
            await self.inner({**scope, "headers": headers}, replay, send)


_COMPLETE = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)


class JsonErrorH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, answering malformed HTTP with our JSON 400 instead of plain text,
    and closing a connection whose request has not fully arrived within :attr:`read_timeout`."""

    #: seconds from a request's start (connection opened, or first byte after an answer) to its
    #: last body byte; a subclass per server sets it (:func:`service_worker`)
    read_timeout: float = DEFAULT_REQUEST_READ_TIMEOUT
    _read_timer: asyncio.TimerHandle | None = None
    _request_begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_read_clock(begun=False)

    def data_received(self, data: bytes) -> None:
        if self._read_timer is None and self.conn.their_state is h11.IDLE:
            self._start_read_clock(begun=True)     # the first byte of the next request
        elif data:
            self._request_begun = True
        super().data_received(data)
        self._stop_read_clock_if_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # the next request's bytes may already be buffered (pipelining): its clock starts now
        if not self.transport.is_closing() and self._read_timer is None and (
                self.conn.their_state is h11.SEND_BODY or self.conn.trailing_data[0]):
            self._start_read_clock(begun=True)
        self._stop_read_clock_if_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_clock()
        super().connection_lost(exc)

    def _start_read_clock(self, *, begun: bool) -> None:
        self._cancel_read_clock()
        self._request_begun = begun
        self._read_timer = self.loop.call_later(self.read_timeout, self._read_timed_out)

    def _cancel_read_clock(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _stop_read_clock_if_complete(self) -> None:
        if self.conn.their_state in _COMPLETE or self.transport.is_closing():
            self._cancel_read_clock()

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing() or self.conn.their_state in _COMPLETE:
            return
        log.info("connection closed: no complete request within the read timeout",
                 extra={"event": {"read_timeout_s": self.read_timeout, "partial_request": self._request_begun}})
        if self._request_begun:
            # written past h11 (it cannot answer a request whose head never came); nothing echoed
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()

    def send_400_response(self, msg: str) -> None:  # noqa: ARG002 - the message is uvicorn's own
        headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
                   (b"content-length", str(len(_INVALID_HTTP)).encode())]
        try:
            self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
            self.transport.write(self.conn.send(h11.Data(data=_INVALID_HTTP)))
            self.transport.write(self.conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:
            pass                            # a response had already begun: just close
        self.transport.close()


def _request_timeout_response() -> bytes:
    body = json.dumps({"error": "request_timeout",
                       "message": "the request did not arrive in time (headers and body within "
                                  "BONE_CDS_REQUEST_READ_TIMEOUT seconds)"}).encode()
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


_REQUEST_TIMEOUT = _request_timeout_response()


class ServiceWorker(UvicornWorker):
    """gunicorn worker: uvicorn's event loop with the h11 protocol above, no access log."""

    CONFIG_KWARGS = {"loop": "asyncio", "http": JsonErrorH11Protocol, "access_log": False,
                     "server_header": False}


def service_worker(read_timeout: float = DEFAULT_REQUEST_READ_TIMEOUT) -> type[ServiceWorker]:
    """The worker class for one server: :class:`ServiceWorker` whose protocol closes
    connections after ``read_timeout`` seconds without a complete request (gunicorn takes a
    class for ``worker_class``; the forked workers inherit it)."""
    protocol = type("JsonErrorH11Protocol", (JsonErrorH11Protocol,), {"read_timeout": float(read_timeout)})
    return type("ServiceWorker", (ServiceWorker,),
                {"CONFIG_KWARGS": {**ServiceWorker.CONFIG_KWARGS, "http": protocol}})
