"""HTTP routes: discovery, hook calls, feedback, health (checklist DISC-*, REQ-*, RESP-*, FB-*, CORS-*).

Every answer is JSON; client errors are 4xx with ``{"error", "message"}`` (ERR-4); CORS headers
go on every response, errors included (CORS-2), and preflights answer 204 (CORS-1).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from hooks.services import Service, service_by_id, services

from . import __version__, jsonio
from .errors import ApiError
from .feedback_process import RETRY_AFTER_SECONDS, BatchNotStored, ChildBug, ProcessUnavailable, take_batch
from .json_body import decode_json_body
from .governance.record import record_issued, tenant_of
from .governance.suppression import suppress_repeats
from .logs import exception_summary
from .metrics import count_cards, feedback_stored
from .pipeline import evaluate_hook

bp = Blueprint("cds", __name__)
log = logging.getLogger("cds_service.api")


def json_response(body: Any, status: int = 200) -> Response:
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate echoed from the request: send it \u-escaped
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return Response(data, status=status, mimetype="application/json")


def _raw_body() -> bytes:
    """The body bytes, at most ``MAX_CONTENT_LENGTH`` (``BONE_CDS_MAX_BODY_BYTES``), else 413.

    A streamed (chunked) body has no Content-Length to check up front, and Werkzeug's capped
    stream stops quietly at the limit (the JSON would then look truncated, a misleading 400), so
    such a body is read here up to one byte past the limit."""
    limit = request.max_content_length
    environ = request.environ
    if limit is None or request.content_length is not None or not environ.get("wsgi.input_terminated"):
        return request.get_data(cache=False)
    stream, chunks, size = environ["wsgi.input"], [], 0
    while True:
        try:
            chunk = stream.read(min(64 * 1024, limit + 1 - size))
        except Exception:  # noqa: BLE001 - the server's parser (gunicorn InvalidChunkSize, …): bad framing
            # the exception's text quotes the request bytes: never echoed, never logged (issue 12)
            raise ApiError(400, "invalid_body", "the request body's chunked transfer framing is malformed") from None
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge()


def _caller_settings() -> Any:
    """The settings for this call: the calling tenant's when a tenants file is configured."""
    caller = request.environ.get("bone_cds.caller") or {}
    return current_app.config["SETTINGS"].for_caller(caller.get("iss"))


@bp.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok", "service": "bone-safety-cds", "version": __version__})


@bp.get("/cds-services")
def discovery() -> Response:
    """DISC-1..3: every service with id, hook, title, description and prefetch."""
    profile = _caller_settings().profile
    return json_response({"services": [s.discovery() for s in services() if profile.offers(s.hook)]})


@bp.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    """REQ-1..10, RESP-1..2: run the service's rules and answer the cards."""
    service = service_by_id(service_id)
    settings = _caller_settings()
    profile = settings.profile
    if service is None or not profile.offers(service.hook):
        raise ApiError(404, "unknown_service", f"no CDS service with id '{service_id}'")
    raw = _raw_body()
    with jsonio.paused_for(raw):   # a large body: decoded, evaluated and released with no collection
        wire = _answer(service, settings, profile, raw)
    return json_response(wire)


def _answer(service: Service, settings: Any, profile: Any, raw: bytes) -> dict[str, Any]:
    """The hook's answer as sent (the EHR profile's shape). Returns before the caller resumes
    garbage collection, so the decoded body and the chart are gone by then."""
    body = decode_json_body(raw)   # or a 400 naming the problem
    now = current_app.config["CLOCK"]()
    t0 = time.perf_counter()
    notes = profile.request_notes(body) if isinstance(body, dict) else {}
    if service.hook == "patient-view" and isinstance(body, dict) and not profile.answers_patient_view(body):
        log.info("hook not answered for this trigger", extra={"event": {
            "hookInstance": str(body.get("hookInstance"))[:64], "service": service.id, "ehr": notes}})
        return {"cards": []}
    outcome = evaluate_hook(service, body, now=now, fetch=settings.fetch,
                            thresholds=settings.thresholds,
                            session=current_app.config["HTTP_SESSION"],
                            verdicts=current_app.config["VERDICTS"],
                            budget=settings.request_budget, label_urls=settings.label_urls)
    outcome.response = suppress_repeats(current_app.config, service.hook, body, outcome.response, now)
    wire = profile.shape(outcome.response)
    count_cards(outcome.response["cards"])
    elapsed_ms = (time.perf_counter() - t0) * 1000
    store = current_app.config.get("FEEDBACK_STORE")
    if store is not None and outcome.response["cards"]:
        try:
            record_issued(store, current_app.config.get("PATIENT_KEYER"), service_id=service.id,
                          hook=service.hook, body=body, cards=outcome.response["cards"],
                          wire_cards=wire["cards"], environ=request.environ, now=now, latency_ms=elapsed_ms)
        except Exception as exc:  # noqa: BLE001 - the cards matter more than their bookkeeping
            log.error("could not record issued cards", extra={"event": exception_summary(exc)})
    log.info("hook answered", extra={"event": {
        "hookInstance": str(body.get("hookInstance"))[:64], "service": service.id,
        "rules": outcome.fired, "cards": len(outcome.response["cards"]),
        "prefetch": outcome.prefetch, "skipped_resources": outcome.skipped,
        "excluded_resources": outcome.excluded, **({"ehr": notes} if notes else {}),
        "ms": round(elapsed_ms, 1)}})
    return wire


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    """FB-1..6: validate, store durably, then answer 200 (``stored``: new entries;
    ``duplicates``: entries already stored, e.g. a retry after a lost answer). With a feedback
    process (``BONE_CDS_FEEDBACK_PROCESS``) the batch is decoded, validated and stored there,
    by the same :func:`take_batch`; this thread waits for it without the interpreter lock."""
    if service_by_id(service_id) is None:
        raise ApiError(404, "unknown_service", f"no CDS service with id '{service_id}'")
    store = current_app.config.get("FEEDBACK_STORE")
    if store is None:
        raise ApiError(404, "feedback_disabled", "feedback is switched off on this service")
    raw = _raw_body()
    tenant, now = tenant_of(request.environ), current_app.config["CLOCK"]()
    child = current_app.config.get("FEEDBACK_PROCESS")
    try:
        if child is None:
            result = take_batch(store, raw, service_id, tenant, now)
        else:   # decoded, validated and stored in the worker's niced child (issue 12)
            result = child.run(raw, service_id=service_id, tenant=tenant, now=now,
                               pending_rules=store.pending_rules())
    except BatchNotStored as exc:
        log.error("feedback NOT stored", extra={"event": {"service": service_id, "items": exc.items,
                                                          **exception_summary(exc.error)}})
        raise ApiError(503, "feedback_store_unavailable",
                       "the feedback could not be stored; nothing was kept, send it again later") from None
    except ProcessUnavailable:
        # logged by FeedbackProcess; the batch may have been stored: a retry is a duplicate
        response = json_response({"error": "feedback_process_unavailable",
                                  "message": "the feedback could not be processed in time; it is not "
                                             "acknowledged: send it again (a batch already stored is "
                                             "recognised as duplicates)"}, 503)
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    except ChildBug as exc:
        return _internal_error(exc.summary)
    log.info("feedback stored", extra={"event": {"service": service_id, "items": result.stored,
                                                 "duplicates": result.duplicates}})
    feedback_stored(service_id, result.stored)
    # every item is kept: new ones now, duplicates (a retry, FB-5) when first sent
    return json_response({"stored": result.stored, "duplicates": result.duplicates})


def _internal_error(summary: dict[str, Any]) -> Response:
    """A bug (ours, in this thread or in the feedback child): logged by class and frames, answered
    as a JSON 500 that quotes nothing of the request."""
    log.error("unhandled error", extra={"event": summary})
    return json_response({"error": "internal_error", "message": "the service failed to process this request"}, 500)


def register_errors(app: Any) -> None:
    """JSON bodies for every error (ERR-4, REQ-10); a 500 is logged and answered as JSON."""

    def _refused(status: int, error: str) -> None:
        # Status, error code and route only: messages and field names may quote the request.
        log.info("request refused", extra={"event": {"status": status, "error": error,
                                                      "route": request.endpoint}})

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        _refused(exc.status, exc.code)
        return json_response(exc.body(), exc.status)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge) -> Response:
        limit = app.config.get("MAX_CONTENT_LENGTH")
        _refused(413, "body_too_large")
        return json_response({"error": "body_too_large",
                              "message": f"the request body exceeds the limit of {limit} bytes"}, 413)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = (exc.name or "error").lower().replace(" ", "_")
        _refused(exc.code or 500, code)
        return json_response({"error": code, "message": exc.description or exc.name}, exc.code or 500)

    @app.errorhandler(Exception)
    def _bug(exc: Exception) -> Response:
        # No exception message in the log: it may quote request data (REQ-6, logs.py).
        return _internal_error(exception_summary(exc))
