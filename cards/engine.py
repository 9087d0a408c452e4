"""Run the rules of one hook over a chart and return the cards, ordered (RULES.md §1, §7).

Pure: the caller passes the chart, the clock and the thresholds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from .model import Card, order_cards
from .registry import CATALOG_ORDER, RuleInput, rules_for

log = logging.getLogger(__name__)

#: §7 exclusive pairs: when the first fires, the second is dropped (safety net; the rules
#: themselves already avoid these combinations).
EXCLUSIVE: tuple[tuple[str, str], ...] = (
    ("DMAB-OVERDUE-TRANSITION", "DMAB-DOSE-DUE"),
    ("DMAB-HYPOCALCEMIA", "AR-CALCIUM-NOT-CHECKED"),
    ("BP-HYPOCALCEMIA", "AR-CALCIUM-NOT-CHECKED"),
    ("DMAB-PREGNANCY", "DMAB-PREGNANCY-STATUS-UNVERIFIED"),
    ("DMAB-VITD-DEFICIENCY", "DMAB-VITD-NOT-CHECKED"),
    ("BP-RENAL-CONTRAINDICATION", "AR-RENAL-FUNCTION-UNKNOWN"),
)

#: What a check needs, in words, for the "could not run" card.
TYPE_WORDS = {
    "Observation": "laboratory results", "Condition": "problem list", "Procedure": "procedures",
    "Patient": "patient demographics", "MedicationRequest": "medication orders",
    "MedicationAdministration": "medication administrations",
    "MedicationStatement": "medication statements", "MedicationDispense": "medication dispenses",
}


@dataclass
class Evaluation:
    """The result of one evaluation: cards (ordered) and the rules that could not run."""

    cards: list[Card] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)
    not_run: dict[str, list[str]] = field(default_factory=dict)  # rule id -> missing types
    failed: list[str] = field(default_factory=list)              # rules that raised (our bug)
    out_of_time: list[str] = field(default_factory=list)         # rules not run: time budget spent


def evaluate(inp: RuleInput, deadline: Callable[[], bool] | None = None) -> Evaluation:
    """Every rule of ``inp.hook`` whose data is available; one card per rule at most.

    ``deadline``: called before each rule; once it returns True, that rule and every later one
    are not run and are listed in :attr:`Evaluation.out_of_time` (the caller owns the clock:
    the engine never reads it)."""
    result = Evaluation()
    cards: list[Card] = []
    expired = False
    for spec in rules_for(inp.hook):
        if not expired and deadline is not None and deadline():
            expired = True
        if expired:
            result.out_of_time.append(spec.id)
            continue
        missing = sorted(t for t in spec.needs if not inp.chart.known(t))
        if missing:
            result.not_run[spec.id] = missing
            continue
        try:
            card = spec.fn(inp)
        except Exception:  # noqa: BLE001 - one broken rule must not silence all the others
            log.exception("rule %s failed; its check did not run", spec.id)
            result.failed.append(spec.id)
            continue
        if card is not None:
            cards.append(card)
    fired = {c.rule_id for c in cards}
    for winner, loser in EXCLUSIVE:
        if winner in fired and loser in fired:
            log.warning("exclusive rules %s and %s both fired; dropping %s", winner, loser, loser)
            cards = [c for c in cards if c.rule_id != loser]
    result.cards = order_cards(cards, CATALOG_ORDER)
    result.fired = [c.rule_id for c in result.cards]
    return result
