"""``GET /admin/report`` (HTML) and ``GET /admin/report.json``, ``?days=7|30|90`` (default 30).

Off unless ``BONE_CDS_ADMIN_TOKEN`` is set (404, as if the routes did not exist); then only with
``Authorization: Bearer <that token>`` (401 otherwise, compared in constant time). The CDS
Hooks JWT guard does not apply here: these routes have their own token. Never cached.
"""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Response, current_app, request

from ..errors import ApiError
from .page import CONTENT_SECURITY_POLICY, render_page
from .report import DEFAULT_DAYS, WINDOWS, build_report

bp = Blueprint("governance", __name__, url_prefix="/admin")
log = logging.getLogger("cds_service.governance")


def _authorised() -> None:
    token = current_app.config["SETTINGS"].admin_token
    if not token:
        raise ApiError(404, "not_found", "no such route (set BONE_CDS_ADMIN_TOKEN to turn the report on)")
    sent = request.headers.get("Authorization") or ""
    scheme, _, value = sent.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        log.info("admin report refused: no or wrong token")
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <BONE_CDS_ADMIN_TOKEN>")


def _days() -> int:
    raw = request.args.get("days")
    if raw is None or raw == "":
        return DEFAULT_DAYS
    if raw not in {str(d) for d in WINDOWS}:
        raise ApiError(400, "invalid_parameter", f"'days' must be one of 7, 30, 90, got {raw[:20]!r}", field="days")
    return int(raw)


def _report() -> dict:
    _authorised()
    days = _days()
    store = current_app.config.get("FEEDBACK_STORE")
    if store is None:
        raise ApiError(404, "feedback_disabled", "the feedback store is switched off (BONE_CDS_FEEDBACK=off)")
    settings = current_app.config["SETTINGS"]
    return build_report(store, now=current_app.config["CLOCK"](), days=days, codes_path=settings.value_sets_path)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/report.json")
def report_json() -> Response:
    from ..api import json_response
    return _no_store(json_response(_report()))


@bp.get("/report")
def report_html() -> Response:
    response = Response(render_page(_report()), mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return _no_store(response)
