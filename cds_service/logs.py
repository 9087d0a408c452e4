"""Structured logs: one JSON object per line on stderr.

A hook call logs one line with hookInstance, service, rules fired, duration and prefetch status
per key (``cds_service.api``). Never a token (JWT or FHIR access token), a patient identifier, a
name or a birth date (checklist REQ-6, SEC-10): log calls pass only such fields, exceptions are
logged by type and stack frames without their message (:func:`exception_summary`, a message may
quote request data), and tests/test_trust_logs.py drives every route with sentinel values and
greps every captured line for them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from datetime import datetime, timezone
from typing import Any

#: Loggers that get the JSON handler (the service, the rules, the hooks).
SERVICE_LOGGERS = ("cds_service", "cards", "hooks")
#: Libraries that log request URLs (which carry patient ids) or SQL at DEBUG/INFO: their floor.
QUIET_LIBRARIES = {"urllib3": logging.INFO, "requests": logging.INFO, "sqlalchemy": logging.WARNING}
_MAX_FRAMES = 12


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...event}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        event = getattr(record, "event", None)
        if isinstance(event, dict):
            body.update(event)
        if record.exc_info and record.exc_info[1] is not None:
            body.update(exception_summary(record.exc_info[1]))
        return json.dumps(body, default=str)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (not at start-up), so a
    redirected stderr (pytest's capsys, a daemon's re-opened stream) gets the lines."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def exception_summary(exc: BaseException) -> dict[str, Any]:
    """``{"exc_type", "exc_where"}``: the exception class and its innermost stack frames
    (file:line function), without the message, which may quote request data."""
    frames = traceback.extract_tb(exc.__traceback__)[-_MAX_FRAMES:] if exc.__traceback__ else []
    where = [f"{os.path.basename(f.filename)}:{f.lineno} {f.name}" for f in frames]
    return {"exc_type": f"{type(exc).__module__}.{type(exc).__qualname__}", "exc_where": where}


class RequestDataFilter(logging.Filter):
    """Keeps request bytes out of gunicorn's own warnings (issue 12): gunicorn logs
    ``Invalid request from ip=…: <parser error>`` where the error quotes the request line,
    headers or body bytes (``Invalid chunk size: b'zz…'``). The error text is replaced by its
    kind; nothing the caller sent reaches the log."""

    PREFIX = "Invalid request from ip="

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is passed on as is
            return True
        if message.startswith(self.PREFIX):
            head, _, error = message.partition(": ")
            kind = error.split(":", 1)[0].split("'", 1)[0].split('"', 1)[0].strip()[:40] or "malformed request"
            record.msg, record.args = f"{head}: {kind} (request data withheld)", ()
        return True


def configure_logging(level: str = "INFO") -> None:
    """Send the service's loggers to stderr as JSON lines (idempotent)."""
    for name in SERVICE_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(getattr(h, "_bone_cds", False) for h in logger.handlers):
            handler = _StderrHandler()
            handler.setFormatter(JsonFormatter())
            handler._bone_cds = True  # type: ignore[attr-defined]
            logger.addHandler(handler)
    gunicorn_log = logging.getLogger("gunicorn.error")
    if not any(isinstance(f, RequestDataFilter) for f in gunicorn_log.filters):
        gunicorn_log.addFilter(RequestDataFilter())
    for name, floor in QUIET_LIBRARIES.items():
        library = logging.getLogger(name)
        if library.level < floor:  # NOTSET included: a DEBUG root must not reach them
            library.setLevel(floor)
