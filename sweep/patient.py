"""One patient of the sweep: records → the patient-view rules (the service's own code) → rows.

Pure: the records, the clock and the thresholds come in, worklist rows go out. The chart and the
rules are :func:`hooks.evaluation.assess`, exactly what the ``patient-view`` service runs after its
prefetch: the same identity check (only records naming ``Patient/{id}``), the same chart, the
same rules, the same §7 exclusions.

What the chart is given is what the service's prefetch would bring: a Bulk Data export holds
every Observation, the ``patient-view`` prefetch only those of the Observation template's LOINC
codes (``hooks/services.py``), so Observations of other codes are left out here too
(:func:`as_prefetched`). Every other type is taken whole, as the templates ask for it.

The data-availability card (``SERVICE-DATA-UNAVAILABLE``, :mod:`cds_service.data_card`) is not a
finding about the patient's therapy but about records that could not be read: it is never a
worklist row; the patient is counted in ``summary.json`` (``patients_with_unreadable_records``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

from cards.thresholds import DEFAULT_THRESHOLDS, Thresholds
from cds_service.chart import BISPHOSPHONATE, DENOSUMAB, Chart, add_months, build_chart
from cds_service.chart.identity import PatientIdentity
from cds_service.chart.verdicts import VerdictCache
from cds_service.data_card import build_data_card
from hooks.evaluation import assess
from hooks.services import services

HOOK = "patient-view"
MR_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"

#: Worklist columns, in order (README "Population sweep").
COLUMNS = ("patient_id", "mrn", "rule_id", "indicator", "summary", "key_date", "due_date",
           "days_overdue", "suggested_action")
_RANK = {"critical": 0, "warning": 1, "info": 2}


def mrn_of(patient: dict | None) -> str:
    """The value of the Patient's first identifier of type ``MR`` (HL7 v2-0203), or ""."""
    for ident in (patient or {}).get("identifier") or []:
        if not isinstance(ident, dict) or not isinstance(ident.get("value"), str):
            continue
        codings = ((ident.get("type") or {}).get("coding") or []) if isinstance(ident.get("type"), dict) else []
        if any(isinstance(c, dict) and c.get("code") == "MR" and c.get("system") in (None, MR_SYSTEM)
               for c in codings):
            return ident["value"]
    return ""


def _key_dates(rule_id: str, chart: Chart, th: Thresholds) -> tuple[date | None, date | None]:
    """(key date, due date) of a finding: the last dose of the rule's drug class (D4) and, for the
    interval rules, the date the next dose was due."""
    drug_class = BISPHOSPHONATE if rule_id.startswith("BP-") else DENOSUMAB if rule_id.startswith("DMAB-") else None
    if drug_class is None:
        events = [e for c in (DENOSUMAB, BISPHOSPHONATE) for e in chart.dose_events(c)]
        last = max((e.date for e in events), default=None)
        return last, None
    event = chart.last_dose(drug_class)
    if event is None:
        return None, None
    if rule_id in ("DMAB-OVERDUE-TRANSITION", "DMAB-DOSE-DUE"):
        return event.date, add_months(event.date, th.dmab60_interval_months)
    if rule_id == "DMAB-ONCOLOGY-INTERVAL":
        return event.date, _oncology_expected(chart, th)
    return event.date, None


def _oncology_expected(chart: Chart, th: Thresholds) -> date | None:
    """The date the rule itself expected the next 120 mg dose (loading days 8/15/29 included),
    from the rule module's own helper; None (no due date shown) if that helper cannot be used."""
    try:
        from cards.rules.dmab_oncology_interval import denosumab_doses, expected_next, gctb_or_hcm
        return expected_next(denosumab_doses(chart), gctb_or_hcm(chart), th)[0]
    except Exception:  # noqa: BLE001 - a missing due date, never a wrong one or a failed sweep
        return None


def _action(card: Any) -> str:
    """The label of the recommended suggestion, else of the first one, else ""."""
    suggestions = list(card.suggestions)
    best = next((s for s in suggestions if s.is_recommended), suggestions[0] if suggestions else None)
    return best.label if best is not None else ""


@lru_cache(maxsize=1)
def _observation_codes() -> frozenset[tuple[str | None, str]] | None:
    """``(system, code)`` tokens of the patient-view Observation template (system None: any), or
    None when the template has no code filter."""
    service = next(s for s in services() if s.hook == HOOK)
    for template in service.prefetch.values():
        if template.startswith("Observation?"):
            codes = parse_qs(template.split("?", 1)[1]).get("code")
            if not codes:
                return None
            tokens = [t.split("|", 1) if "|" in t else [None, t] for t in codes[0].split(",")]
            return frozenset((system or None, code) for system, code in tokens)
    return None


def prefetch_observation_codes() -> frozenset[tuple[str | None, str]] | None:
    """The Observation codes the patient-view prefetch asks for (the ``--export`` sweep's
    ``_typeFilter``): exactly the Observations :func:`prefetched_observation` keeps."""
    return _observation_codes()


def _searched(observation: dict, wanted: frozenset[tuple[str | None, str]]) -> bool:
    """A token search on ``Observation.code`` finds it: one of its codings has a listed
    ``system|code`` (or a listed code without a system)."""
    code = observation.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    for c in codings if isinstance(codings, list) else ():
        if not isinstance(c, dict) or not isinstance(c.get("code"), str):
            continue   # a malformed coding (a list or number for a code) is no search hit, never a crash
        system = c.get("system")
        if (isinstance(system, str) and (system, c["code"]) in wanted) or (None, c["code"]) in wanted:
            return True
    return False


def prefetched_observation(observation: dict) -> bool:
    """The patient-view prefetch would bring this Observation (its template's code filter)."""
    wanted = _observation_codes()
    return wanted is None or _searched(observation, wanted)


def observation_filter() -> Callable[[dict], bool]:
    """:func:`prefetched_observation` with the template's codes bound (for a loop over lines)."""
    wanted = _observation_codes()
    if wanted is None:
        return lambda _observation: True
    return lambda observation: _searched(observation, wanted)


def as_prefetched(resources: Iterable[dict]) -> list[dict]:
    """``resources`` without the Observations the patient-view prefetch would not have asked for."""
    wanted = _observation_codes()
    if wanted is None:
        return list(resources)
    return [r for r in resources if r.get("resourceType") != "Observation" or _searched(r, wanted)]


@dataclass
class PatientResult:
    """What one patient gave: worklist rows, whether the data card would have been shown, and
    whether the chart found the patient deceased (A37: then no rule ran)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    unreadable: bool = False
    deceased: bool = False


def is_deceased(patient_id: str, patient: dict, *, now: datetime,
                thresholds: Thresholds = DEFAULT_THRESHOLDS, verdicts: VerdictCache | None = None) -> bool:
    """D8/A37 as the chart reads it, from the Patient alone (as the service decides it): the
    chart :func:`hooks.evaluation.assess` builds, with its arguments, without running the rules."""
    chart = build_chart([patient], now, hook=HOOK, identity=PatientIdentity(patient_id), verdicts=verdicts,
                        zone=thresholds.zone, future_skew_minutes=thresholds.future_skew_minutes,
                        dose_dedupe_days=thresholds.dose_dedupe_days)
    return chart.patient.deceased


def evaluate_patient(patient_id: str, resources: Iterable[dict], *, now: datetime,
                     thresholds: Thresholds = DEFAULT_THRESHOLDS,
                     verdicts: VerdictCache | None = None) -> PatientResult:
    """The patient-view rules over one patient's records at ``now``; one row per card."""
    resources = as_prefetched(resources)
    identity = PatientIdentity(patient_id)
    done = assess(resources, hook=HOOK, now=now, identity=identity, thresholds=thresholds,
                  verdicts=verdicts)
    if done.result.deceased:
        return PatientResult(deceased=True)
    out = PatientResult(unreadable=build_data_card(done.result, done.input, {}) is not None)
    if not done.result.cards:
        return out
    patient = next((r for r in resources if r.get("resourceType") == "Patient" and r.get("id") == patient_id), None)
    mrn = mrn_of(patient)
    today = done.chart.today
    for card in done.result.cards:
        key, due = _key_dates(card.rule_id, done.chart, thresholds)
        out.rows.append({
            "patient_id": patient_id, "mrn": mrn, "rule_id": card.rule_id,
            "indicator": card.indicator, "summary": card.summary,
            "key_date": key.isoformat() if key else None,
            "due_date": due.isoformat() if due else None,
            "days_overdue": (today - due).days if due else None,
            "suggested_action": _action(card),
        })
    return out


def sort_key(row: dict[str, Any]) -> tuple:
    """Urgency: critical, warning, info; then most days overdue first; then patient and rule."""
    overdue = row.get("days_overdue")
    return (_RANK.get(row["indicator"], 3), overdue is None, -(overdue or 0), row["patient_id"], row["rule_id"])


__all__ = ["COLUMNS", "PatientResult", "as_prefetched", "evaluate_patient", "is_deceased", "mrn_of",
           "prefetch_observation_codes", "prefetched_observation", "sort_key"]
