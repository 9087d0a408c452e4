"""DMAB-DOSE-INDICATION-MISMATCH — dose, schedule and indication do not match (order-select,
order-sign).

Evidence: seed 001_282e696d69a84463.txt §Clinical Indications and Dosing (120 mg every 4 weeks for
bone metastases; 60 mg every 6 months for treatment-induced bone loss, "not for SRE prevention");
seed 003_0a5546957735fee5.txt §Usage; Prolia and Xgeva labels (indications and dosing).

Logic (RULES.md §3, D3, D9): for each triggering denosumab draft, any of
(a) 120 mg without an oncology bone indication → warning;
(b1) 60 mg with a schedule shorter than ``dmab60_schedule_min_months`` (5) → warning;
(b2) 120 mg with a schedule longer than ``dmab120_schedule_max_days`` (91 days = 13 weeks = 3
    months) outside giant cell tumour of bone → info (A15: every 4 weeks to every 12 weeks /
    3 months is accepted; an order without a repeat — single or loading dose — is not judged);
    safe reading of ``dmab120_schedule_min_days``: a repeating 120 mg schedule shorter than 28
    days outside a GCTB/HCM loading course → warning;
(c) 60 mg with active bone metastases or multiple myeloma and no osteoporosis / treatment-induced
    bone loss indication → info.
One card for the request listing every draft's reasons; indicator = the highest.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from cds_service.chart import DENOSUMAB, Chart, DraftOrder, Timing

from ..builders import LINKS, denosumab_order, override_reasons
from ..model import Card, Suggestion
from ..registry import ORDER_HOOKS, RuleInput, rule
from ._definitions import (Evidence, draft_reason_is_hcm, gctb_diagnosis, hcm_conditions,
                           oncology_indication)
from ._dmab_dosing_common import bone_loss_indication, metastases_or_myeloma, sections
from ._text import BY_TEXT_NOTE, cut

RULE_ID = "DMAB-DOSE-INDICATION-MISMATCH"
TITLE = "dose, schedule and indication do not match"
SOURCE = "Prolia and Xgeva labels (indications and dosing)"
EVIDENCE = ("seed 001 §Clinical Indications and Dosing (120 mg every 4 weeks for bone metastases; 60 mg "
            "every 6 months for treatment-induced bone loss; \"not for SRE prevention\"); seed 003 "
            "§Usage; Prolia and Xgeva labels.")
#: RULES.md DMAB-DOSE-INDICATION-MISMATCH: the schedule is period ÷ frequency in days with
#: d = 1, wk = 7, mo = 30, a = 365 (a period in months is compared in months: 30 days each).
_IN_DAYS = {"s": Decimal(1) / 86400, "min": Decimal(1) / 1440, "h": Decimal(1) / 24, "d": Decimal(1),
            "wk": Decimal(7), "mo": Decimal(30), "a": Decimal(365)}
_DAYS_PER_MONTH = Decimal(30)


def schedule_days(t: Timing) -> Decimal | None:
    """A ``timing.repeat`` period (already ÷ frequency) in days, or None for an unknown unit."""
    factor = _IN_DAYS.get(t.unit)
    return t.period * factor if factor is not None else None


def schedule_months(t: Timing) -> Decimal | None:
    """A ``timing.repeat`` period in months (exact for mo; other units in days ÷ 30)."""
    if t.unit == "mo":
        return t.period
    days = schedule_days(t)
    return days / _DAYS_PER_MONTH if days is not None else None


def single_dose(d: DraftOrder) -> bool:
    """A15: an order "without a repeat" — no timing.repeat period, or a repeat with count 1."""
    if d.timing is None:
        return True
    for dosage in d.resource.get("dosageInstruction") or []:
        repeat = ((dosage or {}).get("timing") or {}).get("repeat") if isinstance(dosage, dict) else None
        if isinstance(repeat, dict) and repeat.get("count") in (1, "1"):
            return True
    return False


def _gctb_or_hcm(chart: Chart, d: DraftOrder) -> bool:
    """A GCTB diagnosis (E1) or hypercalcemia of malignancy (A4): loading doses may be closer."""
    return bool(gctb_diagnosis(chart, d) or hcm_conditions(chart, d) or draft_reason_is_hcm(chart, d))


@dataclass
class Finding:
    draft: DraftOrder
    indicator: str
    summary: str
    text: str
    suggest: str            # regimen of the matching order
    kind: str               # catalog sub-rule: a, b or c
    by_text: bool = False


def _evidence_text(ev: list[Evidence]) -> str:
    return "; ".join(e.text for e in ev)


def findings_for(inp: RuleInput, d: DraftOrder) -> list[Finding]:
    chart = inp.chart
    out: list[Finding] = []
    regimen = d.drug.regimen
    if regimen not in ("60mg", "120mg"):
        return out  # D3: strength unknown → no dose/indication judgement
    name = cut(d.label)
    th = inp.thresholds
    if regimen == "120mg":
        onc = oncology_indication(chart, d)
        if not onc:
            out.append(Finding(d, "warning",
                               "Denosumab 120 mg ordered without a recorded oncology indication: "
                               "osteoporosis dose is 60 mg every 6 months",
                               f"**{name}**: 120 mg (oncology regimen) but no active bone metastases, "
                               "multiple myeloma, giant cell tumour of bone or hypercalcemia of "
                               "malignancy on the problem list or as the order's reason.", "60mg", "a"))
        days = schedule_days(d.timing) if d.timing and not single_dose(d) else None
        if days is not None and days > th.dmab120_schedule_max_days and not gctb_diagnosis(chart, d):
            period = d.timing.describe()  # type: ignore[union-attr]
            out.append(Finding(d, "info",
                               f"Denosumab 120 mg ordered every {period}: longer than every 3 months; "
                               "confirm the oncology schedule",
                               f"**{name}**: ordered every {period}, longer than every 3 months "
                               f"({th.dmab120_schedule_max_days} days) outside giant cell tumour of "
                               "bone; the oncology schedule is every 4 weeks, and spacing to every 12 "
                               "weeks is an accepted de-escalation.", "120mg", "b"))
        elif (days is not None and days < th.dmab120_schedule_min_days
              and not _gctb_or_hcm(chart, d)):
            period = d.timing.describe()  # type: ignore[union-attr]
            out.append(Finding(d, "warning",
                               f"Denosumab 120 mg ordered every {period}: more often than every 4 "
                               "weeks; check the schedule",
                               f"**{name}**: ordered every {period}, more often than every "
                               f"{th.dmab120_schedule_min_days} days, and no giant cell tumour of bone "
                               "or hypercalcemia of malignancy loading course on record; the oncology "
                               "schedule is every 4 weeks.", "120mg", "b"))
    else:
        months = schedule_months(d.timing) if d.timing and not single_dose(d) else None
        if months is not None and months < th.dmab60_schedule_min_months:
            period = d.timing.describe()  # type: ignore[union-attr]
            out.append(Finding(d, "warning",
                               f"Denosumab 60 mg ordered every {period}: expected 60 mg every 6 months",
                               f"**{name}**: ordered every {period} (shorter than "
                               f"{th.dmab60_schedule_min_months} months); the 60 mg schedule is every 6 "
                               "months.", "60mg", "b"))
        mets = metastases_or_myeloma(chart, d)
        if mets and not bone_loss_indication(chart, d):
            out.append(Finding(d, "info",
                               "Bone metastases on record: skeletal-event prevention dose is denosumab "
                               "120 mg every 4 weeks, not 60 mg",
                               f"**{name}**: 60 mg with {_evidence_text(mets)} and no osteoporosis or "
                               "treatment-induced bone loss indication; 60 mg every 6 months is not "
                               "the dose for preventing skeletal-related events.", "120mg", "c",
                               by_text=any(e.by_text for e in mets)))
    return out


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs={"Condition"})
def dmab_dose_indication_mismatch(inp: RuleInput) -> Card | None:
    findings: list[Finding] = []
    for d in inp.drafts_of(DENOSUMAB):
        findings += findings_for(inp, d)
    if not findings:
        return None
    rank = {"critical": 0, "warning": 1, "info": 2}
    top = min(findings, key=lambda f: rank[f.indicator])
    lines = [f"{f.text} ({f.indicator})" for f in findings]
    notes = []
    if any(f.draft.drug.by_text for f in findings):
        notes.append(f"Denosumab was {BY_TEXT_NOTE} on at least one order.")
    if any(f.by_text for f in findings):
        notes.append(f"An indication was {BY_TEXT_NOTE}.")
    detail = sections(
        ("Finding:", lines),
        ("Why it matters.", "The two denosumab products have different doses, schedules and "
                            "indications: 60 mg every 6 months for osteoporosis and treatment-induced "
                            "bone loss; 120 mg every 4 weeks to prevent skeletal-related events from "
                            "bone metastases and myeloma (giant cell tumour of bone and hypercalcemia "
                            "of malignancy: 120 mg with loading doses). The wrong one under-treats or "
                            "over-exposes (hypocalcemia, osteonecrosis of the jaw)."),
        ("What to do.", "Check the indication and change the order to the matching product and "
                        "schedule, or record the indication if it is not coded."),
        ("Data checked.", "Active conditions on the problem list (bone metastases, multiple myeloma, "
                          "giant cell tumour of bone, hypercalcemia of malignancy, osteoporosis) and the "
                          "orders' reasons; the orders' dose and timing.repeat."),
        ("Notes:", notes),
        ("Evidence.", EVIDENCE),
    )
    suggestions: list[Suggestion] = []
    for regimen in dict.fromkeys(f.suggest for f in findings):
        s = denosumab_order(inp.orders, regimen)
        s.label = ("Order denosumab 60 mg SC every 6 months" if regimen == "60mg"
                   else "Order denosumab 120 mg SC every 4 weeks")
        suggestions.append(s)
    if top.kind == "c":
        reasons = ("cancer-treatment-bone-loss", "intended-regimen", "indication-not-coded")
    elif any(f.kind == "a" for f in findings):
        reasons = ("indication-not-coded", "intended-regimen", "cancer-treatment-bone-loss")
    else:
        reasons = ("intended-regimen", "indication-not-coded", "cancer-treatment-bone-loss")
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=top.summary, indicator=top.indicator,
                source_label=SOURCE, detail=detail, suggestions=suggestions,
                selection_behavior="at-most-one", override_reasons=override_reasons(*reasons),
                links=[LINKS["xgeva-label"] if top.suggest == "120mg" else LINKS["prolia-label"]])
