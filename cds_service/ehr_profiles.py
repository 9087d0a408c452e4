"""EHR profiles: the service's answer reshaped for the EHR that calls it (issue 14).

The rules and cards are the same for every EHR; a profile only changes the wire form of a response
and which hooks are offered:

- ``standard`` (default): CDS Hooks 2.0.1 as written.
- ``epic``: Epic's CDS Hooks tutorial (fhir.epic.com, "CDS Hooks") — ``source.topic.code`` is
  alphanumeric only, at most 100 characters and static per topic (Epic ties override
  acknowledgements to it); ``selectionBehavior`` is ``any`` only, with one action per suggestion
  (alternatives said in the labels and the detail); a MedicationRequest suggestion can name the
  site's preference-list item, whose dose wins, so the label states the dose; ``patient-view`` is
  reused for other BPA triggers (request extension ``com.epic.cdshooks.request.bpa-trigger-action``)
  and its rules answer only for the configured triggers.
- ``oracle``: Oracle Health's CDS Hooks draft documentation — ``patient-view`` only in discovery.

Pure functions over JSON dictionaries: the response produced by the engine goes in, the wire
response comes out; the rule IDs inside the service (feedback store, reports, logs) never change.
"""

from __future__ import annotations

import copy
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

from cards.rules._text import cut

#: Epic's code system for preference-list items in suggestion resources (CDS Hooks tutorial).
EPIC_PREFERENCE_LIST_SYSTEM = "urn:com.epic.cdshooks.action.code.system.preference-list-item"
#: Epic request extension naming the real trigger of a ``patient-view`` call.
EPIC_TRIGGER_EXTENSION = "com.epic.cdshooks.request.bpa-trigger-action"
#: Epic request extensions worth logging (never gating behaviour).
EPIC_LOGGED_EXTENSIONS = (
    EPIC_TRIGGER_EXTENSION,
    "com.epic.cdshooks.request.cds-hooks-specification-version",
    "com.epic.cdshooks.request.epic-version",
    "com.epic.cdshooks.request.criteria-id",
    "com.epic.cdshooks.request.fhir-version",
)
#: Epic BPA trigger actions seen in the tutorial (code → meaning), for logs and the guide.
EPIC_TRIGGERS = {"18": "enter order", "23": "sign orders", "26": "admission", "27": "discharge",
                 "60": "open chart"}

PROFILE_NAMES = ("standard", "epic", "oracle")
#: Longest suggestion label the reshaping writes (a card summary's limit, §1.2 rule 2).
LABEL_MAX = 140
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")
_SUGGESTION_NS = uuid.UUID("6f1c3c1e-3f7b-4f7e-9a55-0b0e2d6d9a11")


class ProfileError(ValueError):
    """An invalid profile configuration; the message and :attr:`setting` name the setting."""

    def __init__(self, message: str, setting: str = "BONE_CDS_EHR_PROFILE") -> None:
        super().__init__(message)
        self.setting = setting


def alphanumeric_topic(rule_id: str) -> str:
    """Epic's form of a rule ID: letters and digits only, at most 100 characters."""
    return _NOT_ALNUM.sub("", rule_id)[:100]


def rule_id_of(code: str, rule_ids: list[str] | tuple[str, ...]) -> str | None:
    """The rule ID behind a topic code in either form (ours or Epic's), else None."""
    if code in rule_ids:
        return code
    for rid in rule_ids:
        if alphanumeric_topic(rid) == code:
            return rid
    return None


@dataclass(frozen=True)
class EhrProfile:
    """How the service answers one kind of EHR (see the module docstring)."""

    name: str = "standard"
    alphanumeric_topics: bool = False
    single_action_suggestions: bool = False
    hooks: frozenset[str] | None = None                  # None: every hook is offered
    patient_view_triggers: frozenset[str] | None = None  # None: every trigger answers
    preference_items: Mapping[str, str] = field(default_factory=dict)  # "system|code" → item id

    # -- request side -----------------------------------------------------------------------
    def request_notes(self, request: Mapping[str, Any]) -> dict[str, str]:
        """The EHR's request extensions worth logging (short strings; no patient data)."""
        ext = request.get("extension")
        if self.name != "epic" or not isinstance(ext, Mapping):
            return {}
        notes = {}
        for key in EPIC_LOGGED_EXTENSIONS:
            value = ext.get(key)
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                notes[key.rsplit(".", 1)[-1]] = str(value)[:32]
        return notes

    def answers_patient_view(self, request: Mapping[str, Any]) -> bool:
        """False when an Epic ``patient-view`` call comes from a trigger the site switched off."""
        if self.patient_view_triggers is None:
            return True
        ext = request.get("extension")
        trigger = ext.get(EPIC_TRIGGER_EXTENSION) if isinstance(ext, Mapping) else None
        if trigger is None:
            return True            # a real chart opening without Epic's extension
        return str(trigger).strip() in self.patient_view_triggers

    def offers(self, hook: str) -> bool:
        return self.hooks is None or hook in self.hooks

    # -- response side ----------------------------------------------------------------------
    def shape(self, response: dict[str, Any]) -> dict[str, Any]:
        """The wire form of ``response`` for this EHR (a new dict; the input is not changed)."""
        if not (self.alphanumeric_topics or self.single_action_suggestions):
            return response
        out = dict(response)
        out["cards"] = [self._card(c) for c in response.get("cards", [])]
        return out

    def _card(self, card: dict[str, Any]) -> dict[str, Any]:
        card = copy.deepcopy(card)
        topic = (card.get("source") or {}).get("topic")
        if self.alphanumeric_topics and isinstance(topic, dict) and topic.get("code"):
            topic["code"] = alphanumeric_topic(topic["code"])
        if self.single_action_suggestions and card.get("suggestions"):
            alternatives = card.get("selectionBehavior") == "at-most-one" and len(card["suggestions"]) > 1
            suggestions = []
            for i, s in enumerate(card["suggestions"]):
                for piece in self._split(s):
                    if alternatives:
                        piece["label"] = cut(f"Option {i + 1} of {len(card['suggestions'])}: "
                                             f"{piece['label']}", LABEL_MAX)
                    suggestions.append(piece)
            card["suggestions"] = suggestions
            card["selectionBehavior"] = "any"
            if alternatives:
                card["detail"] = (card.get("detail") or "") + (
                    "\n\nThe options offered are alternatives: accept only one of them.")
        return card

    def _split(self, suggestion: dict[str, Any]) -> list[dict[str, Any]]:
        """One suggestion per action; each keeps the extensions and a stable, distinct uuid."""
        actions = suggestion.get("actions") or []
        if len(actions) <= 1:
            piece = dict(suggestion)
            if actions:
                piece["actions"] = [self._action(actions[0])]
                piece["label"] = self._label(piece["label"], actions[0])
            return [piece]
        pieces = []
        for i, action in enumerate(actions):
            piece = {k: v for k, v in suggestion.items() if k not in ("actions", "uuid", "label")}
            base = suggestion.get("label", "")
            label = base if i == 0 else (action.get("description") or base)
            piece["label"] = self._label(label, action)
            if suggestion.get("uuid"):
                piece["uuid"] = suggestion["uuid"] if i == 0 else str(
                    uuid.uuid5(_SUGGESTION_NS, f"{suggestion['uuid']}/{i}"))
            piece["actions"] = [self._action(action)]
            pieces.append(piece)
        return pieces

    def _action(self, action: dict[str, Any]) -> dict[str, Any]:
        resource = action.get("resource")
        if not self.preference_items or not isinstance(resource, dict) \
                or resource.get("resourceType") != "MedicationRequest":
            return action
        concept = resource.get("medicationCodeableConcept") or {}
        codings = concept.get("coding") or []
        item = next((self.preference_items[f"{c.get('system')}|{c.get('code')}"] for c in codings
                     if f"{c.get('system')}|{c.get('code')}" in self.preference_items), None)
        if item is None:
            return action
        action = copy.deepcopy(action)
        action["resource"].setdefault("medicationCodeableConcept", {}).setdefault("coding", []).insert(
            0, {"system": EPIC_PREFERENCE_LIST_SYSTEM, "code": item})
        return action

    @staticmethod
    def _label(label: str, action: Mapping[str, Any]) -> str:
        """A medication order's label states its dose: the site's order set may fill another."""
        resource = action.get("resource")
        if not isinstance(resource, Mapping) or resource.get("resourceType") != "MedicationRequest":
            return label
        dosage = resource.get("dosageInstruction") or []
        text = dosage[0].get("text") if dosage and isinstance(dosage[0], Mapping) else None
        if text and text.lower() not in label.lower():
            label = f"{label} (dose: {text})"
        return cut(label, LABEL_MAX)


def _codes(raw: str) -> frozenset[str] | None:
    codes = frozenset(c.strip() for c in raw.split(",") if c.strip())
    return None if not codes or codes == {"all"} else codes


def profile_from_env(env: Mapping[str, str], preference_items: Mapping[str, Any] | None = None) -> EhrProfile:
    """``BONE_CDS_EHR_PROFILE`` (+ ``BONE_CDS_EPIC_PATIENT_VIEW_TRIGGERS``); ProfileError names the
    bad setting. ``preference_items`` is the parsed ``BONE_CDS_EPIC_PREFERENCE_ITEMS`` object."""
    name = (env.get("BONE_CDS_EHR_PROFILE") or "standard").strip().lower()
    if name not in PROFILE_NAMES:
        raise ProfileError(f"BONE_CDS_EHR_PROFILE must be one of {', '.join(PROFILE_NAMES)}, got {name!r}")
    triggers_raw = env.get("BONE_CDS_EPIC_PATIENT_VIEW_TRIGGERS") or ""
    triggers = _codes(triggers_raw)
    if triggers is not None and any(not t.isdigit() for t in triggers):
        raise ProfileError("BONE_CDS_EPIC_PATIENT_VIEW_TRIGGERS: a comma-separated list of Epic trigger "
                           f"action numbers (e.g. 60,18) or 'all', got {triggers_raw!r}",
                           setting="BONE_CDS_EPIC_PATIENT_VIEW_TRIGGERS")
    items: dict[str, str] = {}
    for key, value in (preference_items or {}).items():
        if not isinstance(key, str) or key.count("|") != 1 or not all(key.split("|")) \
                or not isinstance(value, (str, int)) or isinstance(value, bool) or not str(value).strip():
            raise ProfileError("BONE_CDS_EPIC_PREFERENCE_ITEMS: each key is 'system|code' of a suggested "
                               f"medication and each value an item id, got {key!r}: {value!r}",
                               setting="BONE_CDS_EPIC_PREFERENCE_ITEMS")
        items[key] = str(value).strip()
    if name == "epic":
        return EhrProfile("epic", alphanumeric_topics=True, single_action_suggestions=True,
                          patient_view_triggers=triggers, preference_items=items)
    if triggers is not None or items:
        raise ProfileError("BONE_CDS_EPIC_PATIENT_VIEW_TRIGGERS and BONE_CDS_EPIC_PREFERENCE_ITEMS need "
                           "BONE_CDS_EHR_PROFILE=epic")
    if name == "oracle":
        return EhrProfile("oracle", hooks=frozenset({"patient-view"}))
    return EhrProfile()


STANDARD = EhrProfile()
