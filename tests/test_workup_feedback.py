"""Feedback on the merged work-up card (A12): stored and attributed to AR-PRETREATMENT-WORKUP; the
accepted suggestion's id is stored as sent, and the issued card names the member it answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds_service.app import create_app
from cds_service.config import Settings
from cds_service.feedback import FeedbackStore
from tests.factory import DMAB60, NOW, draft, hook_request, patient

OSIGN = "bone-safety-order-sign"


def test_accepted_suggestion_of_the_merged_card_is_stored_with_its_rule(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'fb.sqlite'}"
    app = create_app(Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path / "data"), "BONE_CDS_FEEDBACK_DB": db}),
                     clock=lambda: NOW)
    client = app.test_client()
    cards = client.post(f"/cds-services/{OSIGN}", json=hook_request("order-sign", [patient()],
                                                                     drafts=[draft(DMAB60)])).get_json()["cards"]
    card = next(c for c in cards if c["source"]["topic"]["code"] == "AR-PRETREATMENT-WORKUP")
    dental = next(s for s in card["suggestions"]
                  if s["extension"]["urn:bone-safety-cds:member"] == "DMAB-DENTAL-CLEARANCE")
    r = client.post(f"/cds-services/{OSIGN}/feedback", json={"feedback": [
        {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-23T15:05:00Z",
         "acceptedSuggestions": [{"id": dental["uuid"]}]}]})
    assert r.status_code == 200
    # another store on the same database (as another worker or the CLI): it sees the issued cards
    # once the app's background writer has written them
    app.config["FEEDBACK_STORE"].flush()
    store = FeedbackStore(db)
    try:
        rows = store.rows()
        assert rows[-1]["rule_id"] == "AR-PRETREATMENT-WORKUP" and dental["uuid"] in rows[-1]["accepted_suggestions"]
        report = {e["rule"]: e for e in store.report()["rules"]}
        assert report["AR-PRETREATMENT-WORKUP"]["accepted"] == 1 and report["AR-PRETREATMENT-WORKUP"]["shown"] == 1
    finally:
        store.close()


@pytest.mark.parametrize("profile", ["standard", "epic"])
def test_the_report_counts_the_merged_cards_accepted_suggestions_per_member_rule(tmp_path: Path, profile) -> None:
    """Issue 16: what the EHR was sent (in Epic's profile one suggestion per action, new uuids)
    is recorded with each suggestion's member rule, so an accepted suggestion counts for it."""
    from cds_service.governance.report import build_report
    app = create_app(Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path / "data"), "BONE_CDS_EHR_PROFILE": profile}),
                     clock=lambda: NOW)
    client = app.test_client()
    cards = client.post(f"/cds-services/{OSIGN}", json=hook_request("order-sign", [patient()],
                                                                     drafts=[draft(DMAB60)])).get_json()["cards"]
    card = next(c for c in cards if c["source"]["topic"]["code"].replace("-", "") == "ARPRETREATMENTWORKUP")
    members = [s["extension"]["urn:bone-safety-cds:member"] for s in card["suggestions"]]
    assert "DMAB-DENTAL-CLEARANCE" in members and len(set(members)) >= 2
    chosen = [s for s in card["suggestions"] if s["extension"]["urn:bone-safety-cds:member"] == "DMAB-DENTAL-CLEARANCE"]
    r = client.post(f"/cds-services/{OSIGN}/feedback", json={"feedback": [
        {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-23T15:05:00Z",
         "acceptedSuggestions": [{"id": s["uuid"]} for s in chosen]}]})
    assert r.status_code == 200
    report = build_report(app.config["FEEDBACK_STORE"], now=NOW, days=7)
    assert report["rules"]["AR-PRETREATMENT-WORKUP"]["accepted_by_member"] == {"DMAB-DENTAL-CLEARANCE": len(chosen)}
