"""CDS Hooks 2.0 card model, serialised exactly to the spec (checklist CARD-*, SUG-*, ACT-*, LINK-*).

GEN-2: no element is null or empty: optional fields without a value are left out. Every card
and suggestion gets a fresh uuid (CARD-1, SUG-2); ``selectionBehavior`` is present whenever
suggestions are (CARD-6); the rule is in ``source.topic`` (DESIGN.md conventions).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any


def new_uuid() -> str:
    """A random (version 4, RFC 4122) UUID as text: what ``str(uuid.uuid4())`` gives, without
    building a ``uuid.UUID`` (a card and its suggestions take several each)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40   # version 4
    b[8] = (b[8] & 0x3F) | 0x80   # the RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


RULE_SYSTEM = "urn:bone-safety-cds:rule"
OVERRIDE_SYSTEM = "urn:bone-safety-cds:override-reason"
INDICATORS = ("critical", "warning", "info")
_RANK = {name: i for i, name in enumerate(INDICATORS)}
#: Longest summary, in characters (RULES.md §1.2 rule 2, ``summary_max_chars``).
MAX_SUMMARY = 140


def _prune(value: Any) -> Any:
    """Drop None and empty strings/lists/dicts recursively (GEN-2)."""
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        out_list = [_prune(v) for v in value]
        return [v for v in out_list if v not in (None, "", [], {})]
    return value


@dataclass(frozen=True)
class Coding:
    """GEN-4 Coding. ``display`` is required in override reasons (CARD-8)."""

    system: str
    code: str
    display: str | None = None
    extension: dict[str, Any] | None = None   # e.g. the HL7 non-adherence reason (§1.1, A34)

    def to_json(self) -> dict[str, Any]:
        return _prune({"system": self.system, "code": self.code, "display": self.display,
                       "extension": self.extension})


@dataclass(frozen=True)
class Link:
    """LINK-1: label, absolute url, type (``absolute`` in version 1, RULES.md §6.2)."""

    label: str
    url: str
    type: str = "absolute"

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "url": self.url, "type": self.type}


@dataclass(frozen=True)
class Action:
    """ACT-1..3: a ``create`` action carrying a FHIR R4 resource (a draft order)."""

    description: str
    resource: dict[str, Any] = field(default_factory=dict)
    type: str = "create"
    #: a ``delete`` action names the draft to remove instead of carrying a resource (§6.1)
    resource_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.resource_id is not None:
            return {"type": self.type, "description": self.description, "resourceId": self.resource_id}
        return {"type": self.type, "description": self.description, "resource": _prune(self.resource)}


@dataclass
class Suggestion:
    """SUG-1..4: a button; a fresh uuid per instance."""

    label: str
    actions: list[Action] = field(default_factory=list)
    is_recommended: bool | None = None
    uuid: str = field(default_factory=new_uuid)
    #: CDS Hooks ``extension`` (e.g. ``urn:bone-safety-cds:member`` on a merged card, RULES.md §1.1)
    extension: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return _prune({"label": self.label, "uuid": self.uuid, "isRecommended": self.is_recommended,
                       "actions": [a.to_json() for a in self.actions], "extension": self.extension})


_LINKISH = re.compile(r"(?i)(://|\bwww\.)")
_BARE_AMP = re.compile(r"&(?!(?:amp|lt|gt|quot|#\d{1,7}|#x[0-9a-fA-F]{1,6});)")
#: Any character or sequence :func:`safe_markdown` could change: without one, it changes nothing.
_UNSAFE = re.compile(r"(?i)[&<>\[\]]|://|\bwww\.")


def _escape_brackets(text: str) -> str:
    """A backslash before each ``[`` ``]`` not already escaped (an odd run of backslashes)."""
    if "[" not in text and "]" not in text:
        return text   # nothing to escape (most details): not a loop over every character
    out: list[str] = []
    run = 0
    for ch in text:
        if ch in "[]" and run % 2 == 0:
            out.append("\\")
        out.append(ch)
        run = run + 1 if ch == "\\" else 0
    return "".join(out)


def safe_markdown(detail: str) -> str:
    """The final safety net on ``detail`` (issue 12, RULES.md §1.2 rule 4): no construct that could
    become a link, an image or HTML, even if a rule forgot to escape a record value. Record text is
    escaped per value where it is inserted (``cards.rules._text.escape_record``); this net leaves
    such text as it is (idempotent: ``safe_markdown(safe_markdown(x)) == safe_markdown(x)``):
    ``[`` ``]`` not yet escaped get a backslash, ``<`` ``>`` and a bare ``&`` (not an entity) are
    HTML-escaped, and ``://`` / ``www.`` are broken so no autolink forms. The service's own
    markdown uses bold, bullets and headings only (links go in ``links``)."""
    if not detail or _UNSAFE.search(detail) is None:
        return detail   # the common case: one search instead of two substitutions and a loop
    out = _BARE_AMP.sub("&amp;", detail).replace("<", "&lt;").replace(">", "&gt;")
    out = _escape_brackets(out)
    return _LINKISH.sub(lambda m: ":\\/\\/" if m.group(1) == "://" else m.group(1)[:3] + "\\.", out)


@dataclass
class Card:
    """One finding of one rule. ``rule_id`` goes to ``source.topic.code``."""

    rule_id: str
    rule_title: str
    summary: str
    indicator: str
    source_label: str
    detail: str = ""
    suggestions: list[Suggestion] = field(default_factory=list)
    selection_behavior: str | None = None
    override_reasons: list[Coding] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    source_url: str | None = None
    uuid: str = field(default_factory=new_uuid)
    #: CDS Hooks ``extension`` (e.g. ``urn:bone-safety-cds:members`` on a merged card, RULES.md §1.1)
    extension: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.indicator not in INDICATORS:
            raise ValueError(f"{self.rule_id}: indicator {self.indicator!r} is not one of {INDICATORS}")
        if not self.summary or len(self.summary) > MAX_SUMMARY:
            raise ValueError(f"{self.rule_id}: summary must be 1–{MAX_SUMMARY} characters, "
                             f"got {len(self.summary)}")
        if len(self.override_reasons) > 5:
            raise ValueError(f"{self.rule_id}: at most 5 override reasons (RULES.md §6.3)")
        if any(not r.display for r in self.override_reasons):
            raise ValueError(f"{self.rule_id}: every override reason needs a display (CARD-8)")
        if self.selection_behavior not in (None, "any", "at-most-one"):
            raise ValueError(f"{self.rule_id}: selectionBehavior {self.selection_behavior!r} (CARD-7)")

    @property
    def rank(self) -> int:
        return _RANK[self.indicator]

    def to_json(self) -> dict[str, Any]:
        behaviour = self.selection_behavior or ("any" if self.suggestions else None)
        body = {
            "uuid": self.uuid,
            "summary": self.summary,
            "detail": safe_markdown(self.detail),
            "indicator": self.indicator,
            "source": {"label": self.source_label, "url": self.source_url,
                       "topic": {"system": RULE_SYSTEM, "code": self.rule_id, "display": self.rule_title}},
            "suggestions": [s.to_json() for s in self.suggestions],
            "selectionBehavior": behaviour if self.suggestions else None,
            "overrideReasons": [r.to_json() for r in self.override_reasons],
            "links": [l.to_json() for l in self.links],
            "extension": self.extension,
        }
        return _prune(body)


def order_cards(cards: list[Card], catalog_order: list[str]) -> list[Card]:
    """Critical, then warning, then info; inside a level, the order of the catalog (§1, §7)."""
    position = {rule: i for i, rule in enumerate(catalog_order)}
    return sorted(cards, key=lambda c: (c.rank, position.get(c.rule_id, len(position))))
