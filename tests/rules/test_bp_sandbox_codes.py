"""The oral bisphosphonates the CDS Hooks sandbox offers are recognised with the right agent and
route (RULES.md D3; BP-* rules of §4).

Sandbox medication list: alendronate RxNorm 904396 and 1367009, risedronate 905028 and 905041,
ibandronate 904932. Each code must be in its ingredient value set, in ``bisphosphonate-oral`` and
``bisphosphonate-any`` (not ``bisphosphonate-iv``) of ``cds_service/data/codes.json``, and a
sandbox-shaped draft (no ``intent``, ``category``/``reasonCode`` as objects, a daily dose
without a route) must classify as that agent, route oral, by code (not by text).
"""

from __future__ import annotations

import pytest

from cds_service.chart import BISPHOSPHONATE, build_chart, default_value_sets
from tests.factory import NOW, RXNORM, hook_request
from tests.rules._bp_helpers import ago, egfr, pt

#: (RxNorm code, display as the sandbox shows it, agent, ingredient value set)
SANDBOX_ORAL = [
    ("904396", "Alendronic acid 35 MG Oral Tablet", "alendronate", "alendronate"),
    ("1367009", "Alendronate Pill", "alendronate", "alendronate"),
    ("905028", "risedronate sodium 150 MG Oral Tablet", "risedronate", "risedronate"),
    ("905041", "risedronate sodium 5 MG Oral Tablet", "risedronate", "risedronate"),
    ("904932", "ibandronate 150 MG Oral Tablet", "ibandronate", "ibandronate-oral"),
]


def sandbox_draft(code: str, display: str, rid: str = "request-123") -> dict:
    """A draft MedicationRequest shaped like the CDS Hooks sandbox sends it."""
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "draft",
        "subject": {"reference": "Patient/pat-1"},
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": code, "display": display}],
            "text": display,
        },
        "dosageInstruction": [
            {
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
            }
        ],
        "category": {"coding": [{"code": "outpatient"}]},
        "reasonCode": {"text": "osteoporosis"},
    }


@pytest.mark.parametrize("code, display, agent, value_set", SANDBOX_ORAL)
def test_sandbox_oral_bisphosphonate_codes_are_in_the_value_sets(code, display, agent, value_set) -> None:
    """codes.json holds every sandbox oral bisphosphonate in its ingredient and oral sets."""
    names = default_value_sets().names_for(RXNORM, code)
    assert {value_set, "bisphosphonate-oral", "bisphosphonate-any"} <= names, (code, sorted(names))
    assert "bisphosphonate-iv" not in names


@pytest.mark.parametrize("code, display, agent, value_set", SANDBOX_ORAL)
def test_sandbox_draft_is_recognised_as_the_right_agent_and_route(code, display, agent, value_set) -> None:
    """A sandbox-shaped draft with each code is a BP draft of the right agent, route oral, by code."""
    for hook, selections in (("order-sign", ()), ("order-select", ["MedicationRequest/request-123"])):
        chart = build_chart(
            [pt()], NOW, hook=hook, draft_orders=[sandbox_draft(code, display)], selections=selections
        )
        assert len(chart.triggers) == 1, hook
        drug = chart.triggers[0].drug
        assert (drug.drug_class, drug.agent, drug.route, drug.by_text) == (
            BISPHOSPHONATE,
            agent,
            "oral",
            False,
        )


@pytest.mark.parametrize("code, display, agent, value_set", SANDBOX_ORAL)
def test_sandbox_draft_through_the_service_gets_the_agent_cutoff(
    client, code, display, agent, value_set
) -> None:
    """BP-RENAL-CONTRAINDICATION over HTTP with a sandbox draft: eGFR 33 is below alendronate's
    cut-off (35) but not risedronate's or ibandronate's (30)."""
    body = hook_request("order-select", [pt(), egfr(33, ago(40))], drafts=[sandbox_draft(code, display)])
    del body["context"]["draftOrders"]["type"]
    r = client.post("/cds-services/bone-safety-order-select", json=body)
    assert r.status_code == 200, r.get_json()
    got = [c["source"]["topic"]["code"] for c in r.get_json()["cards"]]
    assert ("BP-RENAL-CONTRAINDICATION" in got) is (agent == "alendronate")
    if agent == "alendronate":
        c = next(
            c for c in r.get_json()["cards"] if c["source"]["topic"]["code"] == "BP-RENAL-CONTRAINDICATION"
        )
        assert c["summary"].startswith(f"eGFR 33 on {ago(40)} (below 35): alendronate is not recommended")
