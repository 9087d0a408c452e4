"""How every rule writes things on a card (RULES.md §1 "Summary"/"Detail", D3, D5, §6.2).

One implementation of the small formatting helpers the rule families used to carry each on their
own: names cut to 40 characters, Decimals without exponent, ISO dates, a lab result "as sent",
a condition and a draft for the detail (with D3's "identified by name, not code"), and the label
link of the drafted product. Pure: no I/O, no clock.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Iterable

from cds_service.chart import DENOSUMAB, ConditionFact, DraftOrder, Lab

from ..builders import LINKS
from ..model import Link

#: Seed files of the evidence (RULES.md §9 "Evidence index", shared/seeds/).
SEED_000 = "seed 000_01a4571caa474e4a.txt"
SEED_001 = "seed 001_282e696d69a84463.txt"
SEED_002 = "seed 002_b4619149f75727a9.txt"
SEED_003 = "seed 003_0a5546957735fee5.txt"

#: RULES.md §1 "Summary": names of conditions or drugs are cut to 40 characters.
NAME_MAX = 40
#: Longest summary the card model accepts (``Card``: fewer than 140 characters, §1).
SUMMARY_MAX = 139
#: D3: a text-only match is accepted but the card detail says so.
BY_TEXT_NOTE = "identified by name, not code"


def cut(text: str, limit: int = NAME_MAX) -> str:
    """``text`` on one line (whitespace collapsed), cut to ``limit`` characters; an ellipsis
    marks the cut (§1: names are cut to 40 characters)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def fit(summary: str, *fallbacks: str) -> str:
    """The first of ``summary`` and ``fallbacks`` that fits a card summary (§1: < 140 characters)."""
    for s in (summary, *fallbacks):
        if len(s) <= SUMMARY_MAX:
            return s
    return cut(fallbacks[-1] if fallbacks else summary, SUMMARY_MAX)


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


def iso(d: date | None) -> str:
    """An ISO date (§1), or "date unknown" (D2: a record whose date cannot be read)."""
    return d.isoformat() if d else "date unknown"


def lab_text(lab: Lab) -> str:
    """"<measured value and unit> on <date>" of a result as sent (D5: the card shows the
    measured value and the unit sent)."""
    return f"{lab.describe()} on {lab.date.isoformat()}"


def lab_desc(lab: Lab) -> str:
    """A result as sent, with the eGFR unit written for a reader ("28 mL/min/1.73 m²",
    "<15 mL/min/1.73 m²", "2.05 mmol/L")."""
    return lab.describe().replace("{1.73_m2}", "1.73 m²")


def condition_text(c: ConditionFact) -> str:
    """A condition for the detail: name, status, dates, and D3's "identified by name" when text-only."""
    parts = [c.display or "condition", c.status_text]
    if c.onset:
        parts.append(f"onset {c.onset.isoformat()}")
    if c.recorded:
        parts.append(f"recorded {c.recorded.isoformat()}")
    text = f"{parts[0]} ({', '.join(parts[1:])})"
    if c.by_text:
        text += f" — {BY_TEXT_NOTE}"
    return text


def draft_label(d: DraftOrder) -> str:
    """A draft as a clinician reads it: product name, dose, the denosumab regimen when known
    (D3) and "identified by name, not code" for a text match (D3)."""
    regimen = {"60mg": "60 mg", "120mg": "120 mg"}.get(d.drug.regimen or "")
    label = d.label
    if regimen and regimen.split()[0] not in label:
        label += f" ({regimen} regimen)"
    if d.drug.by_text:
        label += f" — {BY_TEXT_NOTE}"
    return label


def draft_list(drafts: Iterable[DraftOrder]) -> str:
    """The drafts a card concerns, for the detail: every one named (§1 "one card per finding")."""
    return "; ".join(f"**{draft_label(d)}**" for d in drafts)


def label_link(drafts: Iterable[DraftOrder]) -> Link:
    """The label of the drafted product (§1 ``source.label``, §6.2): decided by the first draft's
    product — denosumab: Xgeva when every denosumab draft is the 120 mg regimen, else Prolia;
    zoledronic acid: Zometa for 4 mg, else Reclast; another IV bisphosphonate: Zometa; an oral
    one: Fosamax. No draft: Prolia."""
    drafts = list(drafts)
    for d in drafts:
        if d.drug.drug_class == DENOSUMAB:
            dmab = [x for x in drafts if x.drug.drug_class == DENOSUMAB]
            return LINKS["xgeva-label"] if all(x.drug.regimen == "120mg" for x in dmab) \
                else LINKS["prolia-label"]
        if d.drug.agent == "zoledronic-acid":
            return LINKS["zometa-label"] if d.drug.regimen == "4mg" else LINKS["reclast-label"]
        if d.drug.is_iv_bisphosphonate:
            return LINKS["zometa-label"]
        return LINKS["fosamax-label"]
    return LINKS["prolia-label"]


# ---- record text and unusable results (§1.2 rule 4, D5 "Which result", A39) -----------------

_MD_SPECIAL = frozenset("\\`*_{}[]()#+-.!|~")


def escape_record(text: str) -> str:
    """Text from the patient record made safe for markdown (§1.2 rule 4): one line, cut to 40
    characters, HTML-escaped, then a backslash before each markdown special character."""
    one_line = cut("".join(" " if ord(ch) < 32 or ch == "\x7f" else ch for ch in str(text)))
    html = one_line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in html)


#: The short reason of an unusable result, for summaries (A39: fixed words).
REASON_WORDS = {"unit": "unit not recognised", "no-value": "no value", "not-a-number": "no numeric value"}


def reason_word(lab: Lab) -> str:
    """"unit not recognised", "no value" or "no numeric value" (A39) for an unusable result."""
    return REASON_WORDS.get(lab.unusable or "", "not usable")


def unusable_finding(lab: Lab, analyte: str | None = None) -> str:
    """An unusable result in D5's wording, record text escaped for markdown (A39):
    'eGFR 13 on 2026-11-30: unit not recognised ("mL/s")'."""
    return lab.unusable_text(analyte, escape=escape_record) or lab_text(lab)
