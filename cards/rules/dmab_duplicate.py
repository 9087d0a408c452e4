"""DMAB-DUPLICATE — duplicate or too-early denosumab (order-select, order-sign).

Evidence: Prolia label §Dosage (60 mg every 6 months; a missed dose is given as soon as possible,
never early), Xgeva label §Dosage (120 mg every 4 weeks; extra doses on days 8 and 15 for GCTB and
hypercalcemia of malignancy; Prolia- and Xgeva-type products contain the same drug and must not
be combined); seed 001_282e696d69a84463.txt §Giant Cell Tumor of Bone (three weekly loading doses).

Logic (RULES.md §3, D4, D9): any of (a) another denosumab draft in ``context.draftOrders``;
(b) an ``active`` denosumab MedicationRequest authored after the last dose (an order already
pending); (c) a 60 mg draft with ``today < add_months(L, 6) − 28 days``; (d) a 120 mg draft with
the last dose < 21 days ago, unless in a GCTB/HCM loading phase and ≥ 6 days ago; (e) 60 mg and
120 mg products both active. One card naming every draft concerned. The timing checks (c), (d)
need the draft's regimen (D3: unknown regimen → no interval check).
"""

from __future__ import annotations

from datetime import timedelta

from cds_service.chart import DENOSUMAB, add_months

from ..builders import LINKS, override_reasons
from ..model import Card
from ..registry import MEDS, ORDER_HOOKS, RuleInput, rule
from ._dmab_dosing_common import (denosumab_doses, loading_phase, planned_orders_after, regimen_words,
                                  sections)
from ._text import BY_TEXT_NOTE, cut

RULE_ID = "DMAB-DUPLICATE"
TITLE = "duplicate or too-early denosumab"
SOURCE = "Prolia and Xgeva labels §Dosage (dosing intervals)"
EVIDENCE = ("Prolia label §Dosage (every 6 months), Xgeva label §Dosage (every 4 weeks; loading days "
            "8 and 15 for GCTB/HCM); seed 001 §Giant Cell Tumor of Bone (three weekly loading doses).")


@rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, needs=MEDS)
def dmab_duplicate(inp: RuleInput) -> Card | None:
    chart, th, today = inp.chart, inp.thresholds, inp.today
    triggers = inp.drafts_of(DENOSUMAB)
    if not triggers:
        return None
    session = [d for d in chart.drafts if d.drug.drug_class == DENOSUMAB]
    doses = denosumab_doses(chart)
    last = doses[-1] if doses else None
    L = last.date if last else None

    found: list[str] = []       # detail lines, in priority order
    summary: str | None = None
    timing_first = False
    notes: list[str] = []

    # (a) two denosumab drafts in one session
    if len(session) >= 2:
        a, b = cut(session[0].label), cut(session[1].label)
        more = f" (+{len(session) - 2} more)" if len(session) > 2 else ""
        summary = f"Duplicate denosumab order: {a} and {b} in this session{more}"
        if len(summary) >= 140:  # two 40-character names and "(+n more)": keep it under 140
            summary = f"Duplicate denosumab order: {a} and {b} in this session"
        found.append("**Same session:** " + "; ".join(f"{cut(d.label)} ({d.ref})" for d in session)
                     + " — denosumab is ordered more than once.")

    # (c)/(d) too early after the last dose
    if last is not None and L is not None:
        n = (today - L).days
        src = "" if not last.low_confidence else " (dated from a completed order only: low confidence)"
        for d in triggers:
            if d.drug.regimen == "60mg":
                due = add_months(L, th.dmab60_interval_months)
                earliest = due - timedelta(days=th.dmab60_early_margin_days)
                if today < earliest:
                    found.append(f"**Too early (60 mg):** last denosumab dose {L.isoformat()}{src}, {n} days "
                                 f"ago; the next 60 mg dose is due {due.isoformat()} and no earlier than "
                                 f"{earliest.isoformat()} ({th.dmab60_early_margin_days} days before the "
                                 f"due date). Draft: {cut(d.label)}.")
                    if summary is None:
                        summary = (f"Denosumab last given {L.isoformat()} ({n} days ago): next 60 mg dose "
                                   f"not due until {due.isoformat()}")
                    timing_first = timing_first or len(found) == 1
            elif d.drug.regimen == "120mg" and n < th.dmab120_min_interval_days:
                first, evidence = loading_phase(chart, doses, th, today, [d])
                if first is not None and n >= th.dmab120_loading_min_interval_days:
                    continue  # GCTB/HCM loading dose (days 8 and 15): allowed
                due = L + timedelta(days=th.dmab120_interval_days)
                line = (f"**Too early (120 mg):** last denosumab dose {L.isoformat()}{src}, {n} days ago "
                        f"(minimum {th.dmab120_min_interval_days} days; next due {due.isoformat()}).")
                if first is not None:
                    line += (f" Loading phase ({'; '.join(e.text for e in evidence)}, first dose "
                             f"{first.isoformat()}), but loading doses are at least "
                             f"{th.dmab120_loading_min_interval_days} days apart.")
                elif not chart.known("Condition"):
                    notes.append("The problem list could not be obtained, so a GCTB/hypercalcemia-of-"
                                 "malignancy loading phase could not be checked.")
                found.append(line + f" Draft: {cut(d.label)}.")
                if summary is None:
                    summary = (f"Denosumab last given {L.isoformat()} ({n} days ago): next 120 mg dose "
                               f"not due until {due.isoformat()}")
                timing_first = timing_first or len(found) == 1

    # (b) an order already pending
    pending = [r for r in planned_orders_after(chart, L, classes=(DENOSUMAB,)) if r.status == "active"]
    if pending:
        p = pending[0]
        when = p.date.isoformat() if p.date else "date unknown"
        found.append("**Order already pending:** " + "; ".join(
            f"{cut(r.drug.name)} ({r.ref}, active, authored {r.date.isoformat() if r.date else 'date unknown'})"
            for r in pending) + (f", after the last dose on {L.isoformat()}." if L else "; no dose on record yet."))
        if summary is None:
            summary = f"Denosumab already ordered ({cut(p.drug.name)}, active since {when}): avoid a duplicate order"

    # (e) Prolia-type and Xgeva-type products together
    strengths: dict[str, list[str]] = {}
    for d in session:
        if d.drug.regimen:
            strengths.setdefault(d.drug.regimen, []).append(f"draft {cut(d.label)}")
    for r in chart.active_records(DENOSUMAB, dispense_default_days=th.dispense_default_days_supply):
        if r.drug.regimen:
            strengths.setdefault(r.drug.regimen, []).append(f"{cut(r.drug.name)} ({r.ref})")
    if "60mg" in strengths and "120mg" in strengths:
        found.append("**60 mg and 120 mg products both active:** 60 mg: " + "; ".join(strengths["60mg"])
                     + "; 120 mg: " + "; ".join(strengths["120mg"]) + ". The labels say not to combine them.")
        if summary is None:
            summary = "Denosumab 60 mg and 120 mg both active: do not combine Prolia-type and Xgeva-type products"

    if not found or summary is None:
        return None
    if any(d.drug.by_text for d in session):
        notes.append(f"At least one denosumab order was {BY_TEXT_NOTE}.")
    unknown = [cut(d.label) for d in triggers if d.drug.regimen is None]
    if unknown:
        notes.append(f"Strength not recognised for {', '.join(unknown)} ({regimen_words(None)}): the "
                     "dosing-interval checks were not applied to it.")
    detail = sections(
        ("Finding:", found),
        ("Why it matters.", "Early or double dosing adds hypocalcemia risk without benefit. The label "
                            "allows a missed dose to be given as soon as possible, not an early one."),
        ("What to do.", "Cancel the duplicate order, or confirm that the previous dose was not given "
                        "(or that this is a GCTB/HCM loading dose)."),
        ("Notes:", notes),
        ("Evidence.", EVIDENCE),
    )
    reasons = (("previous-dose-not-given", "loading-dose", "cancel-other-order") if timing_first else
               ("cancel-other-order", "previous-dose-not-given", "loading-dose"))
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator="warning",
                source_label=SOURCE, detail=detail, override_reasons=override_reasons(*reasons),
                links=[LINKS["prolia-label"]])
