"""Run the rules of one hook over a chart and return the cards, ordered (RULES.md §1, §7).

§7 order of evaluation: (1) every rule for every trigger draft; (2) the exclusive pairs;
(3) the pre-treatment work-up merge (A12: two or more member cards become one merged card);
(4) ordering. On ``patient-view`` a deceased patient gets no card at all (D8, A37).
Pure: the caller passes the chart, the clock and the thresholds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from .model import Card, order_cards
from .registry import CATALOG_ORDER, PATIENT_VIEW, RuleInput, merges_for, rules_for

log = logging.getLogger(__name__)


def _only_denosumab_calcium_drafts(inp: RuleInput) -> bool:
    """E2 "for one draft": the calcium card concerns denosumab drafts only (no IV bisphosphonate
    draft, whose calcium the predisposition card does not ask for)."""
    return not any(d.drug.is_iv_bisphosphonate for d in inp.triggers)


@dataclass(frozen=True)
class Exclusive:
    """A §7 exclusive pair: when ``winner`` fires, ``loser`` is dropped — on ``hooks`` only
    (None: every hook) and when ``applies`` (None: always) says the two concern the same draft."""

    winner: str
    loser: str
    hooks: frozenset[str] | None = None
    applies: Callable[[RuleInput], bool] | None = None

    def drops(self, inp: RuleInput, fired: set[str]) -> bool:
        return (self.winner in fired and self.loser in fired
                and (self.hooks is None or inp.hook in self.hooks)
                and (self.applies is None or self.applies(inp)))


#: §7 exclusive pairs, in the catalog's order. Most are a safety net (the rules themselves
#: already avoid these combinations); E2 and E3 are decided here.
EXCLUSIVE: tuple[Exclusive, ...] = (
    Exclusive("DMAB-OVERDUE-TRANSITION", "DMAB-DOSE-DUE"),
    Exclusive("DMAB-HYPOCALCEMIA", "AR-CALCIUM-NOT-CHECKED"),
    Exclusive("BP-HYPOCALCEMIA", "AR-CALCIUM-NOT-CHECKED"),
    Exclusive("DMAB-CKD-CALCIUM-MONITORING", "AR-CALCIUM-NOT-CHECKED",
              applies=_only_denosumab_calcium_drafts),                          # E2
    Exclusive("DMAB-PREGNANCY", "DMAB-PREGNANCY-STATUS-UNVERIFIED"),
    Exclusive("DMAB-VITD-DEFICIENCY", "DMAB-VITD-NOT-CHECKED"),
    Exclusive("BP-RENAL-CONTRAINDICATION", "AR-RENAL-FUNCTION-UNKNOWN"),
    Exclusive("DMAB-HYPOCALCEMIA", "BP-HYPOCALCEMIA", hooks=PATIENT_VIEW),        # E3
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
    #: patient-view for a deceased patient (D8, A37): no rule ran and the answer holds no card
    deceased: bool = False


def silenced_deceased(inp: RuleInput) -> bool:
    """D8/A37: on ``patient-view`` no rule fires for a deceased patient; order hooks unchanged."""
    return inp.hook in PATIENT_VIEW and inp.chart.patient.deceased


def apply_exclusive(inp: RuleInput, cards: list[Card]) -> list[Card]:
    """§7 step 2: drop the loser of every exclusive pair whose winner fired."""
    for pair in EXCLUSIVE:
        if pair.drops(inp, {c.rule_id for c in cards}):
            log.info("exclusive rules %s and %s both fired; dropping %s", pair.winner, pair.loser, pair.loser)
            cards = [c for c in cards if c.rule_id != pair.loser]
    return cards


def apply_merges(inp: RuleInput, cards: list[Card]) -> list[Card]:
    """§7 step 3 (A12): when at least ``workup_min_members`` member cards of a merged rule
    remain, they are replaced by its one card; a member firing alone keeps its own card. A merge
    that fails leaves the member cards in place (never fewer warnings because of our bug)."""
    for spec in merges_for(inp.hook):
        members = [c for c in cards if c.rule_id in spec.members]
        if len(members) < max(2, inp.thresholds.workup_min_members) or spec.combine is None:
            continue
        try:
            merged = spec.combine(inp, members)
        except Exception:  # noqa: BLE001 - the member cards stay: nothing is hidden
            log.exception("merged rule %s failed; its member cards are shown instead", spec.id)
            continue
        if merged is not None:
            cards = [c for c in cards if c.rule_id not in spec.members] + [merged]
    return cards


def evaluate(inp: RuleInput, deadline: Callable[[], bool] | None = None) -> Evaluation:
    """Every rule of ``inp.hook`` whose data is available; one card per rule at most.

    ``deadline``: called before each rule; once it returns True, that rule and every later one
    are not run and are listed in :attr:`Evaluation.out_of_time` (the caller owns the clock:
    the engine never reads it)."""
    result = Evaluation()
    if silenced_deceased(inp):
        result.deceased = True
        return result
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
    cards = apply_merges(inp, apply_exclusive(inp, cards))
    result.cards = order_cards(cards, CATALOG_ORDER)
    result.fired = [c.rule_id for c in result.cards]
    return result
