"""Helpers specific to the AR-* rules (RULES.md §5: rules for any antiresorptive).

Which drafts an AR rule concerns and how an agent is named on a card. The D9 composite facts
(hypocalcemia-prone, severe kidney records), D4 initiation and "calcimimetic active" are in
:mod:`cards.rules._definitions`; the formatting helpers in :mod:`cards.rules._text`. Pure: reads
the :class:`~cards.registry.RuleInput`, never raw FHIR.
"""

from __future__ import annotations

from typing import Iterable

from cds_service.chart import BISPHOSPHONATE, DENOSUMAB, DraftOrder, Drug

from ..registry import RuleInput
from ._text import cut

_AGENT_WORDS = {"zoledronic-acid": "zoledronic acid", "bisphosphonate": "a bisphosphonate"}


def agent_word(drug: Drug) -> str:
    """The ingredient as a clinician says it in a sentence ("denosumab", "zoledronic acid")."""
    return _AGENT_WORDS.get(drug.agent, drug.agent)


def agents_phrase(drugs: Iterable[Drug]) -> str:
    """Distinct ingredients joined with "and", cut to 40 characters (summary ``{agent}``)."""
    words: list[str] = []
    for d in drugs:
        w = agent_word(d)
        if w not in words:
            words.append(w)
    return cut(" and ".join(words) or "antiresorptive therapy")


def antiresorptive_drafts(inp: RuleInput, *, bisphosphonates: str = "any") -> list[DraftOrder]:
    """Triggering denosumab drafts plus bisphosphonate drafts (``any``, ``iv`` or ``none``)."""
    out = list(inp.drafts_of(DENOSUMAB))
    if bisphosphonates == "any":
        out += inp.drafts_of(BISPHOSPHONATE)
    elif bisphosphonates == "iv":
        out += [d for d in inp.drafts_of(BISPHOSPHONATE) if d.drug.is_iv_bisphosphonate]
    return out
