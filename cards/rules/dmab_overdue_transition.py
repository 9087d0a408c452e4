"""DMAB-OVERDUE-TRANSITION — denosumab overdue or stopped without a follow-on plan (patient-view).

Evidence: seed 001_282e696d69a84463.txt §Rebound Bone Loss and Multiple Vertebral Fractures and
§Critical Clinical Pitfalls #1 ("never discontinue denosumab abruptly without bisphosphonate
transition"; zoledronic acid 5 mg IV 6 months after the last injection); seed
002_b4619149f75727a9.txt §Ending your treatment (follow-on treatment for at least a year); seed
003_0a5546957735fee5.txt FAQ (fractures after stopping); Prolia label (multiple vertebral fractures
after discontinuation; a missed dose is given as soon as possible, then every 6 months from that
date); ECTS position (Tsourdi et al., JCEM 2021;106:264: start the alternative antiresorptive 6
months after the final injection); Endocrine Society osteoporosis guideline 2019/2020 update.

Logic (RULES.md §3, D1, D4): 60 mg history, last dose ``L``; fire when
``add_months(L, 7) < today ≤ add_months(L, 24)``, or after a deliberate stop when
``add_months(L, 6) − 14 days ≤ today ≤ add_months(L, 24)``; unless a follow-on antiresorptive
is dated after ``L``, or a planned follow-on order still silences it (``today ≤ P + 30 days``,
A2). Calendar months (``add_months``), never days. Variants, first that applies: low calcium
(A6: lab work-up instead of drugs), planned transition not given (A2), deliberate stop, overdue.
"""

from __future__ import annotations

from datetime import date, timedelta

from cds_service.chart import Chart, add_months, below, months_since

from decimal import Decimal

from cds_service.chart import BISPHOSPHONATE, DENOSUMAB, CalciumJudgement

from ..builders import (LINKS, OrderContext, denosumab_order, lab_request, lab_suggestion,
                        override_reasons, zoledronic_acid_order)
from ..model import Action, Card, Suggestion
from ..registry import MEDS, PATIENT_VIEW, RuleInput, rule
from ..thresholds import Thresholds
from ._dmab_dosing_common import (Dose, PlannedOrder, deliberate_stop, followon_after, lab_summary,
                                  last_denosumab_dose, planned_followons, sections,
                                  severe_kidney_records)
from . import _text as tx
from ._text import BY_TEXT_NOTE

#: A deliberate stop's record type in words (never a FHIR id, §1.2 rule 1).
_STOP_WORDS = {"MedicationRequest": "order", "MedicationStatement": "medication statement",
               "MedicationDispense": "dispense", "MedicationAdministration": "administration"}

RULE_ID = "DMAB-OVERDUE-TRANSITION"
TITLE = "Denosumab overdue or stopped without a follow-on plan"
#: §6.2 source of every variant (A31) and the card's public evidence (A29).
SOURCE_KEY = "LBL-PROLIA"
EVIDENCE = ("Prolia label (vertebral fractures after stopping; missed dose); ECTS position "
            "statement (Tsourdi et al., J Clin Endocrinol Metab 2021); Endocrine Society "
            "guideline 2019/2020")


def transition_date(last: date, today: date, th: Thresholds) -> date:
    """``T = add_months(L, 6)``; today ("as soon as possible") when ``T`` is in the past."""
    due = add_months(last, th.dmab60_interval_months)
    return due if due >= today else today


def zoledronic_acid_block(chart: Chart, th: Thresholds) -> tuple[bool, str]:
    """(suggest zoledronic acid?, why not / kidney data) from the latest eGFR and CKD records."""
    egfr = chart.egfr(th.egfr_lookback_days_denosumab)
    cutoff = th.egfr_cutoff_zoledronic_5mg
    if egfr is not None and below(egfr, cutoff):
        return False, (f"Zoledronic acid is **not suggested**: latest {lab_summary(egfr, 'eGFR')} is below "
                       f"{cutoff} (zoledronic acid 5 mg is contraindicated at CrCl < 35). Discuss the "
                       "follow-on agent with a specialist.")
    severe = severe_kidney_records(chart, th)
    if severe:
        return False, ("Zoledronic acid is **not suggested**: severe kidney disease on record ("
                       + "; ".join(severe) + "). Discuss the follow-on agent with a specialist.")
    missing = [words for rtype, words in (("Observation", "laboratory results"),
                                          ("Condition", "the problem list"),
                                          ("Procedure", "procedures"))
               if not chart.known(rtype)]
    if missing:
        return True, (f"Could not be checked: {', '.join(missing)} could not be obtained, so kidney "
                      "function and dialysis are unknown — confirm eGFR ≥ 35 before the infusion.")
    return True, ""


@rule(RULE_ID, TITLE, hooks=PATIENT_VIEW, needs=MEDS)
def dmab_overdue_transition(inp: RuleInput) -> Card | None:
    chart, th, today = inp.chart, inp.thresholds, inp.today
    last = last_denosumab_dose(chart)
    if last is None or last.regimen != "60mg":
        return None  # no history, 120 mg (DMAB-ONCOLOGY-INTERVAL) or regimen unknown (D3)
    L = last.date
    due = add_months(L, th.dmab60_interval_months)
    overdue_after = add_months(L, th.dmab60_overdue_months)
    horizon = add_months(L, th.dmab60_transition_horizon_months)
    if today > horizon:
        return None
    stop = deliberate_stop(chart, L)
    if stop is not None:
        if today < due - timedelta(days=th.dmab60_due_lead_days):
            return None
    elif not today > overdue_after:
        return None
    if followon_after(chart, L):
        return None
    planned = planned_followons(chart, L)
    if any(today <= p.silences_until(L, th) for p in planned):
        return None   # a planned follow-on order within its grace (D4, A2)
    calcium = chart.calcium(th.calcium_lookback_days, th.calcium_limits)
    if calcium is not None and calcium.low:
        return _calcium_card(inp, last, due, overdue_after, stop, calcium)
    return _card(inp, last, due, overdue_after, stop, planned)


def planned_drug_words(p: PlannedOrder) -> str:
    """The drug of a planned follow-on order as the summary names it (A2)."""
    drug = p.record.drug
    if drug.drug_class == DENOSUMAB:
        return {"60mg": "denosumab 60 mg", "120mg": "denosumab 120 mg"}.get(drug.regimen or "", "denosumab")
    if drug.agent == "zoledronic-acid":
        return {"5mg": "zoledronic acid 5 mg IV", "4mg": "zoledronic acid 4 mg IV"}.get(
            drug.regimen or "", "zoledronic acid IV")
    if drug.drug_class == BISPHOSPHONATE and drug.route == "iv":
        return f"{drug.agent} IV"
    return drug.agent if drug.agent != "bisphosphonate" else "a bisphosphonate"


def _planned_line(p: PlannedOrder, last: date, th: Thresholds) -> str:
    r = p.record
    ordered = r.date.isoformat() if r.date else "an unrecorded date"
    planned = p.planned.isoformat() if p.planned else "no planned date recorded"
    status = "on hold" if r.status == "on-hold" else r.status
    return (f"Planned follow-on order: {planned_drug_words(p)}, ordered {ordered}, planned "
            f"{planned}, status {status}; no dose of it is recorded since it was ordered, and the "
            f"grace period ended on {p.silences_until(last, th).isoformat()}.")


def calcium_value(calcium: CalciumJudgement) -> str:
    """The judged calcium with its unit, at display precision (1 decimal mg/dL, 2 mmol/L)."""
    places = Decimal("0.01") if calcium.kind == "ionized" else Decimal("0.1")
    unit = "mmol/L" if calcium.kind == "ionized" else "mg/dL"
    return f"{calcium.value.quantize(places):f} {unit}"


def _calcium_card(inp: RuleInput, last: Dose, due: date, overdue_after: date, stop,  # noqa: ANN001
                  calcium: CalciumJudgement) -> Card:
    """Variant 1 (A6): low calcium: correct calcium first; a laboratory work-up, no drug."""
    th, today = inp.thresholds, inp.today
    L = last.date
    n_months = months_since(L, today)
    state = "stopped" if stop is not None and today <= overdue_after else "overdue"
    summary = (f"Denosumab {state} (last dose {L.isoformat()}); calcium {calcium_value(calcium)} on "
               f"{calcium.date.isoformat()}: correct calcium first, then resume or transition")
    details = [f"Last dose: {L.isoformat()}, {n_months} calendar months ago, {last.source_text()}; "
               f"next dose was due {due.isoformat()}",
               f"Calcium: {calcium.describe()} on {calcium.date.isoformat()} (look-back "
               f"{th.calcium_lookback_days} days)"]
    detail = tx.layout(
        f"Denosumab {state}: last dose {L.isoformat()}, {n_months} months ago; calcium is low, "
        f"{calcium.describe()} on {calcium.date.isoformat()}",
        "Hypocalcemia must be corrected before any antiresorptive dose; meanwhile the effect of "
        "denosumab is wearing off and the risk of rebound vertebral fractures grows every month.",
        [*tx.partial_history_todo(inp.chart),
         "Correct calcium and vitamin D first: repeat calcium with albumin, check 25-OH vitamin D, "
         "magnesium and PTH", "give denosumab or zoledronic acid only once calcium is normal",
         "then resume or transition without further delay"],
        [EVIDENCE], details, t=th)
    ctx: OrderContext = inp.orders
    reason = "Low calcium before resuming or replacing denosumab"
    suggestions = [lab_suggestion(ctx, "Order calcium with albumin", ("calcium", "albumin"), reason),
                   lab_suggestion(ctx, "Order 25-OH vitamin D", ("vitamin-d",), reason),
                   lab_suggestion(ctx, "Order magnesium", ("magnesium",), reason),
                   lab_suggestion(ctx, "Order PTH", ("pth",), reason)]
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=tx.summary(summary), indicator="warning",
                **tx.source(SOURCE_KEY), detail=detail, suggestions=suggestions,
                selection_behavior="any",
                # at most five reasons (§6.3): "transition-planned" gives way to the calcium one
                override_reasons=override_reasons("treating-hypocalcemia", "dose-given-elsewhere",
                                                  "specialist-decision", "patient-declined",
                                                  "end-of-life-care"),
                links=[LINKS["ects-2021"]])


def _card(inp: RuleInput, last: Dose, due: date, overdue_after: date, stop,  # noqa: ANN001
          planned: list[PlannedOrder]) -> Card:
    chart, th, today = inp.chart, inp.thresholds, inp.today
    L = last.date
    n_months = months_since(L, today)
    n_days = (today - L).days
    T = transition_date(L, today, th)
    zol_ok, zol_why = zoledronic_acid_block(chart, th)
    egfr = chart.egfr(th.egfr_lookback_days_denosumab)

    if planned:
        p = max(planned, key=lambda o: o.planned or date.min)   # the most recent plan
        when = p.planned.isoformat() if p.planned else "(no date)"
        summary = (f"Planned transition not given: {planned_drug_words(p)} planned {when}, last "
                   f"denosumab 60 mg {L.isoformat()} ({n_months} mo ago). Give it or re-plan")
    elif stop is not None:
        if zol_ok:
            summary = (f"Denosumab stopped (last dose {L.isoformat()}): plan zoledronic acid 5 mg IV on "
                       f"{T.isoformat()} to prevent rebound fractures")
        else:
            summary = (f"Denosumab stopped (last dose {L.isoformat()}): plan follow-on therapy by "
                       f"{T.isoformat()} to prevent rebound fractures (no zoledronic acid: kidney)")
    elif zol_ok:
        summary = (f"Denosumab overdue: last 60 mg dose {L.isoformat()} ({n_months} months ago), "
                   "no follow-on therapy. Give now or start zoledronic acid")
    else:
        summary = (f"Denosumab overdue: last 60 mg dose {L.isoformat()} ({n_months} months ago), "
                   "no follow-on therapy. Give now (kidney: no zoledronic acid)")

    details = [f"Last dose: {L.isoformat()}, {n_months} calendar months ({n_days} days) ago, "
               f"{last.source_text()}; next dose was due {due.isoformat()} (every "
               f"{th.dmab60_interval_months} months), overdue after {overdue_after.isoformat()}"
               + (f"; denosumab {BY_TEXT_NOTE} ({tx.escape_record(last.name)})" if last.by_text else "")]
    if stop is not None:
        details.append(f"Deliberately stopped: {_STOP_WORDS.get(stop.resource_type, 'record')} with "
                       f"status {stop.status}, dated {(stop.end or stop.date).isoformat()}; the "
                       "transition is planned for 6 months after the last injection")
        finding = (f"Denosumab stopped: last 60 mg dose {L.isoformat()}, {n_months} months ago; "
                   "no follow-on therapy on record")
    else:
        finding = (f"Denosumab overdue: last 60 mg dose {L.isoformat()}, {n_months} months ago "
                   f"(due {due.isoformat()}); no follow-on therapy on record")
    if planned:
        finding = (f"Planned transition not given: last 60 mg dose {L.isoformat()}, {n_months} months "
                   "ago; the planned follow-on order's grace period has ended")
    for p in planned:
        details.append(_planned_line(p, L, th).rstrip("."))
    calcium = chart.calcium(th.calcium_lookback_days, th.calcium_limits)
    if not chart.known("Observation"):
        details.append("Laboratory results could not be obtained: calcium and eGFR were not checked")
    else:
        details.append("Latest " + (lab_summary(egfr, "eGFR") if egfr else
                                    f"eGFR: none in the last {th.egfr_lookback_days_denosumab} days"))
        details.append("Calcium: " + (f"{calcium.describe()} on {calcium.date.isoformat()}" if calcium
                                      else f"none in the last {th.calcium_lookback_days} days"))
    if zol_why:
        details.append(zol_why.rstrip("."))
    details.append(f"Not found: a bisphosphonate administration, dispense, statement or order, or a "
                   "denosumab dose" + (" given" if planned else " or active order") + f", dated after {L.isoformat()} (entered-in-error, "
                   "cancelled and not-done records do not count)")
    todo = [*tx.partial_history_todo(chart), "Resume denosumab 60 mg now, then every 6 months",
            (f"or zoledronic acid 5 mg IV on {T.isoformat()}"
             + (" (as soon as possible)" if T == today else "")
             + " after a kidney and calcium check" if zol_ok else
             "zoledronic acid is not suggested at this kidney function"),
            "an oral bisphosphonate if IV is not possible",
            "look for vertebral fractures if back pain or height loss"]
    detail = tx.layout(
        finding,
        "Stopping or delaying denosumab without a follow-on antiresorptive causes rebound bone "
        "loss and multiple vertebral fractures.",
        todo, [EVIDENCE], details, t=th)

    ctx: OrderContext = inp.orders
    suggestions: list[Suggestion] = [denosumab_order(ctx, "60mg")]
    if zol_ok:
        zol = zoledronic_acid_order(ctx, T)
        reason = "Before zoledronic acid infusion (denosumab transition)"
        zol.actions.append(Action("Order serum calcium before the infusion",
                                  lab_request(ctx, "calcium", reason)))
        zol.actions.append(Action("Order creatinine with eGFR before the infusion",
                                  lab_request(ctx, "creatinine", reason)))
        suggestions.append(zol)
    reasons = (("transition-planned", "specialist-decision", "dose-given-elsewhere", "patient-declined",
                "end-of-life-care") if stop is not None else
               ("dose-given-elsewhere", "transition-planned", "specialist-decision", "patient-declined",
                "end-of-life-care"))
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=tx.summary(summary), indicator="warning",
                **tx.source(SOURCE_KEY), detail=detail, suggestions=suggestions,
                selection_behavior="at-most-one", override_reasons=override_reasons(*reasons),
                links=[LINKS["ects-2021"]])
