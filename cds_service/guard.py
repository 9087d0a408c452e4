"""Wiring of caller authentication into the app (checklist SEC-3..SEC-10).

With ``BONE_CDS_AUTH=jwt`` every call — discovery, hook, feedback — must carry a valid JWT;
CORS preflights (which browsers send without ``Authorization``) and ``/healthz`` are exempt.
Any failure is a 401 whose body does not say which check failed (SEC-10).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request

from .auth import AuthError, AuthSettings, JwtVerifier, SqliteReplayStore, aud_names, audiences_for

if TYPE_CHECKING:
    from .tenants import Tenants

log = logging.getLogger("cds_service.auth")

EXEMPT_PATHS = frozenset({"/healthz", "/"})


def _tenant_refusal(tenants: "Tenants", claims: dict[str, Any], path: str) -> str | None:
    """Why a verified token may not call as its tenant (audience or client id), else None."""
    tenant = tenants.for_issuer(claims.get("iss"))
    if tenant is None:                       # cannot happen: only tenants' issuers are trusted
        return "iss is no tenant's"
    if not aud_names(claims.get("aud"), audiences_for(path, tenant.audience_base_urls)):
        return "aud is not one of the tenant's audiences"
    if tenant.expected_sub is not None and claims.get("sub") != tenant.expected_sub:
        return "sub is not the tenant's client id"
    return None


def install_auth(app: Flask, settings: AuthSettings, verifier: JwtVerifier | None = None,
                 tenants: "Tenants | None" = None) -> JwtVerifier:
    """Register a ``before_request`` check with ``verifier`` (built from ``settings`` by default);
    with ``tenants``, the token must also fit its tenant (audiences, expected ``sub``)."""
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
            refusal = _tenant_refusal(tenants, claims, request.path) if tenants is not None else None
            if refusal is not None:
                log.warning("JWT rejected: %s (iss=%r)", refusal, claims.get("iss"))
                raise AuthError(refusal, iss=claims.get("iss"))
        except AuthError as exc:
            from .api import json_response
            response = json_response({"error": "unauthorized", "message": exc.public_message}, 401)
            response.headers["WWW-Authenticate"] = exc.www_authenticate
            return response
        tenant = tenants.for_issuer(claims.get("iss")) if tenants is not None else None
        request.environ["bone_cds.caller"] = {"iss": claims.get("iss"),
                                              "tenant": tenant.name if tenant else None}
        return None

    log.info("caller authentication ON: JWT from %d trusted issuer(s)", len(settings.trusted_issuers))
    return verifier
