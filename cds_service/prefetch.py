"""Prefetch: take what the request brought, fetch what it did not (checklist PF-1..PF-7, IOP-3).

* PF-4/PF-5 (RULES.md §1 "Prefetch contract"): every key present in ``request.prefetch`` is taken
  as sent. ``null`` and a Bundle with zero entries mean "no data" and are not fetched again; an
  OperationOutcome (top level, or a Bundle whose only entries are OperationOutcomes) means the
  client failed to fill the key, so it is fetched like a missing key.
* PF-7: a missing key is fetched from ``request.fhirServer`` with ``Authorization: Bearer <token>``
  (only when ``fhirAuthorization`` was sent), and only when that server is on the allowlist;
  otherwise the key is *unavailable* with a reason, and the caller decides between a degraded
  answer and ``412`` (PF-6).
* PF-8 / DESIGN.md "a slow FHIR server must not make a slow EHR": reads run in parallel over one
  pooled session, each with a timeout, all under one deadline.
* REQ-6: the access token and patient identifiers are never logged: log lines carry keys,
  reasons, durations and the server host only (never a URL, never an exception message, which
  would contain the URL).
"""

from __future__ import annotations

import heapq
import logging
import posixpath
from collections import Counter
import math
import re
import time
from concurrent.futures import ALL_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import quote, unquote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from . import jsonio
from .httpio import ReadDeadline, ReadTooLarge, read_limited
from .request import HookRequest

log = logging.getLogger(__name__)
# REQ-6: urllib3 logs every request line (``GET /fhir/Observation?patient=<id>``) at DEBUG. Keep
# that out of any log unless an operator set urllib3's level on purpose.
_urllib3_log = logging.getLogger("urllib3.connectionpool")
if _urllib3_log.level == logging.NOTSET:
    _urllib3_log.setLevel(logging.INFO)

_DEFAULT_PORTS = {"http": 80, "https": 443}
_TOKEN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_CONTEXT_FIELD = re.compile(r"^context\.([A-Za-z_][A-Za-z0-9_]*)$")
_USER_TOKENS = {"userPractitionerId": "Practitioner", "userPractitionerRoleId": "PractitionerRole",
                "userPatientId": "Patient", "userRelatedPersonId": "RelatedPerson"}
_REFERENCE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")
#: extra time the deadline wait allows for thread hand-over (never blocks past deadline + this)
_SLACK = 0.05


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class FetchSettings:
    """How the service talks to FHIR servers (PF-7, PF-8). Defaults: prefetch only (no server allowed)."""

    allowed_servers: tuple[str, ...] = ()     # normalised base URLs
    read_timeout: float = 1.0                 # seconds per read (connect+read)
    deadline: float = 2.0                     # overall seconds for all fetches of one request
    max_pages: int = 5                        # pages (Bundle.link[next] included) read per key
    max_workers: int = 8
    max_resources: int = 5000                 # resources kept per key after de-duplication (0: no cap)
    max_read_bytes: int = 50 * 1024 * 1024    # bytes of one answer after decompression (0: no limit)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "FetchSettings":
        """Read ``BONE_CDS_ALLOWED_FHIR_SERVERS`` (comma-separated base URLs), ``BONE_CDS_FHIR_READ_TIMEOUT``,
        ``BONE_CDS_FHIR_DEADLINE``, ``BONE_CDS_FHIR_MAX_PAGES``; a bad value raises ``ValueError``
        naming the variable and the value. Unset or blank variables keep the defaults."""
        kwargs: dict[str, Any] = {}
        raw = (env.get("BONE_CDS_ALLOWED_FHIR_SERVERS") or "").strip()
        if raw:
            servers = []
            for item in (s.strip() for s in raw.split(",")):
                if not item:
                    continue
                base = normalise_base_url(item)
                if base is None:
                    raise ValueError(f"BONE_CDS_ALLOWED_FHIR_SERVERS: {item!r} is not an http(s) base URL "
                                     f"(value {raw!r})")
                servers.append(base)
            kwargs["allowed_servers"] = tuple(dict.fromkeys(servers))
        for name, attr in (("BONE_CDS_FHIR_READ_TIMEOUT", "read_timeout"),
                           ("BONE_CDS_FHIR_DEADLINE", "deadline")):
            value = (env.get(name) or "").strip()
            if value:
                try:
                    seconds = float(value)
                except ValueError:
                    seconds = math.nan
                if not (math.isfinite(seconds) and seconds > 0):
                    raise ValueError(f"{name}: {value!r} is not a positive number of seconds")
                kwargs[attr] = seconds
        value = (env.get("BONE_CDS_FHIR_MAX_PAGES") or "").strip()
        if value:
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"BONE_CDS_FHIR_MAX_PAGES: {value!r} is not a whole number >= 1")
            kwargs["max_pages"] = int(value)
        value = (env.get("BONE_CDS_FHIR_MAX_READ_BYTES") or "").strip()
        if value:
            if not value.isdigit():
                raise ValueError(f"BONE_CDS_FHIR_MAX_READ_BYTES: {value!r} is not a whole number of bytes >= 0")
            kwargs["max_read_bytes"] = int(value)
        value = (env.get("BONE_CDS_MAX_RESOURCES_PER_KEY") or "").strip()
        if value:
            if not value.isdigit():
                raise ValueError(f"BONE_CDS_MAX_RESOURCES_PER_KEY: {value!r} is not a whole number >= 0")
            kwargs["max_resources"] = int(value)
        return cls(**kwargs)


# --------------------------------------------------------------------------- results


@dataclass
class KeyResult:
    """What one prefetch key yielded: where it came from and its resources (Bundles flattened)."""

    key: str
    resource_type: str          # first path segment of the template ("Patient", "Observation", ...)
    source: str                 # "prefetch" | "fetched" | "unavailable"
    resources: list[dict] = field(default_factory=list)
    reason: str | None = None   # set when source == "unavailable"
    pages: int = 0              # pages read from the FHIR server
    incomplete: str | None = None   # the data is partial: why (error-outcome, total-exceeds-entries, ...)
    capped: int = 0             # resources left out by the per-key cap
    #: Medication entries of the key's Bundles by their ``fullUrl`` (RULES.md D3 resolution (b))
    medication_urls: dict[str, dict] = field(default_factory=dict)


@dataclass
class PrefetchResult:
    """All keys of one request (PF-5: the caller sees which keys could not be had, and why)."""

    keys: dict[str, KeyResult]
    stop_at: float = 0.0        # time.monotonic() of the request's FHIR deadline

    @property
    def resources(self) -> list[dict]:
        """Every resource of every key, de-duplicated by (resourceType, id); id-less ones all kept."""
        return unique(r for result in self.keys.values() for r in result.resources)

    @property
    def incomplete(self) -> dict[str, str]:
        """key -> why its data is partial (the data card says so for the checks that read it)."""
        return {k: r.incomplete for k, r in self.keys.items() if r.incomplete and r.source != "unavailable"}

    @property
    def capped(self) -> dict[str, int]:
        """key -> resources left out by the per-key cap."""
        return {k: r.capped for k, r in self.keys.items() if r.capped}

    @property
    def medication_urls(self) -> dict[str, dict]:
        """Every Medication entry of every key's Bundles, by ``fullUrl``."""
        out: dict[str, dict] = {}
        for r in self.keys.values():
            out.update(r.medication_urls)
        return out

    @property
    def unavailable(self) -> dict[str, str]:
        """key -> reason, for the keys whose data could not be had (PF-6 input)."""
        return {k: r.reason or "unknown" for k, r in self.keys.items() if r.source == "unavailable"}

    def status_line(self) -> dict[str, str]:
        """key -> ``prefetch`` | ``fetched`` | ``unavailable:<reason>`` (for logs; no identifiers)."""
        return {k: (f"unavailable:{r.reason}" if r.source == "unavailable" else r.source)
                for k, r in self.keys.items()}


# --------------------------------------------------------------------------- URLs and templates


def normalise_base_url(url: str) -> str | None:
    """``scheme://host[:port]/path``: scheme and host lower-cased, default port dropped, no trailing
    slash, path kept as is. ``None`` if not an absolute http(s) URL (or it carries credentials,
    a query or a fragment)."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None or parts.password is not None:
        return None
    if parts.query or parts.fragment:
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def is_allowed(fhir_server: str, allowed: Iterable[str]) -> bool:
    """True when ``fhir_server`` equals one of ``allowed`` after normalisation (PF-7)."""
    base = normalise_base_url(fhir_server)
    return base is not None and any(base == normalise_base_url(a) for a in allowed)


def _token_value(token: str, context: Mapping[str, Any]) -> str | None:
    match = _CONTEXT_FIELD.match(token)
    if match:
        value = context.get(match.group(1))
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (str, int, float)) and str(value) != "":
            return str(value)
        return None   # missing, null, object or list: not a prefetch token (PF-2)
    prefix = _USER_TOKENS.get(token)
    user = context.get("userId")
    if prefix and isinstance(user, str):
        kind, _, ident = user.partition("/")
        if kind == prefix and ident and "/" not in ident:
            return ident
    return None


def render_template(template: str, request: HookRequest) -> str | None:
    """Fill ``{{context.X}}`` and ``{{userPractitionerId}}``-style tokens (PF-2), values URL-encoded.

    Returns ``None`` when a token cannot be resolved: the key is then skipped (IOP-3).
    A template that is exactly one token whose value is a ``Type/id`` reference (PF-2:
    ``{{context.userId}}`` alone reads the user) keeps its ``/``.
    """
    tokens = list(_TOKEN.finditer(template))
    if "{{" in _TOKEN.sub("", template) or "}}" in _TOKEN.sub("", template):
        return None   # unbalanced braces
    if len(tokens) == 1 and tokens[0].group(0) == template.strip():
        value = _token_value(tokens[0].group(1), request.context)
        if value is not None and _REFERENCE.match(value):
            return value
    out, pos = [], 0
    for m in tokens:
        value = _token_value(m.group(1), request.context)
        if value is None:
            return None
        out.append(template[pos:m.start()])
        out.append(quote(value, safe=""))
        pos = m.end()
    out.append(template[pos:])
    return "".join(out)


def _resource_type(template: str, rendered: str | None) -> str:
    path = template.split("?", 1)[0]
    if "{{" in path.split("/", 1)[0]:
        path = (rendered or "").split("?", 1)[0]
    return path.split("/", 1)[0]


# --------------------------------------------------------------------------- FHIR content


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _is_outcome(res: Any) -> bool:
    return isinstance(res, dict) and res.get("resourceType") == "OperationOutcome"


def _is_error(outcome: dict) -> bool:
    """An OperationOutcome reporting a failure: any issue that is not a warning or information
    (a missing severity counts as an error)."""
    issues = [i for i in _as_list(outcome.get("issue")) if isinstance(i, dict)]
    return not issues or any(i.get("severity") not in ("warning", "information") for i in issues)


@dataclass
class _Contents:
    """What one prefetch value or response body holds (PF-5)."""

    resources: list[dict] = field(default_factory=list)
    problem: str | None = None       # not data at all: the key is unavailable for this reason
    incomplete: str | None = None    # data, but partial
    total: int | None = None         # Bundle.total, when it is a whole number
    medication_urls: dict[str, dict] = field(default_factory=dict)


def _contents(value: Any, search: bool) -> _Contents:
    """The resources of a prefetch value or response body, or why it is not data (PF-5).

    Not data: an OperationOutcome in place of the resource (``error-outcome``), something that is
    no FHIR resource (``invalid-json``), a search answered by anything but a Bundle
    (``not-a-bundle``), a Bundle whose only entries are error OperationOutcomes. Partial data: a
    Bundle holding resources *and* an error OperationOutcome entry (``error-outcome``).
    OperationOutcome entries that only warn or inform (a server's ``search.mode = outcome``
    "no results" or "unknown parameter ignored") are not data and not a problem: dropped."""
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        return _Contents(problem="invalid-json")
    if _is_outcome(value):
        return _Contents(problem="operation-outcome")
    if value.get("resourceType") != "Bundle":
        return _Contents(problem="not-a-bundle") if search else _Contents([value])
    entries = value.get("entry")
    if entries is not None and not isinstance(entries, list):
        return _Contents(problem="invalid-json")   # a malformed Bundle is no answer
    resources: list[dict] = []
    errors = 0
    urls: dict[str, dict] = {}
    for e in entries or []:
        if not isinstance(e, dict) or not isinstance(e.get("resource"), dict):
            continue
        res = e["resource"]
        if not isinstance(res.get("resourceType"), str):
            continue
        if _is_outcome(res):
            errors += _is_error(res)
            continue
        resources.append(res)
        if res["resourceType"] == "Medication" and isinstance(e.get("fullUrl"), str):
            urls[e["fullUrl"]] = res
    total = value.get("total")
    total = total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None
    if errors and not resources:
        return _Contents(problem="operation-outcome")
    return _Contents(resources, incomplete="error-outcome" if errors else None, total=total,
                     medication_urls=urls)


def unique(resources: Iterable[dict]) -> list[dict]:
    """``resources`` in order without (resourceType, id) duplicates; id-less ones all kept."""
    seen: set[tuple[str, str]] = set()
    out: list[dict] = []
    for res in resources:
        rid = res.get("id")
        if isinstance(rid, str) and rid:
            ident = (str(res.get("resourceType")), rid)
            if ident in seen:
                continue
            seen.add(ident)
        out.append(res)
    return out


def _observation_instant(res: dict) -> str:
    """A sortable text of an Observation's date (newest kept by the cap): ISO dates sort as text."""
    period = res.get("effectivePeriod")
    for value in (res.get("effectiveDateTime"), res.get("effectiveInstant"),
                  period.get("start") if isinstance(period, dict) else None, res.get("issued")):
        if isinstance(value, str):
            return value
    return ""


def _dedupe_and_cap(resources: list[dict], resource_type: str, cap: int) -> tuple[list[dict], int]:
    """Resources without type+id duplicates, at most ``cap`` (0: all) of them — for Observations
    the newest (by date text, computed once per resource: linear plus a heap), else the first
    ones as sent; and how many the cap left out."""
    out = unique(resources)
    if not cap or len(out) <= cap:
        return out, 0
    dropped = len(out) - cap
    if resource_type == "Observation":
        keyed = [(_observation_instant(r), -i) for i, r in enumerate(out)]
        keep = {-i for _, i in heapq.nlargest(cap, keyed)}
        return [r for i, r in enumerate(out) if i in keep], dropped
    return out[:cap], dropped


def _next_link(bundle: dict) -> str | None:
    for link in _as_list(bundle.get("link")):
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


def _on_base(url: str, base: str) -> bool:
    """True when ``url`` lies on the (normalised) FHIR base: same scheme, host, port and path prefix."""
    b = urlsplit(base)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username or parts.password:
        return False
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if (scheme, netloc) != (b.scheme, b.netloc):
        return False
    raw = unquote(parts.path)
    if "\\" in raw:
        return False   # a backslash some servers read as a separator
    path = posixpath.normpath(raw) if raw else "/"   # "{base}/../admin" leaves the base (issue 12)
    base_path = b.path.rstrip("/")
    return path == (base_path or "/") or path.startswith(base_path + "/")


# --------------------------------------------------------------------------- fetching


def new_session(max_workers: int = 8) -> requests.Session:
    """A session with a connection pool big enough for ``max_workers`` parallel reads, no retries."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(1, max_workers), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class _Unavailable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _body_bytes(resp: requests.Response, stop_at: float, max_bytes: int) -> bytes:
    """The (inflated) body within ``stop_at`` and ``max_bytes`` (:func:`httpio.read_limited`:
    a dripping server is abandoned at the deadline; a 200 MB Bundle or a gzip bomb is not read
    whole), every failure as the reason the key is unavailable."""
    try:
        return read_limited(resp, stop_at, max_bytes)
    except ReadDeadline:
        raise _Unavailable("deadline") from None
    except ReadTooLarge:
        raise _Unavailable("too-large") from None
    except requests.exceptions.Timeout:
        raise _Unavailable("timeout") from None
    except Exception:  # noqa: BLE001 - urllib3/socket/zlib errors of a broken answer
        raise _Unavailable("unreachable") from None


def _read(session: requests.Session, url: str, headers: Mapping[str, str], timeout: float,
          is_read: bool, stop_at: float | None = None, max_bytes: int = 0) -> dict | None:
    """One GET; the decoded body, ``None`` for a read answering 404/410 (no data), else raises.
    The body is streamed within ``stop_at`` and ``max_bytes`` (see :func:`_body_bytes`); the
    connection is closed whatever happens, so no read outlives its request."""
    try:
        resp = session.get(url, headers=dict(headers), timeout=timeout, allow_redirects=False, stream=True)
    except requests.exceptions.Timeout:
        raise _Unavailable("timeout") from None
    except requests.exceptions.RequestException:
        raise _Unavailable("unreachable") from None
    try:
        status = resp.status_code
        if is_read and status in (404, 410):
            return None
        if status == 401:
            raise _Unavailable("unauthorized")
        if status == 403:
            raise _Unavailable("forbidden")
        if status != 200:
            raise _Unavailable(f"http-{status}")
        content = _body_bytes(resp, stop_at if stop_at is not None else time.monotonic() + timeout, max_bytes)
    finally:
        resp.close()
    try:
        body = jsonio.loads(content)
    except (ValueError, RecursionError):
        raise _Unavailable("invalid-json") from None
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise _Unavailable("invalid-json")
    if body["resourceType"] == "Bundle" and not isinstance(body.get("entry") or [], list):
        raise _Unavailable("invalid-json")
    return body


def _fetch(key: str, resource_type: str, path: str, base: str, headers: Mapping[str, str],
           settings: FetchSettings, session: requests.Session, stop_at: float) -> KeyResult:
    """Read one key from the FHIR server, following ``next`` links on the same base (PF-7).

    Partial answers are kept and marked ``incomplete`` (issue 11): an error OperationOutcome among
    the entries, ``max_pages`` or the cap reached with a ``next`` link pending, the deadline
    reached after some pages, or a last page whose Bundle ``total`` exceeds what was received."""
    is_read = "?" not in path
    url: str | None = f"{base}/{path}"
    resources: list[dict] = []
    urls: dict[str, dict] = {}
    pages = 0
    incomplete: str | None = None
    total: int | None = None
    host = urlsplit(base).hostname
    try:
        while url is not None:
            remaining = stop_at - time.monotonic()
            if remaining <= 0:
                if not pages:
                    raise _Unavailable("deadline")
                incomplete = "deadline"
                break
            body = _read(session, url, headers, min(settings.read_timeout, remaining), is_read and pages == 0,
                         stop_at, settings.max_read_bytes)
            pages += 1
            if body is None:
                break
            found = _contents(body, search=not is_read)
            if found.problem is not None:
                if not pages - 1:
                    raise _Unavailable(found.problem)
                incomplete = found.problem   # a later page failed: keep the earlier ones
                break
            incomplete = incomplete or found.incomplete
            total = total if total is not None else found.total
            resources.extend(found.resources)
            urls.update(found.medication_urls)
            url = _next_link(body) if body.get("resourceType") == "Bundle" else None
            if url is not None:
                url = urljoin(base + "/", url)
                if not _on_base(url, base):
                    log.warning("prefetch key %s: next link leaves the FHIR server %s; not followed",
                                key, host)
                    url, incomplete = None, incomplete or "max-pages"
                elif pages >= settings.max_pages or (settings.max_resources
                                                     and len(resources) >= settings.max_resources):
                    log.warning("prefetch key %s: stopped after %d pages (max_pages or the cap); "
                                "data incomplete", key, pages)
                    url, incomplete = None, incomplete or "max-pages"
            elif total is not None and total > len(resources) and not incomplete:
                incomplete = "total-exceeds-entries"
    except _Unavailable as exc:
        return KeyResult(key, resource_type, "unavailable", [], exc.reason, pages)
    kept, capped = _dedupe_and_cap(resources, resource_type, settings.max_resources)
    return KeyResult(key, resource_type, "fetched", kept, None, pages, incomplete, capped, urls)


def _from_prefetch(key: str, resource_type: str, value: Any, search: bool,
                   settings: FetchSettings) -> KeyResult | str:
    """A key the client sent (PF-4/PF-5): its KeyResult, or why it must be fetched instead."""
    if value is None:
        return KeyResult(key, resource_type, "prefetch", [])   # null: "no data"
    found = _contents(value, search)
    if found.problem is not None:
        return found.problem
    incomplete = found.incomplete
    if isinstance(value, dict) and value.get("resourceType") == "Bundle":
        if _next_link(value) is not None:
            incomplete = incomplete or "unread-pages"
        elif found.total is not None and found.total > len(found.resources):
            incomplete = incomplete or "total-exceeds-entries"
    kept, capped = _dedupe_and_cap(found.resources, resource_type, settings.max_resources)
    return KeyResult(key, resource_type, "prefetch", kept, None, 0, incomplete, capped,
                     found.medication_urls)


def gather(templates: Mapping[str, str], request: HookRequest, settings: FetchSettings,
           session: requests.Session | None = None) -> PrefetchResult:
    """One :class:`KeyResult` per template key: from the request's prefetch where it holds the key
    (PF-4/PF-5), else fetched from the allowed FHIR server in parallel (PF-7), within
    ``settings.deadline`` (PF-8). Never raises for a FHIR server's failure: such keys come back
    unavailable, and the caller applies PF-6."""
    started = time.monotonic()
    stop_at = started + settings.deadline
    results: dict[str, KeyResult] = {}
    to_fetch: dict[str, tuple[str, str | None]] = {}
    for key, template in templates.items():
        rendered = render_template(template, request)
        rtype = _resource_type(template, rendered)
        if key in request.prefetch:
            taken = _from_prefetch(key, rtype, request.prefetch[key], "?" in template, settings)
            if isinstance(taken, KeyResult):
                results[key] = taken
                continue
            log.info("prefetch key %s: the client sent no data (%s); fetching it", key, taken)
        to_fetch[key] = (rtype, rendered)
    extra = set(request.prefetch) - set(templates)
    if extra:
        log.debug("ignoring %d prefetch key(s) this service did not declare", len(extra))

    if to_fetch:
        reason = None
        base = normalise_base_url(request.fhir_server) if request.fhir_server else None
        if not request.fhir_server:
            reason = "no-fhir-server"
        elif base is None or not is_allowed(request.fhir_server, settings.allowed_servers):
            reason = "server-not-allowed"
            log.warning("FHIR server %s is not on the allowlist; %d prefetch key(s) not fetched",
                        _host_of(request.fhir_server), len(to_fetch))
        elif token_for_other_patient(request):
            reason = "token-patient-mismatch"
            log.warning("fhirAuthorization.patient differs from context.patientId; "
                        "%d prefetch key(s) not fetched", len(to_fetch))
        pending: dict[str, tuple[str, str]] = {}
        for key, (rtype, rendered) in to_fetch.items():
            if reason is not None:
                results[key] = KeyResult(key, rtype, "unavailable", [], reason)
            elif rendered is None:
                results[key] = KeyResult(key, rtype, "unavailable", [], "unrenderable-template")
            else:
                pending[key] = (rtype, without_sort(rendered))
        if pending and base is not None:
            results.update(_fetch_all(pending, base, request, settings, session, stop_at))

    result = PrefetchResult({k: results[k] for k in templates}, stop_at)
    log.debug("prefetch done in %.3fs: %s", time.monotonic() - started, result.status_line())
    return result


def without_sort(path: str) -> str:
    """``path`` without ``_sort`` parameters: the fallback does not ask the server to sort.

    Measured with ``python -m bench.fallback_real`` on sekmet-fhir (60 patients of 400
    observations in its store): the Observation search with ``_sort=-date`` took 4.0 s, without it
    0.25 s; the chart orders results itself, the per-key cap keeps the newest, and a search cut
    short by ``max_pages`` is reported as incomplete, so nothing is lost in silence."""
    head, sep, query = path.partition("?")
    if not sep:
        return path
    kept = [p for p in query.split("&") if p and not p.startswith("_sort=")]
    return head + ("?" + "&".join(kept) if kept else "")


def read_medications(references: list[str], request: HookRequest, settings: FetchSettings,
                     session: requests.Session | None, stop_at: float) -> list[dict]:
    """RULES.md D3 step (c): read each ``Medication/{id}`` that nothing in the request resolves from
    the allowed FHIR server, in parallel, within what is left of the request's deadline. Same
    allowlist and token rules as the prefetch reads; an absolute reference is read only when it
    lies on the request's FHIR base. What cannot be read is logged (a reason, never an id) and
    left unresolved: the reference's ``display`` is then the drug text."""
    base = normalise_base_url(request.fhir_server) if request.fhir_server else None
    if not references or base is None or not is_allowed(request.fhir_server or "", settings.allowed_servers) \
            or token_for_other_patient(request) or stop_at - time.monotonic() <= 0:
        return []
    pending: dict[str, tuple[str, str]] = {}
    for ref in references[:settings.max_workers * 4]:
        if "://" in ref:
            if not _on_base(ref, base):
                continue
            ref = ref[len(base) + 1:] if ref.startswith(base + "/") else "/".join(ref.rsplit("/", 2)[-2:])
        pending[f"medication-{len(pending)}"] = ("Medication", ref)
    found: list[dict] = []
    failed = Counter()
    for result in _fetch_all(pending, base, request, settings, session, stop_at).values():
        meds = [r for r in result.resources if r.get("resourceType") == "Medication"]
        if meds:
            found.extend(meds)
        else:
            failed[result.reason or "not-found"] += 1
    if failed:
        log.info("medication reads: %d found, not read: %s", len(found), dict(failed))
    return found


def token_for_other_patient(request: HookRequest) -> bool:
    """True when ``fhirAuthorization.patient`` names another patient than ``context.patientId``:
    the token is then not used for this patient's reads (issue 11 §1)."""
    auth = request.fhir_authorization
    return auth is not None and auth.patient is not None and auth.patient != request.patient_id


def _host_of(url: str) -> str:
    """The host of a URL for a log line; never raises (a malformed ``[::1`` host is no 500)."""
    try:
        return urlsplit(url).hostname or "(unparseable)"
    except ValueError:
        return "(unparseable)"


#: Called with the outcome of every key read from a FHIR server (:func:`read_outcome`); the
#: metrics module registers here (issue 16), so this module imports nothing of it.
READ_OBSERVERS: list[Callable[[str], None]] = []


def read_outcome(result: KeyResult) -> str:
    """``ok``, ``capped`` (the per-key cap left resources out), ``timeout`` (read timeout or the
    request's deadline), ``unauthorized`` (401/403) or ``unavailable`` (anything else)."""
    if result.source != "unavailable":
        return "capped" if result.capped else "ok"
    if result.reason in ("timeout", "deadline"):
        return "timeout"
    return "unauthorized" if result.reason in ("unauthorized", "forbidden") else "unavailable"


def _fetch_all(pending: Mapping[str, tuple[str, str]], base: str, request: HookRequest,
               settings: FetchSettings, session: requests.Session | None,
               stop_at: float) -> dict[str, KeyResult]:
    """Run the reads in parallel; a key not done by the deadline is unavailable ("deadline")."""
    headers = {"Accept": "application/fhir+json"}
    if request.fhir_authorization is not None:
        headers["Authorization"] = f"Bearer {request.fhir_authorization.access_token}"
    own = session is None
    sess = session or new_session(settings.max_workers)
    pool = ThreadPoolExecutor(max_workers=max(1, min(settings.max_workers, len(pending))),
                              thread_name_prefix="prefetch")
    futures: dict[Future[KeyResult], str] = {
        pool.submit(_fetch, key, rtype, path, base, headers, settings, sess, stop_at): key
        for key, (rtype, path) in pending.items()}
    done, not_done = wait(futures, timeout=max(0.0, stop_at - time.monotonic()) + _SLACK,
                          return_when=ALL_COMPLETED)
    pool.shutdown(wait=False, cancel_futures=True)
    if own and not not_done:
        sess.close()
    out: dict[str, KeyResult] = {}
    for fut, key in futures.items():
        rtype = pending[key][0]
        if fut in done:
            result = fut.result()   # _fetch returns unavailable results itself; anything else is our bug
        else:
            result = KeyResult(key, rtype, "unavailable", [], "deadline")
        out[key] = result
        for observe in READ_OBSERVERS:
            observe(read_outcome(result))
        log.debug("prefetch key %s: %s%s (%d page(s))", key, result.source,
                  f":{result.reason}" if result.reason else "", result.pages)
    return out


__all__ = ["FetchSettings", "KeyResult", "PrefetchResult", "gather", "is_allowed", "new_session",
           "read_medications", "token_for_other_patient", "without_sort",
           "normalise_base_url", "render_template"]
