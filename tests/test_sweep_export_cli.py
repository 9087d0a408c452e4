"""``bone-cds sweep --export`` and ``bone-cds jwks`` on the command line (issue 15): the options'
errors, and a whole run against ``responses`` serving ``fixtures/bulk`` (the same worklist as the
sweep of the folder; the export's summary in summary.json)."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cds_service.cli import main

ROOT = Path(__file__).resolve().parent.parent
BULK = ROOT / "fixtures" / "bulk"
BASE = "https://ehr.example/fhir"
AS_OF = "2026-11-23"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "ec.pem"
    path.write_bytes(ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path


@pytest.mark.parametrize("args,message", [
    ([], "give either INPUT"),
    ([str(BULK), "--export", BASE], "give either INPUT"),
    (["--export", BASE], "--export needs --client-id and --key"),
    (["--export", BASE, "--client-id", "c", "--key", "k.pem", "--download-workers", "0"], "must be positive"),
])
def test_option_errors_exit_2_naming_the_problem(args: list[str], message: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    assert main(["sweep", *args, "--as-of", AS_OF, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_key_file_is_said_and_nothing_is_fetched(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with responses.RequestsMock():       # any request would fail the test
        code = main(["sweep", "--export", BASE, "--client-id", "c", "--key", str(tmp_path / "nope.pem"),
                     "--as-of", AS_OF, "--out", str(tmp_path / "out")])
    assert code == 1 and "cannot read the key file" in capsys.readouterr().err


def test_jwks_prints_the_public_key_to_register(key: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["jwks", str(key), "--kid", "sweep-1"]) == 0
    jwks = json.loads(capsys.readouterr().out)
    (jwk,) = jwks["keys"]
    assert jwk["kid"] == "sweep-1" and jwk["alg"] == "ES384" and jwk["crv"] == "P-384" and "d" not in jwk


def test_a_whole_export_run_gives_the_worklist_of_the_folder(key: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    ref = tmp_path / "ref"
    assert main(["sweep", str(BULK), "--as-of", AS_OF, "--out", str(ref), "--workers", "1", "--quiet"]) == 0
    files = sorted(BULK.glob("*.ndjson"))
    status = f"{BASE}/status/1"
    assertions: list[str] = []
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, f"{BASE}/.well-known/smart-configuration",
                 json={"token_endpoint": "https://ehr.example/oauth/token"})

        def token(req: object) -> tuple[int, dict, str]:
            from urllib.parse import parse_qs
            assertions.append(parse_qs(req.body)["client_assertion"][0])  # type: ignore[attr-defined]
            return 200, {}, json.dumps({"access_token": "secret-token-value", "expires_in": 300})
        rsps.add_callback(responses.POST, "https://ehr.example/oauth/token", callback=token)
        rsps.add(responses.GET, f"{BASE}/Patient/$export", status=202, headers={"Content-Location": status})
        rsps.add(responses.GET, status, json={
            "transactionTime": "2026-11-23T06:00:00Z", "request": f"{BASE}/Patient/$export",
            "requiresAccessToken": True, "error": [],
            "output": [{"type": p.stem, "url": f"{BASE}/files/{p.name}"} for p in files]})
        for p in files:
            rsps.add(responses.GET, f"{BASE}/files/{p.name}", body=p.read_bytes())
        rsps.add(responses.DELETE, status, status=202)
        code = main(["sweep", "--export", BASE, "--client-id", "sweeper", "--key", str(key), "--patients",
                     "--as-of", AS_OF, "--out", str(tmp_path / "out"), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 0, err
    out = tmp_path / "out"
    assert (out / "worklist.ndjson").read_text() == (ref / "worklist.ndjson").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["export"]["level"] == "patient" and summary["export"]["files"] == len(files)
    assert summary["findings"] == json.loads((ref / "summary.json").read_text())["findings"] > 0
    claims = jwt.decode(assertions[0], options={"verify_signature": False})
    assert claims["aud"] == "https://ehr.example/oauth/token" and claims["iss"] == "sweeper"
    everything = err + (out / "summary.json").read_text() + (out / "export-state.json").read_text()
    assert "secret-token-value" not in everything and assertions[0] not in everything
