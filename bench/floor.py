"""The floor: the same server answering the same request with ``{"cards": []}`` (issue "Speed").

By default it is *our* Flask app (``create_app``: the same routes, CORS, error handlers and
feedback store) whose hook route only decodes the JSON body (``cds_service.jsonio``) and answers
``{"cards": []}``: what the service adds over its own HTTP stack is then the ratio ours/floor.
``--bare`` serves a WSGI function without Flask instead (the least any Python service under this
gunicorn can do). Run exactly like ``bone-cds serve`` (gunicorn, gthread workers, the same
worker/thread counts, timeouts and logging settings as ``cds_service.cli.cmd_serve``):
``python -m bench.floor --host 127.0.0.1 --port N --workers 2 --threads 4 [--bare]``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable, Iterable, Sequence

_CARDS = b'{"cards":[]}'
_OK = b'{"status":"ok"}'


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    status, body = "200 OK", _OK
    if environ.get("REQUEST_METHOD") == "POST":
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        try:
            json.loads(raw)
            body = _CARDS
        except ValueError:
            status, body = "400 Bad Request", b'{"error":"invalid_json","message":"not JSON"}'
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def flask_app() -> Any:
    """The service's own app with the hook route reduced to: decode the JSON, answer no cards."""
    from flask import request

    from cds_service import jsonio
    from cds_service.api import json_response
    from cds_service.app import create_app
    from cds_service.errors import ApiError

    flask = create_app()

    def floor_call(service_id: str) -> Any:
        try:
            jsonio.loads(request.get_data(cache=False))   # the service's own decoder
        except ValueError:
            raise ApiError(400, "invalid_json", "not JSON") from None
        return json_response({"cards": []})

    flask.view_functions["cds.call_service"] = floor_call
    return flask


def main(argv: Sequence[str] | None = None) -> int:
    from cds_service.cli import gunicorn_server

    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--bare", action="store_true", help="a WSGI function without Flask")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the floor server listens on loopback only")

    # the same gunicorn settings as `bone-cds serve`
    gunicorn_server(app if args.bare else flask_app(), host=args.host, port=args.port,
                    workers=args.workers, threads=args.threads).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
