"""Card text and structure of catalog version 2 (RULES.md §1.1, §1.2, §6.1–§6.3; A29–A34).

Every fixture (fixtures/**.json except negative/) is answered by the service, as
tests/test_fixtures.py does, and every rule card must: contain no internal reference (§1.2 rule 1;
rule IDs only in the Details of the merged work-up card), keep the detail layout and limits (main
part ≤ 700 characters in the finding / what to do / evidence layout, Details ≤ 1,500 characters
and ≤ 8 bullets), have a summary ≤ 140 characters, at least one suggestion, a ``source.url``, and
an HL7 non-adherence reason on every override reason whose code maps to one (at most 5).
Also unit tests of the layout helper and of record-text escaping at their limits.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from cards.builders import HL7_REASON_EXTENSION, OVERRIDE_DISPLAY, _override_value_set, override_reasons
from cards.model import safe_markdown
from cards.registry import REGISTRY, load_rules
from cards.rules import _text as tx
from cds_service.app import create_app
from cds_service.data_card import DATA_CARD_ID
from cds_service.config import Settings
from hooks.services import services

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SCENARIO = "org.bone-safety-cds.scenario"
WORKUP = "AR-PRETREATMENT-WORKUP"
LAYOUT = re.compile(r"\A\*\*[^\n]+?\.\*\*( [^\n]*)?\n\n\*\*What to do:\*\* [^\n]+\.\n\n\*\*Evidence:\*\* [^\n]+\.\Z")
#: The merged work-up card has one line per missing item between the finding and what to do.
LAYOUT_WORKUP = re.compile(r"\A\*\*[^\n]+?\.\*\*( [^\n]*)?\n\n(- [^\n]+\n)+\n\*\*What to do:\*\* [^\n]+\.\n\n"
                           r"\*\*Evidence:\*\* [^\n]+\.\Z")
HL7_SYSTEM = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"


def _fixtures() -> list[Path]:
    return sorted(p for p in FIXTURES.rglob("*.json") if "negative" not in p.relative_to(FIXTURES).parts)


def _cards(path: Path, tmp_path: Path) -> list[dict]:
    body = json.loads(path.read_text())
    scenario = body.get("extension", {}).get(SCENARIO, {})
    now = datetime.fromisoformat(scenario["now"].replace("Z", "+00:00"))
    app = create_app(Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path)}), clock=lambda: now)
    service = next(s.id for s in services() if s.hook == body["hook"])
    response = app.test_client().post(f"/cds-services/{service}", json=body)
    assert response.status_code == 200, response.get_json()
    load_rules()
    return [c for c in response.get_json()["cards"] if c["source"]["topic"]["code"] in {*REGISTRY, DATA_CARD_ID}]


#: Value-set names of codes.json with a hyphen (§1.2 rule 1: no value-set name in card text;
#: names without a hyphen, such as "osteoporosis", are ordinary words).
VALUE_SET_NAMES = re.compile(r"(?<![\w-])(" + "|".join(sorted(
    (re.escape(n) for n in json.loads((Path(__file__).resolve().parent.parent / "cds_service" / "data"
                                       / "codes.json").read_text()) if "-" in n), key=len, reverse=True))
    + r")(?![\w-])")


def card_text_problems(card: dict) -> list[str]:
    """Every §1.1/§1.2/§6 defect of one rendered card (empty: none)."""
    rule = card["source"]["topic"]["code"]
    problems: list[str] = []
    detail = card.get("detail", "")
    main, details = tx.main_part(detail), tx.details_part(detail)
    strings = {"summary": card["summary"], "detail main part": main, "source.label": card["source"]["label"],
               "source.topic.display": card["source"]["topic"].get("display", "")}
    for i, s in enumerate(card.get("suggestions", [])):
        strings[f"suggestion {i} label"] = s["label"]
        for j, a in enumerate(s.get("actions", [])):
            strings[f"suggestion {i} action {j}"] = a.get("description", "")
    for i, link in enumerate(card.get("links", [])):
        strings[f"link {i} label"] = link["label"]
    for i, r in enumerate(card.get("overrideReasons", [])):
        strings[f"override {i} display"] = r.get("display", "")
    for name, text in [*strings.items(), ("Details", details)]:
        names = VALUE_SET_NAMES.findall(text)
        if names:
            problems.append(f"{name}: value-set name {names}")
    for name, text in strings.items():
        found = tx.internal_references(text)
        if found:
            problems.append(f"{name}: internal reference {found}")
    found = tx.internal_references(details, allow_rule_ids=rule == WORKUP)
    if found:
        problems.append(f"Details: internal reference {found}")
    if len(card["summary"]) > 140 or "\n" in card["summary"]:
        problems.append(f"summary of {len(card['summary'])} characters or not one line")
    if len(main) > 700:
        problems.append(f"main part of {len(main)} characters")
    if not (LAYOUT_WORKUP if rule == WORKUP else LAYOUT).match(main):
        problems.append(f"main part not in the layout: {main[:120]!r}")
    if details:
        bullets = details.split("\n")[1:]
        if len(details) > 1500 or len(bullets) > 8 or not all(b.startswith("- ") for b in bullets):
            problems.append(f"Details of {len(details)} characters / {len(bullets)} lines")
    if not card.get("suggestions"):
        problems.append("no suggestion")
    links = card.get("links", [])
    if len(links) > 2 or any(not l["url"].startswith("https://") or "search.cfm" in l["url"] for l in links):
        problems.append(f"links {[l['url'] for l in links]}")   # §6.2: at most two, absolute
    url = card["source"].get("url", "")
    if not url.startswith("https://") or "search.cfm" in url or "query=" in url:
        problems.append(f"source.url {url!r}")
    reasons = card.get("overrideReasons", [])
    if len(reasons) > 5:
        problems.append(f"{len(reasons)} override reasons")
    table = _override_value_set()
    for r in reasons:
        display, hl7 = table.get(r["code"], (None, None))
        if display is None or r.get("display") != display:
            problems.append(f"override {r['code']}: unknown code or display not from the value set")
        elif hl7 and r.get("extension", {}).get(HL7_REASON_EXTENSION, {}).get("code") != hl7["code"]:
            problems.append(f"override {r['code']}: HL7 non-adherence reason missing")
    return problems


@pytest.mark.parametrize("path", _fixtures(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_fixture_card_follows_the_card_text_rules(path: Path, tmp_path: Path) -> None:
    problems = {c["source"]["topic"]["code"]: card_text_problems(c) for c in _cards(path, tmp_path)}
    assert not {k: v for k, v in problems.items() if v}, problems


# ---- the layout helper -------------------------------------------------------------------------

def test_layout_is_exactly_the_catalog_layout() -> None:
    text = tx.layout("Calcium 8.1 mg/dL on 2026-11-20", "Denosumab lowers calcium further.",
                     ["Correct calcium first.", "check magnesium"], ["Prolia label", "AAOMS 2022."],
                     ["calcium: laboratory result, 2026-11-20", "window: 30 days"])
    assert text == ("**Calcium 8.1 mg/dL on 2026-11-20.** Denosumab lowers calcium further.\n\n"
                    "**What to do:** Correct calcium first; check magnesium.\n\n"
                    "**Evidence:** Prolia label; AAOMS 2022.\n\n"
                    "#### Details\n- calcium: laboratory result, 2026-11-20\n- window: 30 days")
    assert LAYOUT.match(tx.main_part(text)) and tx.details_part(text).startswith("#### Details")


def test_layout_with_item_lines_for_the_work_up_card() -> None:
    text = tx.layout("2 pre-treatment items missing", "Each guards against a harm.",
                     ["Complete them before the first dose"], ["Prolia label"],
                     ["Rules combined: A, B"], items=["Dental check: none", "Recent calcium: none"])
    assert tx.main_part(text) == ("**2 pre-treatment items missing.** Each guards against a harm.\n\n"
                                  "- Dental check: none\n- Recent calcium: none\n\n"
                                  "**What to do:** Complete them before the first dose.\n\n"
                                  "**Evidence:** Prolia label.")
    assert LAYOUT_WORKUP.match(tx.main_part(text)) and not LAYOUT.match(tx.main_part(text))


def test_layout_capitalises_and_writes_units_for_a_reader() -> None:
    text = tx.layout("eGFR 24 mL/min/{1.73_m2} on 2026-10-30", "", ["plan it later", "b"], ["ev"])
    assert text.startswith("**eGFR 24 mL/min/1.73 m² on 2026-10-30.**")   # eGFR keeps its case
    assert "mL/min/1.73 m²" in text and "{1.73_m2}" not in text and "**What to do:** Plan it later; b." in text


def test_layout_without_details_has_no_heading() -> None:
    text = tx.layout("None on record in the last 30 days", "", ["Order calcium"], ["Prolia label"])
    assert "Details" not in text and text.startswith("**None on record in the last 30 days.**\n\n")


@pytest.mark.parametrize("extra", [0, 1, 400])
def test_main_part_never_exceeds_700(extra: int) -> None:
    fixed = tx.layout("F", "W", ["do"], ["ev"])
    finding = "x" * (700 - len(fixed) + 1 + extra)   # extra = 0: exactly 700
    text = tx.layout(finding, "W", ["do"], ["ev"])
    assert len(text) <= 700
    if extra == 0:
        assert len(text) == 700 and "…" not in text
    else:
        assert LAYOUT.match(text) and ("W" not in text.split("**What to do")[0] or "…" in text)


def test_long_why_is_cut_before_the_finding() -> None:
    text = tx.layout("Finding", "why, " * 300, ["do"], ["ev"])
    assert len(text) <= 700 and text.startswith("**Finding.** why") and text.endswith("**Evidence:** ev.")
    assert text.split("\n")[0].endswith("why.")            # cut at a clause boundary, a full stop
    no_clause = tx.layout("Finding", "w" * 900, ["do"], ["ev"])
    assert no_clause.startswith("**Finding.**\n\n")        # no clause fits: the sentence is left out
    long = tx.layout("f" * 690, "why", ["do"], ["ev"])
    assert len(long) <= 700 and "why" not in long and "…" in long


def test_a_cut_never_ends_inside_an_escape() -> None:
    finding = tx.escape_record("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.") * 30
    text = tx.layout(finding, "W", ["do"], ["ev"])
    first = text.split(".**", 1)[0]
    assert len(text) <= 700 and not re.search(r"(?<!\\)(\\\\)*\\…", first)


@pytest.mark.parametrize("n", [7, 8, 9, 20])
def test_details_at_most_8_bullets(n: int) -> None:
    text = tx.layout("F", "W", ["do"], ["ev"], [f"item {i}" for i in range(n)])
    bullets = tx.details_part(text).split("\n")[1:]
    assert len(bullets) == min(n, 8)
    if n > 8:
        assert bullets[-1] == f"- … and {n - 7} more not shown"


def test_details_at_most_1500_characters() -> None:
    exact = tx.details_section(["y" * (1500 - len("#### Details\n- "))])
    assert len(exact) == 1500 and "…" not in exact
    longer = tx.details_section(["y" * 1490, "z" * 400, "short"])
    assert len(longer) <= 1500 and "- short" in longer


# ---- summaries ---------------------------------------------------------------------------------

def test_summary_at_140_and_fallbacks() -> None:
    assert tx.summary("a" * 140) == "a" * 140
    assert tx.summary("a" * 141) == "a" * 139 + "…"
    long = "Jubbonti (denosumab-bbdz) 60 mg/mL prefilled syringe " + "b" * 90
    assert tx.summary(long, product="Jubbonti (denosumab-bbdz) 60 mg/mL prefilled syringe",
                      cls="denosumab") == "denosumab " + "b" * 90
    assert len(tx.summary("x" * 100 + "\n" + "y" * 100)) == 140
    assert "\n" not in tx.summary("one\ntwo")


# ---- record text -------------------------------------------------------------------------------

def test_record_text_is_one_line_cut_html_and_markdown_escaped() -> None:
    assert tx.escape_record("[Renew](https://evil.example)") == r"\[Renew\]\(https://evil\.example\)"
    assert tx.escape_record("<img src=x>") == "&lt;img src=x&gt;"
    assert tx.escape_record("a & b") == "a &amp; b"
    assert tx.escape_record("# heading\n**bold**\x00_x_") == r"\# heading \*\*bold\*\* \_x\_"
    for ch in "\\`*_{}[]()#+-.!|~":
        assert tx.escape_record(ch) == "\\" + ch
    assert tx.escape_record("a" * 40) == "a" * 40
    assert tx.escape_record("a" * 41) == "a" * 39 + "…"


def test_plain_record_text_for_summaries_is_not_escaped() -> None:
    assert tx.plain("Osteonecrosis (jaw)\n[x]") == "Osteonecrosis (jaw) [x]"
    assert tx.plain("a" * 41) == "a" * 39 + "…"


def test_safety_net_does_not_double_escape() -> None:
    escaped = tx.escape_record("[x](http://a) & <b> www.e.com")
    once = safe_markdown("**F.** " + escaped + " [raw](https://evil) <i> & www.evil.com")
    assert safe_markdown(once) == once
    assert r"\[x\]" in once and "\\\\[" not in once and "&amp;amp;" not in once
    assert r"\[raw\]" in once and "&lt;i&gt;" in once and "://" not in once and "www.evil" not in once


# ---- override reasons --------------------------------------------------------------------------

def test_override_reasons_carry_the_hl7_code_and_codes_json_display() -> None:
    reasons = [r.to_json() for r in override_reasons("dental-eval-done-elsewhere", "patient-declined")]
    assert reasons[0]["display"] == OVERRIDE_DISPLAY["dental-eval-done-elsewhere"]
    hl7 = reasons[0]["extension"][HL7_REASON_EXTENSION]
    assert hl7["system"] == HL7_SYSTEM and hl7["code"] == "action-completed" and hl7["display"]
    assert reasons[1]["extension"][HL7_REASON_EXTENSION]["code"] == "patient-refuses"


def test_at_most_five_override_reasons_most_likely_first() -> None:
    codes = ["dose-given-elsewhere", "transition-planned", "specialist-decision", "patient-declined",
             "end-of-life-care", "treating-hypocalcemia"]
    assert [r.code for r in override_reasons(*codes)] == codes[:5]


def test_every_override_code_has_a_display_and_a_mapping() -> None:
    table = _override_value_set()
    assert len(table) >= 59 and all(display and hl7 for display, hl7 in table.values())


# ---- record text through the rules (A33) ------------------------------------------------------

EVIL = "[Renew order](https://evil.example/x) <img src=x> **# now**"


def test_condition_text_is_escaped_in_the_detail_and_plain_in_the_summary() -> None:
    from tests.factory import condition, draft, patient
    from tests.rules._helpers import ago, run
    card = run("DMAB-ACTIVE-INFECTION", [patient(), condition("68226007", text=EVIL, onset=ago(3))],
               drafts=[draft()])
    assert card is not None
    assert card["summary"].startswith("Active infection on record ([Renew order](https://evil")
    assert "\\" not in card["summary"] and len(card["summary"]) <= 140   # plain text, one line, cut
    detail = card["detail"]
    assert r"\[Renew order\]\(https:\/\/evil\.example" in detail      # never a link
    assert "<" not in detail and "&lt;i" in detail and "](" not in detail
    assert card_text_problems(card) == []


def test_drug_text_is_escaped_and_cut_in_the_detail() -> None:
    from tests.factory import condition, draft, patient
    from tests.rules._helpers import ago, run
    name = "Prolia 60 mg [click](javascript:alert(1)) " + "x" * 40
    card = run("DMAB-ACTIVE-INFECTION", [patient(), condition("68226007", text="Cellulitis", onset=ago(3))],
               drafts=[draft(None, text=name)])
    assert card is not None
    assert r"Prolia 60 mg \[click\]\(javascript:alert\(1\)" in card["detail"] and "](" not in card["detail"]
    label = card["suggestions"][0]["label"]
    assert label.startswith("Remove the draft Prolia 60 mg [click]") and "\\" not in label
    assert len(label) <= len("Remove the draft  order") + 40
    assert card_text_problems(card) == []


def test_layout_limits_come_from_the_thresholds_and_hold_after_the_safety_net() -> None:
    from dataclasses import replace
    from cards.thresholds import DEFAULT_THRESHOLDS
    t = replace(DEFAULT_THRESHOLDS, detail_main_max_chars=300, detail_details_max_chars=200)
    text = tx.layout("eGFR < 30 " * 40, "Why < this.", ["do < that"], ["label: CrCl < 35"],
                     ["x < y " * 60, "second"], t=t)
    main, details = tx.main_part(text), tx.details_part(text)
    assert len(main) <= 300 and len(details) <= 200
    assert safe_markdown(text) == text        # the card's safety net changes nothing more


def test_main_length_is_the_uncut_length() -> None:
    assert tx.main_length("F", "W", ["do"], ["ev"]) == len(tx.layout("F", "W", ["do"], ["ev"]))
    assert tx.main_length("f" * 800, "W", ["do"], ["ev"]) > 700 >= len(tx.layout("f" * 800, "W", ["do"], ["ev"]))


@pytest.mark.parametrize("value, shown", [("17.0", "17"), ("19.4", "19"), ("19.6", "19.6"), ("20.0", "20"),
                                          ("11.6", "11.6"), ("12.4", "12"), ("8", "8")])
def test_vitamin_d_shown_as_an_integer_except_next_to_a_cut_off(value: str, shown: str) -> None:
    """§1.2 rule 6 (A40): 19.5–19.9 would read "20" against the 20 ng/mL cut-off, 11.5–11.9 "12"."""
    from decimal import Decimal
    assert tx.vitamin_d_value(Decimal(value), Decimal(20), Decimal(12)) == shown
    assert tx.vitamin_d_value(Decimal(8), Decimal(20), comparator="<") == "<8"


def test_bp_hypocalcemia_summary_keeps_the_decimal() -> None:
    """§1.2 rule 6 (A40): "8.0 mg/dL", never "8 mg/dL"."""
    from tests.factory import CALCIUM_SERUM, draft, observation, patient
    from tests.rules._helpers import ago, run
    card = run("BP-HYPOCALCEMIA", [patient(), observation(CALCIUM_SERUM, 8.0, "mg/dL", ago(3))],
               drafts=[draft("904396")])   # alendronate 70 mg
    assert card is not None and card["summary"].startswith("Calcium 8.0 mg/dL on ")


def test_lab_text_is_rounded_for_display_and_the_sent_unit_escaped() -> None:
    from datetime import date
    from decimal import Decimal
    from cds_service.chart import Lab
    creat = Lab("creatinine", "2160-0", date(2026, 11, 20), "final", Decimal("0.45"), "mg/dL",
                Decimal("0.4522232972528771"), "mg/dL")
    assert tx.lab_text(creat) == "0.45 mg/dL on 2026-11-20"
    odd = Lab("calcium-serum", "17861-6", date(2026, 11, 20), "final", None, None,
              Decimal("9.44"), "[mg]_dL*")
    assert tx.lab_shown(odd).startswith("9.4 ") and tx.lab_shown(odd).endswith(r"\[mg\]\_dL\*")


@pytest.mark.parametrize("hook", ["order-sign", "patient-view"])
def test_the_data_card_follows_the_card_text_rules_too(hook: str, tmp_path: Path) -> None:
    """§1.1 "every card": the data-availability card has the layout, a label as its source and a
    suggestion (calcium, albumin, creatinine), like the rule cards."""
    from tests.factory import DMAB60, NOW, administration, draft, hook_request, patient
    body = hook_request(hook, [patient(), administration(DMAB60, "2026-05-20")],
                        drafts=[draft(DMAB60)] if hook != "patient-view" else [])
    obs_key = next(k for k, v in body["prefetch"].items()
                   if "Observation" in json.dumps(v) or k.lower().startswith("observ"))
    del body["prefetch"][obs_key]                     # not sent, and no FHIR server to read it from
    app = create_app(Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path)}), clock=lambda: NOW)
    service = next(s.id for s in services() if s.hook == hook)
    cards = app.test_client().post(f"/cds-services/{service}", json=body).get_json()["cards"]
    data = [c for c in cards if c["source"]["topic"]["code"] == DATA_CARD_ID]
    assert len(data) == 1, [c["source"]["topic"]["code"] for c in cards]
    assert card_text_problems(data[0]) == []
    assert data[0]["source"]["url"].startswith("https://dailymed.nlm.nih.gov/")
    codes = [a["resource"]["code"]["coding"][0]["code"] for a in data[0]["suggestions"][0]["actions"]]
    assert codes == ["17861-6", "1751-7", "2160-0"]


def test_label_urls_of_keys_to_be_configured_are_a_site_setting(tmp_path: Path) -> None:
    """§6.2: pamidronate's label has no verified setid; until the site sets one the card links the
    Drugs@FDA application page, and ``BONE_CDS_LABEL_URLS`` replaces it everywhere it appears."""
    from cards.builders import SOURCES, configured_label_urls
    from cds_service.config import ConfigError
    default = SOURCES["LBL-PAMIDRONATE"].url
    site = "https://dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid=00000000-0000-0000-0000-000000000001"
    cards = [{"source": {"url": default}, "links": [{"url": default}, {"url": "https://doi.org/x"}]},
             {"source": {"url": SOURCES["LBL-PROLIA"].url}}]
    out = configured_label_urls(cards, {"LBL-PAMIDRONATE": site})
    assert out[0]["source"]["url"] == site and [l["url"] for l in out[0]["links"]] == [site, "https://doi.org/x"]
    assert out[1]["source"]["url"] == SOURCES["LBL-PROLIA"].url
    assert Settings.from_env({"BONE_CDS_LABEL_URLS": json.dumps({"LBL-PAMIDRONATE": site})}).label_urls
    for bad in ({"LBL-NOPE": site}, {"LBL-PAMIDRONATE": "http://x"}, {"LBL-PAMIDRONATE": 3}, ["x"]):
        with pytest.raises(ConfigError, match="BONE_CDS_LABEL_URLS"):
            Settings.from_env({"BONE_CDS_LABEL_URLS": json.dumps(bad)})


def test_safe_markdown_fast_path_answers_as_the_full_net_does() -> None:
    """A detail with nothing the net could change is returned as it is (one search): over random
    texts of the characters and sequences it acts on, the same answer as the substitutions."""
    import random

    from cards import model

    def full(detail: str) -> str:
        out = model._BARE_AMP.sub("&amp;", detail).replace("<", "&lt;").replace(">", "&gt;")
        out = model._escape_brackets(out)
        return model._LINKISH.sub(lambda m: ":\\/\\/" if m.group(1) == "://" else m.group(1)[:3] + "\\.", out)
    alphabet = list("ab &<>[]\\:/wW.x;#1") + ["www.", "WWW.", "://", "&amp;", "&#12;", "\n"]
    rng = random.Random(20261202)
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        assert safe_markdown(text) == full(text), repr(text)
    assert safe_markdown("**Due.** Last dose 2026-01-05.") == "**Due.** Last dose 2026-01-05."
