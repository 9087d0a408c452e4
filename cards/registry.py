"""The rule registry: which rules exist, on which hooks they run, what data they need.

Each rule is a pure function ``(RuleInput) -> Card | None`` registered with :func:`rule`.
``needs`` names the FHIR resource types the rule reads: when the request could not supply one
of them (``Chart.known`` is False), the rule is not run and the response says which checks could
not run (checklist PF-6; DESIGN.md "answer with what the data supports").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from cds_service.chart import Chart, DraftOrder

from .builders import OrderContext
from .model import Card
from .thresholds import DEFAULT_THRESHOLDS, Thresholds

ORDER_HOOKS = frozenset({"order-select", "order-sign"})
PATIENT_VIEW = frozenset({"patient-view"})
ALL_HOOKS = ORDER_HOOKS | PATIENT_VIEW

MEDS = frozenset({"MedicationRequest", "MedicationAdministration", "MedicationStatement",
                  "MedicationDispense"})

#: The rule index of RULES.md, in catalog order (ordering inside one indicator level, §1).
CATALOG_ORDER: list[str] = [
    "DMAB-DENTAL-CLEARANCE", "DMAB-OVERDUE-TRANSITION", "DMAB-DOSE-DUE", "DMAB-ONCOLOGY-INTERVAL",
    "DMAB-HYPOCALCEMIA", "DMAB-CKD-CALCIUM-MONITORING", "DMAB-VITD-DEFICIENCY",
    "DMAB-VITD-NOT-CHECKED", "DMAB-NO-CA-VITD-SUPPLEMENT", "DMAB-PREGNANCY",
    "DMAB-PREGNANCY-STATUS-UNVERIFIED", "DMAB-PEDIATRIC", "DMAB-ACTIVE-INFECTION",
    "DMAB-DOSE-INDICATION-MISMATCH", "DMAB-DUPLICATE", "DMAB-CALCIMIMETIC",
    "BP-RENAL-CONTRAINDICATION", "BP-RENAL-DOSE-ADJUST", "BP-HYPOCALCEMIA",
    "BP-DRUG-HOLIDAY-REVIEW", "BP-DENTAL", "BP-DUPLICATE", "BP-ORAL-CONTRAINDICATION",
    "BP-DOSE-SCHEDULE", "BP-VITD-DEFICIENCY", "AR-CALCIUM-NOT-CHECKED",
    "AR-RENAL-FUNCTION-UNKNOWN", "AR-ONJ-HISTORY", "AR-AFF-HISTORY", "AR-RECENT-INVASIVE-DENTAL",
    "AR-CONCURRENT-ANTIRESORPTIVE", "AR-PRETREATMENT-WORKUP",
]


@dataclass(frozen=True)
class RuleInput:
    """Everything a rule may read: the chart, the hook and its triggering drafts, the clock."""

    chart: Chart
    hook: str
    now: datetime
    thresholds: Thresholds = DEFAULT_THRESHOLDS
    patient_id: str = ""
    user_id: str = ""

    @property
    def triggers(self) -> tuple[DraftOrder, ...]:
        return self.chart.triggers

    @property
    def today(self):  # noqa: ANN201 - a date
        return self.chart.today

    @property
    def orders(self) -> OrderContext:
        return OrderContext(self.patient_id, self.user_id, self.chart.today)

    def drafts_of(self, drug_class: str) -> list[DraftOrder]:
        """Triggering drafts of one drug class (DMAB draft / BP draft)."""
        return [d for d in self.chart.triggers if d.drug.drug_class == drug_class]


RuleFn = Callable[[RuleInput], "Card | None"]
#: A merged rule (§7): from the member cards that fired, the one card that replaces them.
CombineFn = Callable[[RuleInput, "list[Card]"], "Card | None"]


def _never(_inp: RuleInput) -> None:
    """The per-rule function of a merged rule: it fires only by merging (engine step 3, §7)."""
    return None


@dataclass(frozen=True)
class RuleSpec:
    id: str
    title: str
    hooks: frozenset[str]
    needs: frozenset[str]
    fn: RuleFn
    #: a merged rule (RULES.md §7 "work-up merge"): the member rule IDs whose cards it replaces
    members: tuple[str, ...] = ()
    combine: CombineFn | None = None

    @property
    def merged(self) -> bool:
        return bool(self.members)


REGISTRY: dict[str, RuleSpec] = {}


def rule(rule_id: str, title: str, hooks: frozenset[str], needs: frozenset[str] | set[str] = frozenset()):
    """Register a rule function under its catalog ID (which must be in :data:`CATALOG_ORDER`)."""
    if rule_id not in CATALOG_ORDER:
        raise ValueError(f"{rule_id} is not a rule of the catalog")

    def register(fn: RuleFn) -> RuleFn:
        if rule_id in REGISTRY:
            raise ValueError(f"{rule_id} registered twice")
        REGISTRY[rule_id] = RuleSpec(rule_id, title, frozenset(hooks), frozenset(needs), fn)
        return fn
    return register


def merged_rule(rule_id: str, title: str, hooks: frozenset[str], members: tuple[str, ...]):
    """Register a merged rule (§7): ``combine(inp, member_cards)`` builds the one card that
    replaces the member cards; the engine calls it after the exclusive pairs (A12)."""
    if rule_id not in CATALOG_ORDER or any(m not in CATALOG_ORDER for m in members):
        raise ValueError(f"{rule_id} or one of its members is not a rule of the catalog")

    def register(fn: CombineFn) -> CombineFn:
        if rule_id in REGISTRY:
            raise ValueError(f"{rule_id} registered twice")
        REGISTRY[rule_id] = RuleSpec(rule_id, title, frozenset(hooks), frozenset(), _never,
                                     members=tuple(members), combine=fn)
        return fn
    return register


def rules_for(hook: str) -> list[RuleSpec]:
    """Registered rules that run on ``hook``, in catalog order (merged rules excluded: they are
    not evaluated on their own, see :func:`merges_for`)."""
    load_rules()
    return [REGISTRY[r] for r in CATALOG_ORDER
            if r in REGISTRY and hook in REGISTRY[r].hooks and not REGISTRY[r].merged]


def merges_for(hook: str) -> list[RuleSpec]:
    """Registered merged rules of ``hook``, in catalog order."""
    load_rules()
    return [REGISTRY[r] for r in CATALOG_ORDER
            if r in REGISTRY and hook in REGISTRY[r].hooks and REGISTRY[r].merged]


_loaded = False


def load_rules() -> None:
    """Import every rule module of :mod:`cards.rules` once (registration is by import)."""
    global _loaded
    if _loaded:
        return
    import importlib
    import pkgutil

    from . import rules as package
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        importlib.import_module(f"{package.__name__}.{info.name}")
    _loaded = True
