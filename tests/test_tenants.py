"""Tenants (issue 14): one configuration file, a tenant per EHR instance, matched by the verified
``iss``; a tenant's token can reach only its own FHIR servers. Checklist SEC-5 (audience), SEC-9,
PF-7 (allowed servers only)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
import responses

from cds_service import cli
from cds_service.app import create_app
from cds_service.config import ConfigError, Settings
from hooks.services import services
from datetime import timedelta

from tests.factory import DMAB60, NOW, draft, hook_request, observation, patient
from tests.trust_helpers import Signer

PV, OSEL, OSIGN = (s.id for s in services())
BASE_A, BASE_B = "https://cds.example.org/north", "https://cds.example.org/south"
FHIR_A, FHIR_B = "https://ehr.north.example/fhir", "https://ehr.south.example/fhir"


@pytest.fixture(scope="module")
def signers() -> tuple[Signer, Signer]:
    return Signer(iss="https://ehr.north.example/iss", kid="north-1"), \
        Signer(iss="https://ehr.south.example/iss", kid="south-1")


def _write(tmp_path: Path, text: str, name: str = "tenants.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _config(tmp_path: Path, a: Signer, b: Signer, extra_a: str = "", extra_b: str = "") -> Path:
    (tmp_path / "north.json").write_text(json.dumps(a.jwks))
    (tmp_path / "south.json").write_text(json.dumps(b.jwks))
    return _write(tmp_path, f'''
[tenants.north]
issuer = "{a.iss}"
jwks_file = "north.json"
jku = "https://ehr.north.example/keys"
audiences = ["{BASE_A}"]
fhir_servers = ["{FHIR_A}"]
ehr_profile = "epic"
expected_sub = "north-client"
{extra_a}

[tenants.south]
issuer = "{b.iss}"
jwks_file = "south.json"
jku = "https://ehr.south.example/keys"
audiences = ["{BASE_B}"]
fhir_servers = ["{FHIR_B}"]
time_zone = "America/Chicago"
{extra_b}
''')


def _client(tmp_path: Path, config: Path):
    settings = Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path / "data"), "BONE_CDS_TENANTS": str(config)})
    return create_app(settings, clock=lambda: NOW).test_client()


def _bearer(signer: Signer, base: str, path: str, **claims) -> dict[str, str]:
    return signer.bearer(f"{base}{path}", **claims)


def _low_calcium_order() -> dict:
    return hook_request("order-sign", [patient(), observation("17861-6", 8.2, "mg/dL", (NOW - timedelta(days=2)).date())], drafts=[draft(DMAB60)])


def test_each_tenant_calls_with_its_own_token_audience_and_sub(tmp_path, signers) -> None:
    a, b = signers
    client = _client(tmp_path, _config(tmp_path, a, b))
    path = f"/cds-services/{OSIGN}"
    ok_a = client.post(path, json=_low_calcium_order(), headers=_bearer(a, BASE_A, path, sub="north-client"))
    ok_b = client.post(path, json=_low_calcium_order(), headers=_bearer(b, BASE_B, path))
    assert ok_a.status_code == ok_b.status_code == 200
    # north is an Epic tenant: its answer has Epic's topic codes; south's is standard
    assert all(re.fullmatch(r"[A-Za-z0-9]+", c["source"]["topic"]["code"]) for c in ok_a.get_json()["cards"])
    assert any("-" in c["source"]["topic"]["code"] for c in ok_b.get_json()["cards"])
    # a token naming the other tenant's audience, or without the expected client id: refused
    assert client.post(path, json=_low_calcium_order(),
                       headers=_bearer(a, BASE_B, path, sub="north-client")).status_code == 401
    assert client.post(path, json=_low_calcium_order(), headers=_bearer(a, BASE_A, path)).status_code == 401
    assert client.post(path, json=_low_calcium_order(),
                       headers=_bearer(a, BASE_A, path, sub="south-client")).status_code == 401
    # an unknown issuer is refused like any untrusted token
    stranger = Signer(iss="https://elsewhere.example/iss", kid="x")
    assert client.post(path, json=_low_calcium_order(), headers=_bearer(stranger, BASE_A, path)).status_code == 401


def _fhir_request(server: str) -> dict:
    body = hook_request("patient-view", prefetch=False)
    body["fhirServer"] = server
    body["fhirAuthorization"] = {"access_token": "tok-" + uuid.uuid4().hex, "token_type": "Bearer",
                                 "expires_in": 300, "scope": "patient/*.read", "subject": "cds"}
    return body


def test_a_tenant_reads_only_its_own_fhir_servers(tmp_path, signers) -> None:
    a, b = signers
    client = _client(tmp_path, _config(tmp_path, a, b))
    path = f"/cds-services/{PV}"
    empty = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        for server in (FHIR_A, FHIR_B):
            rsps.add(responses.GET, re.compile(re.escape(server) + r"/.*"), json=empty)
        own = client.post(path, json=_fhir_request(FHIR_B), headers=_bearer(b, BASE_B, path))
        called_own = [c.request.url for c in rsps.calls]
        assert own.status_code == 200 and called_own and all(u.startswith(FHIR_B) for u in called_own)
        rsps.calls.reset()
        other = client.post(path, json=_fhir_request(FHIR_A), headers=_bearer(b, BASE_B, path))
        assert other.status_code in (200, 412)
        assert not rsps.calls, "tenant south's token must never reach tenant north's FHIR server"


def test_tenant_thresholds_and_time_zone_apply_to_that_tenant_only(tmp_path, signers) -> None:
    a, b = signers
    config = _config(tmp_path, a, b, extra_b="[tenants.south.thresholds]\ncalcium_total_low_mg_dl = 8.0\n")
    settings = Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path / "d"), "BONE_CDS_TENANTS": str(config)})
    north, south = settings.for_caller(a.iss), settings.for_caller(b.iss)
    assert str(south.thresholds.calcium_total_low_mg_dl) == "8.0" and str(north.thresholds.calcium_total_low_mg_dl) == "8.5"
    assert str(south.thresholds.zone) == "America/Chicago" and str(north.thresholds.zone) == "UTC"
    assert north.fetch.allowed_servers == (FHIR_A,) and south.fetch.allowed_servers == (FHIR_B,)
    assert settings.for_caller("https://unknown").fetch.allowed_servers == ()
    client = create_app(settings, clock=lambda: NOW).test_client()
    path = f"/cds-services/{OSIGN}"
    rules_a = {c["source"]["topic"]["code"] for c in client.post(
        path, json=_low_calcium_order(), headers=_bearer(a, BASE_A, path, sub="north-client")).get_json()["cards"]}
    rules_b = {c["source"]["topic"]["code"] for c in client.post(
        path, json=_low_calcium_order(), headers=_bearer(b, BASE_B, path)).get_json()["cards"]}
    assert "DMABHYPOCALCEMIA" in rules_a and "DMAB-HYPOCALCEMIA" not in rules_b


BAD = [
    ("not toml", "[tenants.x\nissuer=", "not valid TOML"),
    ("no tenants", "", "tenants: at least one"),
    ("unknown top", '[other]\nx = 1\n', "unknown top-level key(s) other"),
    ("no issuer", '[tenants.x]\njwks_uri = "https://k.example/keys"\naudiences = ["https://cds.example.org"]\n',
     "tenants.x.issuer: required"),
    ("no key", '[tenants.x]\nissuer = "https://i.example"\naudiences = ["https://cds.example.org"]\n',
     "tenants.x: needs exactly one key source"),
    ("http keys", '[tenants.x]\nissuer = "https://i.example"\njwks_uri = "http://k.example/keys"\n'
                  'audiences = ["https://cds.example.org"]\n', "tenants.x"),
    ("no audience", '[tenants.x]\nissuer = "https://i.example"\njwks_uri = "https://k.example/keys"\n',
     "tenants.x.audiences: required"),
    ("bad audience", '[tenants.x]\nissuer = "https://i.example"\njwks_uri = "https://k.example/keys"\n'
                     'audiences = ["cds.example.org"]\n', "tenants.x.audiences"),
    ("bad server", '[tenants.x]\nissuer = "https://i.example"\njwks_uri = "https://k.example/keys"\n'
                   'audiences = ["https://cds.example.org"]\nfhir_servers = ["ftp://x"]\n', "tenants.x.fhir_servers[0]"),
    ("unknown key", '[tenants.x]\nissuer = "https://i.example"\njwks_uri = "https://k.example/keys"\n'
                    'audiences = ["https://cds.example.org"]\ncolour = "red"\n', "tenants.x: unknown key(s) colour"),
    ("bad profile", '[tenants.x]\nissuer = "https://i.example"\njwks_uri = "https://k.example/keys"\n'
                    'audiences = ["https://cds.example.org"]\nehr_profile = "cerner"\n', "tenants.x.ehr_profile"),
    ("bad zone", '[tenants.x]\nissuer = "https://i.example"\njwks_uri = "https://k.example/keys"\n'
                 'audiences = ["https://cds.example.org"]\ntime_zone = "Mars/Base"\n', "tenants.x.time_zone"),
    ("bad threshold", '[tenants.x]\nissuer = "https://i.example"\njwks_uri = "https://k.example/keys"\n'
                      'audiences = ["https://cds.example.org"]\n[tenants.x.thresholds]\nno_such = 1\n',
     "tenants.x.thresholds: unknown threshold 'no_such'"),
    ("same issuer", '[tenants.x]\nissuer = "https://i.example"\njwks_uri = "https://k.example/keys"\n'
                    'audiences = ["https://cds.example.org"]\n[tenants.y]\nissuer = "https://i.example"\n'
                    'jwks_uri = "https://k.example/keys"\naudiences = ["https://cds.example.org"]\n',
     "tenants.y.issuer: 'https://i.example' is also the issuer of tenant 'x'"),
    ("shared server", '[tenants.x]\nissuer = "https://i.example"\njwks_uri = "https://k.example/keys"\n'
                      'audiences = ["https://cds.example.org"]\nfhir_servers = ["https://f.example/fhir"]\n'
                      '[tenants.y]\nissuer = "https://j.example"\njwks_uri = "https://k.example/keys"\n'
                      'audiences = ["https://cds.example.org"]\nfhir_servers = ["https://f.example/fhir/"]\n',
     "tenants.y.fhir_servers: 'https://f.example/fhir' is also a server of tenant 'x'"),
    ("triggers without epic", '[tenants.x]\nissuer = "https://i.example"\njwks_uri = "https://k.example/keys"\n'
                              'audiences = ["https://cds.example.org"]\npatient_view_triggers = ["60"]\n',
     "tenants.x.ehr_profile"),
]


@pytest.mark.parametrize("name,text,needle", BAD, ids=[b[0] for b in BAD])
def test_invalid_tenant_files_stop_start_up_with_file_key_and_reason(tmp_path, name, text, needle) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"BONE_CDS_TENANTS": str(path)})
    assert str(path) in str(err.value) and needle in str(err.value), str(err.value)


def test_missing_file_and_conflicting_variables_are_refused(tmp_path, signers) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        Settings.from_env({"BONE_CDS_TENANTS": str(tmp_path / "none.toml")})
    config = _config(tmp_path, *signers)
    for extra in ({"BONE_CDS_TRUSTED_ISSUERS": "{}"}, {"BONE_CDS_ALLOWED_FHIR_SERVERS": FHIR_A},
                  {"BONE_CDS_EHR_PROFILE": "epic"}):
        with pytest.raises(ConfigError, match="BONE_CDS_TENANTS replaces " + next(iter(extra))):
            Settings.from_env({"BONE_CDS_TENANTS": str(config), **extra})
    with pytest.raises(ConfigError, match="BONE_CDS_AUTH must be jwt"):
        Settings.from_env({"BONE_CDS_TENANTS": str(config), "BONE_CDS_AUTH": "none"})


def test_config_check_command(tmp_path, signers, capsys) -> None:
    good = _config(tmp_path, *signers)
    assert cli.main(["config", "check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "2 tenants" in out and "north" in out and "south" in out
    bad = _write(tmp_path, BAD[3][1], "bad.toml")
    assert cli.main(["config", "check", str(bad)]) == 2
    assert "tenants.x.issuer: required" in capsys.readouterr().err


def test_an_epic_shaped_call_rs384_jku_hand_set_aud_and_sub_answers_in_the_epic_profile(tmp_path) -> None:
    """Issue 14 done-means: Epic's JWT as its tutorial shows it — RS384, ``jku`` under the
    organisation's base, ``aud``/``iss``/``sub`` typed in by the site (the aud need not be the
    called URL's own spelling), ``nbf`` = iat − 300 s, a 900 s lifetime — with an Epic-shaped
    order-sign request (inlined Medication, "no results" OperationOutcome entries, Epic
    extensions) gets the expected card in Epic's wire form."""
    import time as _time

    import jwt as pyjwt
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": "d3bmo5HzW61TUgikHZH+A8Tx4UOXz2iOs4KvVU4eLY0=", "use": "sig", "alg": "RS384"})
    base = "https://fhir.epic-org.example/interconnect-fhir-oauth"
    jku = f"{base}/api/epic/2019/Security/Open/PublicKeys/530013/530013"
    iss = f"{base}/api/FHIR/R4"
    (tmp_path / "epic-keys.json").write_text(json.dumps({"keys": [jwk]}))
    typed_base = "https://CDS.Example.org:443/north/"          # as the site typed it
    config = _write(tmp_path, f'''
[tenants.epic-prod]
issuer = "{iss}"
jwks_file = "epic-keys.json"
jku = "{jku}"
audiences = ["{typed_base}"]
expected_sub = "0oa1bcd2efGHIjk3L4m5"
ehr_profile = "epic"
''')
    client = _client(tmp_path, config)
    body = json.loads((Path(__file__).resolve().parent.parent / "fixtures" / "epic"
                       / "order-sign-inlined-medication-low-calcium.json").read_text())
    path = f"/cds-services/{OSIGN}"
    now = int(_time.time())
    claims = {"iss": iss, "sub": "0oa1bcd2efGHIjk3L4m5", "aud": f"{typed_base}cds-services/{OSIGN}",
              "iat": now, "nbf": now - 300, "exp": now + 900, "jti": str(uuid.uuid4())}
    token = pyjwt.encode(claims, key, algorithm="RS384", headers={"typ": "JWT", "kid": jwk["kid"], "jku": jku})
    r = client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.get_json()
    codes = [c["source"]["topic"]["code"] for c in r.get_json()["cards"]]
    assert codes == ["DMABHYPOCALCEMIA"]
    # another client id, or a jku other than the configured one: refused
    for change in ({"sub": "someone-else"}, {}):
        bad = {**claims, "jti": str(uuid.uuid4()), **change}
        headers = {"typ": "JWT", "kid": jwk["kid"], "jku": jku if change else jku + "/other"}
        tok = pyjwt.encode(bad, key, algorithm="RS384", headers=headers)
        assert client.post(path, json=body, headers={"Authorization": f"Bearer {tok}"}).status_code == 401


def test_feedback_carries_its_tenant_and_unknown_cards_are_counted_per_tenant(tmp_path, signers) -> None:
    """Issue 12: feedback is stored with the verified caller's tenant; the governance report
    counts feedback for cards never issued apart from every rule, per tenant."""
    from cds_service.governance.report import build_report
    a, b = signers
    client = _client(tmp_path, _config(tmp_path, a, b))
    path = f"/cds-services/{OSIGN}"
    cards = client.post(path, json=_low_calcium_order(), headers=_bearer(b, BASE_B, path)).get_json()["cards"]
    fb_path = f"{path}/feedback"

    def entry(card: str) -> dict:
        return {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-23T15:05:00Z"}

    r_a = client.post(fb_path, json={"feedback": [entry("north-unknown-1"), entry("north-unknown-2")]},
                      headers=_bearer(a, BASE_A, fb_path, sub="north-client"))
    r_b = client.post(fb_path, json={"feedback": [entry(cards[0]["uuid"]), entry("south-unknown")]},
                      headers=_bearer(b, BASE_B, fb_path))
    assert r_a.status_code == r_b.status_code == 200
    store = client.application.config["FEEDBACK_STORE"]
    assert {r["card_uuid"]: r["tenant"] for r in store.rows()} == {
        "north-unknown-1": "north", "north-unknown-2": "north", cards[0]["uuid"]: "south", "south-unknown": "south"}
    unknown = build_report(store, now=NOW + timedelta(hours=1), days=7)["unknown_card_feedback"]
    assert unknown == {"feedback": 3, "cards": 3, "by_tenant": {"north": {"feedback": 2, "cards": 2},
                                                                "south": {"feedback": 1, "cards": 1}}}
