"""AR-PRETREATMENT-WORKUP (RULES.md §5, §1.1, §7, A12) and the §7 interaction layer of the engine
(exclusive pairs incl. E2/E3 before the merge, then ordering)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from cards import engine
from cards.model import Card, Suggestion
from cards.registry import CATALOG_ORDER, REGISTRY, RuleInput, load_rules, merges_for, rules_for
from cards.thresholds import DEFAULT_THRESHOLDS
from cds_service.chart import build_chart
from tests.factory import (CALCIUM_SERUM, DMAB60, DMAB120, EGFR, NOW, PID, administration, card_ids,
                           condition, draft, evaluate_rules, observation, patient, procedure)
from tests.rules._dmab_helpers import continuation, normal_labs, supplement
from tests.rules._helpers import CDT, EGFR_UNIT, ICD10, ORDER_HOOKS, ago, override_codes

RID = "AR-PRETREATMENT-WORKUP"
MEMBERS = "urn:bone-safety-cds:members"
MEMBER = "urn:bone-safety-cds:member"
ZOL5 = "705824"
RULE_ID = re.compile(r"\b(DMAB|BP|AR)-[A-Z0-9]+(-[A-Z0-9]+)*\b")


def cards_for(resources, drafts, **kw):
    return evaluate_rules([patient(), *resources], drafts=drafts, **kw)


def merged(cards):
    return next((c for c in cards if c["source"]["topic"]["code"] == RID), None)


def dental_exam(days=30):
    return procedure("D0120", CDT, ago(days))


# ---- the merge --------------------------------------------------------------------------------

@pytest.mark.parametrize("hook", ORDER_HOOKS)
def test_first_denosumab_order_without_work_up_gives_one_merged_card(hook):
    cards = cards_for([], [draft()], hook=hook)
    assert card_ids(cards) == [RID]
    c = cards[0]
    assert c["extension"][MEMBERS] == ["DMAB-DENTAL-CLEARANCE", "DMAB-VITD-NOT-CHECKED",
                                       "DMAB-NO-CA-VITD-SUPPLEMENT", "AR-CALCIUM-NOT-CHECKED",
                                       "AR-RENAL-FUNCTION-UNKNOWN"]
    assert c["indicator"] == "warning"
    assert c["summary"] == ("Before starting denosumab, missing: dental check, recent calcium, vitamin D "
                            "level, calcium/vitamin D supplement, kidney function")
    assert c["source"]["label"].startswith("FDA label: Prolia") and "setid=49e5afe9" in c["source"]["url"]


def test_members_are_in_rule_index_order_each_once_and_every_suggestion_names_its_member():
    c = merged(cards_for([], [draft(), draft(DMAB60)]))
    members = c["extension"][MEMBERS]
    assert members == sorted(set(members), key=CATALOG_ORDER.index)
    assert c["suggestions"] and c["selectionBehavior"] == "any"
    tagged = [s["extension"][MEMBER] for s in c["suggestions"]]
    assert set(tagged) == set(members)                  # one suggestion (at least) per item
    assert all(t in members for t in tagged)
    kinds = {s["extension"][MEMBER]: s["actions"][0]["resource"]["resourceType"] for s in c["suggestions"]}
    assert kinds["DMAB-DENTAL-CLEARANCE"] == "ServiceRequest"
    assert kinds["DMAB-NO-CA-VITD-SUPPLEMENT"] == "MedicationRequest"
    assert override_codes(c) == ["work-up-in-progress", "result-elsewhere", "dental-eval-done-elsewhere",
                                 "urgent-treatment-benefit", "patient-declined"]


def test_rule_ids_appear_only_in_the_details_section():
    c = merged(cards_for([], [draft()]))
    main, details = c["detail"].split("#### Details")
    assert not RULE_ID.search(main) and not RULE_ID.search(c["summary"])
    assert "Rules combined: DMAB-DENTAL-CLEARANCE, DMAB-VITD-NOT-CHECKED" in details
    for text in (c["summary"], c["source"]["label"], *[s["label"] for s in c["suggestions"]]):
        assert not RULE_ID.search(text)
    assert len(main) <= 700 and "**What to do:**" in main and "**Evidence:**" in main
    for p in (r"RULES\.md", "§", r"(?i)\bseeds?\b", r"\b[a-z][a-z0-9]*(_[a-z0-9]+)+\b", r"\burn:"):
        assert not re.search(p, c["detail"]), p


def test_one_member_alone_keeps_its_own_card():
    res = [*continuation(), *normal_labs()]           # continuation, every lab fresh, no supplement
    ids = card_ids(cards_for(res, [draft()]))
    assert ids == ["DMAB-NO-CA-VITD-SUPPLEMENT"]


def test_two_members_merge_and_the_indicator_is_the_highest_member():
    """Continuation without supplement (info) and without a kidney measure (info): info merged card;
    add a missing calcium at a hypocalcemia-prone patient: the calcium item is a warning."""
    res = [*continuation(), observation(CALCIUM_SERUM, 9.4, "mg/dL", ago(10)),
           observation("62292-8", 31, "ng/mL", ago(60))]
    cards = cards_for(res, [draft()])
    assert card_ids(cards) == [RID]
    c = cards[0]
    assert c["extension"][MEMBERS] == ["DMAB-NO-CA-VITD-SUPPLEMENT", "AR-RENAL-FUNCTION-UNKNOWN"]
    assert c["indicator"] == "info"
    assert c["summary"] == "Before this dose of denosumab, missing: calcium/vitamin D supplement, kidney function"
    unmerged = cards_for(res, [draft()], thresholds=replace(DEFAULT_THRESHOLDS, workup_min_members=99))
    assert {x["indicator"] for x in unmerged} == {"info"}
    # hypocalcemia-prone by an earlier low calcium (D9), no calcium in 30 days: the calcium item
    # is a warning. (A predisposing condition such as hypoparathyroidism instead gives the
    # predisposition card, which wins over the calcium item, E2, and leaves one member only.)
    prone = [*continuation(), observation("62292-8", 31, "ng/mL", ago(60)), observation(EGFR, 72, EGFR_UNIT, ago(10)),
             observation(CALCIUM_SERUM, 7.9, "mg/dL", ago(200))]
    c = merged(cards_for(prone, [draft()]))
    assert c is not None and c["indicator"] == "warning"
    predisposed = [*continuation(), observation("62292-8", 31, "ng/mL", ago(60)),
                   observation(EGFR, 72, EGFR_UNIT, ago(10)), condition("E20.9", ICD10, text="Hypoparathyroidism")]
    assert sorted(card_ids(cards_for(predisposed, [draft()]))) == ["DMAB-CKD-CALCIUM-MONITORING",
                                                                  "DMAB-NO-CA-VITD-SUPPLEMENT"]


def test_workup_min_members_is_the_threshold():
    res = [*continuation(), observation(CALCIUM_SERUM, 9.4, "mg/dL", ago(10)),
           observation("62292-8", 31, "ng/mL", ago(60))]          # 2 members fire
    three = replace(DEFAULT_THRESHOLDS, workup_min_members=3)
    assert sorted(card_ids(cards_for(res, [draft()], thresholds=three))) == [
        "AR-RENAL-FUNCTION-UNKNOWN", "DMAB-NO-CA-VITD-SUPPLEMENT"]
    assert card_ids(cards_for(res, [draft()], thresholds=replace(DEFAULT_THRESHOLDS, workup_min_members=2))) == [RID]


def test_members_are_never_shown_beside_the_merged_card_and_safety_findings_are_never_merged():
    res = [observation(CALCIUM_SERUM, 7.6, "mg/dL", ago(3))]      # low calcium: DMAB-HYPOCALCEMIA
    cards = cards_for(res, [draft()])
    ids = card_ids(cards)
    assert ids[0] == "DMAB-HYPOCALCEMIA" and RID in ids
    assert not set(ids) & set(REGISTRY[RID].members)
    assert "AR-CALCIUM-NOT-CHECKED" not in merged(cards)["extension"][MEMBERS]


def test_iv_bisphosphonate_start_merges_dental_calcium_and_kidney():
    c = merged(cards_for([], [draft(ZOL5)]))
    assert c["extension"][MEMBERS] == ["BP-DENTAL", "AR-CALCIUM-NOT-CHECKED", "AR-RENAL-FUNCTION-UNKNOWN"]
    assert c["summary"] == "Before starting zoledronic acid, missing: dental check, recent calcium, kidney function"
    assert c["indicator"] == "warning" and c["source"]["label"].startswith("FDA label: Reclast")


def test_two_drafts_one_card_naming_each_draft_against_its_items():
    c = merged(cards_for([], [draft(), draft(ZOL5)]))
    assert "DMAB-DENTAL-CLEARANCE" in c["extension"][MEMBERS] and "BP-DENTAL" in c["extension"][MEMBERS]
    assert c["summary"] == ("Before starting denosumab and zoledronic acid, missing: dental check, calcium, "
                            "vitamin D, supplement, kidney function")   # too long with the full item names
    two = merged(cards_for([observation(EGFR, 72, EGFR_UNIT, ago(5)), observation("62292-8", 31, "ng/mL", ago(60)),
                            *supplement()], [draft(), draft(ZOL5)]))
    assert two["summary"] == "Before starting denosumab and zoledronic acid, missing: dental check, recent calcium"
    text = c["detail"]
    assert "Dental check (" in text and "zoledronic" in text.split("Dental check (")[1].split("\n")[0]
    dental = [s for s in c["suggestions"] if s["label"] == "Refer for dental evaluation"]
    assert len(dental) == 1 and dental[0]["extension"][MEMBER] == "DMAB-DENTAL-CLEARANCE"


def test_oral_bisphosphonate_alone_cannot_merge():
    alendronate = "904431"
    ids = card_ids(cards_for([], [draft(alendronate)]))
    assert RID not in ids and "AR-RENAL-FUNCTION-UNKNOWN" in ids


def test_a_merge_that_fails_leaves_the_member_cards(monkeypatch):
    load_rules()
    spec = REGISTRY[RID]

    def broken(inp, cards):
        raise RuntimeError("bug")
    monkeypatch.setitem(REGISTRY, RID, replace(spec, combine=broken))
    ids = card_ids(cards_for([], [draft()]))
    assert RID not in ids and "DMAB-DENTAL-CLEARANCE" in ids and "AR-CALCIUM-NOT-CHECKED" in ids


def test_merged_rule_is_registered_on_order_hooks_only_and_not_run_as_a_rule():
    load_rules()
    assert REGISTRY[RID].merged and REGISTRY[RID].hooks == frozenset(ORDER_HOOKS)
    for hook in (*ORDER_HOOKS, "patient-view"):
        assert RID not in [s.id for s in rules_for(hook)]
    assert [s.id for s in merges_for("order-sign")] == [RID] and merges_for("patient-view") == []
    assert CATALOG_ORDER[-1] == RID
    for new in ("BP-ORAL-CONTRAINDICATION", "BP-DOSE-SCHEDULE", "BP-VITD-DEFICIENCY"):
        assert CATALOG_ORDER.index("BP-DUPLICATE") < CATALOG_ORDER.index(new) < CATALOG_ORDER.index(
            "AR-CALCIUM-NOT-CHECKED")
        assert new in [s.id for s in rules_for("order-sign")]


def test_ordering_critical_warning_info_then_rule_index():
    res = [observation(CALCIUM_SERUM, 7.6, "mg/dL", ago(3)), condition("15001000119100", text="Osteonecrosis of jaw",
                                                                       clinical="resolved")]
    ids = card_ids(cards_for(res, [draft()]))
    ranks = {c["source"]["topic"]["code"]: c["indicator"] for c in cards_for(res, [draft()])}
    order = [("critical", "warning", "info").index(ranks[i]) for i in ids]
    assert order == sorted(order)
    same = [i for i in ids if ranks[i] == "warning"]
    assert same == sorted(same, key=CATALOG_ORDER.index)


# ---- exclusive pairs (E2, E3) before the merge ---------------------------------------------------

def _ckd4_continuation():
    return [*continuation(), condition("N18.4", ICD10, text="CKD stage 4", onset=ago(400)),
            observation(EGFR, 24, EGFR_UNIT, ago(20)), observation("62292-8", 31, "ng/mL", ago(60)), *supplement()]


def test_e2_ckd_calcium_monitoring_wins_over_calcium_not_checked():
    ids = card_ids(cards_for(_ckd4_continuation(), [draft()]))
    assert "DMAB-CKD-CALCIUM-MONITORING" in ids
    assert "AR-CALCIUM-NOT-CHECKED" not in ids and RID not in ids


def test_e2_applies_before_the_merge():
    """Without E2 the calcium card and the missing dental check would merge; with it the dental
    check keeps its own card (one member left)."""
    res = [c for c in _ckd4_continuation() if c["resourceType"] != "MedicationAdministration"]  # initiation
    res += [dental_exam(400)]
    ids = card_ids(cards_for(res, [draft()]))
    assert "DMAB-CKD-CALCIUM-MONITORING" in ids and "AR-CALCIUM-NOT-CHECKED" not in ids
    assert "DMAB-DENTAL-CLEARANCE" in ids and RID not in ids


def test_e2_keeps_the_calcium_card_when_an_iv_bisphosphonate_draft_needs_it_too():
    """Safe reading of "for one draft": the predisposition card asks calcium for denosumab only."""
    ids = card_ids(cards_for(_ckd4_continuation() + [dental_exam()], [draft(), draft(ZOL5)],
                             thresholds=replace(DEFAULT_THRESHOLDS, workup_min_members=99)))
    assert "DMAB-CKD-CALCIUM-MONITORING" in ids and "AR-CALCIUM-NOT-CHECKED" in ids


def _card(rule_id: str, indicator: str = "warning") -> Card:
    return Card(rule_id=rule_id, rule_title=rule_id, summary="x", indicator=indicator, source_label="s",
                suggestions=[Suggestion("do")])


def _inp(hook: str, drafts=()):
    chart = build_chart([patient()], NOW, hook=hook, draft_orders=list(drafts),
                        selections=[f"MedicationRequest/{d['id']}" for d in drafts])
    return RuleInput(chart=chart, hook=hook, now=NOW, patient_id=PID)


def test_e3_dmab_hypocalcemia_wins_over_bp_hypocalcemia_on_patient_view_only():
    both = [_card("DMAB-HYPOCALCEMIA", "critical"), _card("BP-HYPOCALCEMIA")]
    kept = [c.rule_id for c in engine.apply_exclusive(_inp("patient-view"), both)]
    assert kept == ["DMAB-HYPOCALCEMIA"]
    kept = [c.rule_id for c in engine.apply_exclusive(_inp("order-sign", [draft(), draft(ZOL5)]), both)]
    assert kept == ["DMAB-HYPOCALCEMIA", "BP-HYPOCALCEMIA"]      # two drafts, two findings
    assert [c.rule_id for c in engine.apply_exclusive(_inp("patient-view"), both[1:])] == ["BP-HYPOCALCEMIA"]


def test_e2_pair_in_the_interaction_layer():
    pair = [_card("DMAB-CKD-CALCIUM-MONITORING"), _card("AR-CALCIUM-NOT-CHECKED")]
    assert [c.rule_id for c in engine.apply_exclusive(_inp("order-sign", [draft()]), pair)] == [
        "DMAB-CKD-CALCIUM-MONITORING"]
    assert len(engine.apply_exclusive(_inp("order-sign", [draft(), draft(ZOL5)]), pair)) == 2
    assert [c.rule_id for c in engine.apply_exclusive(_inp("order-sign", [draft()]), pair[1:])] == [
        "AR-CALCIUM-NOT-CHECKED"]


def test_merge_of_synthetic_member_cards_indicator_and_extensions():
    inp = _inp("order-sign", [draft(DMAB120)])
    cards = [_card("AR-RENAL-FUNCTION-UNKNOWN", "info"), _card("DMAB-DENTAL-CLEARANCE", "warning"),
             _card("AR-ONJ-HISTORY", "critical")]
    out = engine.apply_merges(inp, cards)
    ids = [c.rule_id for c in out]
    assert ids == ["AR-ONJ-HISTORY", RID]
    m = out[1]
    assert m.indicator == "warning" and m.extension == {MEMBERS: ["DMAB-DENTAL-CLEARANCE", "AR-RENAL-FUNCTION-UNKNOWN"]}
    assert m.source_label.startswith("FDA label: Xgeva")
    assert [s.extension[MEMBER] for s in m.suggestions] == ["DMAB-DENTAL-CLEARANCE", "AR-RENAL-FUNCTION-UNKNOWN"]


def test_data_card_still_works_with_the_merged_rule_registered():
    """Observations unavailable: the lab members cannot run (data card, by family), the merged rule
    is never a "could not run" check, and a member left alone keeps its own card."""
    from cds_service.data_card import build_data_card
    chart = build_chart([patient()], NOW, hook="order-sign", draft_orders=[d := draft()],
                        selections=[f"MedicationRequest/{d['id']}"], unavailable={"Observation": "timeout"})
    inp = RuleInput(chart=chart, hook="order-sign", now=NOW, patient_id=PID)
    result = engine.evaluate(inp)
    assert RID not in result.not_run and "AR-CALCIUM-NOT-CHECKED" in result.not_run
    assert "BP-VITD-DEFICIENCY" in result.not_run
    card = build_data_card(result, inp, {"Observation": "timeout"})
    assert card is not None and card.indicator == "warning"
    assert REGISTRY["BP-VITD-DEFICIENCY"].title not in card.detail      # bisphosphonate check: not this patient's
    assert [c.rule_id for c in result.cards] == ["DMAB-DENTAL-CLEARANCE"]   # the one member that ran: alone


def test_creatinine_is_ordered_once_when_calcium_and_kidney_items_are_both_missing():
    c = merged(cards_for([], [draft()]))
    codes = [a["resource"]["code"]["coding"][0]["code"] for s in c["suggestions"] for a in s["actions"]
             if a["resource"]["resourceType"] == "ServiceRequest"]
    assert codes.count("2160-0") == 1 and "17861-6" in codes
    calcium = next(s for s in c["suggestions"] if s["extension"][MEMBER] == "AR-CALCIUM-NOT-CHECKED")
    assert "creatinine" not in calcium["label"].lower()


def test_guideline_links_of_the_members_at_most_two():
    c = merged(cards_for([], [draft()]))
    urls = [l["url"] for l in c.get("links", [])]
    assert 1 <= len(urls) <= 2 and "https://doi.org/10.1016/j.joms.2022.02.008" in urls
    assert all("dailymed" not in u for u in urls)


def test_six_items_summary_names_every_item_within_the_limit():
    from tests.rules._dmab_helpers import woman
    c = merged(evaluate_rules([woman(30)], drafts=[draft()]))
    assert c["summary"] == ("Before starting denosumab, missing: dental check, calcium, vitamin D, supplement, "
                            "kidney function, pregnancy test")
    assert "DMAB-PREGNANCY-STATUS-UNVERIFIED" in c["extension"][MEMBERS]
    details = c["detail"].split("#### Details\n")[1].split("\n")
    assert len(details) <= 8 and len(c["detail"].split("#### Details")[0]) <= 700
