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

import logging
import math
import re
import time
from concurrent.futures import ALL_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping
from urllib.parse import quote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from . import jsonio
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


@dataclass
class PrefetchResult:
    """All keys of one request (PF-5: the caller sees which keys could not be had, and why)."""

    keys: dict[str, KeyResult]

    @property
    def resources(self) -> list[dict]:
        """Every resource of every key, de-duplicated by (resourceType, id); id-less ones all kept."""
        seen: set[tuple[str, str]] = set()
        out: list[dict] = []
        for result in self.keys.values():
            for res in result.resources:
                rid = res.get("id")
                if isinstance(rid, str) and rid:
                    ident = (str(res.get("resourceType")), rid)
                    if ident in seen:
                        continue
                    seen.add(ident)
                out.append(res)
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


def _flatten(value: dict) -> list[dict] | None:
    """The resources of a prefetch value or response body; ``None`` when it reports a failure
    (PF-5): an OperationOutcome in place of the resource, a Bundle whose only entries are
    OperationOutcomes of which one is an error, or something that is no FHIR resource at all.
    OperationOutcome entries otherwise (a server's ``search.mode = outcome`` warnings, e.g.
    "unknown parameter ignored") are not data: dropped."""
    if _is_outcome(value) or not isinstance(value.get("resourceType"), str):
        return None   # an OperationOutcome, or not a FHIR resource at all
    if value.get("resourceType") != "Bundle":
        return [value]
    entries = value.get("entry")
    if entries is not None and not isinstance(entries, list):
        return None   # a malformed Bundle is no answer
    resources = [e["resource"] for e in entries or []
                 if isinstance(e, dict) and isinstance(e.get("resource"), dict)
                 and isinstance(e["resource"].get("resourceType"), str)]
    outcomes = [r for r in resources if _is_outcome(r)]
    if outcomes and len(outcomes) == len(resources) and any(_is_error(o) for o in outcomes):
        return None
    return [r for r in resources if not _is_outcome(r)]


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
    return parts.path == b.path or parts.path.startswith(b.path.rstrip("/") + "/")


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


def _read(session: requests.Session, url: str, headers: Mapping[str, str], timeout: float,
          is_read: bool) -> dict | None:
    """One GET; the decoded body, ``None`` for a read answering 404/410 (no data), else raises."""
    try:
        resp = session.get(url, headers=dict(headers), timeout=timeout, allow_redirects=False)
    except requests.exceptions.Timeout:
        raise _Unavailable("timeout") from None
    except requests.exceptions.RequestException:
        raise _Unavailable("unreachable") from None
    status = resp.status_code
    if is_read and status in (404, 410):
        return None
    if status == 401:
        raise _Unavailable("unauthorized")
    if status == 403:
        raise _Unavailable("forbidden")
    if status != 200:
        raise _Unavailable(f"http-{status}")
    try:
        body = jsonio.loads(resp.content)
    except (ValueError, RecursionError):
        raise _Unavailable("invalid-json") from None
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise _Unavailable("invalid-json")
    if body["resourceType"] == "Bundle" and not isinstance(body.get("entry") or [], list):
        raise _Unavailable("invalid-json")
    return body


def _fetch(key: str, resource_type: str, path: str, base: str, headers: Mapping[str, str],
           settings: FetchSettings, session: requests.Session, stop_at: float) -> KeyResult:
    """Read one key from the FHIR server, following ``next`` links on the same base (PF-7)."""
    is_read = "?" not in path
    url: str | None = f"{base}/{path}"
    resources: list[dict] = []
    pages = 0
    host = urlsplit(base).hostname
    try:
        while url is not None:
            remaining = stop_at - time.monotonic()
            if remaining <= 0:
                raise _Unavailable("deadline")
            body = _read(session, url, headers, min(settings.read_timeout, remaining), is_read and pages == 0)
            pages += 1
            if body is None:
                break
            found = _flatten(body)
            if found is None:
                raise _Unavailable("operation-outcome")
            resources.extend(found)
            url = _next_link(body) if body.get("resourceType") == "Bundle" else None
            if url is not None:
                url = urljoin(base + "/", url)
                if not _on_base(url, base):
                    log.warning("prefetch key %s: next link leaves the FHIR server %s; not followed",
                                key, host)
                    url = None
                elif pages >= settings.max_pages:
                    log.warning("prefetch key %s: stopped after %d pages (max_pages); data may be incomplete",
                                key, pages)
                    url = None
    except _Unavailable as exc:
        return KeyResult(key, resource_type, "unavailable", [], exc.reason, pages)
    return KeyResult(key, resource_type, "fetched", resources, None, pages)


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
            value = request.prefetch[key]
            found = [] if value is None else _flatten(value) if isinstance(value, dict) else None
            if found is not None:
                results[key] = KeyResult(key, rtype, "prefetch", found)
                continue
            log.info("prefetch key %s: client sent an OperationOutcome; fetching it", key)
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
                        urlsplit(request.fhir_server).hostname or "(unparseable)", len(to_fetch))
        pending: dict[str, tuple[str, str]] = {}
        for key, (rtype, rendered) in to_fetch.items():
            if reason is not None:
                results[key] = KeyResult(key, rtype, "unavailable", [], reason)
            elif rendered is None:
                results[key] = KeyResult(key, rtype, "unavailable", [], "unrenderable-template")
            else:
                pending[key] = (rtype, rendered)
        if pending and base is not None:
            results.update(_fetch_all(pending, base, request, settings, session, stop_at))

    result = PrefetchResult({k: results[k] for k in templates})
    log.debug("prefetch done in %.3fs: %s", time.monotonic() - started, result.status_line())
    return result


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
        log.debug("prefetch key %s: %s%s (%d page(s))", key, result.source,
                  f":{result.reason}" if result.reason else "", result.pages)
    return out


__all__ = ["FetchSettings", "KeyResult", "PrefetchResult", "gather", "is_allowed", "new_session",
           "normalise_base_url", "render_template"]
