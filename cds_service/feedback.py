"""Card feedback (checklist FB-1..FB-6): validated, stored durably before the 200 is sent.

One code path on SQLAlchemy Core for both stores:

* SQLite (the embedded default, ``BONE_CDS_FEEDBACK_DB`` unset, a file path, or a ``sqlite:///``
  URL): every connection is set to WAL with ``synchronous=FULL`` (a committed row survives a
  crash or a power loss) and writes run in ``BEGIN IMMEDIATE`` transactions, so several gunicorn
  workers wait for each other (``busy_timeout``) instead of failing with "database is locked".
* PostgreSQL (``BONE_CDS_FEEDBACK_DB=postgresql+psycopg://user:pass@host/db``, extra
  ``postgres``): a shared store for several service hosts; commits are durable with the
  server's default ``synchronous_commit=on``.

Feedback is stored exactly as sent: a batch is one all-or-nothing transaction, repeats are kept,
feedback for a card this service never issued is kept (its rule is then unknown). Cards issued
by the hooks are recorded too (uuid → rule id), so feedback can be attributed to a rule and the
report can count cards shown per rule.

Nothing here logs feedback content: a free-text ``userComment`` may name the patient. Database
errors are raised as :class:`FeedbackStoreError` whose message holds no SQL parameters.
"""

from __future__ import annotations

import json
import logging
import os
import re
import weakref
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from .errors import ApiError

log = logging.getLogger("cds_service.feedback")

_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
#: Rows looked up per ``IN (...)`` query (SQLite allows 32766 bound parameters).
_LOOKUP_CHUNK = 500
#: Seconds a writer waits for another writer's lock (SQLite ``busy_timeout``).
SQLITE_BUSY_TIMEOUT = 30
UNKNOWN_RULE = "(unknown card)"

metadata = MetaData()
_id_type = BigInteger().with_variant(Integer, "sqlite")

feedback_table = Table(
    "feedback",
    metadata,
    Column("id", _id_type, primary_key=True, autoincrement=True),
    Column("received_at", Text, nullable=False),
    Column("service_id", Text, nullable=False),
    Column("card_uuid", Text, nullable=False),
    Column("rule_id", Text),
    Column("outcome", String(16), nullable=False),
    Column("outcome_timestamp", Text, nullable=False),
    Column("accepted_suggestions", Text),
    Column("override_system", Text),
    Column("override_code", Text),
    Column("override_comment", Text),
    Column("raw", Text, nullable=False),
    Index("feedback_rule", "rule_id", "received_at"),
    Index("feedback_received", "received_at"),
    sqlite_autoincrement=True,
)

issued_cards_table = Table(
    "issued_cards",
    metadata,
    Column("card_uuid", Text, primary_key=True),
    Column("rule_id", Text, nullable=False),
    Column("service_id", Text, nullable=False),
    Column("indicator", String(16), nullable=False),
    Column("issued_at", Text, nullable=False),
    Index("issued_rule", "rule_id", "issued_at"),
)


class FeedbackStoreError(RuntimeError):
    """The store could not be opened or written (the database is down, locked, full...).

    The message names the operation and the error class only: never SQL parameters."""


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
    raw_json: str = ""


# ---- validation -----------------------------------------------------------------------------


def _valid_timestamp(value: Any) -> bool:
    """RFC 3339 §5.6 ``date-time`` with real calendar values (month 13 or hour 25 are refused).
    The spec asks for UTC; an explicit offset is accepted too (what was sent is stored)."""
    if not isinstance(value, str):
        return False
    m = _RFC3339.match(value)
    if not m:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    offset = m.group(8)
    if offset not in ("Z", "z") and (int(offset[1:3]) > 23 or int(offset[4:6]) > 59):
        return False
    try:
        datetime(year, month, day, hour, minute, min(second, 59))  # :60 is a leap second (RFC 3339)
    except ValueError:
        return False
    return second <= 60


def _clean_str(value: Any, where: str) -> str:
    """A string the databases can store: no NUL character (PostgreSQL refuses it in text) and
    no lone UTF-16 surrogate (``"\\ud800"`` in JSON decodes to text no driver can encode)."""
    if "\x00" in value:
        raise ApiError(400, "invalid_field", f"'{where}' must not contain a NUL character", field=where)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(
            400, "invalid_field", f"'{where}' is not valid Unicode (lone surrogate)", field=where
        ) from None
    return value


#: Feedback items accepted in one POST (issue 12: two 60k-item batches held the store for 21 s).
MAX_FEEDBACK_ITEMS = 1000


def _override_reason(reason: Any, at: str) -> tuple[str | None, str | None, str | None]:
    """``(system, code, userComment)`` of one override reason object (FB-3; IOP-4: the sandbox
    sends only ``code``, and ``system`` when the card had one); ApiError 400 naming ``at``."""
    if not isinstance(reason, dict):
        raise ApiError(400, "invalid_field", f"'{at}' must be an object", field=at)
    system = code = comment = None
    coding = reason.get("reason")
    if coding is not None:
        if not isinstance(coding, dict) or not isinstance(coding.get("code"), str):
            raise ApiError(400, "invalid_field", f"'{at}.reason' must be a Coding with a code",
                           field=f"{at}.reason")
        code = _clean_str(coding["code"], f"{at}.reason.code")
        system = coding.get("system") if isinstance(coding.get("system"), str) else None
        if system is not None:
            _clean_str(system, f"{at}.reason.system")
    if reason.get("userComment") is not None:
        if not isinstance(reason["userComment"], str):
            raise ApiError(400, "invalid_field", f"'{at}.userComment' must be a string",
                           field=f"{at}.userComment")
        comment = _clean_str(reason["userComment"], f"{at}.userComment")
    return system, code, comment


def parse_feedback(body: Any) -> list[FeedbackItem]:
    """Validate a feedback body ``{"feedback": [...]}``; ApiError 400 naming the entry and field."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the feedback body must be a JSON object")
    entries = body.get("feedback")
    if not isinstance(entries, list) or not entries:
        raise ApiError(400, "missing_field", "'feedback' must be a non-empty list", field="feedback")
    if len(entries) > MAX_FEEDBACK_ITEMS:
        raise ApiError(413, "too_many_feedback_items",
                       f"at most {MAX_FEEDBACK_ITEMS} feedback items per request, got {len(entries)}: "
                       "send them in smaller batches", field="feedback")
    items = []
    for i, e in enumerate(entries):
        where = f"feedback[{i}]"
        if not isinstance(e, dict):
            raise ApiError(400, "invalid_field", f"'{where}' must be an object", field=where)
        card = e.get("card")
        if not isinstance(card, str) or not card:
            raise ApiError(
                400, "missing_field", f"'{where}.card' (the card uuid) is required", field=f"{where}.card"
            )
        _clean_str(card, f"{where}.card")
        outcome = e.get("outcome")
        if outcome not in ("accepted", "overridden"):
            raise ApiError(
                400,
                "invalid_field",
                f"'{where}.outcome' must be 'accepted' or 'overridden'",
                field=f"{where}.outcome",
            )
        ts = e.get("outcomeTimestamp")
        if ts is None:
            raise ApiError(
                400,
                "missing_field",
                f"'{where}.outcomeTimestamp' is required",
                field=f"{where}.outcomeTimestamp",
            )
        if not _valid_timestamp(ts):
            raise ApiError(
                400,
                "invalid_field",
                f"'{where}.outcomeTimestamp' must be an RFC 3339 date-time such as " "2021-12-11T10:05:31Z",
                field=f"{where}.outcomeTimestamp",
            )
        accepted: list[str] = []
        sugg = e.get("acceptedSuggestions")
        if outcome == "accepted":
            if not isinstance(sugg, list) or not sugg:
                raise ApiError(
                    400,
                    "missing_field",
                    f"'{where}.acceptedSuggestions' is required when outcome is 'accepted'",
                    field=f"{where}.acceptedSuggestions",
                )
        if sugg is not None:
            if not isinstance(sugg, list) or not all(
                isinstance(s, dict) and isinstance(s.get("id"), str) for s in sugg
            ):
                raise ApiError(
                    400,
                    "invalid_field",
                    f"'{where}.acceptedSuggestions' must be a list of {{\"id\": uuid}}",
                    field=f"{where}.acceptedSuggestions",
                )
            accepted = [
                _clean_str(s["id"], f"{where}.acceptedSuggestions[{j}].id") for j, s in enumerate(sugg)
            ]
        system = code = comment = None
        reason = e.get("overrideReason")
        if reason is not None:
            system, code, comment = _override_reason(reason, f"{where}.overrideReason")
        elif e.get("overrideReasons") is not None:
            # Epic sends a list (``overrideReasons``): each is checked, the first with a code is the
            # reason counted; every one is kept in the stored entry as sent
            reasons = e["overrideReasons"]
            if not isinstance(reasons, list):
                raise ApiError(400, "invalid_field", f"'{where}.overrideReasons' must be a list of objects",
                               field=f"{where}.overrideReasons")
            parsed = [_override_reason(r, f"{where}.overrideReasons[{j}]") for j, r in enumerate(reasons)]
            system, code, comment = next((p for p in parsed if p[1]), parsed[0] if parsed else (None, None, None))
        try:
            # ensure_ascii: NUL and lone surrogates anywhere else in the entry become \u escapes.
            raw_json = json.dumps(e, separators=(",", ":"), ensure_ascii=True)
        except RecursionError:
            raise ApiError(400, "invalid_json", f"'{where}' is nested too deeply", field=where) from None
        items.append(FeedbackItem(card, outcome, ts, tuple(accepted), system, code, comment, e, raw_json))
    return items


# ---- the store ------------------------------------------------------------------------------


def database_url(path_or_url: str | os.PathLike[str]) -> URL:
    """The SQLAlchemy URL for ``BONE_CDS_FEEDBACK_DB``: a URL as given, else a SQLite file path."""
    text = os.fspath(path_or_url)
    if "://" in text:
        try:
            return make_url(text)
        except ArgumentError as exc:
            raise FeedbackStoreError(f"not a database URL: {exc}") from None
    if text == ":memory:":
        return make_url("sqlite://")
    return URL.create("sqlite", database=str(Path(text).expanduser().absolute()))


def _timestamp(moment: datetime | None) -> str:
    """Stored form of a moment: ISO 8601 in UTC with microseconds (sorts as text)."""
    moment = moment or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def since_bound(since: str | date | datetime | None) -> str | None:
    """``--since`` as a stored timestamp: a date means its midnight UTC; ValueError if unreadable."""
    if since is None or since == "":
        return None
    if isinstance(since, str):
        text = since.strip()
        try:
            since = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(f"not an ISO date or date-time: {text!r}") from None
    if not isinstance(since, datetime):
        since = datetime.combine(since, time(0), tzinfo=timezone.utc)
    return _timestamp(since)


_live_engines: "weakref.WeakSet[Engine]" = weakref.WeakSet()


def _dispose_after_fork() -> None:
    """A forked worker must not reuse its parent's connections (SQLAlchemy "pooling and
    multiprocessing"): drop them without closing what the parent still owns."""
    for engine in list(_live_engines):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_dispose_after_fork)


def _sqlite_engine(url: URL) -> Engine:
    memory = url.database in (None, "", ":memory:")
    if not memory:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT, "check_same_thread": False}}
    if memory:
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, hide_parameters=True, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN (pysqlite's own would be deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT * 1000}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front: a deferred transaction that reads, then writes,
        # fails at once with SQLITE_BUSY when another worker committed in between.
        mode = "DEFERRED" if conn.get_execution_options().get("bone_cds_read_only") else "IMMEDIATE"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


class FeedbackStore:
    """Feedback and issued-card records in SQLite (default) or PostgreSQL (a database URL).

    Thread-safe (a connection pool); safe across gunicorn's fork. Every write is committed
    before the method returns.
    """

    def __init__(self, path_or_url: str | os.PathLike[str]) -> None:
        self.url = database_url(path_or_url)
        #: the path or URL as shown in logs and messages (no password)
        self.display = self.url.render_as_string(hide_password=True)
        self.path = self.url.database if self.url.get_backend_name() == "sqlite" else None
        try:
            if self.url.get_backend_name() == "sqlite":
                self.engine = _sqlite_engine(self.url)
            else:
                self.engine = create_engine(
                    self.url,
                    hide_parameters=True,
                    pool_pre_ping=True,
                    pool_size=5,
                    max_overflow=5,
                    pool_timeout=10,
                )
        except ImportError as exc:
            raise FeedbackStoreError(
                f"cannot open the feedback store {self.display}: {exc} (for PostgreSQL "
                "install the 'postgres' extra: pip install 'bone-safety-cds[postgres]')"
            ) from None
        except (SQLAlchemyError, OSError) as exc:
            raise FeedbackStoreError(
                f"cannot open the feedback store {self.display}: " f"{type(exc).__name__}: {exc}"
            ) from None
        self.dialect = self.engine.dialect.name
        _live_engines.add(self.engine)
        try:
            metadata.create_all(self.engine, checkfirst=True)
        except SQLAlchemyError as exc:
            raise FeedbackStoreError(
                f"cannot create the feedback tables in {self.display}: " f"{type(exc).__name__}: {exc}"
            ) from None
        if self.path is not None and self.path != ":memory:":
            # No connection of the master process is inherited by gunicorn's workers.
            self.engine.dispose()

    def __repr__(self) -> str:
        return f"FeedbackStore({self.display!r})"

    def _insert(self, table: Table) -> Any:
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        return dialect.insert(table)

    def record_cards(
        self, service_id: str, cards: Iterable[dict[str, Any]], now: datetime | None = None
    ) -> None:
        """Remember which rule each issued card came from (for attribution and "cards shown")."""
        issued_at = _timestamp(now)
        rows = []
        for c in cards:
            topic = (c.get("source") or {}).get("topic") or {}
            if c.get("uuid") and topic.get("code"):
                rows.append(
                    {
                        "card_uuid": c["uuid"],
                        "rule_id": topic["code"],
                        "service_id": service_id,
                        "indicator": c.get("indicator", ""),
                        "issued_at": issued_at,
                    }
                )
        if not rows:
            return
        stmt = self._insert(issued_cards_table).on_conflict_do_nothing(index_elements=["card_uuid"])
        try:
            with self.engine.begin() as conn:
                conn.execute(stmt, rows)
        except SQLAlchemyError as exc:
            raise FeedbackStoreError(f"could not record issued cards ({type(exc).__name__})") from None

    def add(self, service_id: str, items: list[FeedbackItem], now: datetime | None = None) -> int:
        """Store every item in one transaction (all or nothing); returns the count stored.

        Each row gets the rule of its card when the card was issued here (``issued_cards``),
        else ``rule_id`` stays NULL; nothing is merged or dropped (FB-5)."""
        if not items:
            return 0
        received = _timestamp(now)
        try:
            with self.engine.begin() as conn:
                rules: dict[str, str] = {}
                uuids = sorted({it.card for it in items})
                for start in range(0, len(uuids), _LOOKUP_CHUNK):
                    chunk = uuids[start : start + _LOOKUP_CHUNK]
                    found = conn.execute(
                        select(issued_cards_table.c.card_uuid, issued_cards_table.c.rule_id).where(
                            issued_cards_table.c.card_uuid.in_(chunk)
                        )
                    )
                    rules.update({card: rule for card, rule in found})
                conn.execute(
                    feedback_table.insert(),
                    [
                        {
                            "received_at": received,
                            "service_id": service_id,
                            "card_uuid": it.card,
                            "rule_id": rules.get(it.card),
                            "outcome": it.outcome,
                            "outcome_timestamp": it.outcome_timestamp,
                            "accepted_suggestions": json.dumps(list(it.accepted_suggestions)),
                            "override_system": it.override_system,
                            "override_code": it.override_code,
                            "override_comment": it.override_comment,
                            "raw": it.raw_json
                            or json.dumps(it.raw, separators=(",", ":"), ensure_ascii=True),
                        }
                        for it in items
                    ],
                )
        except SQLAlchemyError as exc:
            raise FeedbackStoreError(f"could not store feedback ({type(exc).__name__})") from None
        return len(items)

    def _read(self) -> Any:
        return self.engine.connect().execution_options(bone_cds_read_only=True)

    def rows(self) -> list[dict[str, Any]]:
        """Every feedback row, oldest first, as ``{column: value}``."""
        with self._read() as conn:
            result = conn.execute(select(feedback_table).order_by(feedback_table.c.id))
            return [dict(r) for r in result.mappings()]

    def issued(self) -> list[dict[str, Any]]:
        """Every issued-card record, as ``{column: value}``."""
        with self._read() as conn:
            result = conn.execute(
                select(issued_cards_table).order_by(
                    issued_cards_table.c.issued_at, issued_cards_table.c.card_uuid
                )
            )
            return [dict(r) for r in result.mappings()]

    def report(self, since: str | date | datetime | None = None) -> list[dict[str, Any]]:
        """Per rule: cards shown, cards accepted, cards overridden, top three override reasons.

        Counts are of distinct cards (a repeated feedback for one card counts once per outcome);
        ``since`` (ISO date or date-time, UTC) keeps cards issued and feedback received from then
        on. Feedback on cards this service did not issue is under ``(unknown card)``."""
        bound = since_bound(since) or ""
        fb, ic = feedback_table, issued_cards_table
        cards = func.count(fb.c.card_uuid.distinct())
        out: dict[str, dict[str, Any]] = {}

        def entry(name: str | None) -> dict[str, Any]:
            name = name or UNKNOWN_RULE
            return out.setdefault(
                name, {"rule": name, "shown": 0, "accepted": 0, "overridden": 0, "top_override_reasons": []}
            )

        reasons: dict[str, list[tuple[int, str]]] = {}
        with self._read() as conn:
            for name, n in conn.execute(
                select(ic.c.rule_id, func.count()).where(ic.c.issued_at >= bound).group_by(ic.c.rule_id)
            ):
                entry(name)["shown"] = n
            for name, outcome, n in conn.execute(
                select(fb.c.rule_id, fb.c.outcome, cards)
                .where(fb.c.received_at >= bound)
                .group_by(fb.c.rule_id, fb.c.outcome)
            ):
                entry(name)[outcome] = n
            for name, code, n in conn.execute(
                select(fb.c.rule_id, fb.c.override_code, cards)
                .where(
                    fb.c.received_at >= bound, fb.c.outcome == "overridden", fb.c.override_code.is_not(None)
                )
                .group_by(fb.c.rule_id, fb.c.override_code)
            ):
                reasons.setdefault(entry(name)["rule"], []).append((-n, code))
        for name, found in reasons.items():
            out[name]["top_override_reasons"] = [
                {"code": code, "count": -neg} for neg, code in sorted(found)[:3]
            ]
        return sorted(out.values(), key=lambda e: e["rule"])

    def close(self) -> None:
        """Close every pooled connection (the store can still be used: the pool reopens)."""
        self.engine.dispose()


__all__ = [
    "FeedbackItem",
    "FeedbackStore",
    "FeedbackStoreError",
    "parse_feedback",
    "database_url",
    "since_bound",
    "feedback_table",
    "issued_cards_table",
]
