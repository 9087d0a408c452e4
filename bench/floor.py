"""The floor: the least a CDS service under the same gunicorn can do with the same request.

A bare WSGI app (no Flask) that reads the body, decodes the JSON and answers ``{"cards": []}``;
``GET /healthz`` answers 200 for the readiness probe. Run exactly like ``bone-cds serve``
(gunicorn, gthread workers, the same worker/thread counts, timeouts and logging settings as
``cds_service.cli.cmd_serve``) so that the ratio ours/floor isolates what the service adds:
``python -m bench.floor --host 127.0.0.1 --port N --workers 2 --threads 4``.
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


def main(argv: Sequence[str] | None = None) -> int:
    from cds_service.cli import gunicorn_server

    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the floor server listens on loopback only")

    # the same gunicorn settings as `bone-cds serve`
    gunicorn_server(app, host=args.host, port=args.port, workers=args.workers, threads=args.threads).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
