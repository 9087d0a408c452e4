"""Parse and validate a CDS Hooks 2.0 service request into a :class:`HookRequest`.

Checklist REQ-1..REQ-10 and HOOK-PV/HOOK-OSEL/HOOK-OSIGN: ``hook``, ``hookInstance`` and
``context`` are required, the context fields the hook marks REQUIRED are checked, and unknown
fields (``extension``, new optional context fields) are ignored (HOOK-1, REQ-9). A bad request
raises :class:`~cds_service.errors.ApiError` with status 400 naming the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .chart.identity import PatientIdentity
from .errors import ApiError

#: Required context fields per hook (CDS Hooks Library 1.0.1 hook pages).
REQUIRED_CONTEXT: dict[str, tuple[str, ...]] = {
    "patient-view": ("userId", "patientId"),
    "order-select": ("userId", "patientId", "selections", "draftOrders"),
    "order-sign": ("userId", "patientId", "draftOrders"),
}


@dataclass(frozen=True)
class FhirAuthorization:
    """The ``fhirAuthorization`` object (REQ-5). The token is transient: never log it (REQ-6)."""

    access_token: str
    token_type: str = "Bearer"
    scope: str = ""
    subject: str = ""
    patient: str | None = None

    def __repr__(self) -> str:  # never leak the token through a repr in a log line
        return f"FhirAuthorization(token_type={self.token_type!r}, scope={self.scope!r})"


@dataclass(frozen=True)
class HookRequest:
    """A validated hook call. ``prefetch`` keeps every key exactly as sent (missing ≠ null, PF-4)."""

    hook: str
    hook_instance: str
    context: Mapping[str, Any]
    fhir_server: str | None = None
    fhir_authorization: FhirAuthorization | None = None
    prefetch: Mapping[str, Any] = field(default_factory=dict)

    @property
    def patient_id(self) -> str:
        return str(self.context["patientId"])

    @property
    def user_id(self) -> str:
        return str(self.context.get("userId", ""))

    @property
    def draft_orders(self) -> list[dict[str, Any]]:
        """The resources of ``context.draftOrders`` (a Bundle; IOP-1: it may lack ``type``)."""
        bundle = self.context.get("draftOrders")
        if not isinstance(bundle, dict):
            return []
        return [e["resource"] for e in bundle.get("entry") or []
                if isinstance(e, dict) and isinstance(e.get("resource"), dict)]

    @property
    def selections(self) -> list[str]:
        value = self.context.get("selections")
        return [s for s in value if isinstance(s, str)] if isinstance(value, list) else []


#: RFC 6750 ``b64token`` loosened to any visible ASCII: the token goes into an HTTP header.
_BEARER_TOKEN = re.compile(r"[\x21-\x7e]+")


def _is_text(value: str) -> bool:
    """False for strings no URL, header or database can carry: a NUL, or a lone UTF-16
    surrogate (JSON ``"\\ud800"`` decodes to one)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _require_str(obj: Mapping[str, Any], name: str, where: str = "") -> str:
    value = obj.get(name)
    path = f"{where}{name}"
    if value is None:
        raise ApiError(400, "missing_field", f"'{path}' is required", field=path)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "invalid_field", f"'{path}' must be a non-empty string", field=path)
    if not _is_text(value):
        raise ApiError(400, "invalid_field", f"'{path}' holds a NUL or an unpaired surrogate", field=path)
    return value


def _check_context_text(context: Mapping[str, Any]) -> None:
    """Root-level string fields of the context are prefetch tokens (PF-2): they end up in URLs."""
    for name, value in context.items():
        if isinstance(value, str) and not _is_text(value):
            path = f"context.{name}"
            raise ApiError(400, "invalid_field", f"'{path}' holds a NUL or an unpaired surrogate", field=path)


def parse_hook_request(body: Any, expected_hook: str) -> HookRequest:
    """Validate ``body`` (decoded JSON) as a call of a service bound to ``expected_hook``."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the request body must be a JSON object")
    hook = _require_str(body, "hook")
    if hook != expected_hook:
        raise ApiError(400, "wrong_hook",
                       f"this service answers the '{expected_hook}' hook, not '{hook}'", field="hook")
    hook_instance = _require_str(body, "hookInstance")
    context = body.get("context")
    if context is None:
        raise ApiError(400, "missing_field", "'context' is required", field="context")
    if not isinstance(context, dict):
        raise ApiError(400, "invalid_field", "'context' must be an object", field="context")
    for name in REQUIRED_CONTEXT[hook]:
        if name in ("selections", "draftOrders"):
            continue
        _require_str(context, name, "context.")
    _check_context_text(context)
    _check_orders(hook, context)

    fhir_server = body.get("fhirServer")
    if fhir_server is not None and (not isinstance(fhir_server, str) or not fhir_server.strip()
                                    or not _is_text(fhir_server)):
        raise ApiError(400, "invalid_field", "'fhirServer' must be a URL string", field="fhirServer")
    auth = _parse_authorization(body.get("fhirAuthorization"), fhir_server)
    prefetch = body.get("prefetch")
    if prefetch is None:
        prefetch = {}
    if not isinstance(prefetch, dict):
        raise ApiError(400, "invalid_field", "'prefetch' must be an object", field="prefetch")
    for key, value in prefetch.items():
        if value is not None and not isinstance(value, dict):
            raise ApiError(400, "invalid_field",
                           f"'prefetch.{key}' must be a FHIR resource or null", field=f"prefetch.{key}")
    return HookRequest(hook=hook, hook_instance=hook_instance, context=context,
                       fhir_server=fhir_server, fhir_authorization=auth, prefetch=prefetch)


def _check_orders(hook: str, context: dict[str, Any]) -> None:
    if hook == "patient-view":
        return
    bundle = context.get("draftOrders")
    if bundle is None:
        raise ApiError(400, "missing_field", "'context.draftOrders' is required",
                       field="context.draftOrders")
    if not isinstance(bundle, dict):
        raise ApiError(400, "invalid_field", "'context.draftOrders' must be a FHIR Bundle",
                       field="context.draftOrders")
    if bundle.get("resourceType") not in (None, "Bundle"):
        raise ApiError(400, "invalid_field", "'context.draftOrders' must be a FHIR Bundle",
                       field="context.draftOrders.resourceType")
    entries = bundle.get("entry", [])
    if entries is None:
        entries = []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ApiError(400, "invalid_field", "'context.draftOrders.entry' must be a list of entries",
                       field="context.draftOrders.entry")
    for i, entry in enumerate(entries):
        resource = entry.get("resource")
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise ApiError(400, "invalid_field",
                           f"'context.draftOrders.entry[{i}].resource' must be a FHIR resource",
                           field=f"context.draftOrders.entry[{i}].resource")
    if hook == "order-select":
        selections = context.get("selections")
        if selections is None:
            raise ApiError(400, "missing_field", "'context.selections' is required",
                           field="context.selections")
        if not isinstance(selections, list) or not all(isinstance(s, str) for s in selections):
            raise ApiError(400, "invalid_field",
                           "'context.selections' must be a list of 'Type/id' strings",
                           field="context.selections")


def _parse_authorization(value: Any, fhir_server: str | None) -> FhirAuthorization | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_field", "'fhirAuthorization' must be an object",
                       field="fhirAuthorization")
    token = value.get("access_token")
    if not isinstance(token, str) or not token:
        raise ApiError(400, "missing_field", "'fhirAuthorization.access_token' is required",
                       field="fhirAuthorization.access_token")
    if not _BEARER_TOKEN.fullmatch(token):
        # never echo the token (REQ-6)
        raise ApiError(400, "invalid_field", "'fhirAuthorization.access_token' must be visible ASCII "
                       "characters (a bearer token)", field="fhirAuthorization.access_token")
    if fhir_server is None:
        raise ApiError(400, "missing_field", "'fhirServer' is required with 'fhirAuthorization' (REQ-4)",
                       field="fhirServer")
    token_type = value.get("token_type") or "Bearer"
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise ApiError(400, "invalid_field", "'fhirAuthorization.token_type' must be 'Bearer'",
                       field="fhirAuthorization.token_type")
    patient = value.get("patient")
    return FhirAuthorization(access_token=token, token_type="Bearer",
                             scope=str(value.get("scope") or ""), subject=str(value.get("subject") or ""),
                             patient=patient if isinstance(patient, str) else None)


def check_draft_patients(request: HookRequest, identity: PatientIdentity) -> None:
    """A draft order for another patient is a request error (issue 11 §1): 400 naming the entry.

    A draft that names no patient is the context patient's (the CDS Hooks sandbox sends such
    drafts); one whose ``subject`` names another patient, or cannot be matched to this one, is not.
    """
    bundle = request.context.get("draftOrders")
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("subject") is not None \
                and identity.owner(resource) == "other":
            where = f"context.draftOrders.entry[{i}].resource.subject"
            raise ApiError(400, "draft_order_other_patient",
                           f"'{where}' names another patient than 'context.patientId'", field=where)
