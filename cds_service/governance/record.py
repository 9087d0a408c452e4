"""What the hook route records for every issued card (issue 16 "Record what is needed")."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any, Mapping

from ..feedback import FeedbackStore
from .patient_key import PatientKeyer

log = logging.getLogger("cds_service.governance")


def patient_id_of(body: Any) -> str | None:
    """``context.patientId`` of a hook request body (already validated by the pipeline)."""
    context = body.get("context") if isinstance(body, dict) else None
    pid = context.get("patientId") if isinstance(context, dict) else None
    return pid if isinstance(pid, str) and pid else None


def tenant_of(environ: Mapping[str, Any]) -> str | None:
    """The tenant label of a verified caller (``bone_cds.caller``, set by the JWT guard): its
    tenant's name when a tenants file is configured, else the verified token's issuer (``iss``,
    one of ``BONE_CDS_TRUSTED_ISSUERS``), else None (no caller authentication)."""
    caller = environ.get("bone_cds.caller") or {}
    if not isinstance(caller, Mapping):
        return None
    for label in (caller.get("tenant"), caller.get("iss")):
        if isinstance(label, str) and label:
            return label
    return None


def record_issued(store: FeedbackStore, keyer: PatientKeyer | None, *, service_id: str, hook: str,
                  body: Any, cards: list[dict[str, Any]], wire_cards: list[dict[str, Any]],
                  environ: Mapping[str, Any], now: datetime, latency_ms: float) -> None:
    """Store the call's cards with hook, tenant (:func:`tenant_of`), the pseudonymous patient
    key, one call id and the call's latency, written by the store's background writer (the
    answer does not wait for the database). Raises FeedbackStoreError (an inline write)."""
    tenant = tenant_of(environ)
    key = keyer.key(patient_id_of(body)) if keyer is not None else None
    from .suppression import selected_draft_keys
    store.record_cards(service_id, cards, now, hook=hook, tenant=tenant, patient_key=key,
                       call_id=uuid.uuid4().hex, latency_ms=round(latency_ms, 3), wire_cards=wire_cards,
                       draft_keys=selected_draft_keys(keyer, hook, body), background=True)
