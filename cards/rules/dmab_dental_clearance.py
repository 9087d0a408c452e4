"""DMAB-DENTAL-CLEARANCE — no dental evaluation before starting denosumab.

RULES.md §3 (with D2, D4 "Initiation", D7, §7 exclusive pairs, §8 item 8).
Evidence: seed 001_282e696d69a84463.txt §Mandatory Pre-Treatment Requirements › Dental Evaluation
("complete all invasive dental procedures before initiating denosumab"; "wait 2–4 weeks after
dental work"; "preventive dental measures are mandatory") and §Critical Clinical Pitfalls #2;
seed 003_0a5546957735fee5.txt §Side Effects (ONJ); AAOMS position paper on MRONJ, 2022 update;
Prolia and Xgeva labels (ONJ: oral examination and preventive dentistry before treatment).

Fires on an order hook when a denosumab draft is an **initiation** (no denosumab dose in the
``initiation_gap_days`` before today, D4) and no completed dental-evaluation Procedure is dated
within ``dental_lookback_days``. A dental referral (ServiceRequest or the referral code) is not an
evaluation; not-done / entered-in-error procedures never reach the chart (D2); an extraction is
not an evaluation either (§7). Continuation doses never fire (§8 item 8).
"""

from __future__ import annotations

from datetime import timedelta

from ..builders import LINKS, dental_referral, override_reasons
from ..model import Card
from ..registry import MEDS, ORDER_HOOKS, RuleInput, rule
from . import _dmab_common as dm
from . import _definitions as defs
from . import _text as tx

RULE_ID = "DMAB-DENTAL-CLEARANCE"
TITLE = "No dental evaluation before starting denosumab"
SUMMARY = ("No dental evaluation on record in the last 12 months before starting denosumab: "
           "arrange dental clearance")


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs=MEDS | {"Procedure"})
def dmab_dental_clearance(inp: RuleInput) -> Card | None:
    drafts = dm.dmab_drafts(inp)
    if not drafts or not defs.is_initiation(inp, dm.DENOSUMAB):
        return None
    window = inp.thresholds.dental_lookback_days
    chart = inp.chart
    if chart.procedures_in("dental-evaluation", within_days=window):
        return None

    start = inp.today - timedelta(days=window)
    older = chart.procedures_in("dental-evaluation")
    older = [p for p in older if p.date is None or p.date < start]
    referrals = chart.procedures_in("dental-referral")
    invasive = chart.procedures_in("invasive-dental-procedure", within_days=window)
    last_dose = chart.last_dose(dm.DENOSUMAB)
    oncology = any(d.drug.regimen == "120mg" for d in drafts)
    summary = SUMMARY if window == 365 else tx.fit(
        f"No dental evaluation on record in the last {window} days before starting denosumab: "
        "arrange dental clearance", "No recent dental evaluation before starting denosumab: "
        "arrange dental clearance")

    details = [f"Ordered: {tx.draft_list(drafts)}, a start of denosumab "
               + (f"(last denosumab dose {last_dose.date.isoformat()}, more than "
                  f"{inp.thresholds.initiation_gap_days} days ago)" if last_dose else
                  f"(no denosumab dose on record in the last {inp.thresholds.initiation_gap_days} days)"),
               f"Looked for: a completed dental evaluation between {start.isoformat()} and "
               f"{inp.today.isoformat()} ({window} days)"]
    if older:
        p = older[0]
        details.append(f"Last dental evaluation found: {tx.escape_record(p.display or 'dental evaluation')} "
                       f"on {tx.iso(p.date)} (outside the window)")
    else:
        details.append("Last dental evaluation found: none on record (completed procedures only; "
                       "not-done or entered-in-error records do not count)")
    if referrals:
        details.append(f"A dental referral is on record ({tx.escape_record(referrals[0].display or 'referral')}, "
                       f"{tx.iso(referrals[0].date)}): a referral is not evidence that the "
                       "evaluation took place")
    if invasive:
        details.append("Invasive dental work in the same period (not an evaluation): "
                       + "; ".join(f"{tx.escape_record(p.display or 'dental procedure')} on {tx.iso(p.date)}"
                                   for p in invasive))
    last_eval = (f"Last dental evaluation {tx.iso(older[0].date)}, more than "
                 f"{tx.window_words(window)} ago" if older else
                 f"No dental evaluation on record in the last {tx.window_words(window)}")
    detail = tx.layout(
        last_eval,
        "Osteonecrosis of the jaw is a serious complication of denosumab: invasive dental work "
        "should be finished, with 2–4 weeks of healing, before the first dose"
        + (" (this order is the oncology regimen, where the risk is highest)." if oncology else "."),
        ["Dental examination before the first dose", "complete invasive dental work first and "
         "allow 2–4 weeks of healing", "good oral hygiene and dental check-ups every 6–12 months "
         "during therapy"],
        [tx.EVIDENCE["prolia-xgeva-onj"], tx.EVIDENCE["aaoms"]], details, t=inp.thresholds)
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator="warning",
                **tx.source("LBL-XGEVA" if oncology and all(d.drug.regimen == "120mg" for d in drafts)
                            else "LBL-PROLIA"),
                detail=detail, suggestions=[dental_referral(inp.orders)],
                selection_behavior="any",
                override_reasons=override_reasons("dental-eval-done-elsewhere",
                                                  "urgent-treatment-benefit", "patient-declined",
                                                  "edentulous"),
                links=[LINKS["aaoms-2022"]])
