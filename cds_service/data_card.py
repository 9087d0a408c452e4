"""The data-availability card: what the service could not check, and why (issue 11 §2).

A check that could not run is said to the clinician, never dropped in silence (DESIGN.md). One
card (``source.topic.code`` ``SERVICE-DATA-UNAVAILABLE``) gathers everything that makes this
answer less than complete: data that could not be had, records that could not be read, records
of another patient that were left out, partial or capped search results, checks that failed or
ran out of time. It speaks to the order in hand:

* it lists only the checks that could apply to this patient's drugs (denosumab checks only with
  denosumab in the triggering drafts, or on patient-view in the record; likewise bisphosphonate
  checks; the checks for any antiresorptive always);
* its indicator is the highest of the checks it replaces: each check that could not run is run
  once more with its missing data taken as "none on record" (what the rules' own "not checked"
  forms say, RULES.md §1.1 "Missing is not normal"), so a missing calcium before denosumab or an
  IV bisphosphonate is a warning, as AR-CALCIUM-NOT-CHECKED would be; an antiresorptive draft
  that could not be read, or an unreadable laboratory result behind an antiresorptive order, is a
  warning too.

Pure: no I/O; the caller passes what the prefetch reported.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Iterable, Mapping

from cards.builders import SOURCES, lab_suggestion
from cards.engine import TYPE_WORDS, Evaluation
from cards.model import INDICATORS, Card
from cards.registry import REGISTRY, RuleInput
from cards.rules import _text as tx

from .chart import BISPHOSPHONATE, DENOSUMAB, MEDICATION_TYPES, OUT_OF_TIME, Chart

DATA_CARD_ID = "SERVICE-DATA-UNAVAILABLE"

#: Why a prefetch key could not be had, in a clinician's words.
REASON_WORDS = {
    "no-fhir-server": "the request named no FHIR server", "server-not-allowed":
    "the request's FHIR server is not on this service's allowlist", "unauthorized":
    "the FHIR server refused the access token", "forbidden": "the FHIR server refused access",
    "timeout": "the FHIR server did not answer in time", "deadline": "the FHIR server did not answer in time",
    "unreachable": "the FHIR server could not be reached", "invalid-json": "the FHIR server sent an unreadable answer",
    "not-a-bundle": "the FHIR server answered a search with something other than a search result",
    "operation-outcome": "the FHIR server reported an error instead of the data",
    "token-patient-mismatch": "the access token was issued for a different patient",
    "too-large": "the FHIR server's answer was larger than this service reads",
    OUT_OF_TIME: "the time allowed for this request ran out before these records were read",
}
#: Why a key's data may be incomplete, in a clinician's words.
INCOMPLETE_WORDS = {
    "error-outcome": "the FHIR server reported an error in its answer",
    "total-exceeds-entries": "the FHIR server sent fewer records than it said it had",
    "max-pages": "more pages of results were available than the service reads",
    "deadline": "the FHIR server did not send every page in time",
    "unread-pages": "the EHR sent only the first page of results",
}
#: Resource types in the words of "N <noun> could not be read".
_NOUNS = {"Observation": ("laboratory result", "laboratory results"),
          "Condition": ("problem-list entry", "problem-list entries"),
          "Procedure": ("procedure", "procedures"), "Patient": ("patient record", "patient records"),
          "Medication": ("medication description", "medication descriptions")}
_MED_NOUN = ("medication record", "medication records")
_FAMILIES = (("DMAB-", DENOSUMAB), ("BP-", BISPHOSPHONATE))


def _rank(indicator: str) -> int:
    """Severity: info 0, warning 1, critical 2."""
    return len(INDICATORS) - 1 - INDICATORS.index(indicator)


def _plural(n: int, nouns: tuple[str, str]) -> str:
    return f"{n} {nouns[0] if n == 1 else nouns[1]}"


def relevant_classes(chart: Chart, hook: str) -> set[str]:
    """Antiresorptive classes this answer is about: the triggering drafts' (order hooks, the
    unreadable ones included), or the record's (patient-view, unreadable records included). When the
    request budget left medication records unread (patient-view), or nothing of the answer could
    be checked in time, either class may be concerned: both."""
    if hook != "patient-view":
        classes = {d.drug.drug_class for d in chart.triggers}
        classes |= {d.drug_class for d in chart.unreadable_drafts}
    else:
        classes = {r.drug.drug_class for r in chart.medications}
        classes |= {s.drug_class for s in chart.unreadable}
        if any(chart.unavailable.get(t) == OUT_OF_TIME for t in MEDICATION_TYPES):
            classes = {DENOSUMAB, BISPHOSPHONATE}
    classes &= {DENOSUMAB, BISPHOSPHONATE}
    if not classes and OUT_OF_TIME in chart.unavailable.values():
        classes = {DENOSUMAB, BISPHOSPHONATE}
    return classes


def _applies(rule_id: str, classes: set[str]) -> bool:
    for prefix, cls in _FAMILIES:
        if rule_id.startswith(prefix):
            return cls in classes
    return bool(classes)


def _replaced_indicator(inp: RuleInput, rule_ids: Iterable[str]) -> str:
    """The highest indicator the not-run checks give when their missing data is taken as none."""
    what_if = replace(inp, chart=replace(inp.chart, unavailable={}))
    best = "info"
    for rule_id in rule_ids:
        try:
            card = REGISTRY[rule_id].fn(what_if)
        except Exception:  # noqa: BLE001 - a what-if run must never break the answer
            continue
        if card is not None and _rank(card.indicator) > _rank(best):
            best = card.indicator
    return best


def build_data_card(result: Evaluation, inp: RuleInput, missing: Mapping[str, str], *,
                    incomplete: Mapping[str, str] | None = None, capped: Mapping[str, int] | None = None,
                    key_types: Mapping[str, str] | None = None) -> Card | None:
    """The data card of one answer, or None when the answer is complete (or not about an
    antiresorptive). ``missing``: resource type → reason it could not be had; ``incomplete``
    and ``capped``: prefetch key → reason / records left out; ``key_types``: key → resource type."""
    chart, hook = inp.chart, inp.hook
    classes = relevant_classes(chart, hook)
    if not classes:
        return None
    key_types = key_types or {}
    indicator = "info"
    lines: list[str] = []
    summary = ""

    if chart.unreadable_drafts:
        names = ", ".join(sorted({d.agent.replace("-", " ") for d in chart.unreadable_drafts}))
        lines.append(f"- The ordered medication ({names}) could not be read, so it was **not** checked: "
                     "re-enter the order, or check calcium, kidney function and dental status by hand.")
        summary = f"The {names} order could not be read: its safety checks did not run"
        indicator = "warning"

    not_run = {r: ts for r, ts in result.not_run.items() if _applies(r, classes)}
    if not_run:
        types = sorted({t for ts in not_run.values() for t in ts})
        words = ", ".join(TYPE_WORDS.get(t, t) for t in types)
        reasons = sorted({REASON_WORDS.get(missing.get(t, ""), missing.get(t, "unknown")) for t in types})
        lines.append(f"- Why: {'; '.join(reasons)}.")
        by_need: dict[str, list[str]] = {}
        for rule_id, ts in sorted(not_run.items()):
            by_need.setdefault(", ".join(TYPE_WORDS.get(t, t) for t in ts), []).append(REGISTRY[rule_id].title)
        for need, titles in sorted(by_need.items()):
            lines.append(f"- Not run for lack of {need}: {'; '.join(titles)}.")
        summary = summary or f"Some safety checks could not run: {words} unavailable"
        replaced = _replaced_indicator(inp, not_run)
        if _rank(replaced) > _rank(indicator):
            indicator = replaced

    unreadable = [s for s in chart.unreadable if s.what != "the ordered medication"]
    if unreadable:
        by_type: dict[str, Counter[str]] = {}
        for s in unreadable:
            by_type.setdefault(s.resource_type if s.resource_type in _NOUNS else "Medication*",
                               Counter())[s.what] += 1
        for rtype, whats in sorted(by_type.items()):
            n = sum(whats.values())
            topics = ", ".join(w for w in sorted(whats) if w)
            noun = _NOUNS.get(rtype, _MED_NOUN)
            tail = (f": {topics} checks used the older results" if rtype == "Observation"
                    else ": the checks used the other records")
            lines.append(f"- {_plural(n, noun)} could not be read{f' ({topics})' if topics and rtype != 'Observation' else ''}{tail}.")
        if not summary:
            summary = (f"{_plural(len(unreadable), ('record', 'records'))} could not be read: "
                       "some safety checks used older data")
        if hook != "patient-view" and any(s.resource_type == "Observation" for s in unreadable):
            indicator = max(indicator, "warning", key=_rank)

    partial_labs = any(key_types.get(k) == "Observation" for k in {**(incomplete or {}), **(capped or {})})
    if hook != "patient-view" and partial_labs:
        indicator = max(indicator, "warning", key=_rank)   # the newest results may be the missing ones
    for key, reason in sorted((incomplete or {}).items()):
        noun = TYPE_WORDS.get(key_types.get(key, ""), "patient data")
        lines.append(f"- {noun[0].upper() + noun[1:]} may be incomplete: "
                     f"{INCOMPLETE_WORDS.get(reason, 'the answer was partial')}.")
        summary = summary or f"Patient data may be incomplete: {noun} were only partly received"
    for key, dropped in sorted((capped or {}).items()):
        if dropped:
            noun = TYPE_WORDS.get(key_types.get(key, ""), "records")
            lines.append(f"- Only part of the {noun} was read: {dropped} older or further records were not used.")
            summary = summary or f"Patient data too large: part of the {noun} was not read"

    for key, (one, many) in (("other-patient", ("belongs to another patient", "belong to another patient")),
                             ("no-patient", ("names no patient", "name no patient"))):
        n = chart.excluded.get(key, 0)
        if n:
            text = (f"{_plural(n, ('record', 'records'))} in the data sent {one if n == 1 else many} and "
                    f"{'was' if n == 1 else 'were'} not used")
            lines.append(f"- {text}.")
            summary = summary or text

    failed = [r for r in result.failed if _applies(r, classes) or r not in REGISTRY]
    for rule_id in failed:
        title = REGISTRY[rule_id].title if rule_id in REGISTRY else "A check"
        lines.append(f"- {title}: failed with an internal error (reported to the service's log)")
    summary = summary or ("Some safety checks could not run because of an internal error" if failed else "")
    unread = sorted(t for t, why in chart.unavailable.items() if why == OUT_OF_TIME)
    if unread:
        words = ", ".join(TYPE_WORDS.get(t, t) for t in unread)
        lines.append(f"- Not read in time, so not checked: {words}.")
        summary = summary or "Some safety checks did not finish in time and were not performed"
        if hook != "patient-view" and "Observation" in unread:
            indicator = max(indicator, "warning", key=_rank)   # as for partial labs: calcium unknown
    out_of_time = [r for r in result.out_of_time if _applies(r, classes)]
    if out_of_time:
        lines.append(f"- {len(out_of_time)} check{'s' if len(out_of_time) != 1 else ''} did not finish "
                     "in time and were not performed: "
                     + ", ".join(REGISTRY[r].title for r in out_of_time if r in REGISTRY) + ".")
        summary = summary or "Some safety checks did not finish in time and were not performed"

    if not lines:
        return None
    if len(summary) > 139:
        summary = summary[:138].rstrip() + "…"
    # §1.1/§1.2 (A30–A32): the catalog's layout, a public source and a suggestion, like every card
    label = SOURCES[tx.label_key(chart.triggers) if chart.triggers else
                    ("LBL-PROLIA" if DENOSUMAB in classes else "LBL-FOSAMAX")]
    todo = ["check the listed items in the record by hand before relying on the absence of a card"]
    if chart.unreadable_drafts:
        todo.append("re-enter the order that could not be read")
    todo.append("order calcium, albumin and creatinine with eGFR if none is recent")
    detail = tx.layout(f"Part of the patient's record could not be used: {summary[0].lower() + summary[1:]}",
                       "The absence of a card does not mean the patient is safe.",
                       todo, [f"{label.label} (calcium and kidney function before dosing)"],
                       [line[2:] if line.startswith("- ") else line for line in lines], t=inp.thresholds)
    suggestion = lab_suggestion(inp.orders, "Order calcium, albumin and creatinine with eGFR",
                                ["calcium", "albumin", "creatinine"],
                                "Antiresorptive safety checks could not use the record")
    return Card(rule_id=DATA_CARD_ID, rule_title="Safety checks incomplete: data unavailable",
                summary=summary, indicator=indicator, source_label=label.label, source_url=label.url,
                detail=detail, suggestions=[suggestion], selection_behavior="any")


__all__ = ["DATA_CARD_ID", "INCOMPLETE_WORDS", "REASON_WORDS", "build_data_card", "relevant_classes"]
