"""Card feedback (checklist FB-1..FB-6): validated, stored durably before the 200 is sent.

SQLite in WAL mode with ``synchronous=FULL`` (a committed row survives a crash or power loss).
Cards issued by the hooks are recorded too (uuid → rule id), so feedback can be attributed to a
rule and the feedback report can count cards shown per rule.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from .errors import ApiError

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    service_id TEXT NOT NULL,
    card_uuid TEXT NOT NULL,
    rule_id TEXT,
    outcome TEXT NOT NULL,
    outcome_timestamp TEXT NOT NULL,
    accepted_suggestions TEXT,
    override_system TEXT,
    override_code TEXT,
    override_comment TEXT,
    raw TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_rule ON feedback(rule_id, received_at);
CREATE TABLE IF NOT EXISTS issued_cards (
    card_uuid TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL,
    service_id TEXT NOT NULL,
    indicator TEXT NOT NULL,
    issued_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS issued_rule ON issued_cards(rule_id, issued_at);
"""


@dataclass(frozen=True)
class FeedbackItem:
    """One validated feedback entry (FB-3, FB-4)."""

    card: str
    outcome: str
    outcome_timestamp: str
    accepted_suggestions: tuple[str, ...]
    override_system: str | None
    override_code: str | None
    override_comment: str | None
    raw: dict[str, Any]


def parse_feedback(body: Any) -> list[FeedbackItem]:
    """Validate a feedback body ``{"feedback": [...]}``; ApiError 400 naming the entry and field."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the feedback body must be a JSON object")
    entries = body.get("feedback")
    if not isinstance(entries, list) or not entries:
        raise ApiError(400, "missing_field", "'feedback' must be a non-empty list", field="feedback")
    items = []
    for i, e in enumerate(entries):
        where = f"feedback[{i}]"
        if not isinstance(e, dict):
            raise ApiError(400, "invalid_field", f"'{where}' must be an object", field=where)
        card = e.get("card")
        if not isinstance(card, str) or not card:
            raise ApiError(400, "missing_field", f"'{where}.card' (the card uuid) is required", field=f"{where}.card")
        outcome = e.get("outcome")
        if outcome not in ("accepted", "overridden"):
            raise ApiError(400, "invalid_field", f"'{where}.outcome' must be 'accepted' or 'overridden'",
                           field=f"{where}.outcome")
        ts = e.get("outcomeTimestamp")
        if not isinstance(ts, str) or not _RFC3339.match(ts):
            raise ApiError(400, "invalid_field",
                           f"'{where}.outcomeTimestamp' must be an RFC 3339 date-time", field=f"{where}.outcomeTimestamp")
        accepted: list[str] = []
        sugg = e.get("acceptedSuggestions")
        if outcome == "accepted":
            if not isinstance(sugg, list) or not sugg:
                raise ApiError(400, "missing_field",
                               f"'{where}.acceptedSuggestions' is required when outcome is 'accepted'",
                               field=f"{where}.acceptedSuggestions")
        if sugg is not None:
            if not isinstance(sugg, list) or not all(isinstance(s, dict) and isinstance(s.get("id"), str) for s in sugg):
                raise ApiError(400, "invalid_field", f"'{where}.acceptedSuggestions' must be a list of {{\"id\": uuid}}",
                               field=f"{where}.acceptedSuggestions")
            accepted = [s["id"] for s in sugg]
        system = code = comment = None
        reason = e.get("overrideReason")
        if reason is not None:
            if not isinstance(reason, dict):
                raise ApiError(400, "invalid_field", f"'{where}.overrideReason' must be an object",
                               field=f"{where}.overrideReason")
            coding = reason.get("reason")
            if coding is not None:
                if not isinstance(coding, dict) or not isinstance(coding.get("code"), str):
                    raise ApiError(400, "invalid_field", f"'{where}.overrideReason.reason' must be a Coding with a code",
                                   field=f"{where}.overrideReason.reason")
                code = coding["code"]
                system = coding.get("system") if isinstance(coding.get("system"), str) else None
            if reason.get("userComment") is not None:
                if not isinstance(reason["userComment"], str):
                    raise ApiError(400, "invalid_field", f"'{where}.overrideReason.userComment' must be a string",
                                   field=f"{where}.overrideReason.userComment")
                comment = reason["userComment"]
        items.append(FeedbackItem(card, outcome, ts, tuple(accepted), system, code, comment, e))
    return items


class FeedbackStore:
    """SQLite store, one connection per thread; every write is committed before returning."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as conn:
            conn.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=10000")
            self._local.conn = conn
        return conn

    def record_cards(self, service_id: str, cards: Iterable[dict[str, Any]], now: datetime | None = None) -> None:
        """Remember which rule each issued card came from (for attribution and "cards shown")."""
        issued_at = (now or datetime.now(timezone.utc)).isoformat()
        rows = [(c["uuid"], c["source"]["topic"]["code"], service_id, c["indicator"], issued_at)
                for c in cards if c.get("uuid") and c.get("source", {}).get("topic")]
        if not rows:
            return
        conn = self._connect()
        with conn:
            conn.execute("BEGIN")
            conn.executemany("INSERT OR IGNORE INTO issued_cards VALUES (?, ?, ?, ?, ?)", rows)

    def add(self, service_id: str, items: list[FeedbackItem], now: datetime | None = None) -> int:
        """Store every item in one transaction (all or nothing); returns the count stored."""
        received = (now or datetime.now(timezone.utc)).isoformat()
        conn = self._connect()
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            for it in items:
                row = conn.execute("SELECT rule_id FROM issued_cards WHERE card_uuid = ?", (it.card,)).fetchone()
                conn.execute(
                    "INSERT INTO feedback (received_at, service_id, card_uuid, rule_id, outcome, "
                    "outcome_timestamp, accepted_suggestions, override_system, override_code, "
                    "override_comment, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (received, service_id, it.card, row[0] if row else None, it.outcome,
                     it.outcome_timestamp, json.dumps(list(it.accepted_suggestions)),
                     it.override_system, it.override_code, it.override_comment,
                     json.dumps(it.raw, separators=(",", ":"))))
        return len(items)

    def rows(self) -> list[sqlite3.Row]:
        conn = self._connect()
        conn.row_factory = sqlite3.Row
        try:
            return list(conn.execute("SELECT * FROM feedback ORDER BY id"))
        finally:
            conn.row_factory = None

    def report(self, since: str | None = None) -> list[dict[str, Any]]:
        """Per rule: cards shown, accepted, overridden, top override reasons (alert-fatigue review)."""
        conn = self._connect()
        since = since or "0000"
        shown = dict(conn.execute("SELECT rule_id, COUNT(*) FROM issued_cards WHERE issued_at >= ? "
                                  "GROUP BY rule_id", (since,)).fetchall())
        out: dict[str, dict[str, Any]] = {r: {"rule": r, "shown": n, "accepted": 0, "overridden": 0,
                                              "top_override_reasons": []} for r, n in shown.items()}
        for rule, outcome, n in conn.execute(
                "SELECT COALESCE(rule_id, '(unknown card)'), outcome, COUNT(*) FROM feedback "
                "WHERE received_at >= ? GROUP BY 1, 2", (since,)):
            entry = out.setdefault(rule, {"rule": rule, "shown": 0, "accepted": 0, "overridden": 0,
                                          "top_override_reasons": []})
            entry[outcome] = n
        for rule, code, n in conn.execute(
                "SELECT COALESCE(rule_id, '(unknown card)'), override_code, COUNT(*) FROM feedback "
                "WHERE received_at >= ? AND outcome = 'overridden' AND override_code IS NOT NULL "
                "GROUP BY 1, 2 ORDER BY 3 DESC, 2", (since,)):
            reasons = out[rule]["top_override_reasons"]
            if len(reasons) < 3:
                reasons.append({"code": code, "count": n})
        return sorted(out.values(), key=lambda e: e["rule"])

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
