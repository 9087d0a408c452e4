"""Card feedback (checklist FB-1..FB-6): validated, stored durably before the 200 is sent.

One code path on SQLAlchemy Core for both stores:

* SQLite (the embedded default, ``BONE_CDS_FEEDBACK_DB`` unset, a file path, or a ``sqlite:///``
  URL): every connection is set to WAL; feedback transactions run with ``synchronous=FULL`` (a
  committed row survives a crash or a power loss), issued-card bookkeeping with ``NORMAL``
  (survives a crash of the process; the last commits may be lost on a power loss), set per
  transaction. Writes run in ``BEGIN IMMEDIATE`` transactions, so several gunicorn workers wait
  for each other (``busy_timeout``) instead of failing with "database is locked".
* PostgreSQL (``BONE_CDS_FEEDBACK_DB=postgresql+psycopg://user:pass@host/db``, extra
  ``postgres``): a shared store for several service hosts; feedback commits are durable with the
  server's default ``synchronous_commit=on``, bookkeeping commits use ``synchronous_commit=off``.

The hook route's issued-card records are written by a background writer per worker
(:mod:`cds_service.batch_writer`, :meth:`FeedbackStore.record_cards` ``background=True``): a
hook answer never waits for the feedback writers' lock (issue 12).

Feedback is stored as sent (the entry's JSON is kept whole, ``raw``): a batch is one
all-or-nothing transaction. The same feedback sent again (a retry after a lost answer: same card,
outcome, ``outcomeTimestamp``, accepted suggestion ids, override reason(s) and tenant) is stored
once and answered 200 each time (:func:`dedup_key`, a unique column); any other feedback on the
same card is kept (checklist FB-5: clients may send repeated feedback). Feedback for a card this
service never issued is kept (its rule is then unknown) and counted apart in the reports. Cards
issued by the hooks are recorded too (uuid → rule id), so feedback can be attributed to a rule
and the report can count cards shown per rule.

Nothing here logs feedback content: a free-text ``userComment`` may name the patient. Database
errors are raised as :class:`FeedbackStoreError` whose message holds no SQL parameters.
"""

from __future__ import annotations

import hashlib
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
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from .batch_writer import BatchWriter
from .errors import ApiError

log = logging.getLogger("cds_service.feedback")

_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
#: Rows looked up per ``IN (...)`` query (SQLite allows 32766 bound parameters).
_LOOKUP_CHUNK = 500
#: Seconds a writer waits for another writer's lock (SQLite ``busy_timeout``).
SQLITE_BUSY_TIMEOUT = 30
#: The tenant of feedback sent without one (no tenants file), in reports.
NO_TENANT = "(no tenant)"

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
    # NULL on rows written before these columns existed (the migration fills dedup_key)
    Column("tenant", Text),          # the verified caller's tenant (tenants file), else NULL
    Column("dedup_key", String(80)), # :func:`dedup_key`: one row per distinct feedback
    Index("feedback_rule", "rule_id", "received_at"),
    Index("feedback_received", "received_at"),
    Index("feedback_dedup", "dedup_key", unique=True),
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
    # issue 16 (governance); NULL on rows written before these columns existed
    Column("hook", Text),
    Column("tenant", Text),
    Column("patient_key", Text),     # HMAC-SHA256 of the patient id (governance.patient_key)
    Column("call_id", Text),         # one random id per hook call (its cards share it)
    Column("latency_ms", Float),     # the hook call's evaluation time
    Column("draft_keys", Text),      # order-select: keys of the selected drafts (governance.suppression)
    Index("issued_rule", "rule_id", "issued_at"),
)

issued_suggestions_table = Table(
    "issued_suggestions",
    metadata,
    Column("card_uuid", Text, primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("suggestion_uuid", Text),
    Column("label", Text, nullable=False),
    # the member rule a suggestion of a merged card stands for (``urn:bone-safety-cds:member``)
    Column("member_rule", Text),
    Index("issued_suggestion_uuid", "suggestion_uuid"),
)

#: Columns added to an existing ``issued_cards`` table when missing (the store's migration).
_ADDED_COLUMNS = {"hook": "TEXT", "tenant": "TEXT", "patient_key": "TEXT", "call_id": "TEXT",
                  "latency_ms": "DOUBLE PRECISION", "draft_keys": "TEXT"}
#: Columns added to existing ``feedback`` and ``issued_suggestions`` tables when missing.
_FEEDBACK_ADDED_COLUMNS = {"feedback": {"tenant": "TEXT", "dedup_key": "VARCHAR(80)"},
                           "issued_suggestions": {"member_rule": "TEXT"}}
#: Suggestion extension naming the member rule of a merged card's suggestion (RULES.md §1.1).
MEMBER_EXTENSION = "urn:bone-safety-cds:member"
#: PostgreSQL advisory lock key serialising the feedback migration of several starting hosts.
_MIGRATION_LOCK = 0x626F6E6543445331
#: Rows read and updated per step when old feedback rows get their dedup key.
_BACKFILL_CHUNK = 5000
#: Indexes created on existing tables when missing.
_ADDED_INDEXES = (
    Index("issued_issued_at", issued_cards_table.c.issued_at),
    Index("issued_patient_hook_rule", issued_cards_table.c.patient_key, issued_cards_table.c.hook,
          issued_cards_table.c.rule_id, issued_cards_table.c.issued_at),
    Index("feedback_card", feedback_table.c.card_uuid),
)


#: :meth:`FeedbackStore.recent_for_patient`'s two reads, built once (bound parameters): the hook
#: path runs them on every patient-view and order-sign call that has cards.
_RECENT_CARDS = select(
    issued_cards_table.c.card_uuid, issued_cards_table.c.rule_id, issued_cards_table.c.indicator,
    issued_cards_table.c.issued_at, issued_cards_table.c.draft_keys,
).where(
    issued_cards_table.c.patient_key == bindparam("patient_key"),
    issued_cards_table.c.rule_id.in_(bindparam("rules", expanding=True)),
    issued_cards_table.c.hook == bindparam("hook"),
    issued_cards_table.c.issued_at >= bindparam("lo"),
)
_CARD_FEEDBACK = select(
    feedback_table.c.card_uuid, feedback_table.c.outcome, feedback_table.c.override_code,
    feedback_table.c.received_at,
).where(feedback_table.c.card_uuid.in_(bindparam("uuids", expanding=True))).order_by(feedback_table.c.id)


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


def dedup_key(entry: dict[str, Any], tenant: str | None) -> str:
    """What makes two feedback entries the same feedback (issue 12: a client retrying after a
    lost answer must not count twice): the card, outcome, ``outcomeTimestamp``, the accepted
    suggestion ids (as a set), the override reason(s) exactly as sent (``overrideReason`` and
    Epic's ``overrideReasons``, with their comments) and the caller's tenant; SHA-256 hex of
    their canonical JSON. Anything else differing (another time, another reason, another
    suggestion) is another feedback and is kept. ``entry`` is a validated feedback entry."""
    accepted = sorted({s["id"] for s in entry.get("acceptedSuggestions") or []
                       if isinstance(s, dict) and isinstance(s.get("id"), str)})
    material = [entry.get("card"), entry.get("outcome"), entry.get("outcomeTimestamp"), accepted,
                entry.get("overrideReason"), entry.get("overrideReasons"), tenant]
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


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
            # A list (``overrideReasons``, as issue 12 reports Epic sends): each is checked, the
            # first with a code is the reason counted; every one is kept in the stored entry.
            # Epic's "extension-based" reason shape: no public source describing it was found
            # (CDS Hooks 2.0 § Feedback and its 3.0 ballot logical model CDSHooksFeedback, the
            # cds-hooks/docs and sandbox threads on overrideReason, Epic's CDS Hooks overview,
            # which says only that override reasons are configured in Epic or sent by the service).
            # So nothing is guessed: ``extension`` objects on the entry or on a reason are accepted
            # and kept in ``raw`` as sent, and only the standard ``reason`` Coding is counted.
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


def unknown_summary(counts: dict[str | None, tuple[int, int]]) -> dict[str, Any]:
    """``{"feedback", "cards", "by_tenant": {tenant: {"feedback", "cards"}}}`` of the feedback for
    cards never issued here, from ``counts`` (tenant → (entries, distinct cards)); ``cards`` is
    summed over tenants (a card id sent by two tenants counts once for each)."""
    by_tenant = {(t or NO_TENANT): {"feedback": n, "cards": c}
                 for t, (n, c) in sorted(counts.items(), key=lambda kv: kv[0] or "")}
    return {"feedback": sum(n for n, _ in counts.values()), "cards": sum(c for _, c in counts.values()),
            "by_tenant": by_tenant}


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
        _record.info["bone_cds_synchronous"] = "FULL"

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front: a deferred transaction that reads, then writes,
        # fails at once with SQLITE_BUSY when another worker committed in between.
        options = conn.get_execution_options()
        if options.get("bone_cds_read_only"):
            conn.exec_driver_sql("BEGIN DEFERRED")
            return
        # Feedback is acknowledged: FULL (fsync at every commit). Issued-card bookkeeping, written
        # by the background writer: NORMAL (in WAL mode a commit survives a crash of the process,
        # and the last ones may be lost on a power cut; the database stays consistent).
        wanted = "NORMAL" if options.get("bone_cds_bookkeeping") else "FULL"
        info = conn.connection.info
        if info.get("bone_cds_synchronous") != wanted:
            conn.exec_driver_sql(f"PRAGMA synchronous={wanted}")
            info["bone_cds_synchronous"] = wanted
        conn.exec_driver_sql("BEGIN IMMEDIATE")

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
        #: issued-card rows of hook calls, written off the request thread (:meth:`record_cards`)
        self._issued_writer: BatchWriter[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = BatchWriter(
            self._write_issued_batch, name="bone-cds-issued-cards")
        try:
            metadata.create_all(self.engine, checkfirst=True)
            self._migrate()
            self._migrate_feedback()
        except SQLAlchemyError as exc:
            raise FeedbackStoreError(
                f"cannot create the feedback tables in {self.display}: " f"{type(exc).__name__}: {exc}"
            ) from None
        if self.path is not None and self.path != ":memory:":
            # No connection of the master process is inherited by gunicorn's workers.
            self.engine.dispose()

    def __repr__(self) -> str:
        return f"FeedbackStore({self.display!r})"

    @property
    def in_memory(self) -> bool:
        """An in-memory SQLite database: no other process can open it."""
        return self.dialect == "sqlite" and self.url.database in (None, "", ":memory:")

    def _migrate(self) -> None:
        """Bring a store written by an older version up to this schema: add the missing
        ``issued_cards`` columns (NULL on old rows) and indexes. Idempotent; safe when two
        processes start at once (SQLite: one write transaction; PostgreSQL: ``IF NOT EXISTS``)."""
        with self.engine.begin() as conn:
            self._add_missing_columns(conn, "issued_cards", _ADDED_COLUMNS)
            for index in _ADDED_INDEXES:
                index.create(conn, checkfirst=True)

    def _add_missing_columns(self, conn: Any, table: str, columns: dict[str, str]) -> None:
        """Add each of ``columns`` (name → SQL type) that ``table`` lacks (NULL on old rows)."""
        have = {c["name"] for c in inspect(conn).get_columns(table)}
        guard = " IF NOT EXISTS" if self.dialect == "postgresql" else ""
        for name, sql_type in columns.items():
            if name not in have:
                conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN{guard} {name} {sql_type}")
                log.info("feedback store migrated: %s.%s added", table, name)

    def _migrate_feedback(self) -> None:
        """Bring ``feedback`` and ``issued_suggestions`` of an older store up to this schema:
        add ``feedback.tenant``, ``feedback.dedup_key`` and ``issued_suggestions.member_rule``
        (NULL on old rows), give every old feedback row its :func:`dedup_key` (recomputed from
        its stored entry; of identical old rows, kept as they were, the first gets the key and
        the others ``<key>:<id>``, so none is lost and none blocks a new row) under the unique
        index. One transaction, linear in the rows (read in id order); several processes starting at once wait for each other
        (SQLite: the write lock; PostgreSQL: an advisory lock)."""
        fb = feedback_table
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            for table, columns in _FEEDBACK_ADDED_COLUMNS.items():
                self._add_missing_columns(conn, table, columns)
            # first (NULLs never collide): the lookups below use it, and a fill stays unique
            conn.exec_driver_sql("CREATE UNIQUE INDEX IF NOT EXISTS feedback_dedup ON feedback (dedup_key)")
            filled, after = 0, 0
            while True:
                rows = conn.execute(
                    select(fb.c.id, fb.c.raw, fb.c.tenant).where(fb.c.dedup_key.is_(None), fb.c.id > after)
                    .order_by(fb.c.id).limit(_BACKFILL_CHUNK)).all()
                if not rows:
                    break
                after = rows[-1][0]
                keys = []
                for row_id, raw, tenant in rows:
                    try:
                        entry = json.loads(raw)
                    except ValueError:
                        entry = None
                    keys.append(dedup_key(entry, tenant) if isinstance(entry, dict) else f"unreadable:{row_id}")
                taken: set[str] = set()
                for start in range(0, len(keys), _LOOKUP_CHUNK):
                    taken.update(k for (k,) in conn.execute(
                        select(fb.c.dedup_key).where(fb.c.dedup_key.in_(keys[start:start + _LOOKUP_CHUNK]))))
                updates = []
                for (row_id, _raw, _tenant), key in zip(rows, keys):
                    if key in taken:
                        key = f"{key}:{row_id}"     # an identical older row: kept, never matched
                    taken.add(key)
                    updates.append({"row_id": row_id, "key": key})
                conn.execute(fb.update().where(fb.c.id == bindparam("row_id")).values(dedup_key=bindparam("key")),
                             updates)
                filled += len(updates)
        if filled:
            log.info("feedback store migrated: %d feedback rows given their duplicate key", filled)

    def _insert(self, table: Table) -> Any:
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        return dialect.insert(table)

    def record_cards(
        self, service_id: str, cards: Iterable[dict[str, Any]], now: datetime | None = None, *,
        hook: str | None = None, tenant: str | None = None, patient_key: str | None = None,
        call_id: str | None = None, latency_ms: float | None = None,
        wire_cards: Iterable[dict[str, Any]] | None = None, draft_keys: Iterable[str] = (),
        background: bool = False,
    ) -> None:
        """Remember each issued card: its rule (for attribution and "cards shown"), the hook,
        tenant and pseudonymous patient key of the call, and the suggestions it offered.

        ``cards`` carry the rule in ``source.topic``; ``wire_cards`` (default: ``cards``) are the
        same cards as sent to the EHR (an EHR profile may split suggestions and give them new
        uuids): the offered suggestions are taken from them, matched by card uuid, so that an
        accepted suggestion's uuid is found. A card already recorded is left as it was.

        ``background`` (the hook route): the rows are handed to this store's writer thread and
        written with the next batch (README "Feedback store": bookkeeping, ``synchronous=NORMAL``);
        until then :meth:`recent_for_patient` and :meth:`add` see them, and every report read
        waits for them (:meth:`flush`). When the writer's queue is full they are written here."""
        issued_at = _timestamp(now)
        drafts = " ".join(sorted(set(draft_keys))) or None
        wire = {c.get("uuid"): c for c in (wire_cards if wire_cards is not None else [])}
        rows, offered = [], []
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
                        "hook": hook,
                        "tenant": tenant,
                        "patient_key": patient_key,
                        "call_id": call_id,
                        "latency_ms": latency_ms,
                        "draft_keys": drafts,
                    }
                )
                sent = wire.get(c["uuid"], c)
                for i, sug in enumerate(sent.get("suggestions") or []):
                    if isinstance(sug, dict):
                        member = (sug.get("extension") or {}).get(MEMBER_EXTENSION) \
                            if isinstance(sug.get("extension"), dict) else None
                        offered.append({"card_uuid": c["uuid"], "position": i,
                                        "suggestion_uuid": sug.get("uuid"),
                                        "label": str(sug.get("label") or ""),
                                        "member_rule": member if isinstance(member, str) else None})
        if not rows:
            return
        if background and self._issued_writer.submit((rows, offered)):
            return
        self._write_issued([(rows, offered)], bookkeeping=background)

    def _write_issued(self, calls: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]], *,
                      bookkeeping: bool) -> None:
        """Insert the issued-card and offered-suggestion rows of ``calls`` in one transaction;
        ``bookkeeping``: without waiting for the disk (SQLite ``synchronous=NORMAL``, PostgreSQL
        ``synchronous_commit=off``). Raises FeedbackStoreError."""
        rows = [r for call_rows, _ in calls for r in call_rows]
        offered = [o for _, call_offered in calls for o in call_offered]
        stmt = self._insert(issued_cards_table).on_conflict_do_nothing(index_elements=["card_uuid"])
        try:
            with self.engine.connect().execution_options(bone_cds_bookkeeping=bookkeeping) as conn, conn.begin():
                if bookkeeping and self.dialect == "postgresql":
                    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                conn.execute(stmt, rows)
                if offered:
                    conn.execute(
                        self._insert(issued_suggestions_table).on_conflict_do_nothing(
                            index_elements=["card_uuid", "position"]),
                        offered,
                    )
        except SQLAlchemyError as exc:
            raise FeedbackStoreError(f"could not record issued cards ({type(exc).__name__})") from None

    def _write_issued_batch(self, calls: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]) -> None:
        """The writer thread's write: a failure is logged (class only) and the batch dropped, as
        the hook route did with a failed inline write (the cards matter more than their records)."""
        try:
            self._write_issued(calls, bookkeeping=True)
        except FeedbackStoreError as exc:
            log.error("could not record issued cards", extra={"event": {
                "calls": len(calls), "cards": sum(len(r) for r, _ in calls), "error": str(exc)}})

    def _pending_cards(self) -> list[dict[str, Any]]:
        """Issued-card rows handed to the writer and not yet committed."""
        return [r for rows, _ in self._issued_writer.pending() for r in rows]

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until the issued cards recorded so far in the background are written."""
        return self._issued_writer.flush(timeout)

    def pending_rules(self) -> dict[str, str]:
        """Card uuid → rule id of the issued cards this process's writer has not committed yet
        (handed to the feedback process with a batch: :mod:`cds_service.feedback_process`)."""
        return {r["card_uuid"]: r["rule_id"] for r in self._pending_cards()}

    def add(self, service_id: str, items: list[FeedbackItem], now: datetime | None = None, *,
            tenant: str | None = None, pending_rules: dict[str, str] | None = None) -> int:
        """Store every item in one transaction (all or nothing); returns how many were new.

        Each row gets the rule of its card when the card was issued here (``issued_cards``, or
        still in this store's writer, or in ``pending_rules``: another process's writer, read
        before this call), else ``rule_id`` stays NULL, and the caller's ``tenant``. An item
        already stored (the same :func:`dedup_key`, in this batch or before) is not stored
        again: it was kept when first acknowledged, so the caller may answer 200 for every item
        (FB-5, a retry)."""
        if not items:
            return 0
        received = _timestamp(now)
        unique: dict[str, FeedbackItem] = {}
        for it in items:
            unique.setdefault(dedup_key(it.raw, tenant), it)
        fb = feedback_table
        # read before the database: a card committed meanwhile is then found there
        pending = {**(pending_rules or {}), **self.pending_rules()}
        try:
            with self.engine.begin() as conn:
                rules: dict[str, str] = {}
                uuids = sorted({it.card for it in unique.values()})
                for start in range(0, len(uuids), _LOOKUP_CHUNK):
                    chunk = uuids[start : start + _LOOKUP_CHUNK]
                    found = conn.execute(
                        select(issued_cards_table.c.card_uuid, issued_cards_table.c.rule_id).where(
                            issued_cards_table.c.card_uuid.in_(chunk)
                        )
                    )
                    rules.update({card: rule for card, rule in found})
                for card in uuids:
                    if card not in rules and card in pending:
                        rules[card] = pending[card]
                inserted = conn.execute(
                    self._insert(fb).on_conflict_do_nothing(index_elements=["dedup_key"]).returning(fb.c.id),
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
                            "tenant": tenant,
                            "dedup_key": key,
                        }
                        for key, it in unique.items()
                    ],
                )
                stored = len(inserted.all())
        except SQLAlchemyError as exc:
            raise FeedbackStoreError(f"could not store feedback ({type(exc).__name__})") from None
        return stored

    def _read(self) -> Any:
        return self.engine.connect().execution_options(bone_cds_read_only=True)

    def rows(self) -> list[dict[str, Any]]:
        """Every feedback row, oldest first, as ``{column: value}``."""
        self.flush()
        with self._read() as conn:
            result = conn.execute(select(feedback_table).order_by(feedback_table.c.id))
            return [dict(r) for r in result.mappings()]

    def issued(self) -> list[dict[str, Any]]:
        """Every issued-card record, as ``{column: value}``."""
        self.flush()
        with self._read() as conn:
            result = conn.execute(
                select(issued_cards_table).order_by(
                    issued_cards_table.c.issued_at, issued_cards_table.c.card_uuid
                )
            )
            return [dict(r) for r in result.mappings()]

    def suggestions(self) -> list[dict[str, Any]]:
        """Every offered-suggestion record (card uuid, position, suggestion uuid, label)."""
        self.flush()
        with self._read() as conn:
            t = issued_suggestions_table
            result = conn.execute(select(t).order_by(t.c.card_uuid, t.c.position))
            return [dict(r) for r in result.mappings()]

    def window(self, start: datetime, end: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
        """Cards issued in ``[start, end)`` (``end`` default: open) with what joins to them: their
        feedback (any time), their offered suggestions; plus the count of feedback received in
        the window for cards this service never issued. The governance report's one read."""
        self.flush()
        lo, hi = _timestamp(start), _timestamp(end) if end is not None else "9999"
        ic, fb, sg = issued_cards_table, feedback_table, issued_suggestions_table
        in_window = (ic.c.issued_at >= lo) & (ic.c.issued_at < hi)
        with self._read() as conn:
            cards = [dict(r) for r in conn.execute(select(ic).where(in_window)).mappings()]
            feedback = [dict(r) for r in conn.execute(
                select(fb.c.id, fb.c.card_uuid, fb.c.received_at, fb.c.outcome, fb.c.outcome_timestamp,
                       fb.c.accepted_suggestions, fb.c.override_system, fb.c.override_code)
                .join(ic, ic.c.card_uuid == fb.c.card_uuid).where(in_window).order_by(fb.c.id)).mappings()]
            offered = [dict(r) for r in conn.execute(
                select(sg).join(ic, ic.c.card_uuid == sg.c.card_uuid).where(in_window)).mappings()]
            unknown = self._unknown_card_feedback(conn, lo, hi)
        return {"cards": cards, "feedback": feedback, "suggestions": offered, "unknown_feedback": unknown}

    @staticmethod
    def _unknown_card_feedback(conn: Any, lo: str, hi: str) -> dict[str | None, tuple[int, int]]:
        """Tenant (None: none) → (feedback entries, distinct cards) received in ``[lo, hi)`` for
        card uuids this service never issued (no ``issued_cards`` row, whatever ``rule_id``
        says: a card recorded after its feedback is known)."""
        fb, ic = feedback_table, issued_cards_table
        never_issued = ~select(ic.c.card_uuid).where(ic.c.card_uuid == fb.c.card_uuid).exists()
        return {tenant: (n, cards) for tenant, n, cards in conn.execute(
            select(fb.c.tenant, func.count(), func.count(fb.c.card_uuid.distinct()))
            .where(never_issued, fb.c.received_at >= lo, fb.c.received_at < hi).group_by(fb.c.tenant))}

    def recent_for_patient(self, patient_key: str, rules: Iterable[str], hook: str,
                           since: datetime) -> list[dict[str, Any]]:
        """Cards of ``rules`` issued on ``hook`` to the patient with this key since ``since``,
        each with its latest feedback (``outcome``, ``override_code``, ``received_at``; None
        when unanswered). For the suppression of repeats."""
        rules = sorted(set(rules))
        if not rules:
            return []
        lo = _timestamp(since)
        # the writer's rows first: one committed between the two reads is then in the database
        pending = [r for r in self._pending_cards() if r["patient_key"] == patient_key
                   and r["rule_id"] in rules and r["hook"] == hook and r["issued_at"] >= lo]
        with self._read() as conn:
            cards = [dict(r) for r in conn.execute(
                _RECENT_CARDS, {"patient_key": patient_key, "rules": rules, "hook": hook, "lo": lo}).mappings()]
            seen = {c["card_uuid"] for c in cards}
            cards += [{k: r[k] for k in ("card_uuid", "rule_id", "indicator", "issued_at", "draft_keys")}
                      for r in pending if r["card_uuid"] not in seen]
            latest: dict[str, dict[str, Any]] = {}
            uuids = [c["card_uuid"] for c in cards]
            for start in range(0, len(uuids), _LOOKUP_CHUNK):
                for r in conn.execute(_CARD_FEEDBACK, {"uuids": uuids[start:start + _LOOKUP_CHUNK]}).mappings():
                    latest[r["card_uuid"]] = dict(r)
        for c in cards:
            f = latest.get(c["card_uuid"]) or {}
            c.update(outcome=f.get("outcome"), override_code=f.get("override_code"), received_at=f.get("received_at"))
        return cards

    def daily_counts(self, start: datetime, end: datetime) -> list[tuple[str, str, int]]:
        """(rule id, UTC day ``YYYY-MM-DD``, cards) for the cards issued in ``[start, end)``,
        counted by the database (for the weekly series; stored times are UTC ISO text)."""
        self.flush()
        ic = issued_cards_table
        day = func.substr(ic.c.issued_at, 1, 10)
        with self._read() as conn:
            return [(r, d, n) for r, d, n in conn.execute(
                select(ic.c.rule_id, day, func.count()).where(
                    ic.c.issued_at >= _timestamp(start), ic.c.issued_at < _timestamp(end))
                .group_by(ic.c.rule_id, day))]

    def report(self, since: str | date | datetime | None = None) -> dict[str, Any]:
        """``rules``: per rule, cards shown, cards accepted, cards overridden, top three override
        reasons; ``unknown_cards``: feedback for cards this service never issued, counted apart
        (``feedback`` entries, distinct ``cards``, and both ``by_tenant``).

        Counts are of distinct cards (two feedbacks for one card count once per outcome);
        ``since`` (ISO date or date-time, UTC) keeps cards issued and feedback received from then
        on. A feedback row's rule is the one recorded with it, else that of its card."""
        self.flush()
        bound = since_bound(since) or ""
        fb, ic = feedback_table, issued_cards_table
        cards = func.count(fb.c.card_uuid.distinct())
        rule = func.coalesce(fb.c.rule_id, ic.c.rule_id)
        joined = fb.outerjoin(ic, ic.c.card_uuid == fb.c.card_uuid)
        out: dict[str, dict[str, Any]] = {}

        def entry(name: str) -> dict[str, Any]:
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
                select(rule, fb.c.outcome, cards).select_from(joined)
                .where(fb.c.received_at >= bound, rule.is_not(None))
                .group_by(rule, fb.c.outcome)
            ):
                entry(name)[outcome] = n
            for name, code, n in conn.execute(
                select(rule, fb.c.override_code, cards).select_from(joined)
                .where(
                    fb.c.received_at >= bound, rule.is_not(None), fb.c.outcome == "overridden",
                    fb.c.override_code.is_not(None)
                )
                .group_by(rule, fb.c.override_code)
            ):
                reasons.setdefault(entry(name)["rule"], []).append((-n, code))
            unknown = self._unknown_card_feedback(conn, bound, "9999")
        for name, found in reasons.items():
            out[name]["top_override_reasons"] = [
                {"code": code, "count": -neg} for neg, code in sorted(found)[:3]
            ]
        return {"rules": sorted(out.values(), key=lambda e: e["rule"]),
                "unknown_cards": unknown_summary(unknown)}

    def close(self) -> None:
        """Write what the writer holds, close every pooled connection (the store can still be
        used: the pool reopens)."""
        self.flush()
        self.engine.dispose()


__all__ = [
    "FeedbackItem",
    "FeedbackStore",
    "FeedbackStoreError",
    "parse_feedback",
    "database_url",
    "since_bound",
    "dedup_key",
    "unknown_summary",
    "feedback_table",
    "issued_cards_table",
    "issued_suggestions_table",
]
