"""Shared helpers of the denosumab order rules (RULES.md §3, with D3, D4, D5, D8, D9).

Which drafts a DMAB rule concerns, how they are named on a card, the composite facts of D9
(advanced CKD, hypocalcemia-prone), reproductive potential (D8), "active" medications of a class
for the supplement and calcimimetic rules, and the small formatting helpers every card uses.
Pure: reads the :class:`~cds_service.chart.Chart` of the :class:`~cards.registry.RuleInput`,
never raw FHIR.

Parameters that the catalog names but D10 does not list (the 120-day dispense window of the
supplement and calcimimetic rules, the 10.5 mg/dL calcium above which supplements are not
suggested, the 42 weeks of a pregnancy condition) are read from ``inp.thresholds`` when a
deployment defines them there, else from the catalog's value below (:func:`param`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Iterable

from cds_service.chart import (CALCIMIMETIC, DENOSUMAB, SUPPLEMENT, ConditionFact, DraftOrder,
                               Lab, MedicationRecord, ProcedureFact, below, default_value_sets)
from cds_service.chart.labs import judge_calcium

from ..builders import LINKS
from ..model import Link
from ..registry import RuleInput

#: Re-exported for the rule modules (``dm.DENOSUMAB``, ``dm.below`` …).
REEXPORTS = (CALCIMIMETIC, DENOSUMAB, SUPPLEMENT, below)

#: Seed files of the evidence (shared/seeds/).
SEED_001 = "seed 001_282e696d69a84463.txt"
SEED_002 = "seed 002_b4619149f75727a9.txt"
SEED_003 = "seed 003_0a5546957735fee5.txt"

#: Names of drugs and conditions on a summary are cut to this length (RULES.md §1 "Summary").
NAME_MAX = 40
#: Longest summary the card model accepts (``Card``: fewer than 140 characters).
SUMMARY_MAX = 139

#: Catalog values that are not (yet) D10 parameters: name → default (RULES.md §3).
CATALOG_DEFAULTS: dict[str, Any] = {
    # DMAB-NO-CA-VITD-SUPPLEMENT / DMAB-CALCIMIMETIC: "dispense within 120 days"
    "medication_dispense_recent_days": 120,
    # DMAB-NO-CA-VITD-SUPPLEMENT: "do not fire if the latest calcium is > 10.5 mg/dL"
    "calcium_high_mg_dl": Decimal("10.5"),
    # DMAB-PREGNANCY (c): "an active pregnancy Condition with onset in the last 42 weeks"
    "pregnancy_condition_weeks": 42,
}


def param(inp: RuleInput, name: str) -> Any:
    """A threshold from ``inp.thresholds`` when configured there, else the catalog value."""
    return getattr(inp.thresholds, name, CATALOG_DEFAULTS[name])


# ---- drafts and names ----------------------------------------------------------------------

def dmab_drafts(inp: RuleInput) -> list[DraftOrder]:
    """Triggering denosumab drafts ("DMAB draft", RULES.md §3): selected ones on order-select,
    all on order-sign, none on patient-view."""
    return list(inp.drafts_of(DENOSUMAB))


def is_initiation(inp: RuleInput) -> bool:
    """D4: no denosumab dose in the ``initiation_gap_days`` before today (a restart after a
    year counts as initiation)."""
    return inp.chart.is_initiation([DENOSUMAB], inp.thresholds.initiation_gap_days)


def cut(text: str, limit: int = NAME_MAX) -> str:
    """``text`` cut to ``limit`` characters, whitespace collapsed (an ellipsis marks the cut)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def fit(summary: str, *fallbacks: str) -> str:
    """The first of ``summary`` and ``fallbacks`` that fits a card summary (< 140 characters)."""
    for s in (summary, *fallbacks):
        if len(s) <= SUMMARY_MAX:
            return s
    return cut(fallbacks[-1] if fallbacks else summary, SUMMARY_MAX)


def draft_label(d: DraftOrder) -> str:
    """A draft as a clinician reads it: product name, dose and regimen when known."""
    regimen = {"60mg": "60 mg", "120mg": "120 mg"}.get(d.drug.regimen or "")
    label = d.label
    if regimen and regimen.split()[0] not in label:
        label += f" ({regimen} regimen)"
    if d.drug.by_text:
        label += " — identified by name, not code"
    return label


def draft_list(drafts: Iterable[DraftOrder]) -> str:
    """The drafts a card concerns, for the detail (every one named, §1 / §7)."""
    return "; ".join(f"**{draft_label(d)}**" for d in drafts)


def fmt(value: Decimal | None) -> str:
    """A Decimal as shown on a card ("8.5", "60", "19.9")."""
    if value is None:
        return "?"
    return f"{value:f}"


def iso(d: date | None) -> str:
    return d.isoformat() if d else "date unknown"


def lab_text(lab: Lab) -> str:
    """"<measured value and unit> on <date>" of a result as sent."""
    return f"{lab.describe()} on {lab.date.isoformat()}"


def condition_text(c: ConditionFact) -> str:
    """A condition for the detail: name, status, dates, and "identified by name" when text-only."""
    parts = [c.display or "condition", c.status_text]
    if c.onset:
        parts.append(f"onset {c.onset.isoformat()}")
    if c.recorded:
        parts.append(f"recorded {c.recorded.isoformat()}")
    text = f"{parts[0]} ({', '.join(parts[1:])})"
    if c.by_text:
        text += " — identified by name, not code"
    return text


_GENERIC_NAMES = {"calcimimetic": "a calcimimetic", "calcium": "a calcium supplement",
                  "vitamin-d": "a vitamin D product", "denosumab": "denosumab"}


def drug_name(name: str, agent: str) -> str:
    """A drug's name for a sentence; a record without any text is named by its class."""
    return _GENERIC_NAMES.get(name, name) if name == agent else name


def record_text(r: MedicationRecord) -> str:
    """A medication record for the detail: name, resource type and status, date."""
    words = {"MedicationRequest": "order", "MedicationStatement": "statement",
             "MedicationDispense": "dispense", "MedicationAdministration": "administration"}
    text = f"{drug_name(r.drug.name, r.drug.agent)} ({words.get(r.resource_type, r.resource_type)} {r.status}"
    text += f", {r.date.isoformat()})" if r.date else ")"
    if r.drug.by_text:
        text += " — identified by name, not code"
    return text


def label_link(drafts: Iterable[DraftOrder]) -> Link:
    """Prolia label for 60 mg / unknown regimen, Xgeva label when every draft is 120 mg (§6.2)."""
    drafts = list(drafts)
    if drafts and all(d.drug.regimen == "120mg" for d in drafts):
        return LINKS["xgeva-label"]
    return LINKS["prolia-label"]


# ---- D9 composite facts ------------------------------------------------------------------

@dataclass
class AdvancedCkd:
    """D9 "Advanced CKD": the evidence found, each kind kept apart so a card can name it."""

    egfr: Lab | None = None                       # latest eGFR in window, when below the limit
    latest_egfr: Lab | None = None                # latest eGFR in window, whatever its value
    ckd_conditions: list[ConditionFact] = field(default_factory=list)
    dialysis_conditions: list[ConditionFact] = field(default_factory=list)
    dialysis_procedures: list[ProcedureFact] = field(default_factory=list)

    @property
    def present(self) -> bool:
        return bool(self.egfr or self.ckd_conditions or self.dialysis_conditions
                    or self.dialysis_procedures)

    @property
    def dialysis(self) -> bool:
        return bool(self.dialysis_conditions or self.dialysis_procedures)

    @property
    def by_diagnosis(self) -> bool:
        return bool(self.ckd_conditions or self.dialysis)

    def words(self) -> list[str]:
        """Each piece of evidence in words, for details and other cards."""
        out: list[str] = []
        if self.egfr is not None:
            out.append(f"eGFR {self.egfr.describe()} on {self.egfr.date.isoformat()}")
        out += [f"{condition_text(c)} on the problem list" for c in self.dialysis_conditions]
        out += [f"{p.display or 'dialysis'} performed {iso(p.date)}" for p in self.dialysis_procedures]
        out += [f"{condition_text(c)} on the problem list" for c in self.ckd_conditions
                if c not in self.dialysis_conditions]
        return out


def advanced_ckd(inp: RuleInput) -> AdvancedCkd:
    """D9: latest eGFR within ``egfr_lookback_days_denosumab`` strictly below
    ``egfr_advanced_ckd`` (a comparator is honoured: "<15" is below, ">60" never); an active
    CKD stage 4/5 (or ESRD) condition; dialysis (an active dialysis condition or a dialysis
    procedure within ``dialysis_procedure_lookback_days``)."""
    chart, t = inp.chart, inp.thresholds
    found = AdvancedCkd()
    latest = chart.egfr(t.egfr_lookback_days_denosumab)
    found.latest_egfr = latest
    if latest is not None and below(latest, t.egfr_advanced_ckd):
        found.egfr = latest
    found.dialysis_conditions = chart.conditions_in("dialysis", active=True)
    found.dialysis_procedures = chart.procedures_in("dialysis",
                                                    within_days=t.dialysis_procedure_lookback_days)
    found.ckd_conditions = [c for c in chart.conditions_in("ckd-stage-4-5", "end-stage-renal-disease",
                                                           active=True)]
    return found


def low_calcium_results(inp: RuleInput, days: int) -> list[str]:
    """Every calcium result within ``days`` judged low by D5 on its own date (albumin-corrected
    with an albumin of the same week when below 4.0 g/dL), in words."""
    chart, t = inp.chart, inp.thresholds
    out: list[str] = []
    albumin = chart.labs("albumin")
    for concept in ("calcium-serum", "calcium-corrected", "calcium-ionized"):
        for lab in chart.labs(concept):
            if not lab.usable or not 0 <= (chart.today - lab.date).days <= days:
                continue
            j = judge_calcium({concept: [lab], "albumin": albumin}, lab.date, 0,
                              t.calcium_total_low_mg_dl, t.calcium_total_severe_mg_dl,
                              t.calcium_ionized_low_mmol_l, t.calcium_ionized_severe_mmol_l,
                              t.albumin_reference_g_dl, t.albumin_pairing_days)
            if j is not None and j.low:
                out.append(f"low {j.describe()} on {j.date.isoformat()}")
    return out


def hypocalcemia_prone(inp: RuleInput) -> list[str]:
    """D9 "Hypocalcemia-prone": advanced CKD, hypoparathyroidism, a low calcium (D5) in the
    last 365 days, or an active hypocalcemia condition — the evidence in words (empty: none)."""
    chart = inp.chart
    out = [f"advanced CKD ({w})" for w in advanced_ckd(inp).words()]
    out += [condition_text(c) for c in chart.conditions_in("hypoparathyroidism", active=True)]
    out += low_calcium_results(inp, 365)
    out += [condition_text(c) for c in chart.conditions_in("hypocalcemia", active=True)]
    return out


# ---- medications that are "on the list" ----------------------------------------------------

def current_records(inp: RuleInput, drug_class: str, *, dispense_days: int,
                    administration_days: int | None = None) -> list[MedicationRecord]:
    """Records that put a drug of ``drug_class`` on the medication list today: an ``active``
    MedicationRequest or MedicationStatement, a completed MedicationDispense handed over within
    ``dispense_days``, and (when ``administration_days`` is given) an administration within
    that many days. Statuses were already filtered by the chart (D2)."""
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


def session_drafts(inp: RuleInput, drug_class: str) -> list[DraftOrder]:
    """Drafts of ``drug_class`` anywhere in this ordering session (``context.draftOrders``)."""
    return [d for d in inp.chart.drafts if d.drug.drug_class == drug_class]


# ---- reproductive potential (D8) -----------------------------------------------------------

@dataclass(frozen=True)
class Reproductive:
    """D8 reproductive potential, with the reason when it does not apply."""

    potential: bool
    reason: str


def reproductive_potential(inp: RuleInput) -> Reproductive:
    """Female (or unknown sex with a pregnancy record), age ``reproductive_age_min``–``_max``
    inclusive, no ``non-reproductive-status`` record (hysterectomy, oophorectomy, menopause).
    Unknown age: not assumed either way → no potential established (D1)."""
    chart, t = inp.chart, inp.thresholds
    p = chart.patient
    pregnancy_record = bool(chart.conditions_in("pregnancy") or chart.labs("pregnancy-test")
                            or chart.labs("pregnancy-status"))
    if p.sex == "male":
        return Reproductive(False, "male")
    if p.sex is None and not pregnancy_record:
        return Reproductive(False, "sex not recorded as female")
    if p.age is None:
        return Reproductive(False, "age unknown (no birth date)")
    if p.age < t.reproductive_age_min or p.age > t.reproductive_age_max:
        return Reproductive(False, f"age {p.age}")
    records = [condition_text(c) for c in chart.conditions_in("non-reproductive-status")]
    records += [f"{x.display or 'procedure'} ({iso(x.date)})"
                for x in chart.procedures_in("non-reproductive-status")]
    if records:
        return Reproductive(False, "non-reproductive status on record: " + "; ".join(records))
    return Reproductive(True, f"{'female' if p.sex == 'female' else 'sex unknown, pregnancy record'}, "
                              f"age {p.age}, no hysterectomy/oophorectomy/menopause record")


# ---- pregnancy evidence (DMAB-PREGNANCY, DMAB-PREGNANCY-STATUS-UNVERIFIED) ----------------

_POS_CODES = frozenset({"POS"})
_NEG_CODES = frozenset({"NEG"})


@dataclass(frozen=True)
class PregnancyFinding:
    """One piece of evidence of a possible pregnancy: what, when, and the words for a card."""

    kind: str          # "test", "status" or "condition"
    date: date | None
    short: str         # for the summary ("positive hCG test", "hCG 120 mIU/mL")
    text: str          # for the detail


def _in_set(codings: Iterable[tuple[str, str]], name: str) -> bool:
    vs = default_value_sets()
    return any(name in vs.names_for(s, c) for s, c in codings)


def test_result(inp: RuleInput, lab: Lab) -> str | None:
    """``positive``, ``negative`` or None (unreadable) for one pregnancy test (DMAB-PREGNANCY (a)):
    valueCodeableConcept in ``result-positive``/``result-negative``, interpretation POS/NEG, or a
    quantitative hCG (mIU/mL = [IU]/L) above ``hcg_positive_miu_ml`` (positive) or at/below it."""
    if _in_set(lab.codings, "result-positive"):
        return "positive"
    if _in_set(lab.codings, "result-negative"):
        return "negative"
    interp = {c for _, c in lab.interpretation}
    if interp & _POS_CODES or _in_set(lab.interpretation, "result-positive"):
        return "positive"
    if interp & _NEG_CODES or _in_set(lab.interpretation, "result-negative"):
        return "negative"
    if lab.value is not None:
        limit = inp.thresholds.hcg_positive_miu_ml
        if lab.comparator in (">", ">="):
            return "positive" if lab.value >= limit else None   # a lower bound below 25 says nothing
        return "positive" if lab.value > limit else "negative"
    return None


def status_result(lab: Lab) -> str | None:
    """``pregnant``, ``not-pregnant`` or None for a pregnancy-status observation (82810-3)."""
    if _in_set(lab.codings, "pregnancy-status-pregnant"):
        return "pregnant"
    if _in_set(lab.codings, "pregnancy-status-not-pregnant"):
        return "not-pregnant"
    return None


def _hcg_words(lab: Lab) -> str:
    if lab.value is not None and not lab.codings:
        return f"hCG {lab.comparator or ''}{fmt(lab.value.normalize())} mIU/mL"
    return "positive pregnancy test"


def pregnancy_evidence(inp: RuleInput) -> list[PregnancyFinding]:
    """DMAB-PREGNANCY (a)–(c): (a) the latest pregnancy test with a readable result within
    ``pregnancy_test_lookback_days`` is positive (a later negative cancels; on the same date a
    positive wins); (b) the latest pregnancy status in that window is "pregnant"; (c) an active
    pregnancy condition with onset in the last 42 weeks, or without onset. Newest first."""
    chart, t = inp.chart, inp.thresholds
    window = t.pregnancy_test_lookback_days
    found: list[PregnancyFinding] = []

    tests = [(lab, test_result(inp, lab)) for lab in chart.labs("pregnancy-test")
             if 0 <= (chart.today - lab.date).days <= window]
    tests = [(lab, r) for lab, r in tests if r is not None]
    if tests:
        newest = max(lab.date for lab, _ in tests)
        same_day = [(lab, r) for lab, r in tests if lab.date == newest]
        positive = next((lab for lab, r in same_day if r == "positive"), None)
        if positive is not None:
            shown = positive.describe() if positive.measured is not None else "coded result"
            found.append(PregnancyFinding("test", positive.date, _hcg_words(positive),
                                          f"pregnancy test {_hcg_words(positive)} ({shown}) on "
                                          f"{positive.date.isoformat()}, the latest readable test in "
                                          f"the last {window} days"))

    statuses = [(lab, status_result(lab)) for lab in chart.labs("pregnancy-status")
                if 0 <= (chart.today - lab.date).days <= window]
    statuses = [(lab, r) for lab, r in statuses if r is not None]
    if statuses:
        newest = max(lab.date for lab, _ in statuses)
        same_day = [(lab, r) for lab, r in statuses if lab.date == newest]
        pregnant = next((lab for lab, r in same_day if r == "pregnant"), None)
        if pregnant is not None:
            found.append(PregnancyFinding("status", pregnant.date, "pregnancy status: pregnant",
                                          f"pregnancy status recorded as pregnant on "
                                          f"{pregnant.date.isoformat()}"))

    weeks = param(inp, "pregnancy_condition_weeks")
    for c in chart.conditions_in("pregnancy", active=True):
        if c.onset is not None and not 0 <= (chart.today - c.onset).days <= weeks * 7:
            continue
        when = c.onset or c.recorded
        found.append(PregnancyFinding("condition", when, cut(c.display or "pregnancy", 30),
                                      f"active problem {condition_text(c)}"
                                      + ("" if c.onset else " — no onset date recorded")))
    found.sort(key=lambda f: f.date or date.min, reverse=True)
    return found
