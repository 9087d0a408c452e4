"""Structured logs: one JSON object per line (hookInstance, service, rules fired, duration,
prefetch status per key). Never a token, a patient identifier, a name or a birth date: log
calls pass only those fields, and tests grep the captured logs for sentinels."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...event}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        body = {"ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        event = getattr(record, "event", None)
        if isinstance(event, dict):
            body.update(event)
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Send the service's loggers to stderr as JSON lines (idempotent)."""
    root = logging.getLogger("cds_service")
    root.setLevel(level)
    if not any(getattr(h, "_bone_cds", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._bone_cds = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    for name in ("cards", "hooks"):
        logging.getLogger(name).setLevel(level)
