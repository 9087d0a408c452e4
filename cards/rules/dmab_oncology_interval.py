"""DMAB-ONCOLOGY-INTERVAL — 4-weekly oncology denosumab dose missed (patient-view).

Evidence: seed 001_282e696d69a84463.txt §Bone Metastases from Solid Tumors (120 mg every 4 weeks;
"do not extend dosing intervals beyond 4 weeks"), §Giant Cell Tumor of Bone (three weekly loading
doses, then monthly; 8-weekly after 2 stable years), §Critical Clinical Pitfalls #4; Xgeva label
§Dosage (120 mg every 4 weeks; extra doses on days 8 and 15 for GCTB and hypercalcemia of
malignancy). RULES.md §8 item 7: info, 7-day grace, no card after 180 days.

Logic (RULES.md §3, D4, D9): 120 mg history, last dose ``L``; fire when
``35 < days_between(L, today) ≤ 180`` (28-day interval + 7-day grace), unless a later dose, a
planned order or a deliberate stop exists. In a GCTB/HCM loading phase the expected dates are day
8 and day 15 after the first dose, then every 28 days from the first dose, and "late" is more
than 7 days after the expected date.
"""

from __future__ import annotations

from datetime import date, timedelta

from ..builders import denosumab_order, override_reasons
from ..model import Card
from ..registry import MEDS, PATIENT_VIEW, RuleInput, rule
from ..thresholds import Thresholds
from ._definitions import Evidence
from ._dmab_dosing_common import (Dose, course_start_120, deliberate_stop, denosumab_doses,
                                  followon_after, gctb_or_hcm, loading_expected_dates, planned_orders_after,
                                  sections)
from . import _text as tx
from ._text import BY_TEXT_NOTE

RULE_ID = "DMAB-ONCOLOGY-INTERVAL"
TITLE = "4-weekly oncology denosumab dose missed"


def expected_next(doses: list[Dose], loading_evidence: list[Evidence], th: Thresholds) -> tuple[date, date | None]:
    """(expected date of the dose after the last one, first dose of a loading course or None).

    Outside a loading course the next dose is expected ``dmab120_interval_days`` after the last.
    With an active GCTB/HCM and a last dose inside the first 28 days of the course, the next
    expected loading date (day 8, day 15, day 29) applies; a dose given up to 3 days early
    (D4 de-duplication tolerance) counts as the loading dose it stands for.
    """
    last = doses[-1].date
    if loading_evidence:
        first = course_start_120(doses, th.initiation_gap_days)
        if first is not None and 0 <= (last - first).days < th.dmab120_interval_days:
            tolerance = timedelta(days=th.dose_dedupe_days - 1)
            for when in loading_expected_dates(first, th):
                if when > last + tolerance:
                    return when, first
    return last + timedelta(days=th.dmab120_interval_days), None


@rule(RULE_ID, TITLE, hooks=PATIENT_VIEW, needs=MEDS)
def dmab_oncology_interval(inp: RuleInput) -> Card | None:
    chart, th, today = inp.chart, inp.thresholds, inp.today
    doses = denosumab_doses(chart)
    if not doses or doses[-1].regimen != "120mg":
        return None  # 60 mg (other rules) or regimen unknown (D3: interval rules do not fire)
    last = doses[-1]
    L = last.date
    n = (today - L).days
    if n > th.dmab120_stop_horizon_days:
        return None
    loading_ev = gctb_or_hcm(chart)
    expected, first = expected_next(doses, loading_ev, th)
    if not (today - expected).days > th.dmab120_grace_days:
        return None
    if deliberate_stop(chart, L) or planned_orders_after(chart, L) or followon_after(chart, L):
        return None

    if first is None:
        summary = (f"Denosumab 120 mg: last dose {L.isoformat()}, {n} days ago (schedule every 4 weeks). "
                   "Check whether a dose was missed")
    else:
        summary = (f"Denosumab 120 mg loading: last dose {L.isoformat()}, {n} days ago; dose expected "
                   f"{expected.isoformat()}. Check whether a dose was missed")
    details = [f"Last dose: {L.isoformat()}, {n} days ago, {last.source_text()}"
               + (f"; denosumab {BY_TEXT_NOTE} ({tx.escape_record(last.name)})" if last.by_text else "")]
    if first is not None:
        details.append(f"Loading course for {'; '.join(e.text for e in loading_ev)}: first dose "
                       f"{first.isoformat()}, extra doses on days 8 and 15, then every "
                       f"{th.dmab120_interval_days} days from the first dose"
                       + (f" (indication {BY_TEXT_NOTE})" if any(e.by_text for e in loading_ev) else ""))
    details.append(f"Not found: a denosumab dose after {L.isoformat()}, an active denosumab or "
                   "bisphosphonate order authored after it, or a record that denosumab was stopped; "
                   f"no card is shown more than {th.dmab120_stop_horizon_days} days after the last dose")
    detail = tx.layout(
        f"Last denosumab 120 mg dose {L.isoformat()}, {n} days ago; next dose expected "
        f"{expected.isoformat()}, more than {th.dmab120_grace_days} days late",
        "Protection from skeletal-related events depends on regular dosing every 4 weeks.",
        [*tx.partial_history_todo(chart), "Check whether a dose was missed or given elsewhere, and schedule it",
         "if a longer interval is intended (every 12 weeks, or 8-weekly for giant cell tumor of "
         "bone after 2 stable years), record it"],
        [tx.EVIDENCE["xgeva-dosing"]], details, t=th)
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=tx.summary(summary), indicator="info",
                **tx.source("LBL-XGEVA"), detail=detail,
                suggestions=[denosumab_order(inp.orders, "120mg")], selection_behavior="any",
                override_reasons=override_reasons("intentional-deescalation", "dose-given-elsewhere",
                                                  "therapy-stopped"))
