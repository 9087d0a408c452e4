"""The service on an event loop: slow and idle clients cost a coroutine, not a worker thread.

Issue 12 measured that 8 clients dripping headers or a body (2 workers × 4 threads) stopped the
service for everyone. ``bone-cds serve`` therefore runs gunicorn with uvicorn's worker: each
connection is parsed by h11 on the worker's event loop, and the request is handed to the Flask app
(a WSGI app, run in a thread pool by a2wsgi) only once its headers **and whole body** have arrived
(:class:`BufferedWsgi`). A thread is busy only while a complete request is evaluated.

A request that is not valid HTTP/1.1 (a chunk size of ``zz``, a malformed ``Content-Length``)
is refused by the protocol layer with a JSON 400 (:class:`JsonErrorH11Protocol`), like every
other bad input, and nothing of the request reaches the log.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

import h11
from a2wsgi import WSGIMiddleware
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn_worker import UvicornWorker

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


class BufferedWsgi:
    """ASGI app running a WSGI app once the whole request body has arrived.

    The body is read on the event loop up to ``max_body_bytes`` (beyond it: 413 with a JSON body,
    without reading the rest) and handed to the WSGI app with a ``Content-Length``, so a chunked
    upload looks like any other to Flask."""

    def __init__(self, wsgi_app: Any, *, max_body_bytes: int, threads: int) -> None:
        self.max_body_bytes = max_body_bytes
        self.inner = WSGIMiddleware(wsgi_app, workers=max(1, threads))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
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

        await self.inner({**scope, "headers": headers}, replay, send)


class JsonErrorH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, answering malformed HTTP with our JSON 400 instead of plain text."""

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


class ServiceWorker(UvicornWorker):
    """gunicorn worker: uvicorn's event loop with the h11 protocol above, no access log."""

    CONFIG_KWARGS = {"loop": "asyncio", "http": JsonErrorH11Protocol, "access_log": False,
                     "server_header": False}
