"""How every rule writes things on a card (RULES.md §1.2 card text, D3, D5, §6.2; A29, A30, A33).

One implementation of what every card shares: the detail layout (:func:`layout`: finding, what
to do, evidence, then an optional "Details" list, each part within its limit), the summary
(:func:`summary`: one line, at most 140 characters, product name → class, then cut), record text
escaped at the point of insertion (:func:`escape_record` for markdown, :func:`plain` for the
summary and suggestion labels), the public evidence names (:data:`EVIDENCE`), Decimals without
exponent, ISO dates, a lab result "as sent", a condition and a draft for the detail (with D3's
"identified by name, not code"), and the label of the drafted product (:func:`label_link`).
Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Iterable, Sequence

from cds_service.chart import DENOSUMAB, Chart, ConditionFact, DraftOrder, Lab, display

from ..builders import SOURCES
from ..model import MAX_SUMMARY, Action, Link, Suggestion, safe_markdown

#: §1.2 rule 2/4 (``record_text_max_chars``): names of conditions or drugs are cut to 40 characters.
NAME_MAX = 40
#: Longest summary (§1.2 rule 2, ``summary_max_chars``).
SUMMARY_MAX = MAX_SUMMARY
#: §1.2 rule 3 (``detail_main_max_chars``, ``detail_details_max_chars``): limits of the detail.
DETAIL_MAIN_MAX = 700
DETAIL_DETAILS_MAX = 1500
#: §1.2 rule 3: at most this many bullet lines under "Details".
DETAILS_MAX_BULLETS = 8
DETAILS_HEADING = "#### Details"
#: D3: a text-only match is accepted but the card detail says so.
BY_TEXT_NOTE = "identified by name, not code"

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def partial_history_todo(chart: Chart) -> list[str]:
    """The first "what to do" of a card that dates doses from a medication history that arrived
    only in part (issue 11 §2: partial results are not complete results): the latest dose may be
    among the records not received, so the clinician confirms it before acting. Empty otherwise."""
    if chart.partial_medications():
        return ["Confirm the last dose in the full record first: the medication history "
                "received was incomplete, so a later dose may be missing from it"]
    return []


def one_line(text: object) -> str:
    """``text`` on one line: control characters and line breaks become a space, runs of white
    space one space (§1.2 rule 4)."""
    return " ".join(_CONTROL.sub(" ", str(text)).split())


def cut(text: str, limit: int = NAME_MAX) -> str:
    """``text`` on one line, cut to ``limit`` characters; an ellipsis marks the cut (§1.2 rule 2:
    names are cut to 40 characters)."""
    text = one_line(text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def plain(text: object, limit: int = NAME_MAX) -> str:
    """Record text for a plain-text string (summary, suggestion label, action description): one
    line and cut, never backslash-escaped (§1.2 rule 4)."""
    return cut(str(text), limit)


def summary(text: str, *, product: str | None = None, cls: str | None = None,
            limit: int = SUMMARY_MAX) -> str:
    """A card summary (§1.2 rule 2): one line; if longer than ``limit``, the product name is
    replaced by its class (``product`` → ``cls``), then the text is cut at ``limit`` − 1 characters
    and "…" appended."""
    text = one_line(text)
    if len(text) > limit and product and cls and product in text:
        text = text.replace(product, cls)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def fit(text: str, *fallbacks: str) -> str:
    """The first of ``text`` and ``fallbacks`` that fits a card summary, else the last one cut
    (§1.2 rule 2)."""
    for s in (text, *fallbacks):
        s = one_line(s)
        if len(s) <= SUMMARY_MAX:
            return s
    return summary(fallbacks[-1] if fallbacks else text)


def _cut_markdown(text: str, limit: int) -> str:
    """Markdown cut to ``limit`` characters with "…", never ending inside a backslash escape or
    an HTML entity."""
    if len(text) <= limit:
        return text
    head = text[: max(limit - 1, 0)]
    amp = head.rfind("&")
    if amp != -1 and ";" not in head[amp:]:
        head = head[:amp]
    trailing = len(head) - len(head.rstrip("\\"))
    if trailing % 2:
        head = head[:-1]
    return head.rstrip() + "…"


def _sentence(text: str) -> str:
    """``text`` without a trailing full stop (the layout adds the punctuation)."""
    return text.strip().rstrip(".").rstrip()


def _shorten_why(why: str, limit: int) -> str:
    """The "why" sentence within ``limit`` characters, cut at a clause boundary ("; " or ", ")
    so it still reads as a sentence; "" when no clause of at least 40 characters fits."""
    if len(why) <= limit:
        return why
    head = why[:max(limit - 1, 0)]
    cut_at = max(head.rfind("; "), head.rfind(", "), head.rfind(": "))
    return why[:cut_at].rstrip(" ,;:") + "." if cut_at >= 40 else ""


#: Canonical UCUM units as a reader writes them (the service's own unit strings, not record text).
_UNIT_WORDS = {"mL/min/{1.73_m2}": "mL/min/1.73 m²"}


def _readable(text: str) -> str:
    for unit, words in _UNIT_WORDS.items():
        text = text.replace(unit, words)
    return text


def _capital(text: str) -> str:
    """The first letter in upper case, unless the first word is written with capitals inside
    ("eGFR", "mL")."""
    first = text.split(" ", 1)[0]
    return text[:1].upper() + text[1:] if first[:1].islower() and first.islower() else text


def layout(finding: str, why: str, todo: Sequence[str], evidence: Sequence[str],
           details: Sequence[str] = (), *, items: Sequence[str] = (), t: object | None = None,
           main_max: int = DETAIL_MAIN_MAX, details_max: int = DETAIL_DETAILS_MAX) -> str:
    """The card detail in the catalog's layout (§1.2 rule 3, A30)::

        **{finding}.** {why}

        **What to do:** {todo}; {todo}.

        **Evidence:** {evidence}; {evidence}.

        #### Details
        - {details} (at most 8 bullets)

    ``items`` (the merged work-up card only: one line per missing item with its finding) are
    bullet lines between the finding paragraph and "What to do".
    Every argument is markdown: record text in it must already be escaped (:func:`escape_record`).
    The main part is kept within ``main_max`` characters (the "why" sentence is cut or dropped
    first, then the finding) and the Details within ``details_max`` characters and 8 bullets (the longest
    bullets are cut; bullets beyond the eighth are counted in the last one). ``t`` (the
    Thresholds) supplies ``detail_main_max_chars`` and ``detail_details_max_chars`` when given."""
    if t is not None:
        main_max = getattr(t, "detail_main_max_chars", main_max)
        details_max = getattr(t, "detail_details_max_chars", details_max)
    # the card's final safety net is idempotent: applied here, the limits hold after it too
    finding, why = _capital(safe_markdown(_readable(finding))), safe_markdown(_readable(why))
    todo = [safe_markdown(_readable(x)) for x in todo]
    evidence = [safe_markdown(x) for x in evidence]
    details = [safe_markdown(_readable(x)) for x in details]
    item_lines = [one_line(safe_markdown(_readable(x))) for x in items if x.strip()]
    todo_text = _capital("; ".join(_sentence(x) for x in todo if x.strip()))
    evidence_text = "; ".join(_sentence(e) for e in evidence if e.strip())
    listed = "".join(f"\n- {x}" for x in item_lines)
    tail = (f"\n{listed}" if listed else "") + \
        f"\n\n**What to do:** {todo_text}.\n\n**Evidence:** {evidence_text}."
    finding_text = _sentence(finding)
    why_text = why.strip()

    def main() -> str:
        return f"**{finding_text}.**" + (f" {why_text}" if why_text else "") + tail

    over = len(main()) - main_max
    if over > 0:  # the "why" sentence gives way first: the finding is what the card is about
        why_text = _shorten_why(why_text, len(why_text) - over)
        over = len(main()) - main_max
    if over > 0:
        keep = max(len(finding_text) - over, 60)
        finding_text = _sentence(_cut_markdown(finding_text, keep)) if keep < len(finding_text) else finding_text
        over = len(main()) - main_max
    text = main()
    if over > 0:  # the fixed text alone is too long: a defect the text tests catch; still bounded
        text = _cut_markdown(text, main_max)
    bullets = [b.strip() for b in details if b and b.strip()]
    if not bullets:
        return text
    return text + "\n\n" + details_section(bullets, details_max=details_max)


def main_length(finding: str, why: str, todo: Sequence[str], evidence: Sequence[str], *,
                items: Sequence[str] = ()) -> int:
    """Length of the main part :func:`layout` would write before any cutting (a caller can
    choose a shorter form when it would not fit)."""
    return len(layout(finding, why, todo, evidence, items=items, main_max=10**9))


def details_section(bullets: Sequence[str], *, details_max: int = DETAIL_DETAILS_MAX) -> str:
    """``#### Details`` and at most 8 bullet lines, at most ``details_max`` characters in all
    (§1.2 rule 3)."""
    items = [one_line(b) for b in bullets]
    if len(items) > DETAILS_MAX_BULLETS:
        extra = len(items) - DETAILS_MAX_BULLETS + 1
        items = items[: DETAILS_MAX_BULLETS - 1] + [f"… and {extra} more not shown"]

    def render() -> str:
        return DETAILS_HEADING + "".join(f"\n- {b}" for b in items)

    while len(render()) > details_max:
        over = len(render()) - details_max
        i = max(range(len(items)), key=lambda k: len(items[k]))
        if len(items[i]) <= 40:
            items.pop()
            if not items:
                return DETAILS_HEADING
            continue
        items[i] = _cut_markdown(items[i], max(len(items[i]) - over, 40))
    return render()


def main_part(detail: str) -> str:
    """The main part of a detail: everything before the Details heading (§1.2 rule 3)."""
    return detail.split("\n\n" + DETAILS_HEADING, 1)[0]


def details_part(detail: str) -> str:
    """The Details section of a detail ("" when there is none)."""
    head, sep, rest = detail.partition("\n\n" + DETAILS_HEADING)
    return DETAILS_HEADING + rest if sep else ""


#: §1.2 rule 1: internal references that no clinician-facing string may contain (the words
#: case-insensitive; identifiers and FHIR references case-sensitive). The rule-ID pattern is
#: allowed only in the Details of the merged work-up card.
INTERNAL_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?i)\bseeds?\b"), re.compile(r"\b\d{3}_[0-9a-f]{16}\b"), re.compile(r"RULES\.md"),
    re.compile(r"codes\.json"), re.compile("§"), re.compile(r"\(D(10|[1-9])\)"),
    re.compile(r"\b[a-z][a-z0-9]*(_[a-z0-9]+)+\b"),
    re.compile(r"\b(Patient|Medication(Request|Administration|Statement|Dispense)?|Observation|"
               r"Condition|Procedure|ServiceRequest|Encounter)/[A-Za-z0-9.\-]+"),
    re.compile(r"\burn:"),
)
RULE_ID_PATTERN = re.compile(r"\b(DMAB|BP|AR)-[A-Z0-9]+(-[A-Z0-9]+)*\b")


def internal_references(text: str, *, allow_rule_ids: bool = False) -> list[str]:
    """The §1.2 rule-1 matches in ``text`` (empty: clean)."""
    found = [m.group(0) for p in INTERNAL_PATTERNS for m in p.finditer(text)]
    if not allow_rule_ids:
        found += [m.group(0) for m in RULE_ID_PATTERN.finditer(text)]
    return found


#: Public evidence as cards name it (§1.2 rule 1: the label with brand and section, the guideline
#: or the paper; §9 evidence index).
EVIDENCE: dict[str, str] = {
    "prolia-onj": "Prolia label, Warnings (osteonecrosis of the jaw: oral examination and "
                  "preventive dentistry before treatment)",
    "xgeva-onj": "Xgeva label, Warnings (osteonecrosis of the jaw)",
    "prolia-xgeva-onj": "Prolia and Xgeva labels, Warnings (osteonecrosis of the jaw: oral "
                        "examination and preventive dentistry before treatment)",
    "aaoms": "AAOMS position paper on MRONJ (Ruggiero et al., J Oral Maxillofac Surg 2022)",
    "prolia-stop": "Prolia label, Warnings (multiple vertebral fractures after discontinuation) "
                   "and Dosage (missed dose)",
    "ects": "ECTS position statement (Tsourdi et al., J Clin Endocrinol Metab 2021)",
    "endo": "Endocrine Society osteoporosis guideline (Eastell et al., J Clin Endocrinol Metab "
            "2019; 2020 update)",
    "prolia-dosing": "Prolia label, Dosage and Administration (60 mg every 6 months)",
    "xgeva-dosing": "Xgeva label, Dosage and Administration (120 mg every 4 weeks; loading "
                    "doses on days 8 and 15)",
    "prolia-xgeva-hypocalcemia": "Prolia and Xgeva labels, Contraindications and Warnings "
                                 "(hypocalcemia: correct before starting)",
    "prolia-boxed": "Prolia label, Boxed Warning and Warnings (severe hypocalcemia in advanced "
                    "kidney disease)",
    "fda-dsc": "FDA Drug Safety Communication, January 2024",
    "prolia-predisposed": "Prolia label, Warnings (hypocalcemia: monitor calcium in predisposed "
                          "patients, such as after thyroid or parathyroid surgery or with "
                          "malabsorption)",
    "xgeva-renal": "Xgeva label, Warnings (hypocalcemia: creatinine clearance below 30 mL/min "
                   "or dialysis)",
    "prolia-supplement": "Prolia label, Dosage and Administration (all patients should receive "
                         "calcium and vitamin D)",
    "prolia-pregnancy": "Prolia label, Contraindications (pregnancy) and Use in Specific "
                        "Populations (pregnancy, females of reproductive potential)",
    "prolia-pediatric": "Prolia label, Use in Specific Populations (pediatric use: "
                        "hypercalcemia in osteogenesis imperfecta)",
    "xgeva-indications": "Xgeva label, Indications (giant cell tumor of bone in skeletally "
                         "mature adolescents)",
    "prolia-infection": "Prolia label, Warnings (serious infections)",
    "prolia-xgeva-indications": "Prolia and Xgeva labels, Indications and Dosage",
    "prolia-calcimimetic": "Prolia label, Warnings (hypocalcemia) and Drug Interactions "
                           "(calcium-lowering drugs)",
    "bp-renal": "the agent's FDA label (Reclast: contraindicated below creatinine clearance "
                "35 mL/min; Fosamax: not recommended below 35; risedronate, ibandronate and "
                "zoledronic acid 4 mg: not recommended below 30)",
    "zol4-dose": "zoledronic acid 4 mg label, Dosage and Administration (dose reduction by "
                 "creatinine clearance)",
    "bp-hypocalcemia": "the agent's FDA label, Contraindications (hypocalcemia)",
    "asbmr": "ASBMR task force (Adler et al., J Bone Miner Res 2016)",
    "bp-holiday": "bisphosphonate labels (consider stopping after 3 to 5 years in patients at "
                  "low risk)",
    "zol-dental": "zoledronic acid labels, Warnings (dental examination with preventive "
                  "dentistry before treatment)",
    "bp-duplicate": "Reclast and zoledronic acid 4 mg labels (same active ingredient; "
                    "once-yearly dosing)",
    "prolia-calcium": "Prolia label, Warnings (calcium before each dose if predisposed)",
    "reclast-calcium": "Reclast label, Warnings (treat hypocalcemia first)",
    "reclast-renal": "Reclast label, Dosage (creatinine clearance before each dose)",
    "labels-onj": "Prolia, Xgeva and bisphosphonate labels, Warnings (osteonecrosis of the jaw)",
    "labels-aff": "bisphosphonate and denosumab labels, Warnings (atypical femoral fractures)",
    "xgeva-zol-dental": "Xgeva and zoledronic acid labels, Warnings (osteonecrosis of the jaw "
                        "after invasive dental procedures)",
}


def fmt(value: Decimal | None) -> str:
    """A Decimal as shown on a card: no exponent, no trailing zeros ("8.5", "60"); "?" for None."""
    if value is None:
        return "?"
    return f"{value.normalize():f}"


def fmt_rounded(value: Decimal | None) -> str:
    """A Decimal with the precision it carries, no exponent: a value rounded as D5 states keeps
    its decimals ("10.0 ng/mL", "8.50"); "?" for None. The DMAB-* cards show values this way."""
    if value is None:
        return "?"
    return f"{value:f}"


def window_words(days: int) -> str:
    """A look-back window as a card names it: "12 months" for 365 days, else "N days"."""
    return "12 months" if days == 365 else f"{days} days"


def vitamin_d_value(value: Decimal | None, *thresholds: Decimal, comparator: str | None = None) -> str:
    """A 25-OH vitamin D in ng/mL as a card shows it (§1.2 rule 6, A40): an integer, one decimal
    where the integer would reach or cross one of the ``thresholds`` the card states (19.6 against
    20), "?" without a value. The number only, without its unit."""
    if value is None:
        return "?"
    shown = display.vitamin_d(value, unit="", comparator=comparator).strip()
    for limit in thresholds:
        near = display.vitamin_d(value, unit="", threshold=limit, comparator=comparator).strip()
        if near != shown:
            return near
    return shown


def iso(d: date | None) -> str:
    """An ISO date (§1), or "date unknown" (D2: a record whose date cannot be read)."""
    return d.isoformat() if d else "date unknown"


def lab_shown(lab: Lab) -> str:
    """A result as sent, for markdown: the value rounded for display (§1.2 rule 6, A40) and the
    unit as sent escaped (record text, §1.2 rule 4); an eGFR's unit written for a reader
    ("28 mL/min/1.73 m²", "0.45 mg/dL", "2.11 mmol/L")."""
    text = display.lab_measured(lab)
    unit = lab.measured_unit
    if unit and text.endswith(" " + unit):
        text = text[: -len(unit)] + escape_record(unit)
    return text


def lab_text(lab: Lab) -> str:
    """"<measured value and unit> on <date>" of a result as sent (D5: the card shows the
    measured value and the unit sent; rounded for display, A40)."""
    return f"{lab_shown(lab)} on {lab.date.isoformat()}"


def lab_desc(lab: Lab) -> str:
    """A result as sent (:func:`lab_shown`)."""
    return lab_shown(lab)


def condition_text(c: ConditionFact) -> str:
    """A condition for the detail (markdown): name (record text, escaped), status, dates, and D3's
    "identified by name" when text-only."""
    parts = [escape_record(c.display) if c.display else "condition", c.status_text]
    if c.onset:
        parts.append(f"onset {c.onset.isoformat()}")
    if c.recorded:
        parts.append(f"recorded {c.recorded.isoformat()}")
    text = f"{parts[0]} ({', '.join(parts[1:])})"
    if c.by_text:
        text += f" — {BY_TEXT_NOTE}"
    return text


def draft_label(d: DraftOrder) -> str:
    """A draft as a clinician reads it, for the detail (markdown): product name and dose (record
    text, escaped), the denosumab regimen when known (D3) and "identified by name, not code" for
    a text match (D3)."""
    regimen = {"60mg": "60 mg", "120mg": "120 mg"}.get(d.drug.regimen or "")
    label = escape_record(d.label)
    if regimen and regimen.split()[0] not in d.label:
        label += f" ({regimen} regimen)"
    if d.drug.by_text:
        label += f" — {BY_TEXT_NOTE}"
    return label


def draft_name(d: DraftOrder) -> str:
    """A draft's product name and dose for plain text (summary, suggestion label): one line, cut."""
    return plain(d.label)


def draft_list(drafts: Iterable[DraftOrder]) -> str:
    """The drafts a card concerns, for the detail: every one named (§1 "one card per finding")."""
    return "; ".join(draft_label(d) for d in drafts)


def remove_draft(d: DraftOrder) -> "Suggestion":
    """The suggestion "Remove the draft {drug} order": a ``delete`` action of the draft (§6.1; the
    id only in ``resourceId``)."""
    text = f"Remove the draft {draft_name(d)} order"
    return Suggestion(text, [Action(text, type="delete", resource_id=d.ref)])


def remove_drafts(drafts: Iterable[DraftOrder]) -> list["Suggestion"]:
    """One removal suggestion per draft (§6.1)."""
    return [remove_draft(d) for d in drafts]


#: §6.2 label key of a bisphosphonate agent (oral / IV where the labels differ).
_BP_LABELS = {"alendronate": "LBL-FOSAMAX", "risedronate": "LBL-RISEDRONATE",
              "pamidronate": "LBL-PAMIDRONATE", "etidronate": "LBL-ETIDRONATE"}


def label_key(drafts: Iterable[DraftOrder]) -> str:
    """The §6.2 label key of the drafted product, decided by the first draft — denosumab:
    Xgeva when every denosumab draft is the 120 mg regimen, else Prolia; zoledronic acid: the
    4 mg label for 4 mg, else Reclast; ibandronate: the IV or the oral label by route;
    alendronate, risedronate, pamidronate, etidronate: their own label. No draft: Prolia."""
    drafts = list(drafts)
    for d in drafts:
        if d.drug.drug_class == DENOSUMAB:
            dmab = [x for x in drafts if x.drug.drug_class == DENOSUMAB]
            return "LBL-XGEVA" if all(x.drug.regimen == "120mg" for x in dmab) else "LBL-PROLIA"
        return agent_label_key(d.drug.agent, d.drug.regimen, d.drug.route)
    return "LBL-PROLIA"


def agent_label_key(agent: str, regimen: str | None = None, route: str | None = None) -> str:
    """The §6.2 label key of one antiresorptive agent (see :func:`label_key`)."""
    if agent == "denosumab":
        return "LBL-XGEVA" if regimen == "120mg" else "LBL-PROLIA"
    if agent == "zoledronic-acid":
        return "LBL-ZOL4" if regimen == "4mg" else "LBL-RECLAST"
    if agent == "ibandronate":
        return "LBL-IBANDRONATE-IV" if route == "iv" else "LBL-IBANDRONATE-ORAL"
    return _BP_LABELS.get(agent, "LBL-FOSAMAX")


def label_link(drafts: Iterable[DraftOrder]) -> Link:
    """The label of the drafted product (§1.1 ``source.label`` and ``source.url``, §6.2)."""
    return SOURCES[label_key(drafts)]


def source(key_or_link: str | Link) -> dict[str, str]:
    """``source_label`` and ``source_url`` keyword arguments of a Card for a §6.2 key or link
    (A31: every card links the label or guideline it names)."""
    link = SOURCES[key_or_link] if isinstance(key_or_link, str) else key_or_link
    return {"source_label": link.label, "source_url": link.url}


# ---- record text and unusable results (§1.2 rule 4, D5 "Which result", A39) -----------------

_MD_SPECIAL = frozenset("\\`*_{}[]()#+-.!|~")


def escape_record(text: object, limit: int = NAME_MAX) -> str:
    """Text from the patient record made safe for markdown (§1.2 rule 4, A33): one line, cut to
    40 characters (with "…"), HTML-escaped (``&`` ``<`` ``>``), then a backslash before each
    markdown special character. It can never form a link, an image, HTML, emphasis or a heading."""
    html = cut(str(text), limit).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in html)


md = escape_record


#: The short reason of an unusable result, for summaries (A39: fixed words).
REASON_WORDS = {"unit": "unit not recognised", "no-value": "no value", "not-a-number": "no numeric value"}


def reason_word(lab: Lab) -> str:
    """"unit not recognised", "no value" or "no numeric value" (A39) for an unusable result."""
    return REASON_WORDS.get(lab.unusable or "", "not usable")


def unusable_finding(lab: Lab, analyte: str | None = None) -> str:
    """An unusable result in D5's wording, record text escaped for markdown (A39):
    'eGFR 13 on 2026-11-30: unit not recognised ("mL/s")'."""
    return lab.unusable_text(analyte, escape=escape_record) or lab_text(lab)
