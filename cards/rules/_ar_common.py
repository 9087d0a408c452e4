"""Shared helpers of the AR-* rules (RULES.md §5: rules for any antiresorptive).

Which drafts an AR rule concerns, how an agent is named on a card, the composite facts of D9
(hypocalcemia-prone) and the "known severe CKD" test of AR-RENAL-FUNCTION-UNKNOWN. Pure: reads
the :class:`~cds_service.chart.Chart` of the :class:`~cards.registry.RuleInput`, never raw FHIR.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Iterable

from cds_service.chart import BISPHOSPHONATE, CALCIMIMETIC, DENOSUMAB, DraftOrder, Drug, Lab, below
from cds_service.chart.labs import judge_calcium

from ..builders import LINKS
from ..model import Link
from ..registry import RuleInput

#: Seed files of the evidence (shared/seeds/).
SEED_000 = "seed 000_01a4571caa474e4a.txt"
SEED_001 = "seed 001_282e696d69a84463.txt"
SEED_002 = "seed 002_b4619149f75727a9.txt"
SEED_003 = "seed 003_0a5546957735fee5.txt"

#: Most names on a card are cut to this length (RULES.md §1 "Summary").
NAME_MAX = 40

_AGENT_WORDS = {"zoledronic-acid": "zoledronic acid", "bisphosphonate": "a bisphosphonate"}


def cut(text: str, limit: int = NAME_MAX) -> str:
    """``text`` cut to ``limit`` characters (an ellipsis marks the cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


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


def draft_list(drafts: Iterable[DraftOrder]) -> str:
    """The drafts a card concerns, for the detail ("denosumab 60 mg; zoledronic acid 5 mg")."""
    return "; ".join(f"**{d.label}**" for d in drafts)


def antiresorptive_drafts(inp: RuleInput, *, bisphosphonates: str = "any") -> list[DraftOrder]:
    """Triggering denosumab drafts plus bisphosphonate drafts (``any``, ``iv`` or ``none``)."""
    out = list(inp.drafts_of(DENOSUMAB))
    if bisphosphonates == "any":
        out += inp.drafts_of(BISPHOSPHONATE)
    elif bisphosphonates == "iv":
        out += [d for d in inp.drafts_of(BISPHOSPHONATE) if d.drug.is_iv_bisphosphonate]
    return out


def is_initiation(inp: RuleInput, draft: DraftOrder) -> bool:
    """D4: no dose of the draft's drug class in the ``initiation_gap_days`` before today."""
    return inp.chart.is_initiation([draft.drug.drug_class], inp.thresholds.initiation_gap_days)


def fmt(value: Decimal | None) -> str:
    """A Decimal without trailing zeros and without exponent ("8.5", "60")."""
    if value is None:
        return "?"
    return f"{value.normalize():f}"


def lab_text(lab: Lab) -> str:
    """"<value unit> on <date>" of a result as sent (measured value and unit)."""
    return f"{lab.describe()} on {lab.date.isoformat()}"


# ---- D9 composite facts ------------------------------------------------------------------

def advanced_ckd_evidence(inp: RuleInput) -> list[str]:
    """D9 "Advanced CKD": each piece of evidence found, in words (empty when none)."""
    chart, t = inp.chart, inp.thresholds
    out: list[str] = []
    egfr = chart.egfr(t.egfr_lookback_days_denosumab)
    if egfr is not None and below(egfr, t.egfr_advanced_ckd):
        out.append(f"eGFR {egfr.describe()} on {egfr.date.isoformat()}")
    for c in chart.conditions_in("ckd-stage-4-5", "end-stage-renal-disease", active=True):
        out.append(f"{c.display or 'CKD stage 4/5'} (problem list)")
    out += severe_ckd_dialysis(inp)
    return out


def severe_ckd_dialysis(inp: RuleInput) -> list[str]:
    """Dialysis evidence of D9: an active dialysis Condition or a dialysis Procedure ≤ 90 days."""
    chart = inp.chart
    out = [f"{c.display or 'dialysis'} (problem list)" for c in chart.conditions_in("dialysis", active=True)]
    for p in chart.procedures_in("dialysis", within_days=inp.thresholds.dialysis_procedure_lookback_days):
        out.append(f"{p.display or 'dialysis'} on {p.date.isoformat() if p.date else 'unknown date'}")
    return out


def severe_ckd_record(inp: RuleInput) -> list[str]:
    """AR-RENAL-FUNCTION-UNKNOWN: an active CKD 4/5, ESRD or dialysis record (a known severe CKD
    is not "unknown"); dialysis also by a dialysis Procedure within the D9 window."""
    out = [f"{c.display or 'severe chronic kidney disease'}"
           for c in inp.chart.conditions_in("ckd-stage-4-5", "end-stage-renal-disease", active=True)]
    out += severe_ckd_dialysis(inp)
    return out


def low_calcium_within(inp: RuleInput, days: int) -> list[str]:
    """Every calcium result within ``days`` judged low by D5 (each judged on its own date)."""
    chart, t = inp.chart, inp.thresholds
    found: list[str] = []
    albumin = chart.labs("albumin")
    for concept in ("calcium-serum", "calcium-corrected", "calcium-ionized"):
        for lab in chart.labs(concept):
            if not lab.usable or not 0 <= (chart.today - lab.date).days <= days:
                continue
            results = {concept: [lab], "albumin": albumin}
            j = judge_calcium(results, lab.date, 0, t.calcium_total_low_mg_dl,
                              t.calcium_total_severe_mg_dl, t.calcium_ionized_low_mmol_l,
                              t.calcium_ionized_severe_mmol_l, t.albumin_reference_g_dl,
                              t.albumin_pairing_days)
            if j is not None and j.low:
                found.append(f"low {j.describe()} on {j.date.isoformat()}")
    return found


def hypocalcemia_prone(inp: RuleInput) -> list[str]:
    """D9 "Hypocalcemia-prone": advanced CKD, hypoparathyroidism, a low calcium in the last
    365 days, or an active hypocalcemia condition; the evidence in words (empty when none)."""
    chart = inp.chart
    out = [f"advanced CKD ({e})" for e in advanced_ckd_evidence(inp)]
    out += [f"{c.display or 'hypoparathyroidism'} (active problem)"
            for c in chart.conditions_in("hypoparathyroidism", active=True)]
    out += low_calcium_within(inp, 365)
    out += [f"{c.display or 'hypocalcemia'} (active problem)"
            for c in chart.conditions_in("hypocalcemia", active=True)]
    return out


#: Catalog values that are not D10 parameters (read from ``inp.thresholds`` when a deployment
#: defines them there): DMAB-CALCIMIMETIC counts a calcimimetic dispensed within 120 days.
CATALOG_DEFAULTS = {"medication_dispense_recent_days": 120}


def param(inp: RuleInput, name: str) -> int:
    """A threshold from ``inp.thresholds`` when configured there, else the catalog value."""
    return getattr(inp.thresholds, name, CATALOG_DEFAULTS[name])


def calcimimetic_active(inp: RuleInput) -> list[str]:
    """Calcimimetics on the list, as DMAB-CALCIMIMETIC reads them: an active order/statement, a
    dispense whose supply covers today (D4), or a completed dispense within 120 days."""
    chart = inp.chart
    recent = param(inp, "medication_dispense_recent_days")
    records = list(chart.active_records(CALCIMIMETIC))
    records += [r for r in chart.medications if r.drug.drug_class == CALCIMIMETIC
                and r.resource_type == "MedicationDispense" and r.status == "completed"
                and r.date is not None and 0 <= (chart.today - r.date).days <= recent]
    names: list[str] = []
    for r in records:
        if r.drug.name not in names:
            names.append(r.drug.name)
    return names


# ---- evidence links ----------------------------------------------------------------------

def label_link(drafts: Iterable[DraftOrder]) -> Link:
    """The label of the first drafted product: Prolia/Xgeva, Reclast/Zometa or Fosamax (§6.2)."""
    for d in drafts:
        if d.drug.drug_class == DENOSUMAB:
            return LINKS["xgeva-label"] if d.drug.regimen == "120mg" else LINKS["prolia-label"]
        if d.drug.agent == "zoledronic-acid":
            return LINKS["zometa-label"] if d.drug.regimen == "4mg" else LINKS["reclast-label"]
        if d.drug.is_iv_bisphosphonate:
            return LINKS["zometa-label"]
        return LINKS["fosamax-label"]
    return LINKS["prolia-label"]


def iso(d: date | None) -> str:
    return d.isoformat() if d else "date unknown"
