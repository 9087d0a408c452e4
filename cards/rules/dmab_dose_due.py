"""DMAB-DOSE-DUE — next 6-monthly denosumab dose due and no order on file (patient-view).

Evidence: seed 002_b4619149f75727a9.txt §How long to take it and §Ending your treatment (taken
regularly, long term; effects wear off about six months after the last injection); seed
003_0a5546957735fee5.txt FAQ ("every 6 months for osteoporosis"); Prolia label §Dosage (60 mg
every 6 months).

Logic (RULES.md §3, D1, D4): 60 mg history, last dose ``L``;
``add_months(L, 6) − 14 days ≤ today ≤ add_months(L, 7)``; not when a planned follow-on order, a
later dose, a follow-on antiresorptive or a deliberate stop exists. Mutually exclusive with
DMAB-OVERDUE-TRANSITION (§7): that rule starts the day after ``add_months(L, 7)``, or takes over
this window when denosumab was deliberately stopped.
"""

from __future__ import annotations

from datetime import timedelta

from cds_service.chart import add_months

from ..builders import denosumab_order, override_reasons
from ..model import Card
from ..registry import MEDS, PATIENT_VIEW, RuleInput, rule
from ._dmab_dosing_common import (deliberate_stop, followon_after, lab_summary, last_denosumab_dose,
                                  planned_orders_after, sections)
from . import _text as tx
from ._text import BY_TEXT_NOTE

RULE_ID = "DMAB-DOSE-DUE"
TITLE = "Next 6-monthly dose due and no order on file"


@rule(RULE_ID, TITLE, hooks=PATIENT_VIEW, needs=MEDS)
def dmab_dose_due(inp: RuleInput) -> Card | None:
    chart, th, today = inp.chart, inp.thresholds, inp.today
    last = last_denosumab_dose(chart)
    if last is None or last.regimen != "60mg":
        return None  # regimen unknown or 120 mg: not this interval (D3)
    L = last.date
    due = add_months(L, th.dmab60_interval_months)
    window_start = due - timedelta(days=th.dmab60_due_lead_days)
    window_end = add_months(L, th.dmab60_overdue_months)
    if not window_start <= today <= window_end:
        return None
    if planned_orders_after(chart, L) or followon_after(chart, L) or deliberate_stop(chart, L):
        return None

    summary = tx.summary(f"Denosumab 60 mg due {due.isoformat()} (last dose {L.isoformat()}); "
                         "no follow-up order on file")
    details = [f"Last dose: {L.isoformat()} ({(today - L).days} days ago), {last.source_text()}"
               + (f"; denosumab {BY_TEXT_NOTE} ({tx.escape_record(last.name)})" if last.by_text else ""),
               f"Due window: {window_start.isoformat()} to {window_end.isoformat()}",
               f"Not found: an active denosumab or bisphosphonate order authored after {L.isoformat()}, "
               "a later denosumab dose, or a bisphosphonate after it"]
    calcium = chart.calcium(th.calcium_lookback_days, th.calcium_limits)
    egfr = chart.egfr(th.egfr_lookback_days_denosumab)
    if not chart.known("Observation"):
        details.append("Laboratory results could not be obtained: calcium and eGFR were not checked")
    else:
        details.append("Calcium: " + (f"{calcium.describe()} on {calcium.date.isoformat()}" if calcium
                                      else f"none in the last {th.calcium_lookback_days} days"))
        details.append("Latest " + (lab_summary(egfr, "eGFR") if egfr else
                                    f"eGFR: none in the last {th.egfr_lookback_days_denosumab} days"))
    detail = tx.layout(
        f"Denosumab 60 mg due {due.isoformat()}, last dose {L.isoformat()}; no follow-up order on file",
        "Denosumab works only while it is given every 6 months; a late dose lets bone turnover "
        "rebound, with vertebral fractures after stopping.",
        [*tx.partial_history_todo(chart), "Schedule the injection within the due window", "check calcium before the dose (and "
         "kidney function in advanced kidney disease)"],
        [tx.EVIDENCE["prolia-dosing"]], details, t=th)
    suggestion = denosumab_order(inp.orders, "60mg")
    suggestion.label = f"Order denosumab 60 mg SC (due {due.isoformat()})"
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator="info",
                **tx.source("LBL-PROLIA"), detail=detail, suggestions=[suggestion],
                selection_behavior="any",
                override_reasons=override_reasons("dose-scheduled-elsewhere", "transition-planned"))
