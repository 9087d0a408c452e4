"""Issue 16 "Record what is needed": every issued card with hook, tenant, pseudonymous patient
key and the suggestions it offered; feedback joined to its card; old stores migrated."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from cds_service.app import create_app
from cds_service.config import Settings
from cds_service.feedback import FeedbackStore
from cds_service.governance.patient_key import SECRET_FILE, PatientKeyer, load_secret
from tests.factory import DMAB60, NOW, PID, draft, hook_request, patient
from tests.trust_helpers import PUBLIC_BASE, Signer, db, postgres_url, probe_rule  # noqa: F401


def _settings(tmp_path: Path, db: str | None = None, **env: str) -> Settings:
    base = {"BONE_CDS_DATA_DIR": str(tmp_path / "data")}
    if db:
        base["BONE_CDS_FEEDBACK_DB"] = db
    return Settings.from_env({**base, **env})


def _call(client, hook: str = "order-sign", pid: str = PID, headers: dict | None = None):
    sid = {"patient-view": "bone-safety-patient-view", "order-select": "bone-safety-order-select",
           "order-sign": "bone-safety-order-sign"}[hook]
    body = hook_request(hook, [patient()], drafts=[draft(DMAB60)])
    body = json.loads(json.dumps(body).replace(f'"{PID}"', f'"{pid}"').replace(f'Patient/{PID}"', f'Patient/{pid}"'))
    r = client.post(f"/cds-services/{sid}", headers=headers or {}, json=body)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["cards"]


def test_issued_cards_carry_hook_patient_key_suggestions_and_latency(tmp_path, db, probe_rule, caplog) -> None:
    app = create_app(_settings(tmp_path, db, BONE_CDS_PATIENT_KEY_SECRET="s" * 32), clock=lambda: NOW)
    client = app.test_client()
    with caplog.at_level(logging.DEBUG):
        cards = _call(client, "order-sign")
    store: FeedbackStore = app.config["FEEDBACK_STORE"]
    probe = next(c for c in cards if c["source"]["topic"]["code"] == probe_rule)
    row = next(r for r in store.issued() if r["card_uuid"] == probe["uuid"])
    assert row["hook"] == "order-sign" and row["service_id"] == "bone-safety-order-sign"
    assert row["tenant"] is None                           # no JWT guard: no tenant
    assert row["patient_key"] == PatientKeyer(b"s" * 32).key(PID)
    assert len(row["patient_key"]) == 64 and PID not in row["patient_key"]
    assert row["latency_ms"] > 0 and row["call_id"]
    assert len({r["call_id"] for r in store.issued()}) == 1   # one call, one id
    offered = [s for s in store.suggestions() if s["card_uuid"] == probe["uuid"]]
    assert [(s["suggestion_uuid"], s["label"]) for s in offered] == \
        [(s["uuid"], s["label"]) for s in probe["suggestions"]]
    # the patient id is nowhere in the store's issued rows, nor in the logs
    assert all(PID not in json.dumps(r) for r in store.issued())
    assert PID not in caplog.text


def test_same_patient_same_key_other_patient_other_key(tmp_path, probe_rule) -> None:
    app = create_app(_settings(tmp_path), clock=lambda: NOW)
    client = app.test_client()
    _call(client, pid="pat-a")
    _call(client, pid="pat-a")
    _call(client, pid="pat-b")
    keys = [r["patient_key"] for r in app.config["FEEDBACK_STORE"].issued() if r["rule_id"] == probe_rule]
    assert len(keys) == 3 and len(set(keys)) == 2


def test_secret_generated_once_with_0600_and_kept(tmp_path) -> None:
    data = tmp_path / "data"
    first = load_secret("", data)
    path = data / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret("", data) == first                   # a restart keeps it
    assert load_secret("  from-the-setting-0123456789  ", data) == b"from-the-setting-0123456789"
    assert PatientKeyer(first).key("x") != PatientKeyer(b"another-secret-0123456789").key("x")
    assert PatientKeyer(first).key(None) is None and PatientKeyer(first).key("") is None
    assert "secret" not in repr(PatientKeyer(first)).replace("<secret>", "")


def test_service_starts_without_the_setting_and_generates_the_file(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BONE_CDS_PATIENT_KEY_SECRET"}
    env["BONE_CDS_DATA_DIR"] = str(tmp_path / "data")
    create_app(Settings.from_env(env))
    assert (tmp_path / "data" / SECRET_FILE).is_file()


def test_too_short_secret_stops_start_up(tmp_path) -> None:
    from cds_service.config import ConfigError
    with pytest.raises(ConfigError, match="BONE_CDS_PATIENT_KEY_SECRET"):
        create_app(_settings(tmp_path, BONE_CDS_PATIENT_KEY_SECRET="short"))


def test_tenant_from_the_verified_token(tmp_path, probe_rule) -> None:
    signer = Signer()
    (tmp_path / "north.json").write_text(json.dumps(signer.jwks))
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(f"""
[tenants.north]
issuer = "{signer.iss}"
jwks_file = "north.json"
jku = "https://ehr.example.org/jwks.json"
audiences = ["{PUBLIC_BASE}"]
""")
    app = create_app(_settings(tmp_path, BONE_CDS_TENANTS=str(tenants)), clock=lambda: NOW)
    path = "/cds-services/bone-safety-order-sign"
    _call(app.test_client(), headers=signer.bearer(PUBLIC_BASE + path))
    rows = [r for r in app.config["FEEDBACK_STORE"].issued() if r["rule_id"] == probe_rule]
    assert [r["tenant"] for r in rows] == ["north"]


def test_feedback_joins_its_card_and_accepted_suggestions_join_the_offer(tmp_path, db, probe_rule) -> None:
    app = create_app(_settings(tmp_path, db), clock=lambda: NOW)
    client = app.test_client()
    cards = _call(client)
    probe = next(c for c in cards if c["source"]["topic"]["code"] == probe_rule)
    sug = probe["suggestions"][0]
    r = client.post("/cds-services/bone-safety-order-sign/feedback", json={"feedback": [
        {"card": probe["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-23T15:01:00Z",
         "acceptedSuggestions": [{"id": sug["uuid"]}]}]})
    assert r.status_code == 200
    store: FeedbackStore = app.config["FEEDBACK_STORE"]
    w = store.window(NOW - timedelta(days=1))
    fb = [f for f in w["feedback"] if f["card_uuid"] == probe["uuid"]]
    assert len(fb) == 1 and json.loads(fb[0]["accepted_suggestions"]) == [sug["uuid"]]
    offered = {s["suggestion_uuid"]: s["label"] for s in w["suggestions"]}
    assert offered[sug["uuid"]] == sug["label"]


def test_epic_split_suggestions_are_recorded_as_sent(tmp_path, probe_rule) -> None:
    """An EHR profile may reshape suggestions (new uuids): the offer recorded is the wire one."""
    app = create_app(_settings(tmp_path, BONE_CDS_EHR_PROFILE="epic"), clock=lambda: NOW)
    cards = _call(app.test_client())
    store = app.config["FEEDBACK_STORE"]
    sent = {s["uuid"] for c in cards for s in c.get("suggestions", [])}
    assert {s["suggestion_uuid"] for s in store.suggestions()} == sent
    assert probe_rule in {r["rule_id"] for r in store.issued()}   # the rule as issued, not its Epic code


OLD_SCHEMA = """
    CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, received_at TEXT NOT NULL,
      service_id TEXT NOT NULL, card_uuid TEXT NOT NULL, rule_id TEXT, outcome VARCHAR(16) NOT NULL,
      outcome_timestamp TEXT NOT NULL, accepted_suggestions TEXT, override_system TEXT,
      override_code TEXT, override_comment TEXT, raw TEXT NOT NULL);
    CREATE INDEX feedback_rule ON feedback(rule_id, received_at);
    CREATE TABLE issued_cards (card_uuid TEXT PRIMARY KEY, rule_id TEXT NOT NULL,
      service_id TEXT NOT NULL, indicator VARCHAR(16) NOT NULL, issued_at TEXT NOT NULL);
    CREATE INDEX issued_rule ON issued_cards(rule_id, issued_at);
    INSERT INTO issued_cards VALUES ('old-card', 'DMAB-DOSE-DUE', 'x', 'warning', '2026-11-20T00:00:00+00:00');
"""


def test_an_old_schema_sqlite_file_is_migrated(tmp_path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
    store = FeedbackStore(path)
    store.record_cards("svc", [{"uuid": "new-card", "indicator": "info",
                                "source": {"topic": {"code": "R"}}, "suggestions": [{"label": "L", "uuid": "s1"}]}],
                       NOW, hook="patient-view", patient_key="k", latency_ms=3.5)
    rows = {r["card_uuid"]: r for r in store.issued()}
    assert rows["old-card"]["hook"] is None and rows["old-card"]["rule_id"] == "DMAB-DOSE-DUE"
    assert rows["new-card"]["hook"] == "patient-view" and rows["new-card"]["latency_ms"] == 3.5
    assert store.suggestions()[0]["label"] == "L"
    FeedbackStore(path)   # opening again changes nothing and does not fail
    with sqlite3.connect(path) as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(issued_cards)")]
        idx = {r[1] for r in conn.execute("PRAGMA index_list(feedback)")}
    assert cols.count("patient_key") == 1 and "feedback_card" in idx


@pytest.mark.postgres
def test_an_old_schema_postgres_store_is_migrated(postgres_url) -> None:
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        for stmt in OLD_SCHEMA.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY").split(";"):
            if stmt.strip():
                conn.execute(text(stmt))
    store = FeedbackStore(postgres_url)
    FeedbackStore(postgres_url)
    cols = {c["name"] for c in inspect(engine).get_columns("issued_cards")}
    assert {"hook", "tenant", "patient_key", "call_id", "latency_ms"} <= cols
    assert [r["card_uuid"] for r in store.issued()] == ["old-card"]
    engine.dispose()
    store.close()


def test_recent_for_patient_gives_each_card_its_latest_feedback(db) -> None:
    """The suppression's one read, on both databases."""
    from cds_service.feedback import parse_feedback
    store = FeedbackStore(db)
    card = {"uuid": "c1", "indicator": "info", "source": {"topic": {"code": "R"}}}
    store.record_cards("svc", [card], NOW, hook="order-select", patient_key="k", draft_keys=["b", "a"])
    store.record_cards("svc", [dict(card, uuid="c2")], NOW, hook="order-select", patient_key="other")
    store.record_cards("svc", [dict(card, uuid="c3")], NOW - timedelta(days=2), hook="order-select", patient_key="k")
    for outcome in ("overridden", "accepted"):
        entry = {"card": "c1", "outcome": outcome, "outcomeTimestamp": "2026-11-23T15:00:00Z"}
        if outcome == "accepted":
            entry["acceptedSuggestions"] = [{"id": "s"}]
        store.add("svc", parse_feedback({"feedback": [entry]}), NOW)
    [row] = store.recent_for_patient("k", ["R"], "order-select", NOW - timedelta(hours=12))
    assert (row["card_uuid"], row["outcome"], row["draft_keys"]) == ("c1", "accepted", "a b")
    assert store.recent_for_patient("k", ["R"], "order-sign", NOW - timedelta(hours=12)) == []
    store.close()
