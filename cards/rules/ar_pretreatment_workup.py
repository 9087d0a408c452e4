"""AR-PRETREATMENT-WORKUP — several pre-treatment items missing (merged card).

RULES.md §5 AR-PRETREATMENT-WORKUP, §1.1 (merged work-up card extension), §7 (work-up merge),
§8.2 A12 (decision 12: alert fatigue, one card for one preparation task).
Evidence: the members' sources (AAOMS 2022; Prolia/Xgeva, Reclast and zoledronic acid labels;
FDA Drug Safety Communication, January 2024).

Not a rule evaluated on its own: the engine (:func:`cards.engine.apply_merges`) calls
:func:`combine` after the exclusive pairs (§7 step 2) with the member cards that remain, when at
least ``workup_min_members`` of them fired for one request. The merged card replaces them:
indicator = the highest member indicator; ``extension`` ``urn:bone-safety-cds:members`` = the
member rule IDs in rule-index order, each once; one suggestion per item, each the suggestion its
member card carried, with ``extension`` ``urn:bone-safety-cds:member``; rule IDs appear in card
text only in its Details section. Pure: reads the member cards and the chart's drafts.
"""

from __future__ import annotations

import re
from dataclasses import replace

from cds_service.chart import BISPHOSPHONATE, DENOSUMAB, DraftOrder

from ..builders import override_reasons
from ..model import INDICATORS, Card, Link, Suggestion
from ..registry import CATALOG_ORDER, ORDER_HOOKS, RuleInput, merged_rule
from . import _bp_common as bp
from . import _definitions as defs
from . import _text as tx

RULE_ID = "AR-PRETREATMENT-WORKUP"
TITLE = "Several pre-treatment items missing"
MEMBERS_EXTENSION = "urn:bone-safety-cds:members"
MEMBER_EXTENSION = "urn:bone-safety-cds:member"

#: The member rules (rule-index order) and the item each one stands for (§5 card summary).
ITEMS: dict[str, str] = {
    "DMAB-DENTAL-CLEARANCE": "dental check",
    "DMAB-VITD-NOT-CHECKED": "vitamin D level",
    "DMAB-NO-CA-VITD-SUPPLEMENT": "calcium/vitamin D supplement",
    "DMAB-PREGNANCY-STATUS-UNVERIFIED": "pregnancy test",
    "BP-DENTAL": "dental check",
    "AR-CALCIUM-NOT-CHECKED": "recent calcium",
    "AR-RENAL-FUNCTION-UNKNOWN": "kidney function",
}
MEMBERS: tuple[str, ...] = tuple(r for r in CATALOG_ORDER if r in ITEMS)
#: The item order of the summary (§5: dental, calcium, vitamin D, supplement, kidney, pregnancy).
ITEM_ORDER = ("dental check", "recent calcium", "vitamin D level", "calcium/vitamin D supplement",
              "kidney function", "pregnancy test")
#: Members that fire only at the start of therapy: their presence makes the card say "starting".
INITIATION_ONLY = frozenset({"DMAB-DENTAL-CLEARANCE", "BP-DENTAL", "DMAB-VITD-NOT-CHECKED",
                             "DMAB-PREGNANCY-STATUS-UNVERIFIED"})

_DAILYMED = "https://dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid="
#: Labels of the drafted drug (RULES.md §6.2): key → (source label, url).
LABELS: dict[str, tuple[str, str]] = {
    "prolia": ("FDA label: Prolia (denosumab) 60 mg", _DAILYMED + "49e5afe9-a0c7-40c4-af9f-f287a80c5c88"),
    "xgeva": ("FDA label: Xgeva (denosumab) 120 mg", _DAILYMED + "628f0998-1206-4001-aeee-18133aa9f3bf"),
    "reclast": ("FDA label: Reclast (zoledronic acid) 5 mg/100 mL",
                _DAILYMED + "5a9b3737-9ce6-4a89-b76e-6aab79eba9cf"),
    "zol4": ("FDA label: zoledronic acid injection 4 mg/5 mL (Zometa-type)",
             _DAILYMED + "20cd29cc-cef5-48c4-adfe-6b3dfee0ab61"),
    "ibandronate-iv": ("FDA label: ibandronate sodium injection 3 mg/3 mL",
                       _DAILYMED + "e81f2c5b-bead-48ac-be3e-016cf963d7ed"),
}
#: The evidence each item rests on, in public words (§5: "the evidence of the members").
EVIDENCE: dict[str, str] = {
    "dental check": "AAOMS position paper 2022 (osteonecrosis of the jaw)",
    "kidney function": "FDA Drug Safety Communication, January 2024",
}
#: "… before starting denosumab" at the end of a member's finding: the merged card says it once.
_BEFORE_AGENT = re.compile(r"\s+before\s+(starting\s+)?(IV\s+)?[A-Za-z][A-Za-z0-9 .\-]*$")
_MD_UNSAFE = frozenset("\\`*_#|~")


def _md(text: str) -> str:
    """Our own plain text (a member's summary) made safe for markdown: emphasis and heading
    characters backslash-escaped (§1.2 rule 4; the card model escapes HTML and brackets)."""
    return "".join("\\" + ch if ch in _MD_UNSAFE else ch for ch in " ".join(text.split()))


def finding_of(card: Card) -> str:
    """A member's finding, taken from its summary: the part before the first ": " outside
    parentheses ("No serum calcium in the last 30 days (last: none on record)")."""
    depth = 0
    s = card.summary
    for i, ch in enumerate(s):
        depth += ch == "("
        depth -= ch == ")"
        if ch == ":" and depth == 0 and s[i + 1:i + 2] == " ":
            s = s[:i]
            break
    s = _BEFORE_AGENT.sub("", s).rstrip(" .")
    return s[:1].lower() + s[1:] if s[1:2].islower() else s


def _concerned(inp: RuleInput, rule_id: str) -> list[DraftOrder]:
    """The triggering drafts a member speaks about (its trigger, §3–§5)."""
    triggers = [d for d in inp.triggers if d.drug.drug_class in (DENOSUMAB, BISPHOSPHONATE)]
    if rule_id.startswith("DMAB-"):
        return [d for d in triggers if d.drug.drug_class == DENOSUMAB]
    if rule_id in ("BP-DENTAL",):
        return [d for d in triggers if d.drug.is_iv_bisphosphonate]
    if rule_id == "AR-CALCIUM-NOT-CHECKED":
        return [d for d in triggers if d.drug.drug_class == DENOSUMAB or d.drug.is_iv_bisphosphonate]
    return triggers


def _agent_words(drafts: list[DraftOrder]) -> str:
    words: list[str] = []
    for d in drafts:
        w = "denosumab" if d.drug.drug_class == DENOSUMAB else bp.agent_word(d.drug.agent)
        if w not in words:
            words.append(w)
    return " and ".join(words) or "antiresorptive therapy"


def _label(inp: RuleInput, drafts: list[DraftOrder]) -> tuple[str, str]:
    """The label of the drug drafted (§5 Source): denosumab first (Xgeva when every denosumab
    draft is the 120 mg regimen), else the IV bisphosphonate's."""
    dmab = [d for d in drafts if d.drug.drug_class == DENOSUMAB]
    if dmab:
        return LABELS["xgeva" if all(d.drug.regimen == "120mg" for d in dmab) else "prolia"]
    for d in drafts:
        if d.drug.agent == "zoledronic-acid":
            return LABELS["zol4" if bp.zoledronic_regimen(inp, d)[0] == "4mg" else "reclast"]
        if d.drug.agent == "ibandronate" and d.drug.is_iv_bisphosphonate:
            return LABELS["ibandronate-iv"]
    return LABELS["zol4"]   # pamidronate (label to be configured): the oncology IV class label


def _starting(inp: RuleInput, ids: list[str], drafts: list[DraftOrder]) -> bool:
    """"starting" when an initiation-only member fired, or every drafted class is an initiation (D4)."""
    if INITIATION_ONLY & set(ids):
        return True
    classes = {d.drug.drug_class for d in drafts}
    return bool(classes) and all(defs.is_initiation(inp, c) for c in classes)


def _items(ids: list[str]) -> list[str]:
    present = {ITEMS[r] for r in ids}
    return [i for i in ITEM_ORDER if i in present]


#: Shorter item names for a summary that would not fit with the catalog's names.
SHORT_ITEMS = {"recent calcium": "calcium", "vitamin D level": "vitamin D",
               "calcium/vitamin D supplement": "supplement"}


def _summary(when: str, agent: str, items: list[str]) -> str:
    """§5 summary; too long for the card: shorter item names, then the agent left out, then the
    last items counted."""
    short = "Before starting treatment" if when == "starting" else "Before this dose"
    brief = [SHORT_ITEMS.get(i, i) for i in items]
    return tx.fit(f"Before {when} {agent}, missing: {', '.join(items)}",
                  f"Before {when} {agent}, missing: {', '.join(brief)}",
                  f"{short}, missing: {', '.join(brief)}",
                  f"{short}, missing: {', '.join(brief[:3])} and {len(items) - 3} more")


def _suggestions(by_rule: dict[str, Card]) -> list[Suggestion]:
    """One suggestion per item: each member card's suggestions (a delete of the draft left out,
    the draft is not in question), tagged with the member it answers; the same item asked by two
    members (the two dental rules) once, for the first of them."""
    out: list[Suggestion] = []
    seen: set[tuple[str, str]] = set()
    for rule_id in MEMBERS:
        card = by_rule.get(rule_id)
        if card is None:
            continue
        for s in card.suggestions:
            if s.actions and all(a.type == "delete" for a in s.actions):
                continue
            key = (ITEMS[rule_id], s.label)
            if key in seen:
                continue
            seen.add(key)
            if rule_id == "AR-CALCIUM-NOT-CHECKED" and "AR-RENAL-FUNCTION-UNKNOWN" in by_rule:
                s = _without_creatinine(s)   # the kidney item orders it: not twice
            out.append(replace(s, extension={**s.extension, MEMBER_EXTENSION: rule_id}))
    return out


def _without_creatinine(s: Suggestion) -> Suggestion:
    """The calcium suggestion without its creatinine/eGFR order (LOINC 2160-0)."""
    def is_creatinine(a) -> bool:  # noqa: ANN001 - an Action
        codings = (a.resource.get("code") or {}).get("coding") or []
        return any(c.get("code") == "2160-0" for c in codings)
    kept = [a for a in s.actions if not is_creatinine(a)]
    if not kept or len(kept) == len(s.actions):
        return s
    return replace(s, actions=kept, label=s.label.replace(" + creatinine/eGFR", ""))


@merged_rule(RULE_ID, TITLE, hooks=ORDER_HOOKS, members=MEMBERS)
def combine(inp: RuleInput, member_cards: list[Card]) -> Card | None:
    """The merged work-up card replacing ``member_cards`` (at least two members, §7 step 3)."""
    by_rule: dict[str, Card] = {}
    for c in member_cards:
        by_rule.setdefault(c.rule_id, c)
    ids = [r for r in MEMBERS if r in by_rule]
    if len(ids) < 2:
        return None
    indicator = min((by_rule[r].indicator for r in ids), key=INDICATORS.index)
    drafts: list[DraftOrder] = []
    for r in ids:
        drafts += [d for d in _concerned(inp, r) if d not in drafts]
    agent = _agent_words(drafts)
    starting = _starting(inp, ids, drafts)
    when = "starting" if starting else "this dose of"
    items = _items(ids)
    several = len({d.ref for d in drafts}) > 1
    lines: list[str] = []
    for item in items:
        rules = [r for r in ids if ITEMS[r] == item]
        findings = "; ".join(dict.fromkeys(_md(finding_of(by_rule[r])) for r in rules))
        named = ""
        if several:
            named = " (" + ", ".join(dict.fromkeys(tx.escape_record(d.label)
                                                     for r in rules for d in _concerned(inp, r))) + ")"
        lines.append(f"- {item[:1].upper() + item[1:]}{named}: {findings}")
    source_label, source_url = _label(inp, drafts)
    evidence = "; ".join(dict.fromkeys([source_label] + [EVIDENCE[i] for i in items if i in EVIDENCE]))
    head = (f"**{len(items)} pre-treatment items are missing.** Each guards against a serious harm "
            f"of {agent}.")
    todo = ("**What to do:** complete them before the " + ("first dose" if starting else "dose")
            + " (one suggestion each).")
    main = "\n".join([head, "", *lines, "", todo, "", f"**Evidence:** {evidence}."])
    details = [f"- Rules combined: {', '.join(ids)}",
               "- Ordered: " + "; ".join(tx.escape_record(d.label)
                                          + (f" ({tx.BY_TEXT_NOTE})" if d.drug.by_text else "")
                                          for d in drafts)]
    if len(main) > inp.thresholds.detail_main_max_chars:
        compact = [f"- {i[:1].upper() + i[1:]}" for i in items]
        main = "\n".join([head, "", *compact, "", todo, "", f"**Evidence:** {evidence}."])
        details += lines
    details = details[:8]
    while len("\n".join(details)) > inp.thresholds.detail_details_max_chars and len(details) > 2:
        details.pop()
    summary = _summary(when, agent, items)
    return Card(rule_id=RULE_ID, rule_title=TITLE, summary=summary, indicator=indicator,
                source_label=source_label, source_url=source_url,
                detail=main + "\n\n#### Details\n" + "\n".join(details),
                suggestions=_suggestions(by_rule), selection_behavior="any",
                override_reasons=override_reasons("work-up-in-progress", "result-elsewhere",
                                                  "dental-eval-done-elsewhere", "urgent-treatment-benefit",
                                                  "patient-declined"),
                links=_links(by_rule, ids), extension={MEMBERS_EXTENSION: ids})


def _links(by_rule: dict[str, Card], ids: list[str]) -> list[Link]:
    """At most two guideline links of the members (§6.2); drug labels are ``source.url``."""
    out: list[Link] = []
    for r in ids:
        for link in by_rule[r].links:
            if "dailymed" not in link.url and all(link.url != o.url for o in out):
                out.append(link)
    return out[:2]
