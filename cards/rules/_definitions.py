"""The shared clinical definitions of RULES.md §2 that more than one rule family reads.

One implementation each of: catalog parameters that D10 does not name (:func:`param`), D4
initiation, the D9 composite facts (severe kidney records, advanced CKD, hypocalcemia-prone,
oncology bone indication), D5 low calcium results, and "on the medication list" for the
calcimimetic and supplement rules. The facts are returned as records so each rule can word them
as its card needs; the few shared wordings are here too. Pure: reads the
:class:`~cds_service.chart.Chart`, never raw FHIR; no clock (``chart.today``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Iterable

from cds_service.chart import (BISPHOSPHONATE, CALCIMIMETIC, SUPPLEMENT, Chart, ConditionFact,
                               DraftOrder, Lab, MedicationRecord, ProcedureFact, add_months, below,
                               default_value_sets)
from cds_service.chart.labs import judge_calcium, within

from ..registry import RuleInput
from ..thresholds import Thresholds
from ._text import condition_text, cut, iso

# ---- catalog parameters --------------------------------------------------------------------

#: Catalog values that are not (yet) D10 parameters: name → default (RULES.md §3). A deployment
#: may define them in its thresholds; :func:`param` reads them from there first.
CATALOG_DEFAULTS: dict[str, Any] = {
    # DMAB-NO-CA-VITD-SUPPLEMENT / DMAB-CALCIMIMETIC: "dispense within 120 days"
    "medication_dispense_recent_days": 120,
    # DMAB-NO-CA-VITD-SUPPLEMENT: "do not fire if the latest calcium is > 10.5 mg/dL"
    "calcium_high_mg_dl": Decimal("10.5"),
    # DMAB-PREGNANCY (c): "an active pregnancy Condition with onset in the last 42 weeks"
    "pregnancy_condition_weeks": 42,
    # §8 item 16: oral bisphosphonates get a 90-day calcium window (BP-HYPOCALCEMIA)
    "calcium_lookback_days_oral_bp": 90,
    # D4 "Active therapy" dosing intervals of IV agents (AR-CONCURRENT-ANTIRESORPTIVE)
    "zol5_active_interval_months": 12,
    "zol4_active_interval_days": 28,
    "ibandronate_iv_active_interval_months": 3,
}


def catalog_value(t: Thresholds, name: str) -> Any:
    """A threshold from ``t`` when a deployment configures it there, else the catalog value."""
    return getattr(t, name, CATALOG_DEFAULTS[name])


def param(inp: RuleInput, name: str) -> Any:
    """A threshold from ``inp.thresholds`` when configured there, else the catalog value (D10)."""
    return catalog_value(inp.thresholds, name)


# ---- D4 ------------------------------------------------------------------------------------

def is_initiation(inp: RuleInput, drug_class: str) -> bool:
    """D4 "Initiation": no dose of ``drug_class`` in the ``initiation_gap_days`` before today
    (a re-start after a year counts as initiation)."""
    return inp.chart.is_initiation([drug_class], inp.thresholds.initiation_gap_days)


def is_zol5_draft(inp: RuleInput, draft: DraftOrder) -> bool:
    """A zoledronic acid 5 mg draft: coded/stated 5 mg, or zoledronic acid of unstated strength
    without an oncology bone indication (read as the 5 mg regimen, D3/D9)."""
    drug = draft.drug
    if drug.agent != "zoledronic-acid":
        return False
    return drug.regimen == "5mg" or (drug.regimen is None and not oncology_indication(inp.chart, draft))


def last_zoledronic_acid_within(inp: RuleInput, months: int) -> date | None:
    """The latest zoledronic acid dose (D4 dose events, any strength) in the last ``months``
    calendar months, or None (D4 zoledronic acid 5 mg initiation, A27)."""
    since = add_months(inp.today, -months)
    doses = [e.date for e in inp.chart.dose_events(BISPHOSPHONATE, agent="zoledronic-acid")
             if since <= e.date <= inp.today]
    return max(doses, default=None)


def draft_initiation(inp: RuleInput, draft: DraftOrder) -> bool:
    """D4 "Initiation" for one draft: a zoledronic acid 5 mg draft after ``zol5_reinitiation_months``
    (18) without a zoledronic acid dose (a yearly infusion at 13 months continues, A27); any other
    draft after ``initiation_gap_days`` without a dose of its class."""
    if is_zol5_draft(inp, draft):
        return last_zoledronic_acid_within(inp, inp.thresholds.zol5_reinitiation_months) is None
    return is_initiation(inp, draft.drug.drug_class)


def current_records(inp: RuleInput, drug_class: str, *, dispense_days: int,
                    administration_days: int | None = None) -> list[MedicationRecord]:
    """Records that put a drug of ``drug_class`` on the medication list today (RULES.md §3,
    DMAB-NO-CA-VITD-SUPPLEMENT / DMAB-CALCIMIMETIC "Data"): an ``active`` MedicationRequest or
    MedicationStatement, a completed MedicationDispense handed over within ``dispense_days``, and
    (when ``administration_days`` is given) an administration within that many days. Statuses
    were already filtered by the chart (D2)."""
    today = inp.today
    out: list[MedicationRecord] = []
    for r in inp.chart.medications:
        if r.drug.drug_class != drug_class:
            continue
        if r.resource_type in ("MedicationRequest", "MedicationStatement"):
            if r.status == "active":
                out.append(r)
        elif r.resource_type == "MedicationDispense":
            if r.status == "completed" and r.date is not None and 0 <= (today - r.date).days <= dispense_days:
                out.append(r)
        elif r.resource_type == "MedicationAdministration" and administration_days is not None:
            if r.date is not None and 0 <= (today - r.date).days <= administration_days:
                out.append(r)
    return out


def calcimimetic_records(inp: RuleInput) -> list[MedicationRecord]:
    """"Calcimimetic active" (DMAB-CALCIMIMETIC "Data", also read by AR-CALCIUM-NOT-CHECKED):
    an active calcimimetic request/statement, a dispense within ``supplement_dispense_lookback_days``
    (120), or an administration within ``calcimimetic_admin_lookback_days`` (30; etelcalcetide is
    given at dialysis, A26)."""
    t = inp.thresholds
    return current_records(inp, CALCIMIMETIC, dispense_days=t.supplement_dispense_lookback_days,
                           administration_days=t.calcimimetic_admin_lookback_days)


def supplement_records(inp: RuleInput) -> list[MedicationRecord]:
    """A calcium or vitamin D product on the medication list (DMAB-NO-CA-VITD-SUPPLEMENT "Data"):
    an active request/statement, or a dispense within ``supplement_dispense_lookback_days`` (120)."""
    return current_records(inp, SUPPLEMENT, dispense_days=inp.thresholds.supplement_dispense_lookback_days)


# ---- D9 kidney -----------------------------------------------------------------------------

@dataclass
class KidneyRecords:
    """Severe kidney disease on record (D6, D7, D9): active CKD stage 4/5, ESRD or dialysis
    Conditions, and dialysis Procedures within ``dialysis_procedure_lookback_days``."""

    conditions: list[ConditionFact] = field(default_factory=list)          # chart order
    dialysis_procedures: list[ProcedureFact] = field(default_factory=list)  # newest first

    @property
    def dialysis_conditions(self) -> list[ConditionFact]:
        return [c for c in self.conditions if "dialysis" in c.concepts]

    @property
    def ckd_conditions(self) -> list[ConditionFact]:
        """Active CKD stage 4/5 or ESRD conditions (a dialysis condition also coded so included)."""
        return [c for c in self.conditions if c.concepts & {"ckd-stage-4-5", "end-stage-renal-disease"}]

    @property
    def dialysis(self) -> bool:
        return bool(self.dialysis_conditions or self.dialysis_procedures)

    @property
    def present(self) -> bool:
        return bool(self.conditions or self.dialysis_procedures)


def kidney_records(chart: Chart, t: Thresholds) -> KidneyRecords:
    """D9: active ``ckd-stage-4-5`` / ``end-stage-renal-disease`` / ``dialysis`` Conditions and
    ``dialysis`` Procedures within ``dialysis_procedure_lookback_days`` (90). AR-RENAL-FUNCTION-
    UNKNOWN calls these "a known severe CKD"; BP-RENAL-CONTRAINDICATION reads them as data."""
    return KidneyRecords(
        chart.conditions_in("ckd-stage-4-5", "end-stage-renal-disease", "dialysis", active=True),
        chart.procedures_in("dialysis", within_days=t.dialysis_procedure_lookback_days))


@dataclass
class AdvancedCkd:
    """D9 "Advanced CKD": the evidence found, each kind kept apart so a card can name it."""

    egfr: Lab | None = None                       # latest eGFR in window, when below the limit
    latest_egfr: Lab | None = None                # latest eGFR in window, whatever its value
    records: KidneyRecords = field(default_factory=KidneyRecords)

    @property
    def ckd_conditions(self) -> list[ConditionFact]:
        return self.records.ckd_conditions

    @property
    def dialysis_conditions(self) -> list[ConditionFact]:
        return self.records.dialysis_conditions

    @property
    def dialysis_procedures(self) -> list[ProcedureFact]:
        return self.records.dialysis_procedures

    @property
    def present(self) -> bool:
        return bool(self.egfr or self.records.present)

    @property
    def dialysis(self) -> bool:
        return self.records.dialysis

    @property
    def by_diagnosis(self) -> bool:
        return self.records.present

    def words(self) -> list[str]:
        """Each piece of evidence in words, for details and other cards (D9: "the card names
        which evidence was used")."""
        out: list[str] = []
        if self.egfr is not None:
            out.append(f"eGFR {self.egfr.describe()} on {self.egfr.date.isoformat()}")
        out += [f"{condition_text(c)} on the problem list" for c in self.dialysis_conditions]
        out += [f"{p.display or 'dialysis'} performed {iso(p.date)}" for p in self.dialysis_procedures]
        out += [f"{condition_text(c)} on the problem list" for c in self.ckd_conditions
                if c not in self.dialysis_conditions]
        return out


def advanced_ckd(chart: Chart, t: Thresholds) -> AdvancedCkd:
    """D9 "Advanced CKD": latest eGFR within ``egfr_lookback_days_denosumab`` strictly below
    ``egfr_advanced_ckd`` (a comparator is honoured: "<15" is below, ">60" never, D5); an
    active CKD stage 4/5 (or ESRD) condition; dialysis (an active dialysis condition or a
    dialysis procedure within ``dialysis_procedure_lookback_days``)."""
    latest = chart.egfr(t.egfr_lookback_days_denosumab)
    egfr = latest if latest is not None and below(latest, t.egfr_advanced_ckd) else None
    return AdvancedCkd(egfr=egfr, latest_egfr=latest, records=kidney_records(chart, t))


# ---- D5 / D9 calcium -----------------------------------------------------------------------

def low_calcium_results(chart: Chart, t: Thresholds, days: int) -> list[str]:
    """Every calcium result within ``days`` judged low by D5 on its own date (albumin-corrected
    with an albumin of the same week when below 4.0 g/dL), in words."""
    out: list[str] = []
    albumin = chart.labs("albumin")
    for concept in ("calcium-serum", "calcium-corrected", "calcium-ionized"):
        for lab in within(chart.labs(concept), chart.today, days):
            if not lab.usable:
                continue
            j = judge_calcium({concept: [lab], "albumin": albumin}, lab.date, 0,
                              t.calcium_total_low_mg_dl, t.calcium_total_severe_mg_dl,
                              t.calcium_ionized_low_mmol_l, t.calcium_ionized_severe_mmol_l,
                              t.albumin_reference_g_dl, t.albumin_pairing_days)
            if j is not None and j.low:
                out.append(f"low {j.describe()} on {j.date.isoformat()}")
    return out


def hypocalcemia_prone(chart: Chart, t: Thresholds) -> list[str]:
    """D9 "Hypocalcemia-prone": advanced CKD, hypoparathyroidism, a low calcium (D5) in the
    last 365 days, or an active hypocalcemia condition — the evidence in words (empty: none)."""
    out = [f"advanced CKD ({w})" for w in advanced_ckd(chart, t).words()]
    out += [condition_text(c) for c in chart.conditions_in("hypoparathyroidism", active=True)]
    out += low_calcium_results(chart, t, 365)
    out += [condition_text(c) for c in chart.conditions_in("hypocalcemia", active=True)]
    return out


# ---- D9 oncology bone indication -----------------------------------------------------------

#: Value sets of an oncology bone indication (D9); ``oncology-bone-indication`` is their union.
ONCOLOGY_SETS = ("oncology-bone-indication", "bone-metastases", "multiple-myeloma",
                 "giant-cell-tumor-of-bone", "hypercalcemia-of-malignancy")
_TEXT_CLASSES = frozenset({"giant-cell-tumor-of-bone", "hypercalcemia-of-malignancy"})
#: Free-text reasons typed on a draft order that name an oncology bone indication (D6: the
#: draft's reason is evidence of an indication; D3 has text patterns only for GCTB/HCM).
ONCOLOGY_REASON_TEXT = re.compile(
    r"bone metasta|metasta\w* (to|of|in) (the )?bone|osseous metasta|skeletal metasta|myeloma|"
    r"giant[- ]cell tumou?r|\bgctb\b|hypercalc(a)?emia of malignancy|malignant hypercalc",
    re.IGNORECASE)


@dataclass(frozen=True)
class Evidence:
    """One piece of indication evidence, for the card detail."""

    text: str
    by_text: bool = False


def draft_reason_sets(draft: DraftOrder) -> set[str]:
    """Value sets the draft's ``reasonCode`` names (codes, and the D3 GCTB/HCM text patterns);
    ``oncology-bone-indication`` added for any of its parts (D9)."""
    vs = default_value_sets()
    names: set[str] = set()
    for system, code in draft.reason_codings:
        names |= vs.names_for(system, code)
    names |= vs.text_matches(draft.reason_texts) & _TEXT_CLASSES
    if names & set(ONCOLOGY_SETS):
        names.add("oncology-bone-indication")
    return names


def reason_conditions(chart: Chart, draft: DraftOrder) -> list[ConditionFact]:
    """Conditions of the chart the draft names in ``reasonReference`` ("Condition/id") (D6)."""
    refs = {str(r.get("reference", "")).split("/")[-1] for r in draft.resource.get("reasonReference") or []
            if isinstance(r, dict)}
    return [c for c in chart.conditions if c.id in refs] if refs else []


def condition_evidence_of(c: ConditionFact, value_sets: Iterable[str]) -> Evidence:
    """A condition as evidence ("name (status, since date)"), named by its value set when it has
    no text."""
    return Evidence(f"{cut(c.display or ', '.join(sorted(set(value_sets) & c.concepts)))} "
                    f"({c.status_text}{', since ' + c.date.isoformat() if c.date else ''})",
                    c.by_text)


def condition_evidence(chart: Chart, *value_sets: str, active: bool | None = True) -> list[Evidence]:
    """Conditions in ``value_sets`` as evidence (:func:`condition_evidence_of`)."""
    return [condition_evidence_of(c, value_sets) for c in chart.conditions_in(*value_sets, active=active)]


def draft_reason_evidence(draft: DraftOrder, value_sets: Iterable[str],
                          text_pattern: re.Pattern[str] | None = None) -> list[Evidence]:
    """The draft's reason as evidence of ``value_sets`` (coded, D3 text, or ``text_pattern``)."""
    wanted = set(value_sets)
    out: list[Evidence] = []
    if draft_reason_sets(draft) & wanted:
        coded = bool(draft.reason_codings) and bool(
            {n for s, c in draft.reason_codings for n in default_value_sets().names_for(s, c)} & wanted)
        out.append(Evidence(f"reason on the order: {cut(', '.join(draft.reason_texts) or 'coded reason')}",
                            by_text=not coded))
    elif text_pattern is not None and any(text_pattern.search(t) for t in draft.reason_texts):
        out.append(Evidence(f"reason on the order: {cut(', '.join(draft.reason_texts))}", by_text=True))
    return out


def oncology_indication(chart: Chart, draft: DraftOrder | None = None) -> list[Evidence]:
    """D9 "Oncology bone indication": an active ``oncology-bone-indication`` condition (bone
    metastases, multiple myeloma, GCTB, hypercalcemia of malignancy), or such a reason on the
    draft order (D6: ``reasonCode`` — coded, or free text naming one of them — or a
    ``reasonReference`` to such a Condition)."""
    ev = condition_evidence(chart, "oncology-bone-indication", active=True)
    if draft is not None:
        ev += draft_reason_evidence(draft, ("oncology-bone-indication",), ONCOLOGY_REASON_TEXT)
        ev += [Evidence(f"reason on the order: {cut(c.display or 'oncology bone indication')}", c.by_text)
               for c in reason_conditions(chart, draft) if c.concepts & set(ONCOLOGY_SETS)]
    return ev
