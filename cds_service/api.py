"""HTTP routes: discovery, hook calls, feedback, health (checklist DISC-*, REQ-*, RESP-*, FB-*, CORS-*).

Every answer is JSON; client errors are 4xx with ``{"error", "message"}`` (ERR-4); CORS headers
go on every response, errors included (CORS-2), and preflights answer 204 (CORS-1).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from hooks.services import service_by_id, services

from . import __version__
from .errors import ApiError
from .feedback import parse_feedback
from .pipeline import evaluate_hook

bp = Blueprint("cds", __name__)
log = logging.getLogger("cds_service.api")


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":"), ensure_ascii=False), status=status,
                    mimetype="application/json")


def _body() -> Any:
    """Decoded JSON body or a 400 naming the problem (never a 500)."""
    raw = request.get_data(cache=False)
    if not raw:
        raise ApiError(400, "invalid_body", "the request body is empty: send a JSON object")
    try:
        return json.loads(raw)
    except RecursionError:
        raise ApiError(400, "invalid_json", "the request body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {exc}") from None


@bp.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok", "service": "bone-safety-cds", "version": __version__})


@bp.get("/cds-services")
def discovery() -> Response:
    """DISC-1..3: every service with id, hook, title, description and prefetch."""
    return json_response({"services": [s.discovery() for s in services()]})


@bp.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    """REQ-1..10, RESP-1..2: run the service's rules and answer the cards."""
    service = service_by_id(service_id)
    if service is None:
        raise ApiError(404, "unknown_service", f"no CDS service with id '{service_id}'")
    body = _body()
    now = current_app.config["CLOCK"]()
    t0 = time.perf_counter()
    outcome = evaluate_hook(service, body, now=now, fetch=current_app.config["SETTINGS"].fetch,
                            thresholds=current_app.config["SETTINGS"].thresholds,
                            session=current_app.config["HTTP_SESSION"])
    store = current_app.config.get("FEEDBACK_STORE")
    if store is not None and outcome.response["cards"]:
        try:
            store.record_cards(service.id, outcome.response["cards"], now)
        except Exception:  # noqa: BLE001 - the cards matter more than their bookkeeping
            log.exception("could not record issued cards")
    log.info("hook answered", extra={"event": {
        "hookInstance": body.get("hookInstance"), "service": service.id,
        "rules": outcome.fired, "cards": len(outcome.response["cards"]),
        "prefetch": outcome.prefetch, "skipped_resources": outcome.skipped,
        "ms": round((time.perf_counter() - t0) * 1000, 1)}})
    return json_response(outcome.response)


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    """FB-1..6: validate, store durably, then answer 200."""
    if service_by_id(service_id) is None:
        raise ApiError(404, "unknown_service", f"no CDS service with id '{service_id}'")
    store = current_app.config.get("FEEDBACK_STORE")
    if store is None:
        raise ApiError(404, "feedback_disabled", "feedback is switched off on this service")
    items = parse_feedback(_body())
    stored = store.add(service_id, items, datetime.now(timezone.utc))
    log.info("feedback stored", extra={"event": {"service": service_id, "items": stored}})
    return json_response({"stored": stored})


def register_errors(app: Any) -> None:
    """JSON bodies for every error (ERR-4, REQ-10); a 500 is logged and answered as JSON."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return json_response(exc.body(), exc.status)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge) -> Response:
        limit = app.config.get("MAX_CONTENT_LENGTH")
        return json_response({"error": "body_too_large",
                              "message": f"the request body exceeds the limit of {limit} bytes"}, 413)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = (exc.name or "error").lower().replace(" ", "_")
        return json_response({"error": code, "message": exc.description or exc.name}, exc.code or 500)

    @app.errorhandler(Exception)
    def _bug(exc: Exception) -> Response:
        log.exception("unhandled error")
        return json_response({"error": "internal_error",
                              "message": "the service failed to process this request"}, 500)
