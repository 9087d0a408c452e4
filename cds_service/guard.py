"""Wiring of caller authentication into the app (checklist SEC-3..SEC-10).

With ``BONE_CDS_AUTH=jwt`` every call — discovery, hook, feedback — must carry a valid JWT;
CORS preflights (which browsers send without ``Authorization``) and ``/healthz`` are exempt.
Any failure is a 401 whose body does not say which check failed (SEC-10).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, request

from .auth import AuthError, AuthSettings, JwtVerifier, SqliteReplayStore, audiences_for

log = logging.getLogger("cds_service.auth")

EXEMPT_PATHS = frozenset({"/healthz", "/"})


def install_auth(app: Flask, settings: AuthSettings, verifier: JwtVerifier | None = None) -> JwtVerifier:
    """Register a ``before_request`` check with ``verifier`` (built from ``settings`` by default)."""
    if verifier is None:
        store = SqliteReplayStore(settings.replay_db) if settings.replay_db else None
        verifier = JwtVerifier(settings, session=app.config.get("HTTP_SESSION"), replay_store=store)
    app.config["JWT_VERIFIER"] = verifier

    @app.before_request
    def _check_caller() -> Response | None:
        if request.method == "OPTIONS" or request.path in EXEMPT_PATHS:
            return None
        audiences = audiences_for(request.path, settings.audience_base_urls)
        try:
            claims: dict[str, Any] = verifier.verify(request.headers.get("Authorization"), audiences)
        except AuthError as exc:
            from .api import json_response
            response = json_response({"error": "unauthorized", "message": exc.public_message}, 401)
            response.headers["WWW-Authenticate"] = exc.www_authenticate
            return response
        request.environ["bone_cds.caller"] = {"iss": claims.get("iss"), "tenant": claims.get("tenant")}
        return None

    log.info("caller authentication ON: JWT from %d trusted issuer(s)", len(settings.trusted_issuers))
    return verifier
