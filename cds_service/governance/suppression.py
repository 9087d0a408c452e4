"""Fewer repeats (issue 16 "alert fatigue"): cards the clinician already answered are not shown
again. A property of the live service only (``bone-cds evaluate``, the evaluation and the sweep
are unaffected). Settings (README "Governance"):

* ``BONE_CDS_SUPPRESS_REPEATS`` (``on``): ``off`` shows every card every time.
* **order-select → order-sign** (``BONE_CDS_SUPPRESS_WINDOW_HOURS``, default 12): a card of rule
  R at order-sign is left out when, within the window, the same patient (key) had an
  order-select card of R that was *overridden* (its latest feedback) and every draft of the
  order-sign is one of the drafts selected then (same draft id, or same content: the draft
  without ``id``/``meta``/``text``/``status``/``authoredOn``). A card shown but not answered is
  shown again; with another draft in the session it is shown again (the card may be about it).
  Following the HL7 PDDI-CDS guidance ("filter out repeated alerts").
* **patient-view snooze** (``BONE_CDS_SNOOZE_DAYS``, default 30; ``BONE_CDS_SNOOZE_RULES`` a JSON
  object of rule id → days, 0 never snoozes that rule): an *info* card of rule R is left out
  when the patient had a patient-view info card of R overridden *with a reason* in the last N
  days. Never for warning or critical cards; the data-unavailable card is never left out.

Draft keys are HMACs (the patient key's secret) of the draft id and content: no order content
is stored.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping

from ..data_card import DATA_CARD_ID
from ..feedback import FeedbackStore
from .patient_key import PatientKeyer
from .record import patient_id_of

log = logging.getLogger("cds_service.governance")

_VOLATILE = frozenset({"id", "meta", "text", "status", "authoredOn"})


@dataclass(frozen=True)
class SuppressionSettings:
    """``BONE_CDS_SUPPRESS_REPEATS``, ``BONE_CDS_SUPPRESS_WINDOW_HOURS``, ``BONE_CDS_SNOOZE_DAYS``,
    ``BONE_CDS_SNOOZE_RULES``."""

    enabled: bool = True
    window_hours: float = 12.0
    snooze_days: int = 30
    snooze_rules: Mapping[str, int] = field(default_factory=dict)

    def snooze_for(self, rule: str) -> int:
        return int(self.snooze_rules.get(rule, self.snooze_days))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "SuppressionSettings":
        """Read and check the settings; ValueError naming the variable."""
        raw = (env.get("BONE_CDS_SUPPRESS_REPEATS") or "on").strip().lower()
        if raw not in ("on", "off"):
            raise ValueError(f"BONE_CDS_SUPPRESS_REPEATS must be 'on' or 'off', got {raw!r}")
        try:
            hours = float(env.get("BONE_CDS_SUPPRESS_WINDOW_HOURS") or 12)
        except ValueError:
            raise ValueError("BONE_CDS_SUPPRESS_WINDOW_HOURS must be a number of hours") from None
        if not 0 <= hours <= 24 * 7:
            raise ValueError("BONE_CDS_SUPPRESS_WINDOW_HOURS must be between 0 and 168")
        try:
            days = int(env.get("BONE_CDS_SNOOZE_DAYS") or 30)
        except ValueError:
            raise ValueError("BONE_CDS_SNOOZE_DAYS must be a whole number of days") from None
        rules_raw = (env.get("BONE_CDS_SNOOZE_RULES") or "").strip()
        try:
            rules = json.loads(rules_raw) if rules_raw else {}
        except ValueError as exc:
            raise ValueError(f"BONE_CDS_SNOOZE_RULES: invalid JSON: {exc}") from None
        if not isinstance(rules, dict) or not all(
                isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 3650
                for k, v in rules.items()):
            raise ValueError("BONE_CDS_SNOOZE_RULES must be a JSON object of rule id → days (0 to 3650)")
        if not 0 <= days <= 3650:
            raise ValueError("BONE_CDS_SNOOZE_DAYS must be between 0 and 3650")
        return cls(raw == "on", hours, days, rules)


def _drafts(body: Any, selected_only: bool) -> list[dict[str, Any]]:
    context = body.get("context") if isinstance(body, dict) else None
    bundle = context.get("draftOrders") if isinstance(context, dict) else None
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    drafts = [e["resource"] for e in entries or [] if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    if selected_only:
        selections = context.get("selections") if isinstance(context.get("selections"), list) else []
        wanted = {s.rsplit("/", 1)[-1] for s in selections if isinstance(s, str)}
        drafts = [d for d in drafts if d.get("id") in wanted]
    return drafts


def draft_keys(keyer: PatientKeyer, draft: dict[str, Any]) -> set[str]:
    """The keys a draft is recognised by: its id and its content, as HMACs."""
    keys = set()
    if isinstance(draft.get("id"), str) and draft["id"]:
        keys.add("i" + (keyer.key(f"draft-id:{draft.get('resourceType')}/{draft['id']}") or ""))
    content = {k: v for k, v in draft.items() if k not in _VOLATILE}
    keys.add("c" + (keyer.key("draft-content:" + json.dumps(content, sort_keys=True, separators=(",", ":"))) or ""))
    return keys


def selected_draft_keys(keyer: PatientKeyer | None, hook: str, body: Any) -> list[str]:
    """What an order-select call records with its cards: the keys of the selected drafts."""
    if keyer is None or hook != "order-select":
        return []
    return sorted(set().union(*(draft_keys(keyer, d) for d in _drafts(body, selected_only=True))))


def _sign_repeats(store: FeedbackStore, keyer: PatientKeyer, key: str, cards: list[dict[str, Any]],
                  body: Any, settings: SuppressionSettings, now: datetime) -> set[str]:
    """Rules of this order-sign whose order-select card, for these very drafts, was overridden."""
    drafts = _drafts(body, selected_only=False)
    if not drafts or settings.window_hours <= 0:
        return set()
    per_draft = [draft_keys(keyer, d) for d in drafts]
    rules = {_rule(c) for c in cards} - {DATA_CARD_ID, None}
    out = set()
    for prior in store.recent_for_patient(key, rules, "order-select", now - timedelta(hours=settings.window_hours)):
        if prior["outcome"] != "overridden":
            continue
        selected = set((prior["draft_keys"] or "").split())
        if selected and all(keys & selected for keys in per_draft):
            out.add(prior["rule_id"])
    return out


def _snoozed(store: FeedbackStore, key: str, cards: list[dict[str, Any]], settings: SuppressionSettings,
             now: datetime) -> set[str]:
    """Info rules of this patient-view overridden with a reason within their snooze."""
    rules = {_rule(c) for c in cards if c.get("indicator") == "info"} - {DATA_CARD_ID, None}
    rules = {r for r in rules if settings.snooze_for(r) > 0}
    if not rules:
        return set()
    longest = max(settings.snooze_for(r) for r in rules)
    out = set()
    for prior in store.recent_for_patient(key, rules, "patient-view", now - timedelta(days=longest)):
        days = settings.snooze_for(prior["rule_id"])
        if (prior["outcome"] == "overridden" and prior["override_code"] and prior["indicator"] == "info"
                and datetime.fromisoformat(prior["received_at"]) >= now - timedelta(days=days)):
            out.add(prior["rule_id"])
    return out


def _rule(card: dict[str, Any]) -> str | None:
    return ((card.get("source") or {}).get("topic") or {}).get("code")


def suppress_repeats(config: Mapping[str, Any], hook: str, body: Any, response: dict[str, Any],
                     now: datetime) -> dict[str, Any]:
    """``response`` without the cards the clinician already answered (module docstring). On a
    store error every card is shown (a repeat is better than a missed warning)."""
    settings: SuppressionSettings | None = getattr(config.get("SETTINGS"), "suppression", None)
    store: FeedbackStore | None = config.get("FEEDBACK_STORE")
    keyer: PatientKeyer | None = config.get("PATIENT_KEYER")
    cards = response.get("cards") or []
    if not cards or settings is None or not settings.enabled or store is None or keyer is None \
            or hook not in ("order-sign", "patient-view"):
        return response
    key = keyer.key(patient_id_of(body))
    if key is None:
        return response
    try:
        if hook == "order-sign":
            drop = _sign_repeats(store, keyer, key, cards, body, settings, now)
            kept = [c for c in cards if _rule(c) not in drop]
        else:
            drop = _snoozed(store, key, cards, settings, now)
            kept = [c for c in cards if not (c.get("indicator") == "info" and _rule(c) in drop)]
    except Exception as exc:  # noqa: BLE001 - FeedbackStoreError and bugs alike: never lose a card to bookkeeping
        log.error("repeat suppression skipped (%s)", type(exc).__name__)
        return response
    if len(kept) == len(cards):
        return response
    from ..metrics import cards_suppressed   # lazily: prometheus-client's mode is set by serve
    cards_suppressed([c for c in cards if c not in kept], "order-select-override" if hook == "order-sign" else "snooze")
    log.info("repeated cards not shown", extra={"event": {
        "hook": hook, "suppressed": sorted(drop), "reason": "overridden at order-select" if hook == "order-sign"
        else "snoozed after an override with a reason"}})
    return {**response, "cards": kept}
