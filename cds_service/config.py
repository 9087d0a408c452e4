"""Configuration from environment variables (each documented in README.md).

Everything is read and checked once at start-up: an invalid value stops the service with a
message naming the variable (:class:`ConfigError`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from cards.thresholds import DEFAULT_THRESHOLDS, ThresholdError, Thresholds

from .chart.valuesets import DEFAULT_PATH, ValueSetError, load_value_sets
from .chart.verdicts import DEFAULT_SIZE as VERDICT_CACHE_SIZE
from .ehr_profiles import STANDARD, EhrProfile, ProfileError, profile_from_env
from .prefetch import FetchSettings

#: Default of ``BONE_CDS_REQUEST_BUDGET``: seconds of wall time for the evaluation (chart and
#: rules) after the FHIR reads; past it the remaining rules are not run (issue 11 §3).
DEFAULT_REQUEST_BUDGET = 5.0
#: Default of ``BONE_CDS_REQUEST_READ_TIMEOUT``: seconds a client has to send one whole request
#: (head and body) to ``bone-cds serve`` (issue 12: uvicorn has no header timeout).
DEFAULT_REQUEST_READ_TIMEOUT = 30.0


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the variable."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float, maximum: float = 600.0) -> float:
    """A positive number of seconds (at most ``maximum``)."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not (0 < value <= maximum):   # also rejects nan and inf
        raise ConfigError(f"{name} must be more than 0 and at most {maximum:g} seconds, got {raw!r}")
    return value


def _json_or_file(name: str, raw: str) -> Any:
    text = raw
    if not raw.lstrip().startswith("{"):
        try:
            text = Path(raw).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{name}: not JSON and not a readable file: {exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{name}: invalid JSON: {exc}") from None


#: Issuers a profile trusts when no ``BONE_CDS_TRUSTED_ISSUERS`` is given (Oracle Health CDS Hooks
#: draft documentation: issuer and JWK Set URL). Epic has none: each organisation is its own issuer.
TRUST_DEFAULTS = {"oracle": {"https://cds-hooks.cerner.com": {"jwks_uri": "https://authorization.cerner.com/jwk"}}}

#: Trust variables that a tenants file replaces (one source of truth for who may call and read).
TENANT_REPLACES = ("BONE_CDS_TRUSTED_ISSUERS", "BONE_CDS_AUDIENCE_BASE_URLS", "BONE_CDS_ALLOWED_FHIR_SERVERS",
                   "BONE_CDS_EHR_PROFILE", "BONE_CDS_EPIC_PATIENT_VIEW_TRIGGERS", "BONE_CDS_EPIC_PREFERENCE_ITEMS")


def _label_urls(env: Mapping[str, str]) -> dict[str, str]:
    """``BONE_CDS_LABEL_URLS``: label key → the site's https URL for it (§6.2 ``label_url.<KEY>``,
    e.g. the DailyMed setid page of the pamidronate product the site stocks)."""
    from cards.builders import SOURCES

    raw = (env.get("BONE_CDS_LABEL_URLS") or "").strip()
    if not raw:
        return {}
    data = _json_or_file("BONE_CDS_LABEL_URLS", raw)
    if not isinstance(data, dict):
        raise ConfigError("BONE_CDS_LABEL_URLS must be a JSON object of label key → https URL")
    for key, url in data.items():
        if key not in SOURCES or not key.startswith("LBL-"):
            raise ConfigError(f"BONE_CDS_LABEL_URLS: unknown label key {key!r} (one of "
                              f"{', '.join(k for k in SOURCES if k.startswith('LBL-'))})")
        if not isinstance(url, str) or not url.startswith("https://") or any(c.isspace() for c in url):
            raise ConfigError(f"BONE_CDS_LABEL_URLS[{key!r}]: must be an https URL, got {url!r}")
    return dict(data)


def _with_profile_trust_defaults(env: Mapping[str, str]) -> Mapping[str, str]:
    """``BONE_CDS_EHR_PROFILE=oracle`` with ``BONE_CDS_AUTH=jwt`` and no trusted issuers: trust
    Oracle Health's CDS Hooks issuer and key set (its draft documentation)."""
    profile = (env.get("BONE_CDS_EHR_PROFILE") or "").strip().lower()
    if profile in TRUST_DEFAULTS and not (env.get("BONE_CDS_TRUSTED_ISSUERS") or "").strip():
        return {**env, "BONE_CDS_TRUSTED_ISSUERS": json.dumps(TRUST_DEFAULTS[profile])}
    return env


def _check_no_tenant_conflicts(env: Mapping[str, str]) -> None:
    if not (env.get("BONE_CDS_TENANTS") or "").strip():
        return
    both = [name for name in TENANT_REPLACES if (env.get(name) or "").strip()]
    if both:
        raise ConfigError(f"BONE_CDS_TENANTS replaces {', '.join(both)}: set them per tenant in the file")
    if (env.get("BONE_CDS_AUTH") or "jwt").strip().lower() != "jwt":
        raise ConfigError("BONE_CDS_TENANTS: tenants are matched by their verified JWT; BONE_CDS_AUTH must be "
                          "jwt or unset")


def _tenants_and_auth(env: Mapping[str, str], thresholds: Thresholds, auth: Any) -> tuple[Any, Any]:
    """``BONE_CDS_TENANTS``: the tenants file, and JWT authentication trusting exactly its issuers."""
    from dataclasses import replace

    from .auth import ConfigError as AuthConfigError
    from .tenants import load_tenants

    try:
        tenants = load_tenants(env["BONE_CDS_TENANTS"].strip(), thresholds)
    except AuthConfigError as exc:
        raise ConfigError(f"BONE_CDS_TENANTS: {exc}") from None
    return tenants, replace(auth, mode="jwt", trusted_issuers=tenants.trusted_issuers,
                            audience_base_urls=tenants.audience_base_urls)


def _suppression(env: Mapping[str, str]) -> Any:
    """The repeat-suppression settings (issue 16; cds_service.governance.suppression)."""
    from .governance.suppression import SuppressionSettings
    try:
        return SuppressionSettings.from_env(env)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class Settings:
    """The service's configuration (see README "Configuration")."""

    data_dir: Path = Path("data")
    feedback_db: str = ""
    feedback_enabled: bool = True
    feedback_process: str = "auto"   # BONE_CDS_FEEDBACK_PROCESS: batches in a child process (issue 12)
    cors_origins: tuple[str, ...] = ("*",)
    max_body_bytes: int = 10 * 1024 * 1024
    value_sets_path: Path = DEFAULT_PATH
    fetch: FetchSettings = field(default_factory=FetchSettings)
    thresholds: Thresholds = DEFAULT_THRESHOLDS
    auth: Any = None  # cds_service.auth.AuthSettings
    log_level: str = "INFO"
    validation_cache_size: int = VERDICT_CACHE_SIZE
    request_budget: float = DEFAULT_REQUEST_BUDGET   # seconds for chart + rules (issue 11 §3)
    request_read_timeout: float = DEFAULT_REQUEST_READ_TIMEOUT   # seconds to receive one request
    profile: EhrProfile = STANDARD                   # the calling EHR's profile (issue 14)
    tenants: Any = None                              # cds_service.tenants.Tenants (BONE_CDS_TENANTS)
    label_urls: Mapping[str, str] = field(default_factory=dict)   # §6.2 label_url.<KEY> (BONE_CDS_LABEL_URLS)
    patient_key_secret: str = field(default="", repr=False)   # BONE_CDS_PATIENT_KEY_SECRET (issue 16)
    admin_token: str = field(default="", repr=False)          # BONE_CDS_ADMIN_TOKEN: /admin/report
    suppression: Any = None   # governance.suppression.SuppressionSettings (BONE_CDS_SUPPRESS_*, _SNOOZE_*)

    def for_caller(self, iss: str | None) -> "Settings":
        """The settings of the tenant whose verified token made this call (its FHIR servers only,
        its profile and thresholds); without tenants, these settings."""
        if self.tenants is None:
            return self
        from dataclasses import replace
        tenant = self.tenants.for_issuer(iss)
        if tenant is None:   # authentication would have refused the call: allow nothing
            return replace(self, fetch=replace(self.fetch, allowed_servers=()))
        return replace(self, fetch=replace(self.fetch, allowed_servers=tenant.fhir_servers),
                       profile=tenant.profile, thresholds=tenant.thresholds)

    @property
    def feedback_path(self) -> str:
        return self.feedback_db or str(self.data_dir / "feedback.sqlite3")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Settings from ``env`` (default ``os.environ``), then keyword overrides (tests)."""
        env = os.environ if env is None else env
        _check_no_tenant_conflicts(env)
        try:
            fetch = FetchSettings.from_env(env)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        thresholds = DEFAULT_THRESHOLDS
        if env.get("BONE_CDS_THRESHOLDS"):
            try:
                thresholds = Thresholds.from_mapping(_json_or_file("BONE_CDS_THRESHOLDS", env["BONE_CDS_THRESHOLDS"]))
            except ThresholdError as exc:
                raise ConfigError(f"BONE_CDS_THRESHOLDS: {exc}") from None
        value_sets = Path(env.get("BONE_CDS_VALUE_SETS") or DEFAULT_PATH)
        try:
            load_value_sets(value_sets)
        except ValueSetError as exc:
            raise ConfigError(f"BONE_CDS_VALUE_SETS: {exc}") from None
        auth = None
        try:
            from .auth import AuthSettings, ConfigError as AuthConfigError
        except ImportError:  # pragma: no cover - auth module always ships
            AuthSettings = None  # type: ignore[assignment]
        if AuthSettings is not None:
            try:
                auth = AuthSettings.from_env(_with_profile_trust_defaults(env))
            except AuthConfigError as exc:
                raise ConfigError(str(exc)) from None
        tenants = None
        if (env.get("BONE_CDS_TENANTS") or "").strip():
            tenants, auth = _tenants_and_auth(env, thresholds, auth)
        origins = tuple(o.strip() for o in (env.get("BONE_CDS_CORS_ORIGINS") or "*").split(",") if o.strip())
        feedback = (env.get("BONE_CDS_FEEDBACK", "on") or "on").lower()
        if feedback not in ("on", "off"):
            raise ConfigError(f"BONE_CDS_FEEDBACK must be 'on' or 'off', got {feedback!r}")
        feedback_process = (env.get("BONE_CDS_FEEDBACK_PROCESS") or "auto").strip().lower()
        if feedback_process not in ("auto", "on", "off"):
            raise ConfigError(f"BONE_CDS_FEEDBACK_PROCESS must be 'auto', 'on' or 'off', got {feedback_process!r}")
        level = (env.get("BONE_CDS_LOG_LEVEL") or "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"BONE_CDS_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
        try:
            raw_items = env.get("BONE_CDS_EPIC_PREFERENCE_ITEMS") or ""
            items = _json_or_file("BONE_CDS_EPIC_PREFERENCE_ITEMS", raw_items) if raw_items.strip() else {}
            if not isinstance(items, dict):
                raise ProfileError("BONE_CDS_EPIC_PREFERENCE_ITEMS must be a JSON object of "
                                   "'system|code' → preference-list item id",
                                   setting="BONE_CDS_EPIC_PREFERENCE_ITEMS")
            profile = profile_from_env(env, items)
        except ProfileError as exc:
            raise ConfigError(str(exc)) from None
        admin_token = (env.get("BONE_CDS_ADMIN_TOKEN") or "").strip()
        if admin_token and len(admin_token) < 16:
            raise ConfigError("BONE_CDS_ADMIN_TOKEN must be at least 16 characters (e.g. openssl rand -hex 32)")
        settings = cls(
            profile=profile, tenants=tenants, label_urls=_label_urls(env),
            data_dir=Path(env.get("BONE_CDS_DATA_DIR") or "data"),
            feedback_db=env.get("BONE_CDS_FEEDBACK_DB") or "",
            feedback_enabled=feedback == "on",
            feedback_process=feedback_process,
            cors_origins=origins or ("*",),
            max_body_bytes=_int(env, "BONE_CDS_MAX_BODY_BYTES", 10 * 1024 * 1024, minimum=1024),
            value_sets_path=value_sets, fetch=fetch, thresholds=thresholds, auth=auth,
            log_level=level,
            validation_cache_size=_int(env, "BONE_CDS_VALIDATION_CACHE", VERDICT_CACHE_SIZE),
            request_budget=_seconds(env, "BONE_CDS_REQUEST_BUDGET", DEFAULT_REQUEST_BUDGET),
            request_read_timeout=_seconds(env, "BONE_CDS_REQUEST_READ_TIMEOUT", DEFAULT_REQUEST_READ_TIMEOUT,
                                          maximum=3600.0),
            patient_key_secret=env.get("BONE_CDS_PATIENT_KEY_SECRET") or "",
            admin_token=admin_token,
            suppression=_suppression(env),
        )
        if overrides:
            from dataclasses import replace
            settings = replace(settings, **overrides)
        return settings
