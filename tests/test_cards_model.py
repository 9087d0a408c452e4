"""Card serialisation exactly to the spec (CARD-*, SUG-*, ACT-*, LINK-*, GEN-2) and ordering."""

from __future__ import annotations

import json
from datetime import date

import pytest

from cards.builders import OrderContext, dental_referral, lab_suggestion, override_reasons, zoledronic_acid_order, LINKS
from cards.model import RULE_SYSTEM, Card, order_cards
from cards.registry import CATALOG_ORDER

CTX = OrderContext("pat-1", "Practitioner/prac-1", date(2026, 11, 23))


def _card(**kw) -> Card:
    base = dict(rule_id="DMAB-DENTAL-CLEARANCE", rule_title="No dental evaluation", summary="s",
                indicator="warning", source_label="label")
    base.update(kw)
    return Card(**base)


def _walk(value, path="$"):
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")


def test_gen_2_no_null_or_empty_elements() -> None:
    """GEN-2: optional elements without a value are left out, never null/empty."""
    body = _card(detail="", links=[], suggestions=[]).to_json()
    for path, v in _walk(body):
        assert v not in (None, "", [], {}), path
    assert "suggestions" not in body and "selectionBehavior" not in body and "detail" not in body


def test_card_6_selection_behavior_whenever_suggestions() -> None:
    """CARD-6, CARD-7: selectionBehavior present (any by default) when suggestions exist."""
    body = _card(suggestions=[dental_referral(CTX)]).to_json()
    assert body["selectionBehavior"] == "any"
    body = _card(suggestions=[dental_referral(CTX)], selection_behavior="at-most-one").to_json()
    assert body["selectionBehavior"] == "at-most-one"


def test_card_1_sug_2_fresh_uuid_per_card_and_suggestion() -> None:
    """CARD-1, SUG-2: every card and suggestion instance has its own uuid."""
    a, b = _card(suggestions=[dental_referral(CTX)]), _card(suggestions=[dental_referral(CTX)])
    ja, jb = a.to_json(), b.to_json()
    assert ja["uuid"] != jb["uuid"]
    assert ja["suggestions"][0]["uuid"] != jb["suggestions"][0]["uuid"]


def test_source_topic_carries_the_rule() -> None:
    """DESIGN.md: source.topic = {system urn:bone-safety-cds:rule, code RULE-ID, display title}."""
    topic = _card().to_json()["source"]["topic"]
    assert topic == {"system": RULE_SYSTEM, "code": "DMAB-DENTAL-CLEARANCE", "display": "No dental evaluation"}


def test_card_2_summary_length_and_card_4_indicator_are_enforced() -> None:
    with pytest.raises(ValueError):
        _card(summary="x" * 141)
    _card(summary="x" * 140)   # v2: at most 140 characters (RULES.md §1.2 rule 2)
    with pytest.raises(ValueError):
        _card(indicator="hard-stop")


def test_card_8_override_reasons_have_display_and_at_most_five() -> None:
    body = _card(override_reasons=override_reasons("patient-declined", "edentulous")).to_json()
    assert all(r["display"] and r["system"] == "urn:bone-safety-cds:override-reason"
               for r in body["overrideReasons"])
    many = override_reasons("patient-declined", "edentulous", "drawn-today",
                            "result-elsewhere", "hypercalcemia", "result-error")
    assert [r.code for r in many] == ["patient-declined", "edentulous", "drawn-today",
                                      "result-elsewhere", "hypercalcemia"]   # the 5 most likely
    with pytest.raises(ValueError):
        _card(override_reasons=many + many[:1])


def test_act_1_3_suggestion_actions_carry_fhir_r4_draft_orders() -> None:
    """ACT-1..3, SUG-1: create actions with a full resource; resources validate as R4."""
    from fhir.resources.R4B.medicationrequest import MedicationRequest
    from fhir.resources.R4B.servicerequest import ServiceRequest

    zol = zoledronic_acid_order(CTX, date(2026, 12, 1)).to_json()
    action = zol["actions"][0]
    assert action["type"] == "create" and action["description"]
    res = action["resource"]
    MedicationRequest.model_validate(res)
    assert res["status"] == "draft" and res["intent"] == "order"
    assert res["medicationCodeableConcept"]["coding"][0]["code"] == "705824"
    assert res["dosageInstruction"][0]["timing"]["event"] == ["2026-12-01"]
    for sugg in (dental_referral(CTX), lab_suggestion(CTX, "Check calcium", ["calcium", "albumin"], "before dose",
                                                       weekly_count=4, start=date(2026, 12, 1))):
        for a in sugg.to_json()["actions"]:
            ServiceRequest.model_validate(a["resource"])
            assert a["resource"]["subject"] == {"reference": "Patient/pat-1"}
            assert a["resource"]["requester"] == {"reference": "Practitioner/prac-1"}


def test_link_1_links_are_absolute() -> None:
    for link in LINKS.values():
        j = link.to_json()
        assert j["type"] == "absolute" and j["url"].startswith("https://") and j["label"]


def test_label_sources_link_the_label_itself() -> None:
    """A31, §6.2: DailyMed setid pages, never a search page; every key of §6.2 is known."""
    from cards.builders import SOURCES
    assert {"LBL-PROLIA", "LBL-XGEVA", "LBL-RECLAST", "LBL-ZOL4", "LBL-FOSAMAX", "LBL-RISEDRONATE",
            "LBL-IBANDRONATE-ORAL", "LBL-IBANDRONATE-IV", "LBL-PAMIDRONATE", "LBL-ETIDRONATE",
            "FDA-DSC-2024", "ECTS-2021", "AAOMS-2022", "ASBMR-2016", "ENDO-2019"} <= set(SOURCES)
    for key, link in SOURCES.items():
        assert link.url.startswith("https://") and "search.cfm" not in link.url and "query=" not in link.url
        if key.startswith("LBL-") and key not in ("LBL-PAMIDRONATE", "LBL-ETIDRONATE"):
            assert link.url.startswith("https://dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid=")
    assert SOURCES["LBL-PROLIA"].url.endswith("49e5afe9-a0c7-40c4-af9f-f287a80c5c88")


def test_delete_action_and_extensions_serialise() -> None:
    from cards.model import Action, Suggestion
    sugg = Suggestion("Remove the draft Prolia order",
                      [Action("Remove the draft Prolia order", type="delete", resource_id="MedicationRequest/d1")],
                      extension={"urn:bone-safety-cds:member": "DMAB-DENTAL-CLEARANCE"}).to_json()
    assert sugg["actions"] == [{"type": "delete", "description": "Remove the draft Prolia order",
                                "resourceId": "MedicationRequest/d1"}]
    assert sugg["extension"] == {"urn:bone-safety-cds:member": "DMAB-DENTAL-CLEARANCE"}
    body = _card(extension={"urn:bone-safety-cds:members": ["A", "B"]}).to_json()
    assert body["extension"] == {"urn:bone-safety-cds:members": ["A", "B"]}


def test_cards_ordered_critical_warning_info_then_catalog_order() -> None:
    cards = [_card(rule_id="AR-ONJ-HISTORY", indicator="warning"),
             _card(rule_id="DMAB-VITD-NOT-CHECKED", indicator="info"),
             _card(rule_id="DMAB-DENTAL-CLEARANCE", indicator="warning"),
             _card(rule_id="BP-HYPOCALCEMIA", indicator="critical")]
    got = [c.rule_id for c in order_cards(cards, CATALOG_ORDER)]
    assert got == ["BP-HYPOCALCEMIA", "DMAB-DENTAL-CLEARANCE", "AR-ONJ-HISTORY", "DMAB-VITD-NOT-CHECKED"]


def test_card_json_is_serialisable() -> None:
    json.dumps(_card(suggestions=[zoledronic_acid_order(CTX, date(2026, 12, 1))]).to_json())


def test_new_uuid_is_a_random_rfc4122_version_4_uuid() -> None:
    """CARD-1 / SUG-2: what ``str(uuid.uuid4())`` gives: canonical text, version 4, the RFC 4122
    variant, and a fresh one each time."""
    import uuid

    from cards.model import new_uuid

    seen = {new_uuid() for _ in range(2000)}
    assert len(seen) == 2000
    for text in list(seen)[:200]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
