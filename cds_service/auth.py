"""Caller authentication: verify the CDS Client's JWT bearer token.

CDS Hooks 2.0 § Trusting CDS Clients, § JWT Signing Algorithm and the best-practices JWT
list (checklist SEC-3 … SEC-10, IOP-2). When ``BONE_CDS_AUTH=jwt`` every call (discovery,
service, feedback) must carry ``Authorization: Bearer <JWT>``; :class:`JwtVerifier` checks it:

- header: ``alg`` on the configured asymmetric allowlist (never ``none`` or ``HS*``, SEC-6),
  ``kid`` present (SEC-4), ``typ`` ``JWT`` if sent, ``jku`` if sent equal to the issuer's
  configured ``jwks_uri`` (SEC-8: an arbitrary ``jku`` is never fetched);
- ``iss`` on the allowlist, the signature against that issuer's key set (cached, refetched
  once, rate-limited, on an unknown ``kid``: key rotation, SEC-7/SEC-10);
- ``aud`` names this endpoint, ``exp`` not past, ``iat`` not in the future (clock skew
  allowed), lifetime at most :data:`MAX_TOKEN_LIFETIME_SECONDS`, ``jti`` never seen (SEC-5,
  SEC-9, SEC-10). ``sub`` and ``tenant`` are not required (2.0 has no ``sub``).

Every failure raises :class:`AuthError`, whose public message never says which check failed
(answer 401 with no detail, SEC-10). The failing check is logged on ``cds_service.auth`` with
``iss`` and ``jti`` when known, never the token or any part of it.

Signatures are checked by PyJWT (``jwt.PyJWK`` + ``jwt.decode``) on ``cryptography``. Time
checks use the injected clock instead of PyJWT's wall clock so tests and replays are exact.
"""

from __future__ import annotations

import heapq
import ipaddress
import json
import logging
import math
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import jwt
import requests
from jwt.algorithms import get_default_algorithms

from .httpio import ReadDeadline, ReadTooLarge, read_limited

__all__ = [
    "AuthError",
    "AuthSettings",
    "ConfigError",
    "InMemoryReplayStore",
    "JwtVerifier",
    "ReplayStore",
    "SqliteReplayStore",
    "audiences_for",
]

log = logging.getLogger("cds_service.auth")

# --- environment variables -------------------------------------------------------------------
ENV_AUTH = "BONE_CDS_AUTH"
ENV_ALGORITHMS = "BONE_CDS_JWT_ALGORITHMS"
ENV_TRUSTED_ISSUERS = "BONE_CDS_TRUSTED_ISSUERS"
ENV_AUDIENCE_BASE_URLS = "BONE_CDS_AUDIENCE_BASE_URLS"
ENV_LEEWAY = "BONE_CDS_JWT_LEEWAY_SECONDS"
ENV_JWKS_CACHE = "BONE_CDS_JWKS_CACHE_SECONDS"
ENV_REPLAY_DB = "BONE_CDS_REPLAY_DB"

# --- policy constants ------------------------------------------------------------------------
PUBLIC_MESSAGE = "invalid or missing credentials"
#: ES384 and RS384 are the spec's RECOMMENDED algorithms (SEC-6); the sandbox uses ES384, Epic RS384.
DEFAULT_ALGORITHMS: tuple[str, ...] = ("ES384", "RS384")
#: SEC-5: ``sub`` is deliberately absent (dropped from CDS Hooks in 2019).
REQUIRED_CLAIMS: tuple[str, ...] = ("iss", "aud", "exp", "iat", "jti")
DEFAULT_LEEWAY_SECONDS = 60
MAX_LEEWAY_SECONDS = 600
DEFAULT_JWKS_CACHE_SECONDS = 300
MAX_JWKS_CACHE_SECONDS = 86_400
#: Timeout (connect and read) for one JWKS fetch.
JWKS_TIMEOUT_SECONDS = 2.0
#: At most one JWKS (re)fetch per issuer in this interval (unknown-kid refetch, failed fetches).
JWKS_REFETCH_MIN_INTERVAL_SECONDS = 30.0
MAX_JWKS_BYTES = 512 * 1024
#: A bearer value longer than this is refused before any parsing.
MAX_TOKEN_CHARS = 16 * 1024
#: SEC-10: seen ``jti`` values are kept for the longest token lifetime, at most one hour, so a
#: token whose ``exp - iat`` is longer is refused (the sandbox uses 300 s).
MAX_TOKEN_LIFETIME_SECONDS = 3600
#: Bound of the in-process replay store.
REPLAY_MAX_ENTRIES = 100_000
MAX_JTI_CHARS = 256

_REFUSED_ALGORITHMS = {"none"}  # plus every "HS*", checked by prefix
_KEY_SOURCE_FIELDS = ("jwks_uri", "jwks_file", "jwks")
_ACCEPTED_TYP = {"jwt", "application/jwt"}


class ConfigError(ValueError):
    """Invalid authentication configuration; raised at start-up, names the variable."""


class AuthError(Exception):
    """The caller is not authenticated (answer 401, SEC-10).

    ``str(err)`` and :attr:`public_message` are the same constant whatever failed; the
    failing check is in :attr:`reason`, for the log only.
    """

    public_message: str = PUBLIC_MESSAGE
    #: Value for the ``WWW-Authenticate`` header of the 401 (RFC 6750 §3), no detail.
    www_authenticate: str = "Bearer"

    def __init__(self, reason: str, *, iss: str | None = None, jti: str | None = None) -> None:
        super().__init__(PUBLIC_MESSAGE)
        self.reason = reason
        self.iss = iss
        self.jti = jti


# --- settings ----------------------------------------------------------------------------------


def _is_refused_algorithm(name: str) -> bool:
    """SEC-6: ``none`` and every symmetric ``HS*`` algorithm are never acceptable."""
    low = name.strip().lower()
    return low in _REFUSED_ALGORITHMS or low.startswith("hs")


def _asymmetric_algorithms() -> dict[str, str]:
    """Lower-case name -> canonical name of the asymmetric algorithms PyJWT can verify."""
    return {
        name.lower(): name for name in get_default_algorithms() if not _is_refused_algorithm(name)
    }


def _check_algorithms(names: Iterable[str], variable: str = ENV_ALGORITHMS) -> tuple[str, ...]:
    known = _asymmetric_algorithms()
    result: list[str] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if _is_refused_algorithm(name):
            raise ConfigError(
                f"{variable}: algorithm {name!r} is refused: 'none' and symmetric HS* algorithms "
                "must never be accepted (CDS Hooks § JWT Signing Algorithm)"
            )
        canonical = known.get(name.lower())
        if canonical is None:
            raise ConfigError(
                f"{variable}: unknown algorithm {name!r}; choose from {', '.join(sorted(known.values()))}"
            )
        if canonical not in result:
            result.append(canonical)
    if not result:
        raise ConfigError(f"{variable}: no algorithm given (default: {','.join(DEFAULT_ALGORITHMS)})")
    return tuple(result)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_jwks_uri(uri: Any, where: str) -> str:
    """A key-set URL must be absolute HTTPS (SEC-1); plain HTTP only on loopback (development)."""
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(f"{where}: jwks_uri must be a non-empty string")
    parts = urlsplit(uri.strip())
    if not parts.netloc or parts.scheme not in ("https", "http"):
        raise ConfigError(f"{where}: jwks_uri {uri!r} is not an absolute http(s) URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(f"{where}: jwks_uri {uri!r} must use https (http only on loopback)")
    return uri.strip()


def _parse_trusted_issuers(raw: str) -> dict[str, dict]:
    """Parse ``BONE_CDS_TRUSTED_ISSUERS``: a JSON object, or a path to a file holding one."""
    var = ENV_TRUSTED_ISSUERS
    text = raw.strip()
    base_dir = Path.cwd()
    source = var
    if not text.startswith("{"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigError(f"{var}: neither a JSON object nor a readable file: {text!r}")
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{var}: cannot read {str(path)!r}: {exc}") from None
        base_dir = path.resolve().parent
        source = f"{var} (file {str(path)!r})"
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source}: invalid JSON: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{source}: must be a non-empty JSON object mapping iss to a key source")

    issuers: dict[str, dict] = {}
    for iss, spec in data.items():
        if not iss.strip():
            raise ConfigError(f"{source}: an issuer (iss) must be a non-empty string")
        issuers[iss] = key_source(spec, f"{source}[{iss!r}]", base_dir)
    return issuers


def key_source(spec: Any, where: str, base_dir: Path, extra: Iterable[str] = ()) -> dict:
    """One issuer's key source (``jwks_uri``, ``jwks_file`` (+ ``jku``) or ``jwks`` (+ ``jku``)),
    checked; ``where`` names it in errors; ``extra`` fields are allowed and ignored here."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must be an object with one of {', '.join(_KEY_SOURCE_FIELDS)}")
    unknown = sorted(set(spec) - set(_KEY_SOURCE_FIELDS) - {"jku"} - set(extra))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
    given = [f for f in _KEY_SOURCE_FIELDS if f in spec]
    if len(given) != 1:
        raise ConfigError(
            f"{where}: needs exactly one key source ({', '.join(_KEY_SOURCE_FIELDS)}), got "
            f"{', '.join(given) or 'none'}"
        )
    kind = given[0]
    if "jku" in spec and kind == "jwks_uri":
        raise ConfigError(f"{where}: jku goes with pinned keys (jwks_file or jwks); with jwks_uri "
                          "the token's jku must equal the jwks_uri")
    if kind == "jwks_uri":
        out: dict = {"jwks_uri": _check_jwks_uri(spec["jwks_uri"], where)}
    elif kind == "jwks_file":
        value = spec["jwks_file"]
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: jwks_file must be a non-empty path")
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = base_dir / path
        if not path.is_file():
            raise ConfigError(f"{where}: jwks_file {str(path)!r} does not exist")
        out = {"jwks_file": str(path)}
    else:
        value = spec["jwks"]
        if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
            raise ConfigError(f"{where}: jwks must be a JWK Set object with a 'keys' list")
        out = {"jwks": value}
    if "jku" in spec:
        # pinned keys and the jku the issuer's tokens carry (the CDS Hooks sandbox always sends
        # one): a token with exactly this jku is verified with the pinned keys, never fetched
        out["jku"] = _check_jwks_uri(spec["jku"], f"{where} jku")
    return out


def parse_base_urls(raw: Iterable[Any], where: str) -> tuple[str, ...]:
    """Absolute http(s) base URLs, normalised and de-duplicated; ConfigError names ``where``."""
    bases: list[str] = []
    for item in raw:
        text = item.strip() if isinstance(item, str) else ""
        if not text:
            if isinstance(item, str):
                continue
            raise ConfigError(f"{where}: {item!r} is not an absolute http(s) base URL")
        try:
            parts = urlsplit(text)
            normalised = _normalise_url(text)
        except ValueError:
            parts, normalised = urlsplit(""), ""
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ConfigError(f"{where}: {text!r} is not an absolute http(s) base URL")
        if normalised not in bases:
            bases.append(normalised)
    return tuple(bases)


def _int_env(env: Mapping[str, str], var: str, default: int, low: int, high: int) -> int:
    raw = env.get(var, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{var}: {raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{var}: {value} is out of range {low}..{high}")
    return value


@dataclass(frozen=True)
class AuthSettings:
    """Authentication configuration (checklist SEC-2 … SEC-10); build it with :meth:`from_env`.

    ``mode`` tells the app whether to call :class:`JwtVerifier` at all; the verifier itself
    always verifies (it never turns into an accept-all).
    """

    mode: str = "none"
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    trusted_issuers: dict[str, dict] = field(default_factory=dict)
    audience_base_urls: tuple[str, ...] = ()
    leeway_seconds: int = DEFAULT_LEEWAY_SECONDS
    jwks_cache_seconds: int = DEFAULT_JWKS_CACHE_SECONDS
    replay_db: str | None = None

    @property
    def enabled(self) -> bool:
        """True when every call must carry a verified JWT (``BONE_CDS_AUTH=jwt``)."""
        return self.mode == "jwt"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "AuthSettings":
        """Read ``BONE_CDS_*`` variables; raise :class:`ConfigError` naming the bad variable."""
        mode = env.get(ENV_AUTH, "").strip().lower() or "none"
        if mode not in ("none", "jwt"):
            raise ConfigError(f"{ENV_AUTH}: must be 'none' or 'jwt', got {env.get(ENV_AUTH)!r}")

        raw_algs = env.get(ENV_ALGORITHMS, "")
        algorithms = _check_algorithms(raw_algs.split(",")) if raw_algs.strip() else DEFAULT_ALGORITHMS

        raw_issuers = env.get(ENV_TRUSTED_ISSUERS, "")
        trusted = _parse_trusted_issuers(raw_issuers) if raw_issuers.strip() else {}
        if mode == "jwt" and not trusted:
            raise ConfigError(f"{ENV_TRUSTED_ISSUERS}: required when {ENV_AUTH}=jwt")

        bases = list(parse_base_urls(env.get(ENV_AUDIENCE_BASE_URLS, "").split(","), ENV_AUDIENCE_BASE_URLS))
        if mode == "jwt" and not bases:
            # the accepted audiences come from configuration only, never from the request's Host
            # (issue 12: a token for another vendor's URL was accepted with a forged Host header)
            raise ConfigError(f"{ENV_AUDIENCE_BASE_URLS}: required when {ENV_AUTH}=jwt (the public base "
                              "URL(s) of this service, as a token's aud names them)")

        replay_db = env.get(ENV_REPLAY_DB, "").strip() or None
        return cls(
            mode=mode,
            algorithms=algorithms,
            trusted_issuers=trusted,
            audience_base_urls=tuple(bases),
            leeway_seconds=_int_env(env, ENV_LEEWAY, DEFAULT_LEEWAY_SECONDS, 0, MAX_LEEWAY_SECONDS),
            jwks_cache_seconds=_int_env(
                env, ENV_JWKS_CACHE, DEFAULT_JWKS_CACHE_SECONDS, 0, MAX_JWKS_CACHE_SECONDS
            ),
            replay_db=replay_db,
        )


# --- audiences ---------------------------------------------------------------------------------


def _normalise_url(url: str) -> str:
    """Canonical form for ``aud`` comparison: lower-case scheme and host, no default port, no
    query or fragment, no trailing slash."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    netloc = host
    if port is not None and (scheme, port) not in (("https", 443), ("http", 80)):
        netloc = f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def audiences_for(path: str, external_bases: Iterable[str]) -> list[str]:
    """The ``aud`` values that name this endpoint (SEC-5, SEC-9), normalised and de-duplicated:
    each configured base URL (``BONE_CDS_AUDIENCE_BASE_URLS``) joined with the request ``path``.
    Never the URL the request claims (its ``Host`` and ``X-Forwarded-*`` headers are the
    caller's to forge). Trailing slashes do not matter on either side.
    """
    result: list[str] = []

    def add(url: str) -> None:
        try:
            normalised = _normalise_url(url)
        except ValueError:
            return
        if normalised and normalised not in result:
            result.append(normalised)

    suffix = path.strip().lstrip("/")
    for base in external_bases:
        if base and base.strip():
            add(base.strip().rstrip("/") + ("/" + suffix if suffix else ""))
    return result


def aud_names(aud: Any, urls: Iterable[str]) -> bool:
    """True when the ``aud`` claim names one of ``urls`` (compared normalised)."""
    accepted = set()
    for url in urls:
        try:
            accepted.add(_normalise_url(url))
        except ValueError:
            continue
    accepted.discard("")
    return _aud_matches(aud, accepted)


def _aud_matches(aud: Any, audiences: set[str]) -> bool:
    values = [aud] if isinstance(aud, str) else aud
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        return False
    for value in values:
        try:
            if _normalise_url(value) in audiences:
                return True
        except ValueError:
            continue
    return False


# --- replay stores -----------------------------------------------------------------------------


@runtime_checkable
class ReplayStore(Protocol):
    """Remembers ``(iss, jti)`` pairs until ``exp`` (epoch seconds) — SEC-5/SEC-10 anti-replay."""

    def check_and_add(self, iss: str, jti: str, exp: float) -> bool:
        """Record the pair; return False if it was already recorded and not yet expired."""
        ...


class InMemoryReplayStore:
    """Thread-safe, size-bounded, per-process replay store (the default).

    With several gunicorn workers each has its own store; use :class:`SqliteReplayStore`
    (``BONE_CDS_REPLAY_DB``) to share. When full, the entries closest to expiry are evicted
    first (logged), so the replay window opened is as short as possible.
    """

    def __init__(self, max_entries: int = REPLAY_MAX_ENTRIES, clock: Callable[[], float] = time.time) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []

    def __len__(self) -> int:
        """Number of unexpired entries."""
        with self._lock:
            self._purge(self._clock())
            return len(self._seen)

    def _pop_oldest(self) -> None:
        exp, key = heapq.heappop(self._heap)
        if self._seen.get(key) == exp:  # skip heap entries superseded by a re-add
            del self._seen[key]

    def _purge(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            self._pop_oldest()

    def check_and_add(self, iss: str, jti: str, exp: float) -> bool:
        key = (iss, jti)
        with self._lock:
            now = self._clock()
            self._purge(now)
            known = self._seen.get(key)
            if known is not None and known > now:
                return False
            evicted = 0
            while len(self._seen) >= self._max and self._heap:
                before = len(self._seen)
                self._pop_oldest()
                evicted += before - len(self._seen)
            if evicted:
                log.warning("replay store full (%d entries): evicted %d unexpired jti(s)", self._max, evicted)
            self._seen[key] = exp
            heapq.heappush(self._heap, (exp, key))
            # Compact stale heap entries now and then so the heap stays bounded too.
            if len(self._heap) > 2 * self._max:
                self._heap = [(e, k) for k, e in self._seen.items()]
                heapq.heapify(self._heap)
            return True


class SqliteReplayStore:
    """Replay store in a SQLite file, shared by every process that opens the same path.

    One row per ``(iss, jti)`` (PRIMARY KEY) with its expiry; a single atomic ``INSERT … ON
    CONFLICT DO UPDATE … WHERE expired`` decides, so two workers cannot both accept one
    ``jti``. WAL mode; expired rows are purged at most every ``purge_interval`` seconds.
    Connections are per process (re-opened after a fork) and serialised by a lock.
    """

    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS seen_jti ("
        " iss TEXT NOT NULL, jti TEXT NOT NULL, exp REAL NOT NULL,"
        " PRIMARY KEY (iss, jti)) WITHOUT ROWID",
        "CREATE INDEX IF NOT EXISTS seen_jti_exp ON seen_jti (exp)",
    )
    _UPSERT = (
        "INSERT INTO seen_jti (iss, jti, exp) VALUES (?, ?, ?) "
        "ON CONFLICT (iss, jti) DO UPDATE SET exp = excluded.exp WHERE seen_jti.exp <= ?"
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        clock: Callable[[], float] = time.time,
        purge_interval: float = 60.0,
        busy_timeout: float = 5.0,
    ) -> None:
        self.path = str(path)
        self._clock = clock
        self._purge_interval = purge_interval
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None
        self._last_purge = float("-inf")
        try:
            with self._lock:
                self._connection()
        except sqlite3.Error as exc:
            raise ConfigError(f"{ENV_REPLAY_DB}: cannot open replay database {self.path!r}: {exc}") from None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            for statement in self._SCHEMA:
                conn.execute(statement)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def check_and_add(self, iss: str, jti: str, exp: float) -> bool:
        with self._lock:
            conn = self._connection()
            now = self._clock()
            if now - self._last_purge >= self._purge_interval:
                conn.execute("DELETE FROM seen_jti WHERE exp <= ?", (now,))
                self._last_purge = now
            cursor = conn.execute(self._UPSERT, (iss, jti, float(exp), now))
            return cursor.rowcount == 1

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


# --- key sets ----------------------------------------------------------------------------------


def _usable_keys(jwks: Any, where: str) -> dict[str, dict]:
    """``kid`` -> JWK for the public signature keys of a JWK Set (SEC-7).

    Skipped: keys without ``kid``, symmetric (``oct``) keys, keys holding private material,
    keys whose ``use`` is not ``sig``, keys PyJWT cannot load.
    """
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValueError(f"{where}: not a JWK Set (no 'keys' list)")
    keys: dict[str, dict] = {}
    for jwk in jwks["keys"]:
        if not isinstance(jwk, dict):
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid or jwk.get("kty") == "oct" or "d" in jwk:
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        try:
            jwt.PyJWK(jwk)
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
        keys.setdefault(kid, jwk)
    if not keys:
        raise ValueError(f"{where}: JWK Set holds no usable public signature key with a kid")
    return keys


class KeySetUnavailable(ValueError):
    """An issuer's key set could not be fetched (or only a stale one is known)."""


_KTY_FOR_ALG_PREFIX = {"ES": "EC", "RS": "RSA", "PS": "RSA", "Ed": "OKP"}


class _IssuerKeys:
    """One issuer's key set: cached with a bounded lifetime, refetched rate-limited."""

    def __init__(self, iss: str, source: dict, verifier: "JwtVerifier") -> None:
        self.iss = iss
        self.source = source
        self.jwks_uri: str | None = source.get("jwks_uri")
        self._verifier = verifier
        self._lock = threading.Lock()
        self._keys: dict[str, dict] = {}
        self._pyjwks: dict[tuple[str, str], jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._last_attempt = float("-inf")
        self._last_failed = False
        self._refreshing = False
        self.static = "jwks" in source
        if self.static:
            try:
                self._keys = _usable_keys(source["jwks"], f"{ENV_TRUSTED_ISSUERS}[{iss!r}].jwks")
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        elif "jwks_file" in source:  # fail at start-up on a bad file, re-read like a URL later
            try:
                self._keys = self._load()
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{ENV_TRUSTED_ISSUERS}[{iss!r}].jwks_file: {exc}") from None
            self._fetched_at = self._last_attempt = verifier.clock()

    def _load(self) -> dict[str, dict]:
        if "jwks_file" in self.source:
            path = self.source["jwks_file"]
            with open(path, "rb") as handle:
                data = handle.read(MAX_JWKS_BYTES + 1)
            if len(data) > MAX_JWKS_BYTES:
                raise ValueError(f"{path}: larger than {MAX_JWKS_BYTES} bytes")
            return _usable_keys(json.loads(data), path)
        uri = self.source["jwks_uri"]
        # bounded in total time (a server dripping one byte a second is dropped at the limit)
        # and size; a redirect is not followed (it could name an address nobody allowed)
        stop_at = time.monotonic() + JWKS_TIMEOUT_SECONDS
        with self._verifier.session.get(
            uri, timeout=JWKS_TIMEOUT_SECONDS, stream=True, allow_redirects=False,
            headers={"Accept": "application/json"},
        ) as response:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            try:
                body = read_limited(response, stop_at, MAX_JWKS_BYTES)
            except ReadDeadline:
                raise ValueError(f"not received within {JWKS_TIMEOUT_SECONDS} s") from None
            except ReadTooLarge:
                raise ValueError(f"larger than {MAX_JWKS_BYTES} bytes") from None
        return _usable_keys(json.loads(body), "JWK Set")

    def _refresh(self, now: float, why: str) -> None:
        """Fetch the key set. Called with the lock held; the lock is released during the fetch
        (issue 12: a slow key server held every request of the issuer) and one fetch runs at a
        time, the others serve the cached set meanwhile. On failure the old set and its age
        stay, so :meth:`key_for` drops it once it is past its cache lifetime."""
        self._last_attempt = now
        if self._refreshing:
            return
        self._refreshing = True
        self._lock.release()
        try:
            keys = self._load()
            error = None
        except (requests.RequestException, OSError, ValueError) as exc:
            keys, error = None, exc
        finally:
            self._lock.acquire()
            self._refreshing = False
        if keys is None:
            self._last_failed = True
            log.warning("JWKS %s for iss=%r failed: %s", why, self.iss, error)
            return
        self._last_failed = False
        if keys != self._keys:
            self._pyjwks = {}
        self._keys, self._fetched_at = keys, now
        log.info("JWKS %s for iss=%r: %d key(s)", why, self.iss, len(keys))

    def key_for(self, kid: str, alg: str) -> jwt.PyJWK | None:
        """The issuer's key ``kid`` bound to ``alg``, or None if the set has no such kid.

        Refreshes the set when its cache lifetime is over, and refetches once on an unknown
        ``kid`` (key rotation) unless a fetch was tried in the last
        :data:`JWKS_REFETCH_MIN_INTERVAL_SECONDS`; a failed fetch is retried no sooner either.
        Raises :class:`KeySetUnavailable` when no fresh key set could be obtained.
        """
        with self._lock:
            if not self.static:
                now = self._verifier.clock()
                may_fetch = now - self._last_attempt >= JWKS_REFETCH_MIN_INTERVAL_SECONDS
                lifetime = self._verifier.settings.jwks_cache_seconds

                def stale() -> bool:
                    return now - self._fetched_at >= lifetime

                if stale():
                    if may_fetch or not self._last_failed:
                        self._refresh(now, "fetch")
                    if stale() and not (self._refreshing and self._keys):
                        self._keys, self._pyjwks = {}, {}
                        raise KeySetUnavailable("no fresh key set")
                elif kid not in self._keys and may_fetch:
                    self._refresh(now, "refetch for an unknown kid")
            jwk = self._keys.get(kid)
            if jwk is None:
                return None
            bound = self._pyjwks.get((kid, alg))
            if bound is None:
                bound = _bind_key(jwk, alg)
                self._pyjwks[(kid, alg)] = bound
            return bound


def _bind_key(jwk: dict, alg: str) -> jwt.PyJWK:
    """Load ``jwk`` for ``alg``; the key's own ``alg`` (if any) and type must agree.

    ``alg`` is OPTIONAL in a JWK (RFC 7517 §4.4); without it PyJWT would assume RS256 for any
    RSA key, so the (allowlisted) token algorithm is bound explicitly after a key-type check.
    """
    key_alg = jwk.get("alg")
    if key_alg is not None and key_alg != alg:
        raise ValueError("token alg differs from the key's alg")
    if _KTY_FOR_ALG_PREFIX.get(alg[:2]) != jwk.get("kty"):
        raise ValueError("token alg does not fit the key type")
    return jwt.PyJWK(jwk, algorithm=alg)


# --- verifier ----------------------------------------------------------------------------------


def _claim_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _for_log(value: str | None) -> str | None:
    """``iss``/``jti`` as logged: bounded in length (they come from the caller)."""
    return None if value is None else value[:MAX_JTI_CHARS]


#: NumericDate claims beyond this (about the year 5138) are refused: a 400-digit ``exp`` overflows
#: ``float()``, a NaN compares false with everything (issue 12: both were accepted or a 500).
_MAX_NUMERIC_DATE = 10 ** 11


def _is_number(value: Any) -> bool:
    """A finite JSON number usable as a NumericDate (RFC 7519 §2), never a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        return -_MAX_NUMERIC_DATE < value < _MAX_NUMERIC_DATE   # exact: no float() of a huge int
    return math.isfinite(value) and -_MAX_NUMERIC_DATE < value < _MAX_NUMERIC_DATE


class JwtVerifier:
    """Verifies ``Authorization: Bearer <JWT>`` headers (checklist SEC-3 … SEC-10, IOP-2).

    Thread-safe; build one per process at start-up (bad key files or algorithms raise
    :class:`ConfigError` here). ``clock`` is the time source for every time check, the key
    cache and the default replay store.
    """

    def __init__(
        self,
        settings: AuthSettings,
        session: requests.Session | None = None,
        replay_store: ReplayStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        # Re-check even when settings were built by hand rather than from_env (SEC-6).
        self.algorithms: tuple[str, ...] = _check_algorithms(settings.algorithms, "AuthSettings.algorithms")
        self.session = session if session is not None else requests.Session()
        self.clock = clock
        if replay_store is None:
            if settings.replay_db:
                replay_store = SqliteReplayStore(settings.replay_db, clock=clock)
            else:
                replay_store = InMemoryReplayStore(clock=clock)
        self.replay_store = replay_store
        self._issuers = {
            iss: _IssuerKeys(iss, source, self) for iss, source in settings.trusted_issuers.items()
        }

    # The one place failures are logged: the check, iss and jti; never the token.
    # Reasons name the check only: no header or claim values besides iss and jti.
    def _fail(self, reason: str, iss: str | None = None, jti: str | None = None) -> AuthError:
        iss, jti = _for_log(iss), _for_log(jti)
        log.warning("JWT rejected: %s (iss=%r, jti=%r)", reason, iss, jti)
        return AuthError(reason, iss=iss, jti=jti)

    def verify(self, authorization_header: str | None, audiences: list[str]) -> dict:
        """Return the verified claims of the bearer token, or raise :class:`AuthError`.

        ``audiences``: the URLs naming the endpoint called (see :func:`audiences_for`).
        """
        token = self._bearer_token(authorization_header)

        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(
                token,
                options={
                    "verify_signature": False,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise self._fail(f"malformed token ({type(exc).__name__})") from None
        iss = _claim_str(unverified.get("iss"))
        jti = _claim_str(unverified.get("jti"))

        alg = header.get("alg")
        if not isinstance(alg, str) or _is_refused_algorithm(alg) or alg not in self.algorithms:
            raise self._fail("header alg not accepted", iss, jti)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise self._fail("header kid missing", iss, jti)
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP):
            raise self._fail("header typ is not JWT", iss, jti)

        if iss is None or iss not in self._issuers:
            raise self._fail("iss not trusted" if iss else "claim iss missing", iss, jti)
        issuer = self._issuers[iss]
        if "jku" in header and header["jku"] not in {issuer.jwks_uri, issuer.source.get("jku")} - {None}:
            raise self._fail("jku is not the issuer's configured jwks_uri", iss, jti)

        try:
            key = issuer.key_for(kid, alg)
        except KeySetUnavailable:
            raise self._fail("issuer key set unavailable", iss, jti) from None
        except (jwt.PyJWTError, ValueError):
            raise self._fail("key for kid does not fit header alg", iss, jti) from None
        if key is None:
            raise self._fail("unknown kid", iss, jti)

        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=list(self.algorithms),
                issuer=iss,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_signature": True,
                    "verify_iss": True,
                    # Time and audience checks below use the injected clock and URL normalisation.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.MissingRequiredClaimError as exc:
            raise self._fail(f"claim {exc.claim} missing", iss, jti) from None
        except jwt.InvalidSignatureError:
            raise self._fail("signature invalid", iss, jti) from None
        except jwt.PyJWTError as exc:
            raise self._fail(f"token rejected by PyJWT ({type(exc).__name__})", iss, jti) from None

        self._check_claims(claims, audiences, iss, jti)
        keep_until = float(claims["exp"]) + self.settings.leeway_seconds
        try:
            fresh = self.replay_store.check_and_add(iss, claims["jti"], keep_until)
        except Exception as exc:  # a broken store must fail closed
            raise self._fail(f"replay store error ({type(exc).__name__})", iss, jti) from None
        if not fresh:
            raise self._fail("jti replayed", iss, jti)
        log.debug("JWT accepted (iss=%r, jti=%r)", iss, jti)
        return claims

    def _bearer_token(self, authorization_header: str | None) -> str:
        if not authorization_header or not authorization_header.strip():
            raise self._fail("Authorization header missing")
        scheme, _, token = authorization_header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise self._fail("Authorization header is not a Bearer token")
        if len(token) > MAX_TOKEN_CHARS:
            raise self._fail("bearer token too long")
        return token

    def _check_claims(self, claims: dict, audiences: list[str], iss: str, jti: str | None) -> None:
        """Types, time (SEC-9: exp; iat; nbf; lifetime) and audience (SEC-5, SEC-9)."""
        now = self.clock()
        leeway = self.settings.leeway_seconds
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(claims.get("jti"), str) or not claims["jti"] or len(claims["jti"]) > MAX_JTI_CHARS:
            raise self._fail("claim jti is not a non-empty string", iss, jti)
        if not _is_number(exp) or not _is_number(iat):
            raise self._fail("claim exp or iat is not a number", iss, jti)
        if exp <= now - leeway:
            raise self._fail("token expired (exp)", iss, jti)
        if iat > now + leeway:
            raise self._fail("token issued in the future (iat)", iss, jti)
        nbf = claims.get("nbf")
        if nbf is not None and (not _is_number(nbf) or nbf > now + leeway):
            raise self._fail("token not yet valid (nbf)", iss, jti)
        if exp - iat > MAX_TOKEN_LIFETIME_SECONDS:
            raise self._fail(f"token lifetime exceeds {MAX_TOKEN_LIFETIME_SECONDS} s", iss, jti)
        if not aud_names(claims.get("aud"), audiences):
            raise self._fail("aud does not name this endpoint", iss, jti)
