"""The Flask application factory (Flask tutorial style: ``create_app(config)``)."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from typing import Any, Callable

import requests
from flask import Flask, Response, request
from requests.adapters import HTTPAdapter

from .api import bp, json_response, register_errors
from .chart.verdicts import VerdictCache
from .config import ConfigError, Settings
from .feedback import FeedbackStore, FeedbackStoreError
from .governance.patient_key import patient_keyer
from .governance.routes import bp as governance_bp
from .metrics import install as install_metrics
from .logs import configure_logging

log = logging.getLogger("cds_service")

CORS_ALLOW_HEADERS = "Authorization, Content-Type, Accept"
CORS_ALLOW_METHODS = "GET, POST, OPTIONS"


_SLASHES = re.compile(r"/{2,}")


class CanonicalPath:
    """WSGI middleware: ``//`` in a path is one ``/`` and a trailing ``/`` is dropped, answered in
    place (no redirect): the CDS Hooks sandbox adds a discovery URL ending in ``/``, and a 308
    from Werkzeug's slash merging breaks a browser's CORS preflight (issue 14)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO") or "/"
        fixed = _SLASHES.sub("/", path)
        if len(fixed) > 1:
            fixed = fixed.rstrip("/") or "/"
        environ["PATH_INFO"] = fixed
        return self.app(environ, start_response)


def _feedback_process(settings: Settings, store: FeedbackStore | None, served: bool) -> Any:
    """The worker's feedback child (:mod:`cds_service.feedback_process`) when
    ``BONE_CDS_FEEDBACK_PROCESS`` asks for one: ``on``, or ``auto`` under ``bone-cds serve``
    (``served``) with a file or PostgreSQL store; else None (batches stored in the request thread)."""
    mode = settings.feedback_process
    if store is None or mode == "off" or (mode == "auto" and not served):
        return None
    if store.in_memory:
        if mode == "on":
            raise ConfigError("BONE_CDS_FEEDBACK_PROCESS=on needs a feedback store another process can open "
                              "(a file or a PostgreSQL URL), not an in-memory database")
        return None
    from .feedback_process import FeedbackProcess
    return FeedbackProcess(store.url.render_as_string(hide_password=False), log_level=settings.log_level)


def create_app(settings: Settings | None = None, *, clock: Callable[[], datetime] | None = None,
               http_session: requests.Session | None = None, served: bool = False) -> Flask:
    """Build the app. ``settings`` defaults to :meth:`Settings.from_env`; ``clock`` to UTC now;
    ``served``: under ``bone-cds serve`` (``BONE_CDS_FEEDBACK_PROCESS=auto`` then means on)."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    app = Flask(__name__)
    app.config["SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["CLOCK"] = clock or (lambda: datetime.now(timezone.utc))
    if http_session is None:
        http_session = requests.Session()
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=16, max_retries=0)
        http_session.mount("https://", adapter)
        http_session.mount("http://", adapter)
    app.config["HTTP_SESSION"] = http_session
    app.config["VERDICTS"] = VerdictCache(settings.validation_cache_size)
    try:
        app.config["FEEDBACK_STORE"] = (FeedbackStore(settings.feedback_path)
                                        if settings.feedback_enabled else None)
    except FeedbackStoreError as exc:
        raise ConfigError(f"BONE_CDS_FEEDBACK_DB: {exc}") from None
    app.config["FEEDBACK_PROCESS"] = _feedback_process(settings, app.config["FEEDBACK_STORE"], served)
    if app.config["FEEDBACK_STORE"] is not None:
        try:
            app.config["PATIENT_KEYER"] = patient_keyer(settings.patient_key_secret, settings.data_dir)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"BONE_CDS_PATIENT_KEY_SECRET: {exc}") from None

    if settings.auth is not None and getattr(settings.auth, "mode", "none") == "jwt":
        from .guard import install_auth
        install_auth(app, settings.auth, tenants=settings.tenants)
    else:
        log.warning("caller authentication is OFF (BONE_CDS_AUTH=none): anyone who can reach "
                    "this port can call the service; set BONE_CDS_AUTH=jwt in production")

    @app.before_request
    def _preflight() -> Response | None:
        if request.method == "OPTIONS":
            return Response(status=204)
        return None

    @app.after_request
    def _cors(response: Response) -> Response:
        origin = request.headers.get("Origin")
        allowed = settings.cors_origins
        if "*" in allowed:
            response.headers["Access-Control-Allow-Origin"] = "*"
        elif origin and origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        response.headers["Access-Control-Allow-Methods"] = CORS_ALLOW_METHODS
        response.headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
        if request.headers.get("Access-Control-Request-Private-Network") == "true":
            # Chrome's Private Network Access: the sandbox page (public) calling a service on
            # localhost sends this on the preflight and needs the matching answer.
            response.headers["Access-Control-Allow-Private-Network"] = "true"
        return response

    app.register_blueprint(bp)
    app.register_blueprint(governance_bp)
    install_metrics(app)
    register_errors(app)

    @app.get("/")
    def index() -> Any:
        return json_response({"service": "bone-safety-cds", "discovery": "/cds-services"})

    app.wsgi_app = CanonicalPath(app.wsgi_app)  # type: ignore[method-assign]
    return app
