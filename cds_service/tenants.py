"""Tenants: one validated configuration file for a hospital network's EHR instances (issue 14).

``BONE_CDS_TENANTS=/path/tenants.toml`` replaces the trust variables (``BONE_CDS_TRUSTED_ISSUERS``,
``BONE_CDS_AUDIENCE_BASE_URLS``, ``BONE_CDS_ALLOWED_FHIR_SERVERS``) with one file::

    [tenants.north]
    issuer = "https://ehr.north.example/fhir"                 # the JWT iss, as the EHR sends it
    jwks_uri = "https://ehr.north.example/keys"               # or jwks_file (+ jku), or jwks
    audiences = ["https://cds.example.org/"]                  # public base URL(s) its aud names
    expected_sub = "bone-cds-client"                          # optional: the JWT sub (client id)
    fhir_servers = ["https://ehr.north.example/fhir"]         # servers this tenant may be read from
    ehr_profile = "epic"                                      # standard | epic | oracle
    time_zone = "America/Chicago"                             # the clock zone of its cards
    patient_view_triggers = ["60", "18"]                      # epic only
    [tenants.north.thresholds]                                # catalog parameter overrides
    calcium_total_low_mg_dl = 8.4

A request is matched to its tenant by the verified ``iss``; the tenant's audiences and ``sub`` are
then checked; a FHIR server is allowed only for the tenant that called. An invalid file stops
start-up with the file, the key and the reason (``bone-cds config check FILE`` checks one).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from cards.thresholds import ThresholdError, Thresholds

from .auth import ConfigError, key_source, parse_base_urls
from .ehr_profiles import STANDARD, EhrProfile, ProfileError, profile_from_env
from .prefetch import normalise_base_url

_FIELDS = {"issuer", "jwks_uri", "jwks_file", "jwks", "jku", "audiences", "expected_sub", "fhir_servers",
           "ehr_profile", "time_zone", "thresholds", "patient_view_triggers", "preference_items"}


#: The tenant key of each setting a profile error names.
_PROFILE_KEYS = {"BONE_CDS_EHR_PROFILE": "ehr_profile",
                 "BONE_CDS_EPIC_PATIENT_VIEW_TRIGGERS": "patient_view_triggers",
                 "BONE_CDS_EPIC_PREFERENCE_ITEMS": "preference_items"}


@dataclass(frozen=True)
class Tenant:
    """One EHR instance that may call the service."""

    name: str
    issuer: str
    key_source: dict
    audience_base_urls: tuple[str, ...]
    fhir_servers: tuple[str, ...] = ()
    expected_sub: str | None = None
    profile: EhrProfile = STANDARD
    thresholds: Thresholds = field(default_factory=Thresholds)


@dataclass(frozen=True)
class Tenants:
    """Every tenant, by issuer."""

    path: str
    by_issuer: Mapping[str, Tenant]

    def for_issuer(self, iss: str | None) -> Tenant | None:
        return self.by_issuer.get(iss) if iss else None

    @property
    def trusted_issuers(self) -> dict[str, dict]:
        return {t.issuer: t.key_source for t in self.by_issuer.values()}

    @property
    def audience_base_urls(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(u for t in self.by_issuer.values() for u in t.audience_base_urls))


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: must be a non-empty string")
    return value.strip()


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: must be a non-empty list")
    return value


def _tenant(name: str, spec: Any, where: str, base_dir: Path, base: Thresholds) -> Tenant:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = sorted(set(spec) - _FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if "issuer" not in spec:
        raise ConfigError(f"{where}.issuer: required (the iss of the tenant's JWTs)")
    issuer = _string(spec["issuer"], f"{where}.issuer")
    keys = key_source({k: spec[k] for k in ("jwks_uri", "jwks_file", "jwks", "jku") if k in spec},
                      where, base_dir)
    if "audiences" not in spec:
        raise ConfigError(f"{where}.audiences: required (the public base URL(s) its tokens' aud names)")
    audiences = parse_base_urls(_list(spec["audiences"], f"{where}.audiences"), f"{where}.audiences")
    servers: list[str] = []
    for i, raw in enumerate(spec.get("fhir_servers", [])):
        url = normalise_base_url(raw) if isinstance(raw, str) else None
        if url is None:
            raise ConfigError(f"{where}.fhir_servers[{i}]: {raw!r} is not an http(s) base URL")
        servers.append(url)
    if "fhir_servers" in spec and not isinstance(spec["fhir_servers"], list):
        raise ConfigError(f"{where}.fhir_servers: must be a list of base URLs")
    sub = _string(spec["expected_sub"], f"{where}.expected_sub") if "expected_sub" in spec else None
    env = {"BONE_CDS_EHR_PROFILE": spec.get("ehr_profile", "standard")}
    if not isinstance(env["BONE_CDS_EHR_PROFILE"], str):
        raise ConfigError(f"{where}.ehr_profile: must be one of standard, epic, oracle")
    if "patient_view_triggers" in spec:
        triggers = _list(spec["patient_view_triggers"], f"{where}.patient_view_triggers")
        env["BONE_CDS_EPIC_PATIENT_VIEW_TRIGGERS"] = ",".join(str(t) for t in triggers)
    items = spec.get("preference_items", {})
    if not isinstance(items, dict):
        raise ConfigError(f"{where}.preference_items: must be a table of 'system|code' = item id")
    try:
        profile = profile_from_env(env, items)
    except ProfileError as exc:
        raise ConfigError(f"{where}.{_PROFILE_KEYS[exc.setting]}: {exc}") from None
    overrides = spec.get("thresholds", {})
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}.thresholds: must be a table of catalog parameters")
    if "time_zone" in spec:
        overrides = {**overrides, "clock_time_zone": spec["time_zone"]}
    try:
        checked = Thresholds.from_mapping(overrides)
        thresholds = dataclasses.replace(base, **{k: getattr(checked, k) for k in overrides})
        thresholds.check()
    except ThresholdError as exc:
        key = "time_zone" if "clock_time_zone" in str(exc) and "time_zone" in spec else "thresholds"
        raise ConfigError(f"{where}.{key}: {exc}") from None
    return Tenant(name, issuer, keys, audiences, tuple(dict.fromkeys(servers)), sub, profile, thresholds)


def load_tenants(path: str | Path, base: Thresholds | None = None) -> Tenants:
    """Read and check a tenants file; ConfigError names the file, the key and the reason."""
    file = Path(path).expanduser()
    name = str(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"tenants"})
    if unknown:
        raise ConfigError(f"{name}: unknown top-level key(s) {', '.join(unknown)} (only [tenants.NAME] tables)")
    tenants = data.get("tenants")
    if not isinstance(tenants, dict) or not tenants:
        raise ConfigError(f"{name}: tenants: at least one [tenants.NAME] table is required")
    by_issuer: dict[str, Tenant] = {}
    servers: dict[str, str] = {}
    for tname, spec in tenants.items():
        where = f"{name}: tenants.{tname}"
        tenant = _tenant(tname, spec, where, file.resolve().parent, base or Thresholds())
        if tenant.issuer in by_issuer:
            raise ConfigError(f"{where}.issuer: {tenant.issuer!r} is also the issuer of tenant "
                              f"{by_issuer[tenant.issuer].name!r}")
        for url in tenant.fhir_servers:
            if url in servers:
                raise ConfigError(f"{where}.fhir_servers: {url!r} is also a server of tenant {servers[url]!r}")
            servers[url] = tname
        by_issuer[tenant.issuer] = tenant
    return Tenants(name, by_issuer)
