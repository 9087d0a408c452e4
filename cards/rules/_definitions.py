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
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Iterable

from cds_service.chart import (BISPHOSPHONATE, CALCIMIMETIC, SUPPLEMENT, Chart, ConditionFact, DoseEvent,
                               DraftOrder, Drug, Lab, MedicationRecord, ProcedureFact, add_months, below,
                               default_value_sets)
from cds_service.chart.clinical import GCTB_PROXY, HYPERCALCEMIA_UNSPECIFIED, demote_nonspecific
from cds_service.chart.labs import judge_calcium, within

from ..registry import RuleInput
from ..thresholds import Thresholds
from ._text import condition_text, cut, escape_record, fmt_rounded, iso, lab_shown

# ---- catalog parameters --------------------------------------------------------------------

#: Names older code reads through :func:`param` → the D10 parameter (a ``Thresholds`` field)
#: that now holds the value. Version 2 made every catalog value a D10 parameter.
PARAM_ALIASES: dict[str, str] = {
    "medication_dispense_recent_days": "supplement_dispense_lookback_days",
    "pregnancy_condition_weeks": "pregnancy_onset_max_weeks",
    "zol5_active_interval_months": "zol5_active_months",
    "zol4_active_interval_days": "zol4_active_days",
    "ibandronate_iv_active_interval_months": "ibandronate_iv_active_months",
}
#: Defaults for a ``Thresholds`` that lacks a field (a deployment's older settings object).
CATALOG_DEFAULTS: dict[str, Any] = {
    "supplement_dispense_lookback_days": 120,
    "calcium_high_mg_dl": Decimal("10.5"),
    "pregnancy_onset_max_weeks": 42,
    "calcium_lookback_days_oral_bp": 90,
    "zol5_active_months": 12,
    "zol4_active_days": 28,
    "ibandronate_iv_active_months": 3,
}


def catalog_value(t: Thresholds, name: str) -> Any:
    """The D10 parameter ``name`` (or its older alias) from ``t``, else the catalog default."""
    name = PARAM_ALIASES.get(name, name)
    return getattr(t, name, CATALOG_DEFAULTS.get(name))


def param(inp: RuleInput, name: str) -> Any:
    """A threshold from ``inp.thresholds`` (D10), by name or older alias."""
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


def iv_interval_end(t: Thresholds, drug: Drug, given: date) -> date:
    """D4 "Active therapy" of an IV bisphosphonate: the last day (inclusive) a dose given on
    ``given`` is within its dosing interval — zoledronic acid 5 mg ``zol5_active_months`` (12),
    ibandronate IV ``ibandronate_iv_active_months`` (3), pamidronate ``pamidronate_active_days``
    (28), zoledronic acid 4 mg ``zol4_active_days`` (28); a zoledronic acid of unknown strength
    takes the shortest interval (claim no overlap the data cannot show)."""
    if drug.agent == "zoledronic-acid" and drug.regimen == "5mg":
        return add_months(given, t.zol5_active_months)
    if drug.agent == "ibandronate":
        return add_months(given, t.ibandronate_iv_active_months)
    if drug.agent == "pamidronate":
        return given + timedelta(days=t.pamidronate_active_days)
    return given + timedelta(days=t.zol4_active_days)


def active_iv_bisphosphonate_doses(chart: Chart, t: Thresholds) -> list[tuple[DoseEvent, date]]:
    """The last IV dose of each IV bisphosphonate agent when it is still within its dosing
    interval today (D4 active therapy), with the interval's last day."""
    last_iv: dict[str, DoseEvent] = {}
    for e in chart.dose_events(BISPHOSPHONATE):
        if e.drug.is_iv_bisphosphonate:
            last_iv[e.drug.agent] = e  # oldest first: the last one wins
    out = []
    for e in last_iv.values():
        end = iv_interval_end(t, e.drug, e.date)
        if e.date <= chart.today <= end:
            out.append((e, end))
    return out


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
            out.append(f"eGFR {lab_shown(self.egfr)} on {self.egfr.date.isoformat()}")
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


# ---- D9 predisposed to severe hypocalcemia (A16) ------------------------------------------

@dataclass(frozen=True)
class Predisposition:
    """One D9 predisposition to severe hypocalcemia: its card name and its evidence in words."""

    kind: str          # advanced-ckd | hypoparathyroidism | parathyroidectomy | total-thyroidectomy |
    #                    celiac-disease | bariatric-surgery
    name: str          # the card's {reason} ("eGFR 24 on 2026-11-02", "Dialysis", "Celiac disease")
    evidence: tuple[str, ...]


def _procedure_words(p: ProcedureFact, fallback: str) -> str:
    return f"{escape_record(p.display) if p.display else fallback} performed {iso(p.date)}"


def _surgery(chart: Chart, value_set: str, words: str) -> tuple[str, ...]:
    """A surgery at any date (A16): a completed Procedure in ``value_set``, or a Condition
    (status or history entry, any clinical status) carrying its code or text."""
    return (tuple(_procedure_words(p, words) for p in chart.procedures_in(value_set))
            + tuple(f"{condition_text(c)} on the problem list" for c in chart.conditions_in(value_set)))


def predispositions(chart: Chart, t: Thresholds) -> list[Predisposition]:
    """D9 "Predisposed to severe hypocalcemia" (A16), in the card's order: advanced CKD (eGFR
    < 30, dialysis, CKD 4/5); an active hypoparathyroidism (E20 prefix, postprocedural E89.2,
    text); a parathyroidectomy or total/completion thyroidectomy at any date (a partial or
    unspecified thyroidectomy is not one); an active celiac disease; bariatric surgery at any
    date, any type (Procedure, or the Z98.84 status / text Condition, any clinical status)."""
    out: list[Predisposition] = []
    ckd = advanced_ckd(chart, t)
    if ckd.present:
        if ckd.egfr is not None:
            name = f"eGFR {ckd.egfr.comparator or ''}{fmt_rounded(ckd.egfr.value)} on {ckd.egfr.date.isoformat()}"
        elif ckd.dialysis:
            name = "Dialysis"
        else:
            name = "CKD stage 4/5"
        out.append(Predisposition("advanced-ckd", name, tuple(ckd.words())))
    hypo = chart.conditions_in("hypoparathyroidism", active=True)
    if hypo:
        out.append(Predisposition("hypoparathyroidism", "Hypoparathyroidism",
                                  tuple(f"{condition_text(c)} on the problem list" for c in hypo)))
    for kind, name in (("parathyroidectomy", "Parathyroidectomy"), ("total-thyroidectomy", "Total thyroidectomy")):
        ev = _surgery(chart, kind, name.lower())
        if ev:
            out.append(Predisposition(kind, name, ev))
    celiac = chart.conditions_in("celiac-disease", active=True)
    if celiac:
        out.append(Predisposition("celiac-disease", "Celiac disease",
                                  tuple(f"{condition_text(c)} on the problem list" for c in celiac)))
    bariatric = _surgery(chart, "bariatric-surgery", "bariatric surgery")
    if bariatric:
        out.append(Predisposition("bariatric-surgery", "Bariatric surgery", bariatric))
    return out


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
    """D9 "Hypocalcemia-prone": predisposed to severe hypocalcemia (:func:`predispositions`:
    advanced CKD, hypoparathyroidism, parathyroid/total thyroid surgery, celiac disease,
    bariatric surgery), a low calcium (D5) in the last 365 days, or an active hypocalcemia
    condition — the evidence in words (empty: none)."""
    out: list[str] = []
    for p in predispositions(chart, t):
        if p.kind == "advanced-ckd":
            out += [f"advanced CKD ({w})" for w in p.evidence]
        else:
            out += list(p.evidence)
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
    """Value sets the draft's ``reasonCode`` names (codes, the D3 GCTB/HCM text patterns and the
    codes.json patterns of ``malignancy``/``hypercalcemia-of-malignancy``); ``oncology-bone-
    indication`` added for any of its parts (D9). A4/E1: a coded E83.52 reason is
    ``hypercalcemia-unspecified`` (HCM only with a malignancy, :func:`hcm_conditions`), a D48.0
    reason is the GCTB proxy unless the reason text names GCTB."""
    vs = default_value_sets()
    names: set[str] = set()
    for system, code in draft.reason_codings:
        names |= demote_nonspecific(system, code, vs.names_for(system, code))
    names |= vs.text_matches(draft.reason_texts) & _TEXT_CLASSES
    names |= vs.pattern_matches(draft.reason_texts, ("malignancy", "hypercalcemia-of-malignancy",
                                                     "giant-cell-tumor-of-bone"))
    if names & (set(ONCOLOGY_SETS) | {GCTB_PROXY}):
        names.add("oncology-bone-indication")
    return names


def reason_conditions(chart: Chart, draft: DraftOrder) -> list[ConditionFact]:
    """Conditions of the chart the draft names in ``reasonReference`` ("Condition/id") (D6)."""
    refs = {str(r.get("reference", "")).split("/")[-1] for r in draft.resource.get("reasonReference") or []
            if isinstance(r, dict)}
    return [c for c in chart.conditions if c.id in refs] if refs else []


def condition_evidence_of(c: ConditionFact, value_sets: Iterable[str]) -> Evidence:
    """A condition as evidence for the detail ("name (status, since date)"; the name is record
    text, escaped, §1.2 rule 4), named by its concept in words when it has no text."""
    words = ", ".join(n.replace("-", " ") for n in sorted(set(value_sets) & c.concepts))
    return Evidence(f"{escape_record(c.display) if c.display else words} "
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
        out.append(Evidence(f"reason on the order: {escape_record(', '.join(draft.reason_texts) or 'coded reason')}",
                            by_text=not coded))
    elif text_pattern is not None and any(text_pattern.search(t) for t in draft.reason_texts):
        out.append(Evidence(f"reason on the order: {escape_record(', '.join(draft.reason_texts))}", by_text=True))
    return out


def oncology_indication(chart: Chart, draft: DraftOrder | None = None) -> list[Evidence]:
    """D9 "Oncology bone indication": an active ``oncology-bone-indication`` condition (bone
    metastases, multiple myeloma, D48.0 / GCTB, hypercalcemia of malignancy as D6 defines it),
    or such a reason on the draft order (D6: ``reasonCode`` — coded, or free text naming one of
    them — or a ``reasonReference`` to such a Condition). A4: an E83.52 "Hypercalcemia" counts
    only with an active malignancy or a malignancy reason on the order."""
    ev = condition_evidence(chart, "oncology-bone-indication", active=True)
    seen = {id(c) for c in chart.conditions_in("oncology-bone-indication", active=True)}
    ev += [condition_evidence_of(c, ("hypercalcemia-of-malignancy",)) for c in hcm_conditions(chart, draft)
           if id(c) not in seen]
    if draft is not None:
        ev += draft_reason_evidence(draft, ("oncology-bone-indication",), ONCOLOGY_REASON_TEXT)
        hcm_ok = malignancy_context(chart, draft)
        if (HYPERCALCEMIA_UNSPECIFIED in draft_reason_sets(draft) and hcm_ok
                and not draft_reason_sets(draft) & {"oncology-bone-indication"}):
            ev.append(Evidence(f"reason on the order: {cut(', '.join(draft.reason_texts) or 'hypercalcemia (coded)')}"
                               " with a malignancy on record"))
        ev += [Evidence(f"reason on the order: {cut(c.display or 'oncology bone indication')}", c.by_text)
               for c in reason_conditions(chart, draft)
               if c.concepts & (set(ONCOLOGY_SETS) | {GCTB_PROXY})
               or (HYPERCALCEMIA_UNSPECIFIED in c.concepts and hcm_ok)]
    return ev


# ---- D6 hypercalcemia of malignancy (A4) and GCTB diagnosis (E1) -----------------------------

#: Value sets whose reason on an order says "malignancy" (A4).
_MALIGNANCY_REASON_SETS = frozenset({"malignancy", "hypercalcemia-of-malignancy"})


def active_malignancy(chart: Chart) -> list[ConditionFact]:
    """A4: active Conditions in ``malignancy`` (ICD-10-CM chapter C prefix, listed SNOMED CT
    concepts, the set's text pattern); a suspected (provisional, differential, unconfirmed)
    diagnosis is not a malignancy (safe reading: E83.52 then stays non-specific)."""
    return [c for c in chart.conditions_in("malignancy", active=True) if not c.suspected]


def draft_malignancy_reason(chart: Chart, draft: DraftOrder | None) -> bool:
    """A4 "the order has a malignancy reason": a reasonCode in ``malignancy`` or (specifically)
    ``hypercalcemia-of-malignancy`` — a coded E83.52 reason alone is not specific — or reason
    text matching their patterns, or a reasonReference to a Condition in those sets."""
    if draft is None:
        return False
    if draft_reason_sets(draft) & _MALIGNANCY_REASON_SETS:
        return True
    return any(c.concepts & _MALIGNANCY_REASON_SETS for c in reason_conditions(chart, draft))


def malignancy_context(chart: Chart, draft: DraftOrder | None = None) -> bool:
    """A4: an E83.52 "Hypercalcemia" is hypercalcemia of malignancy here (an active malignancy,
    or a malignancy reason on ``draft``)."""
    return bool(active_malignancy(chart)) or draft_malignancy_reason(chart, draft)


def hcm_conditions(chart: Chart, draft: DraftOrder | None = None, *,
                   active: bool | None = True) -> list[ConditionFact]:
    """D6 hypercalcemia of malignancy (A4): Conditions matched by an HCM text pattern (or a
    specific HCM code), plus E83.52-only Conditions when :func:`malignancy_context` holds."""
    out = chart.conditions_in("hypercalcemia-of-malignancy", active=active)
    if malignancy_context(chart, draft):
        ids = {id(c) for c in out}
        out = out + [c for c in chart.conditions_in(HYPERCALCEMIA_UNSPECIFIED, active=active)
                     if id(c) not in ids]
    return out


def draft_reason_is_hcm(chart: Chart, draft: DraftOrder) -> bool:
    """The draft's own reason is HCM (D6, A4): reasonCode/text naming HCM specifically, a coded
    E83.52 with a malignancy (on record or among the reasons), or a reasonReference to an HCM
    Condition."""
    names = draft_reason_sets(draft)
    if "hypercalcemia-of-malignancy" in names:
        return True
    if HYPERCALCEMIA_UNSPECIFIED in names and malignancy_context(chart, draft):
        return True
    hcm_ids = {id(c) for c in hcm_conditions(chart, draft, active=None)}
    return any(id(c) in hcm_ids for c in reason_conditions(chart, draft))


def draft_has_reason(draft: DraftOrder) -> bool:
    """The draft carries a reasonCode (coded or text) or a reasonReference."""
    return bool(draft.reason_codings or [t for t in draft.reason_texts if t]
                or draft.resource.get("reasonReference"))


#: Reason texts naming bone metastases or myeloma (D6: the order's reason is indication evidence).
METASTASES_REASON_TEXT = re.compile(
    r"bone metasta|metasta\w* (to|of|in) (the )?bone|osseous metasta|skeletal metasta|myeloma",
    re.IGNORECASE)
#: Reason texts naming an oncology bone indication other than HCM (D6, D9).
_OTHER_ONCOLOGY_TEXT = re.compile(METASTASES_REASON_TEXT.pattern + r"|giant[- ]cell tumou?r|\bgctb\b",
                                  re.IGNORECASE)


def order_indication_is_hcm(chart: Chart, draft: DraftOrder) -> bool:
    """D9 "Indication of a zoledronic acid 4 mg order is hypercalcemia of malignancy" (A5, used
    by BP-RENAL-DOSE-ADJUST): the draft's reason is HCM (:func:`draft_reason_is_hcm`), or the
    draft has no reason and the patient's only active oncology bone indication is HCM (an active
    HCM per A4 and no other active ``oncology-bone-indication`` Condition: bone metastases,
    multiple myeloma, GCTB or its D48.0 proxy). Safe reading: with any other oncology indication
    the dose reduction is still asked for — also when the draft's reason names another oncology
    bone indication beside HCM ("hypercalcemia of malignancy; bone metastases")."""
    if draft_reason_sets(draft) & {"bone-metastases", "multiple-myeloma", "giant-cell-tumor-of-bone"} \
            or any(_OTHER_ONCOLOGY_TEXT.search(t) for t in draft.reason_texts if t):
        return False
    if draft_reason_is_hcm(chart, draft):
        return True
    if draft_has_reason(draft):
        return False
    hcm = hcm_conditions(chart, draft)
    if not hcm:
        return False
    hcm_ids = {id(c) for c in hcm}
    others = [c for c in chart.conditions_in("oncology-bone-indication", active=True)
              if id(c) not in hcm_ids or c.concepts & {"bone-metastases", "multiple-myeloma",
                                                        "giant-cell-tumor-of-bone", GCTB_PROXY}]
    return not others


def gctb_diagnosis(chart: Chart, draft: DraftOrder | None = None) -> list[Evidence]:
    """E1 "GCTB diagnosis" (DMAB-PEDIATRIC exemption, loading phase): an active Condition whose
    text or display names GCTB (a D48.0 code alone is a proxy), or the draft's reason text naming
    GCTB (D6: the order's reason is evidence of its indication; with it a D48.0 Condition is the
    named tumour)."""
    ev = condition_evidence(chart, "giant-cell-tumor-of-bone", active=True)
    if draft is not None:
        ev += draft_reason_evidence(draft, ("giant-cell-tumor-of-bone",))
    return ev
