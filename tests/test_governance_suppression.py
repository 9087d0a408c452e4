"""Fewer repeats (issue 16) at their boundaries: same draft vs another draft, the 12 h window,
override vs ignore, info vs warning, the snooze days, the data card, the setting.

The HTTP tests run on both stores (the ``db`` fixture): SQLite, and, marked ``postgres``,
PostgreSQL when ``BONE_CDS_TEST_POSTGRES_URL`` is set (a schema per test)."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest

from cards.model import Card
from cards.registry import REGISTRY, RuleSpec, load_rules
from cds_service.app import create_app
from cds_service.config import ConfigError, Settings
from tests.factory import DMAB60, ZOL5, draft, hook_request, patient
from tests.trust_helpers import db, postgres_url  # noqa: F401 - fixtures

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
RULE = "AR-CONCURRENT-ANTIRESORPTIVE"      # a catalog id, taken over by the probe below


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def indicator(monkeypatch):
    """Only one rule runs: a probe card on every hook with the indicator the test sets."""
    load_rules()
    state = {"indicator": "warning"}

    def card(inp):
        return Card(rule_id=RULE, rule_title="probe", summary="Probe", indicator=state["indicator"],
                    source_label="tests", detail="probe")
    for rule in list(REGISTRY):
        monkeypatch.delitem(REGISTRY, rule)
    monkeypatch.setitem(REGISTRY, RULE, RuleSpec(RULE, "probe", frozenset({"patient-view", "order-select",
                                                                            "order-sign"}), frozenset(), card))
    return state


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_client(tmp_path, clock, feedback_db: str | None = None, **env: str):
    """An app on ``feedback_db`` (default: the SQLite file in its data folder)."""
    base = {"BONE_CDS_DATA_DIR": str(tmp_path / "data"), **({"BONE_CDS_FEEDBACK_DB": feedback_db} if feedback_db else {})}
    return create_app(Settings.from_env({**base, **env}), clock=clock).test_client()


@pytest.fixture
def client(tmp_path, clock, indicator, db):
    return make_client(tmp_path, clock, db)


SID = {"patient-view": "bone-safety-patient-view", "order-select": "bone-safety-order-select",
       "order-sign": "bone-safety-order-sign"}


def call(client, hook: str, drafts=(), pid: str = "pat-1") -> list[dict]:
    body = hook_request(hook, [patient()], drafts=list(drafts))
    if pid != "pat-1":
        body["context"]["patientId"] = pid
        for k, v in list(body["prefetch"].items()):
            if isinstance(v, dict) and v.get("resourceType") == "Patient":
                v["id"] = pid
    r = client.post(f"/cds-services/{SID[hook]}", json=body)
    assert r.status_code == 200, r.get_json()
    return [c for c in r.get_json()["cards"] if c["source"]["topic"]["code"] == RULE]


def answer(client, hook: str, card: dict, outcome: str = "overridden", code: str | None = "patient-declined") -> None:
    entry: dict = {"card": card["uuid"], "outcome": outcome, "outcomeTimestamp": "2026-11-23T09:00:00Z"}
    if outcome == "accepted":
        entry["acceptedSuggestions"] = [{"id": "x"}]
    elif code:
        entry["overrideReason"] = {"reason": {"code": code}}
    assert client.post(f"/cds-services/{SID[hook]}/feedback", json={"feedback": [entry]}).status_code == 200


# ---- order-select → order-sign -----------------------------------------------------------------


def test_overridden_at_select_is_not_shown_again_at_sign_for_the_same_draft(client, clock) -> None:
    d = draft(DMAB60)
    [card] = call(client, "order-select", [d])
    answer(client, "order-select", card)
    clock.now += timedelta(minutes=5)
    assert call(client, "order-sign", [d]) == []
    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'bone_cds_cards_suppressed_total{{reason="order-select-override",rule="{RULE}"}}' in metrics


def test_same_content_with_another_id_is_the_same_draft(client, clock) -> None:
    d = draft(DMAB60)
    [card] = call(client, "order-select", [d])
    answer(client, "order-select", card)
    again = copy.deepcopy(d)
    again["id"] = "renumbered-by-the-ehr"
    assert call(client, "order-sign", [again]) == []


def test_another_draft_shows_the_card_again(client, clock) -> None:
    [card] = call(client, "order-select", [draft(DMAB60)])
    answer(client, "order-select", card)
    assert len(call(client, "order-sign", [draft(ZOL5)])) == 1             # another draft
    d = draft(DMAB60)
    [card] = call(client, "order-select", [d])
    answer(client, "order-select", card)
    assert len(call(client, "order-sign", [d, draft(ZOL5)])) == 1          # plus one more draft


def test_shown_but_not_answered_or_accepted_is_shown_again(client, clock) -> None:
    d = draft(DMAB60)
    call(client, "order-select", [d])                                        # ignored
    assert len(call(client, "order-sign", [d])) == 1
    d2 = draft(DMAB60)
    [card] = call(client, "order-select", [d2])
    answer(client, "order-select", card, "accepted")
    assert len(call(client, "order-sign", [d2])) == 1


def test_the_latest_feedback_decides(client, clock) -> None:
    d = draft(DMAB60)
    [card] = call(client, "order-select", [d])
    answer(client, "order-select", card, "accepted")
    answer(client, "order-select", card, "overridden")
    assert call(client, "order-sign", [d]) == []


def test_the_12_hour_window(client, clock) -> None:
    d = draft(DMAB60)
    [card] = call(client, "order-select", [d])
    answer(client, "order-select", card)
    clock.now = T0 + timedelta(hours=12) - timedelta(seconds=1)
    assert call(client, "order-sign", [d]) == []
    clock.now = T0 + timedelta(hours=12, seconds=1)
    assert len(call(client, "order-sign", [d])) == 1


def test_another_patient_is_not_affected(client, clock) -> None:
    d = draft(DMAB60)
    [card] = call(client, "order-select", [d])
    answer(client, "order-select", card)
    other = copy.deepcopy(d)
    other["subject"] = {"reference": "Patient/pat-2"}
    assert len(call(client, "order-sign", [other], pid="pat-2")) == 1


def test_the_setting_turns_it_off(tmp_path, clock, indicator, db) -> None:
    client = make_client(tmp_path, clock, db, BONE_CDS_SUPPRESS_REPEATS="off")
    d = draft(DMAB60)
    [card] = call(client, "order-select", [d])
    answer(client, "order-select", card)
    assert len(call(client, "order-sign", [d])) == 1


# ---- patient-view snooze --------------------------------------------------------------------------


def test_an_info_card_overridden_with_a_reason_is_snoozed_30_days(client, clock, indicator) -> None:
    indicator["indicator"] = "info"
    [card] = call(client, "patient-view")
    answer(client, "patient-view", card)
    clock.now = T0 + timedelta(days=30) - timedelta(minutes=1)
    assert call(client, "patient-view") == []
    clock.now = T0 + timedelta(days=30, minutes=1)
    assert len(call(client, "patient-view")) == 1


def test_no_snooze_without_a_reason_nor_for_warnings(client, clock, indicator) -> None:
    indicator["indicator"] = "info"
    [card] = call(client, "patient-view")
    answer(client, "patient-view", card, code=None)                        # overridden, no reason
    assert len(call(client, "patient-view")) == 1
    indicator["indicator"] = "warning"
    [card] = call(client, "patient-view")
    answer(client, "patient-view", card)
    assert len(call(client, "patient-view")) == 1                          # never for a warning
    indicator["indicator"] = "critical"
    [card] = call(client, "patient-view")
    answer(client, "patient-view", card)
    assert len(call(client, "patient-view")) == 1                          # nor for a critical card


def test_snooze_days_per_rule(tmp_path, clock, indicator, db) -> None:
    indicator["indicator"] = "info"
    client = make_client(tmp_path, clock, db, BONE_CDS_SNOOZE_RULES=f'{{"{RULE}": 2}}')
    [card] = call(client, "patient-view")
    answer(client, "patient-view", card)
    clock.now = T0 + timedelta(days=1)
    assert call(client, "patient-view") == []
    clock.now = T0 + timedelta(days=2, minutes=1)
    assert len(call(client, "patient-view")) == 1
    # another service on the same store: its own data folder, so its own patient-key secret
    client0 = make_client(tmp_path / "b", clock, db, BONE_CDS_SNOOZE_DAYS="0")
    [card] = call(client0, "patient-view")
    answer(client0, "patient-view", card)
    assert len(call(client0, "patient-view")) == 1


def test_the_data_card_is_never_suppressed(client, clock, indicator) -> None:
    from cds_service.data_card import DATA_CARD_ID
    from cds_service.governance.suppression import SuppressionSettings, suppress_repeats
    indicator["indicator"] = "info"
    app = client.application
    data_card = {"uuid": "d1", "indicator": "info", "source": {"topic": {"code": DATA_CARD_ID}}}
    store = app.config["FEEDBACK_STORE"]
    body = hook_request("patient-view", [patient()])
    app.config["FEEDBACK_STORE"].record_cards(SID["patient-view"], [data_card], T0, hook="patient-view",
                                              patient_key=app.config["PATIENT_KEYER"].key("pat-1"))
    answer(client, "patient-view", data_card)
    response = {"cards": [dict(data_card, uuid="d2")]}
    assert suppress_repeats(app.config, "patient-view", body, response, T0 + timedelta(hours=1)) == response
    assert SuppressionSettings().snooze_for("X") == 30 and store is not None


@pytest.mark.parametrize("env", [{"BONE_CDS_SUPPRESS_REPEATS": "maybe"}, {"BONE_CDS_SUPPRESS_WINDOW_HOURS": "-1"},
                                 {"BONE_CDS_SNOOZE_DAYS": "x"}, {"BONE_CDS_SNOOZE_RULES": '{"R": "ten"}'},
                                 {"BONE_CDS_SNOOZE_RULES": "[1]"}])
def test_invalid_settings_stop_start_up(env) -> None:
    with pytest.raises(ConfigError, match=next(iter(env))):
        Settings.from_env(env)


def test_evaluate_is_unaffected(tmp_path, clock, indicator, monkeypatch, capsys) -> None:
    """Suppression is a property of the live service: bone-cds evaluate shows every card."""
    import json
    from cds_service import cli
    client = make_client(tmp_path, clock)
    d = draft(DMAB60)
    [card] = call(client, "order-select", [d])
    answer(client, "order-select", card)
    req = tmp_path / "sign.json"
    req.write_text(json.dumps(hook_request("order-sign", [patient()], drafts=[d])))
    monkeypatch.setenv("BONE_CDS_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["evaluate", str(req), "--now", "2026-11-23T09:05:00Z"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [c["source"]["topic"]["code"] for c in out["cards"]].count(RULE) == 1
