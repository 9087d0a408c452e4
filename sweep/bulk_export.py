"""A FHIR Bulk Data Access export (``bone-cds sweep --export``), downloaded into ``DIR/export/``.

Bulk Data Access IG 2.0 (hl7.org/fhir/uv/bulkdata), as a client:

* **Kick-off** ``GET {base}/$export`` (system), ``{base}/Patient/$export`` or
  ``{base}/Group/{id}/$export`` with ``Accept: application/fhir+json``, ``Prefer: respond-async``,
  ``_outputFormat=application/fhir+ndjson``, ``_type`` = the types the sweep reads
  (:data:`cds_service.chart.chart.READ_TYPES`) and ``_typeFilter`` = the Observation codes of the
  patient-view prefetch (the codes.json value sets). Never a code filter on medication records:
  a drug is also recognised by its name (RULES.md D3). A server that answers the kick-off 4xx while
  ``_typeFilter`` was sent is asked again without it (the sweep drops the other Observations
  itself, so the worklist is the same either way).
* **Status** the ``Content-Location`` URL is polled: 202 → wait ``Retry-After`` (seconds or an
  HTTP-date, bounded by :attr:`ExportSettings.poll_min`/``poll_max``; exponential backoff when the
  server gives none) and show ``X-Progress``; 200 → the manifest; 4xx/5xx with an OperationOutcome
  whose issues are not transient → the export failed (its text is shown); 429, 5xx, a transient
  OperationOutcome or a network error → retried with backoff up to :attr:`ExportSettings.retries`
  times in a row; the whole wait is bounded by :attr:`ExportSettings.timeout`.
* **Files** the manifest's ``output`` files (of the requested types) and ``error`` files are
  downloaded in parallel (a bounded thread pool), each to ``name.part`` then renamed when whole,
  its size and sha256 recorded in the state file; a file larger than ``max_file_bytes`` is refused.
* **Resume** ``DIR/export-state.json`` holds the request, the status URL, the manifest and the
  completed files: the same command run again resumes the polling or the downloads and skips the
  files already there (size and sha256 checked). A failure that can be resumed keeps everything.
* **DELETE** the status URL is deleted on cancel (Ctrl-C, SIGTERM) and after a complete download,
  never after a failure that can still be resumed.

Security: every URL fetched must be on the FHIR base's origin or an origin given with
``--allow-origin``; every redirect is checked too. The access token is sent to the base's origin
(kick-off, status, DELETE, files) and to an allowed file origin only when the manifest says
``requiresAccessToken: true``; never across a redirect to another origin. Plain http is refused
except on loopback. No token, assertion, patient id or URL query string is logged.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import re
import signal
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from .smart_backend import AuthError, TokenSource

log = logging.getLogger(__name__)

STATE_FILE = "export-state.json"
EXPORT_FOLDER = "export"
ERROR_FOLDER = "export-errors"
STATE_VERSION = 1
NDJSON = "application/fhir+ndjson"
FHIR_JSON = "application/fhir+json"
#: IssueType codes under ``transient``: the job may still be fine, ask again (Bulk Data "Status").
TRANSIENT_CODES = frozenset({"transient", "lock-error", "no-store", "exception", "timeout", "incomplete",
                             "throttled"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: kick-off answers after which a request with ``_typeFilter`` is sent again without it
TYPE_FILTER_REJECTED = frozenset({400, 405, 422, 501})
_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


class ExportError(RuntimeError):
    """The export stopped; ``resumable``: running the same command again continues it."""

    def __init__(self, message: str, *, resumable: bool) -> None:
        super().__init__(message)
        self.resumable = resumable


class _Gone(Exception):
    """The status URL being resumed is unknown to the server (404/410): a new export is needed."""


class ExportCancelled(Exception):
    """Ctrl-C or SIGTERM: the export was cancelled (and its status URL deleted)."""


@dataclass(frozen=True)
class ExportRequest:
    """What is asked of the server: its base, the level, the types and the Observation filter."""

    base: str
    level: str = "system"            # system | patient | group
    group: str | None = None
    types: tuple[str, ...] = ()
    type_filter: str | None = None   # "Observation?code=system|code,..." or None

    @property
    def kickoff_url(self) -> str:
        base = self.base.rstrip("/")
        if self.level == "group":
            return f"{base}/Group/{self.group}/$export"
        if self.level == "patient":
            return f"{base}/Patient/$export"
        return f"{base}/$export"

    def params(self, with_filter: bool) -> dict[str, str]:
        out = {"_outputFormat": NDJSON, "_type": ",".join(self.types)}
        if with_filter and self.type_filter:
            out["_typeFilter"] = self.type_filter
        return out

    def identity(self) -> dict[str, Any]:
        """What a state file must match to be resumed by this request."""
        return {"kickoff": self.kickoff_url, "types": list(self.types), "type_filter": self.type_filter}


def sweep_request(base: str, *, group: str | None = None, patients: bool = False,
                  type_filter: bool = True) -> ExportRequest:
    """The export the sweep needs: the types it reads and, unless disabled, the Observation codes
    of the patient-view prefetch (exactly the Observations the sweep keeps)."""
    from cds_service.chart.chart import READ_TYPES
    from .patient import prefetch_observation_codes

    codes = prefetch_observation_codes()
    filt = None
    if type_filter and codes:
        tokens = sorted(f"{s}|{c}" if s else c for s, c in codes)
        # the value is a list of comma-separated queries: the query's own commas are %-encoded
        filt = "Observation?" + urlencode({"code": ",".join(tokens)})
    level = "group" if group else "patient" if patients else "system"
    return ExportRequest(base.rstrip("/"), level, group, tuple(sorted(READ_TYPES)), filt)


@dataclass
class ExportSettings:
    """Bounds of one run (all in seconds unless named otherwise)."""

    poll_min: float = 1.0
    poll_max: float = 300.0
    timeout: float = 24 * 3600.0           # the whole run: kick-off to last file
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    retries: int = 5                        # transient failures in a row, per request
    backoff: float = 2.0                    # first wait after a transient failure, doubled each time
    backoff_max: float = 120.0
    workers: int = 4
    max_file_bytes: int = 64 * 1024 ** 3
    max_json_bytes: int = 64 * 1024 ** 2    # manifest, OperationOutcome
    allow_origins: tuple[str, ...] = ()
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


def origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def shown(url: str) -> str:
    """A URL fit for a message: no query string or fragment (a signed URL's signature)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def check_transport(url: str, what: str) -> None:
    """https, or http on loopback only (a token is never sent in clear over a network)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and (parts.hostname or "").lower() in _LOOPBACK:
        return
    raise ExportError(f"{what} {shown(url)}: https is required (plain http only on loopback)", resumable=False)


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP-date), or None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _clean(text: Any, limit: int = 300) -> str:
    return re.sub(r"[\x00-\x1f\x7f]+", " ", str(text))[:limit].strip()


def outcome_text(doc: Any) -> tuple[str, bool]:
    """(the issues of an OperationOutcome as one line, whether all of them are transient)."""
    if not isinstance(doc, dict) or doc.get("resourceType") != "OperationOutcome":
        return "", True
    parts, transient = [], True
    for issue in doc.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        code = issue.get("code")
        transient = transient and code in TRANSIENT_CODES
        details = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or ""
        parts.append(_clean(f"{issue.get('severity', '?')}/{code}: {details}".rstrip(": ")))
    return "; ".join(parts)[:600], transient if parts else True


class State:
    """``DIR/export-state.json``: written whole to a temporary name and renamed (never half)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.data: dict[str, Any] = {}
        if path.exists():
            try:
                self.data = json.loads(path.read_text())
            except (OSError, ValueError):
                raise ExportError(f"{path}: unreadable state file; remove it (or use --restart)",
                                  resumable=False) from None

    def save(self) -> None:
        with self.lock:
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True))
            os.replace(tmp, self.path)

    def fresh(self, request: ExportRequest) -> None:
        self.data = {"version": STATE_VERSION, "request": request.identity(), "status_url": None,
                     "type_filter_sent": None, "type_filter_rejected": None, "kicked_off": None,
                     "manifest": None, "files": {}, "complete": False, "deleted": False}


@dataclass
class FileJob:
    url: str
    kind: str        # output | error
    resource_type: str
    path: Path
    count: int | None = None


@dataclass
class ExportResult:
    """What was downloaded (for the sweep and summary.json)."""

    folder: Path
    summary: dict[str, Any] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            h.update(chunk)
    return h.hexdigest()


class BulkExport:
    """One export into ``out_dir`` (see the module docstring); :meth:`run` does it all."""

    def __init__(self, request: ExportRequest, out_dir: Path, tokens: TokenSource, *,
                 session: requests.Session | None = None, settings: ExportSettings | None = None,
                 say: Callable[[str], None] = lambda _t: None, restart: bool = False,
                 as_of: str | None = None) -> None:
        self.request, self.tokens, self.restart, self.as_of = request, tokens, restart, as_of
        self.session = session or requests.Session()
        self.settings = settings or ExportSettings()
        self.say = say
        self.out_dir = Path(out_dir)
        self.folder = self.out_dir / EXPORT_FOLDER
        self.errors_folder = self.out_dir / ERROR_FOLDER
        self.base_origin = origin(request.base)
        self.allowed = {self.base_origin, *(origin(o) for o in self.settings.allow_origins)}
        self.stop = threading.Event()
        self.started = self.settings.clock()
        self.state: State | None = None
        self.events: Counter = Counter()   # retries, refreshes, … (summary.json)

    # ------------------------------------------------------------------ the whole run

    def run(self) -> ExportResult:
        check_transport(self.request.base, "FHIR base")
        for o in self.settings.allow_origins:
            check_transport(o, "--allow-origin")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.state = state = State(self.out_dir / STATE_FILE)
        try:
            self._open(state)
            if state.data["complete"] and state.data.get("as_of") != self.as_of:
                self.say(f"export: the export in {self.folder} was for --as-of {state.data.get('as_of')}; "
                         f"starting a new one for {self.as_of}")
                self._discard_files(state)
                state.fresh(self.request)
            if state.data["complete"]:
                self.say(f"export: already downloaded (transactionTime "
                         f"{(state.data['manifest'] or {}).get('transactionTime')}); reusing {self.folder} "
                         "(--restart for a new export)")
                return self._result(resumed=True, reused=True)
            resumed = bool(state.data["status_url"])
            if not state.data["manifest"]:
                if not state.data["status_url"]:
                    self._kickoff(state)
                else:
                    self.say("export: resuming the export started "
                             f"{state.data['kicked_off']} (polling its status again)")
                try:
                    state.data["manifest"] = self._poll(state, resumed)
                except _Gone as gone:
                    self.say(f"export: the server no longer knows the export being resumed ({gone}); "
                             "starting a new one")
                    self._discard_files(state)
                    state.fresh(self.request)
                    self._kickoff(state)
                    resumed = False
                    state.data["manifest"] = self._poll(state, False)
                state.save()
            elif resumed:
                self.say("export: resuming the downloads of the manifest already received")
            failed = self._download_all(state)
            if failed:
                raise ExportError(
                    f"{len(failed)} file(s) could not be downloaded ({'; '.join(failed[:5])}); the "
                    f"{len(state.data['files'])} file(s) already downloaded are kept in {self.folder}: "
                    "run the same command again to resume", resumable=True)
            state.data.update(complete=True, as_of=self.as_of)
            state.save()
            self._delete(state, "the download is complete")
            return self._result(resumed=resumed, reused=False)
        except KeyboardInterrupt:
            self.stop.set()
            self._cancel(state)
            raise ExportCancelled() from None
        except ExportError as exc:
            if not exc.resumable and state.data.get("request") == self.request.identity():
                # the job is dead (or never started): a rerun kicks off a new one
                if state.data.get("status_url") and not state.data.get("deleted"):
                    self._delete(state, "the export failed")
                state.data.update(status_url=None, manifest=None)
                state.save()
            raise

    def _open(self, state: State) -> None:
        """A fresh state, or the one in ``DIR`` when it belongs to this request."""
        if state.data and state.data.get("version") == STATE_VERSION and not self.restart:
            if state.data.get("request") != self.request.identity():
                raise ExportError(f"{self.out_dir} holds an export of another request "
                                  f"({state.data.get('request', {}).get('kickoff')}); use another --out, "
                                  "or --restart to discard it", resumable=False)
            if state.data.get("status_url") or state.data.get("complete"):
                return
        if state.data.get("status_url") and not state.data.get("deleted") and not state.data.get("complete"):
            self._delete(state, "--restart discards it")
        self._discard_files(state)
        state.fresh(self.request)
        state.save()

    def _discard_files(self, state: State) -> None:
        """The files of an earlier export (never mixed with a new one's)."""
        for folder in (self.folder, self.errors_folder):
            if folder.is_dir():
                for p in folder.iterdir():
                    if p.is_file():
                        p.unlink()

    def _result(self, *, resumed: bool, reused: bool) -> ExportResult:
        assert self.state is not None
        data = self.state.data
        manifest = data["manifest"] or {}
        files = [f for f in data["files"].values() if f["kind"] == "output"]
        errors = [f for f in data["files"].values() if f["kind"] == "error"]
        by_type: Counter = Counter()
        for f in files:
            by_type[f["type"]] += 1
        summary = {
            "base": shown(self.request.base), "level": self.request.level, "group": self.request.group,
            "types": list(self.request.types),
            "type_filter": {"sent": bool(data["type_filter_sent"]),
                            "rejected_by_server": data["type_filter_rejected"]},
            "transaction_time": manifest.get("transactionTime"),
            "requires_access_token": manifest.get("requiresAccessToken"),
            "files": len(files), "bytes": sum(f["size"] for f in files),
            "files_by_type": dict(sorted(by_type.items())),
            "skipped_types": sorted({o.get("type") for o in manifest.get("output") or []
                                     if isinstance(o, dict) and o.get("type") not in self.request.types}
                                    - {None}),
            "errors": self._error_summary(errors),
            "resumed": resumed, "reused_complete_download": reused,
            "tokens_requested": self.tokens.issued,
            "retries": dict(sorted(self.events.items())),
            "deleted_on_server": data["deleted"],
            "seconds": round(self.settings.clock() - self.started, 3),
            "state_file": str(self.out_dir / STATE_FILE), "folder": str(self.folder),
        }
        return ExportResult(self.folder, summary)

    def _error_summary(self, errors: list[dict[str, Any]]) -> dict[str, Any]:
        """The manifest's error files: OperationOutcome issues counted by severity/code, and the
        first diagnostics (summary.json only, never on the terminal: they may name patients)."""
        counts: Counter = Counter()
        listed: list[str] = []
        unreadable = 0
        for f in errors:
            path = self.out_dir / f["path"]
            try:
                with path.open("rb") as fh:
                    for line in fh:
                        if not line.strip():
                            continue
                        try:
                            doc = json.loads(line)
                        except ValueError:
                            unreadable += 1
                            continue
                        for issue in (doc.get("issue") or []) if isinstance(doc, dict) else []:
                            if isinstance(issue, dict):
                                counts[f"{issue.get('severity', '?')}/{issue.get('code', '?')}"] += 1
                        text, _ = outcome_text(doc)
                        if text and len(listed) < 20:
                            listed.append(text)
            except OSError:
                unreadable += 1
        return {"files": [f["path"] for f in errors], "issues": dict(sorted(counts.items())),
                "first": listed, "unreadable_lines": unreadable}

    # ------------------------------------------------------------------ HTTP

    def _check_url(self, url: str, what: str) -> None:
        if origin(url) not in self.allowed:
            raise ExportError(f"{what} {shown(url)} is not on the FHIR server's origin; allow it with "
                              f"--allow-origin {origin(url).rsplit(':', 1)[0]} if it is trusted",
                              resumable=False)
        check_transport(url, what)

    def _wait(self, seconds: float) -> None:
        """Sleep, in slices so that a cancel is seen; past the run's timeout → resumable stop."""
        if self.settings.clock() + seconds - self.started > self.settings.timeout:
            raise ExportError(f"the export did not finish within the timeout ({self.settings.timeout:.0f}s); "
                              "run the same command again to keep waiting", resumable=True)
        end = self.settings.clock() + seconds
        while not self.stop.is_set():
            left = end - self.settings.clock()
            if left <= 0:
                return
            self.settings.sleep(min(left, 0.5))

    def _backoff(self, attempt: int, resp: requests.Response | None) -> float:
        hinted = retry_after(resp.headers.get("Retry-After")) if resp is not None else None
        if hinted is not None:
            return min(max(hinted, self.settings.poll_min), self.settings.poll_max)
        return min(self.settings.backoff * 2 ** attempt, self.settings.backoff_max)

    def _json(self, resp: requests.Response) -> Any:
        body = bytearray()
        for chunk in resp.iter_content(64 * 1024):
            body += chunk
            if len(body) > self.settings.max_json_bytes:
                raise ExportError(f"{shown(resp.url)}: the answer is larger than "
                                  f"{self.settings.max_json_bytes:,} bytes", resumable=False)
        try:
            return json.loads(bytes(body))
        except ValueError:
            return None

    def _send(self, method: str, url: str, *, auth: bool, what: str, accept: str = FHIR_JSON,
              params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
              cancellable: bool = True) -> requests.Response:
        """One request, streamed: redirects followed by hand (each checked; the token never crosses
        origins), a 401 answered by one token refresh, 429/5xx/network errors retried with backoff.
        A 5xx that carries a non-transient OperationOutcome is returned, not retried."""
        self._check_url(url, what)
        refreshed = False
        attempt = 0
        while True:
            if cancellable and self.stop.is_set():
                raise KeyboardInterrupt
            target, hops, token = url, 0, None
            try:
                while True:
                    hdrs = {"Accept": accept, **(headers or {})}
                    if auth and origin(target) == origin(url):
                        token = self.tokens.token()
                        hdrs["Authorization"] = f"Bearer {token}"
                    resp = self.session.request(method, target, params=params if hops == 0 else None,
                                                headers=hdrs, stream=True, allow_redirects=False,
                                                timeout=(self.settings.connect_timeout, self.settings.read_timeout))
                    if resp.status_code in (301, 302, 303, 307, 308) and method == "GET" and resp.headers.get("Location"):
                        resp.close()
                        hops += 1
                        if hops > 5:
                            raise ExportError(f"{what} {shown(url)}: too many redirects", resumable=False)
                        target = urljoin(target, resp.headers["Location"])
                        self._check_url(target, f"{what} (redirected)")
                        continue
                    break
            except AuthError as exc:
                raise ExportError(str(exc), resumable=True) from None
            except requests.RequestException as exc:
                if not cancellable or attempt >= self.settings.retries:
                    raise ExportError(f"{what} {shown(url)}: {type(exc).__name__} after {attempt + 1} "
                                      "attempt(s); run the same command again to resume", resumable=True) from None
                self.events["network"] += 1
                self._wait(self._backoff(attempt, None))
                attempt += 1
                continue
            if resp.status_code == 401 and token is not None and not refreshed:
                resp.close()
                self.tokens.invalidate(token)
                self.events["token_refreshed_on_401"] += 1
                refreshed = True
                continue
            if resp.status_code in RETRY_STATUSES and cancellable:
                if resp.status_code >= 500:
                    doc = self._json(resp)
                    text, transient = outcome_text(doc)
                    if not transient:
                        resp._bone_outcome = (doc, text)  # type: ignore[attr-defined]
                        return resp
                else:
                    resp.close()
                if attempt >= self.settings.retries:
                    raise ExportError(f"{what} {shown(url)}: HTTP {resp.status_code} after {attempt + 1} "
                                      "attempt(s); run the same command again to resume", resumable=True)
                self.events[f"http_{resp.status_code}"] += 1
                self.say(f"export: {what} answered HTTP {resp.status_code}; retrying "
                         f"({attempt + 1}/{self.settings.retries})")
                self._wait(self._backoff(attempt, resp))
                attempt += 1
                continue
            return resp

    def _outcome(self, resp: requests.Response) -> str:
        cached = getattr(resp, "_bone_outcome", None)
        text = cached[1] if cached else outcome_text(self._json(resp))[0]
        return text or "no OperationOutcome"

    # ------------------------------------------------------------------ kick-off and status

    def _kickoff(self, state: State) -> None:
        with_filter = bool(self.request.type_filter)
        headers = {"Prefer": "respond-async"}
        resp = self._send("GET", self.request.kickoff_url, auth=True, what="kick-off",
                          params=self.request.params(with_filter), headers=headers)
        if with_filter and resp.status_code in TYPE_FILTER_REJECTED:
            reason = self._outcome(resp)
            resp.close()
            self.say(f"export: the server refused the kick-off with _typeFilter (HTTP {resp.status_code}); "
                     "asking again without it (the sweep keeps only the Observations it reads)")
            state.data["type_filter_rejected"] = f"HTTP {resp.status_code}: {reason}"
            with_filter = False
            resp = self._send("GET", self.request.kickoff_url, auth=True, what="kick-off",
                              params=self.request.params(False), headers=headers)
        with resp:
            if resp.status_code != 202:
                raise ExportError(f"kick-off {shown(self.request.kickoff_url)}: HTTP {resp.status_code}: "
                                  f"{self._outcome(resp)}", resumable=False)
            location = resp.headers.get("Content-Location")
        if not location:
            raise ExportError("kick-off: 202 without a Content-Location (status URL)", resumable=False)
        location = urljoin(self.request.kickoff_url, location)
        self._check_url(location, "status URL")
        state.data.update(status_url=location, type_filter_sent=with_filter,
                          kicked_off=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        state.save()
        self.say(f"export: kicked off ({self.request.level} level{', _typeFilter' if with_filter else ''}); "
                 "polling its status")

    def _poll(self, state: State, resumed: bool) -> dict[str, Any]:
        url = state.data["status_url"]
        interval = self.settings.poll_min
        while True:
            resp = self._send("GET", url, auth=True, what="status")
            with resp:
                if resp.status_code == 202:
                    progress = _clean(resp.headers.get("X-Progress", ""), 100)
                    hinted = retry_after(resp.headers.get("Retry-After"))
                    if hinted is None:
                        delay, interval = interval, min(interval * 2, self.settings.poll_max)
                    else:
                        delay = min(max(hinted, self.settings.poll_min), self.settings.poll_max)
                    self.say(f"export: in progress{f' ({progress})' if progress else ''}; next poll in {delay:.0f}s")
                    self._wait(delay)
                    continue
                if resp.status_code == 200:
                    return self._manifest(self._json(resp))
                text = self._outcome(resp)
                if resp.status_code in (404, 410) and resumed:
                    raise _Gone(f"HTTP {resp.status_code}")
                raise ExportError(f"the export failed: status HTTP {resp.status_code}: {text}", resumable=False)

    def _manifest(self, doc: Any) -> dict[str, Any]:
        if not isinstance(doc, dict) or not isinstance(doc.get("output"), list):
            raise ExportError("the export's manifest is not a Bulk Data manifest (no output list)", resumable=True)
        for key in ("output", "error"):
            entries = doc.get(key) or []
            if not isinstance(entries, list) or not all(
                    isinstance(e, dict) and isinstance(e.get("url"), str) for e in entries):
                raise ExportError(f"the export's manifest has a malformed '{key}' list", resumable=True)
        self.say(f"export: complete on the server: {len(doc['output'])} file(s), "
                 f"{len(doc.get('error') or [])} error file(s)")
        return doc

    def _delete(self, state: State, why: str) -> None:
        """DELETE the status URL (best effort: a refusal is said, never fatal)."""
        url = state.data.get("status_url")
        if not url or state.data.get("deleted"):
            return
        try:
            resp = self._send("DELETE", url, auth=True, what="DELETE status", cancellable=False)
            resp.close()
            ok = resp.status_code in (200, 202, 204, 404)
            self.say(f"export: {why}: asked the server to delete the export (HTTP {resp.status_code}"
                     f"{'' if ok else ', refused: the server keeps it until it expires'})")
            state.data["deleted"] = ok
        except (ExportError, KeyboardInterrupt) as exc:
            self.say(f"export: {why}: could not delete the export on the server ({type(exc).__name__})")
        state.save()

    def _cancel(self, state: State) -> None:
        self.say("export: cancelled")
        self._delete(state, "cancelled")
        state.data.update(status_url=None, manifest=None, complete=False)
        state.save()
        for folder in (self.folder, self.errors_folder):
            for p in folder.glob("*.part") if folder.is_dir() else ():
                p.unlink(missing_ok=True)

    # ------------------------------------------------------------------ files

    def _jobs(self, manifest: dict[str, Any]) -> list[FileJob]:
        jobs: list[FileJob] = []
        seen: Counter = Counter()
        for kind, folder in (("output", self.folder), ("error", self.errors_folder)):
            for entry in manifest.get(kind) or []:
                rtype = entry.get("type") if isinstance(entry.get("type"), str) else ""
                if kind == "output" and rtype not in self.request.types:
                    continue   # a type the sweep never reads (a server that ignored _type)
                name = rtype if _TYPE.match(rtype) else "OperationOutcome" if kind == "error" else "Unknown"
                seen[(kind, name)] += 1
                count = entry.get("count") if isinstance(entry.get("count"), int) else None
                jobs.append(FileJob(urljoin(self.state_url(), entry["url"]), kind, rtype,
                                    folder / f"{name}.{seen[(kind, name)]}.ndjson", count))
        return jobs

    def state_url(self) -> str:
        assert self.state is not None
        return self.state.data.get("status_url") or self.request.base

    def _done(self, state: State, job: FileJob) -> bool:
        """Downloaded before, and still whole (size and sha256)."""
        rec = state.data["files"].get(job.url)
        path = self.out_dir / rec["path"] if rec else None
        if not rec or path is None or not path.is_file() or path.stat().st_size != rec["size"]:
            return False
        return _sha256(path) == rec["sha256"]

    def _download_all(self, state: State) -> list[str]:
        manifest = state.data["manifest"]
        requires_token = manifest.get("requiresAccessToken") is True
        jobs = self._jobs(manifest)
        todo = [j for j in jobs if not self._done(state, j)]
        skipped = len(jobs) - len(todo)
        if skipped:
            self.say(f"export: {skipped} file(s) already downloaded, {len(todo)} to go")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.errors_folder.mkdir(parents=True, exist_ok=True)
        failed: list[str] = []
        if not todo:
            return failed
        workers = max(1, min(self.settings.workers, len(todo)))
        done = 0
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bulk-download")
        try:
            futures = {pool.submit(self._download, state, j, requires_token): j for j in todo}
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in finished:
                    job = futures[fut]
                    exc = fut.exception()
                    if isinstance(exc, KeyboardInterrupt):
                        raise KeyboardInterrupt
                    if exc is not None:
                        reason = str(exc) if isinstance(exc, ExportError) else type(exc).__name__
                        failed.append(f"{job.path.name}: {reason}")
                        if isinstance(exc, ExportError) and not exc.resumable:
                            self.stop.set()
                    else:
                        done += 1
                        self.say(f"export: downloaded {done}/{len(todo)} file(s) ({job.path.name})")
        except BaseException:
            self.stop.set()   # the workers stop at their next chunk; the cancel need not wait for them
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return failed

    def _download(self, state: State, job: FileJob, requires_token: bool) -> None:
        """One file, again from its start when the connection drops mid-file (bounded)."""
        for attempt in range(self.settings.retries + 1):
            try:
                return self._download_once(state, job, requires_token)
            except requests.RequestException as exc:
                if attempt >= self.settings.retries:
                    raise ExportError(f"{type(exc).__name__} while reading, after {attempt + 1} attempt(s)",
                                      resumable=True) from None
                self.events["dropped_mid_file"] += 1
                self._wait(self._backoff(attempt, None))

    def _download_once(self, state: State, job: FileJob, requires_token: bool) -> None:
        """One file to ``name.part``, renamed when whole; its record saved at once."""
        if self.stop.is_set():
            raise KeyboardInterrupt
        auth = requires_token   # to the base's origin or an --allow-origin one (_check_url)
        resp = self._send("GET", job.url, auth=auth, what=f"file {job.path.name}", accept=NDJSON)
        part = job.path.with_name(job.path.name + ".part")
        with resp:
            if resp.status_code != 200:
                raise ExportError(f"HTTP {resp.status_code}", resumable=True)
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > self.settings.max_file_bytes:
                raise ExportError(f"{int(length):,} bytes, more than the limit "
                                  f"{self.settings.max_file_bytes:,}", resumable=False)
            h, size, lines = hashlib.sha256(), 0, 0
            try:
                with part.open("wb") as out:
                    for chunk in resp.iter_content(256 * 1024):
                        if self.stop.is_set():
                            raise KeyboardInterrupt
                        size += len(chunk)
                        if size > self.settings.max_file_bytes:
                            raise ExportError(f"more than the limit of {self.settings.max_file_bytes:,} bytes",
                                              resumable=False)
                        h.update(chunk)
                        lines += chunk.count(b"\n")
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
            except BaseException:
                part.unlink(missing_ok=True)   # never taken for a whole file; fetched again next time
                raise
        if job.count is not None and job.kind == "output" and lines not in (job.count, job.count - 1):
            self.say(f"export: {job.path.name}: {lines:,} lines, the manifest said {job.count:,}")
        os.replace(part, job.path)
        with state.lock:
            state.data["files"][job.url] = {"path": str(job.path.relative_to(self.out_dir)), "kind": job.kind,
                                            "type": job.resource_type, "size": size,
                                            "sha256": h.hexdigest(), "lines": lines}
        state.save()


def scope_for(value: str, types: tuple[str, ...]) -> str:
    """``--scope``: as given, or ``per-type`` → ``system/{Type}.read`` for each type read."""
    if value.strip() == "per-type":
        return " ".join(f"system/{t}.read" for t in types)
    return value


def export(base: str, out_dir: Path, *, client_id: str, key_path: Path, token_url: str | None = None,
           kid: str | None = None, scope: str = "system/*.read", group: str | None = None,
           patients: bool = False, type_filter: bool = True, restart: bool = False,
           as_of: str | None = None, settings: ExportSettings | None = None,
           say: Callable[[str], None] = lambda _t: None,
           session: requests.Session | None = None) -> ExportResult:
    """``bone-cds sweep --export``: authenticate (SMART Backend Services), export, download into
    ``out_dir/export`` (resuming what ``out_dir`` already holds)."""
    from .smart_backend import ClientKey, discover_token_url

    settings = settings or ExportSettings()
    session = session or requests.Session()
    session.trust_env = False   # no ~/.netrc credentials sent anywhere
    request = sweep_request(base, group=group, patients=patients, type_filter=type_filter)
    check_transport(request.base, "FHIR base")
    try:
        key = ClientKey.load(key_path, kid)
        url = token_url or discover_token_url(session, request.base, settings.connect_timeout)
    except AuthError as exc:
        raise ExportError(str(exc), resumable=False) from None
    check_transport(url, "token URL")
    tokens = TokenSource(session, url, client_id, key, scope=scope_for(scope, request.types),
                         timeout=settings.read_timeout)
    job = BulkExport(request, out_dir, tokens, session=session, settings=settings, say=say,
                     restart=restart, as_of=as_of)
    with sigterm_as_interrupt():
        return job.run()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the main thread (as Ctrl-C does) while inside."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _handler(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["BulkExport", "export", "ExportCancelled", "ExportError", "ExportRequest", "ExportResult", "ExportSettings",
           "retry_after", "sigterm_as_interrupt", "sweep_request"]
