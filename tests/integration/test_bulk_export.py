"""Integration: ``bone-cds sweep --export`` against a real FHIR server's Bulk Data ``$export``.

sekmet-fhir 0.1.1 (``scripts/sekmet_server.py``) with a SMART Backend Services client registered
by its public JWK Set: the sweep authenticates with a JWT assertion signed by a key made in the
test (RS384, and ES384 for the Group export), kicks off the export, polls the status URL (sekmet
answers 202 + ``X-Progress`` for about a second), downloads the manifest's files and sweeps them.
The worklist must equal the sweep over the same resources written as NDJSON files (issue 15).

sekmet checks the ``DELETE`` of a status URL as a delete on every type (``system/*.d``): the RSA
client is registered with :data:`sekmet_server.CANCEL_SCOPES` and asks for them (``--scope``), so
the real DELETE is exercised (after the download, and on a cancel); the EC client keeps the
default ``system/*.read`` and its refused DELETE is said, never fatal.

Set ``BONE_CDS_SKIP_INTEGRATION=1`` to skip.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cds_service.cli import main
from sweep.smart_backend import ClientKey
from tests.integration.test_fhir_server import sekmet_server
from tests.sweep_helpers import write_population

pytestmark = pytest.mark.integration

AS_OF = "2026-11-23"
RSA_CLIENT = "bone-cds-sweep"
EC_CLIENT = "bone-cds-sweep-ec"
GROUP = "bone-sweep-group"


def _pem(key: Any, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    return {RSA_CLIENT: _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048), folder / "rsa.pem"),
            EC_CLIENT: _pem(ec.generate_private_key(ec.SECP384R1()), folder / "ec.pem")}


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The fixtures' patients as NDJSON (loaded into the server) and their patient ids."""
    folder = tmp_path_factory.mktemp("population")
    written = write_population(folder)
    return folder, [p.patient_id for p in written]


@pytest.fixture(scope="module")
def accepted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference input: the resources the server accepted, as NDJSON files (some fixtures
    carry deliberately malformed records a validating server refuses)."""
    return tmp_path_factory.mktemp("accepted")


@pytest.fixture(scope="module")
def server(keys: dict[str, Path], population: tuple[Path, list[str]], accepted: Path) -> Iterator[Any]:
    if os.environ.get("BONE_CDS_SKIP_INTEGRATION") == "1":
        pytest.skip("BONE_CDS_SKIP_INTEGRATION=1: integration tests against sekmet-fhir skipped")
    clients = {cid: ClientKey.load(path).jwks() for cid, path in keys.items()}
    srv = sekmet_server.start(backend_clients=clients, backend_scopes={RSA_CLIENT: sekmet_server.CANCEL_SCOPES})
    try:
        folder, patient_ids = population
        entries = []
        for path in sorted(folder.glob("*.ndjson")):
            for line in path.read_text().splitlines():
                r = json.loads(line)
                entries.append({"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}})
        members = [{"entity": {"reference": f"Patient/{pid}"}} for pid in patient_ids[::2]]
        group = {"resourceType": "Group", "id": GROUP, "type": "person", "actual": True, "member": members}
        entries.append({"resource": group, "request": {"method": "PUT", "url": f"Group/{GROUP}"}})
        headers = {"Authorization": f"Bearer {srv.token(sekmet_server.LOAD_CLIENT)}",
                   "Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
        bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries}
        resp = requests.post(srv.base_url, json=bundle, headers=headers, timeout=120)
        assert resp.status_code == 200, resp.text[:500]
        by_type: dict[str, list[str]] = {}
        for sent, got in zip(entries, resp.json()["entry"]):
            r = sent["resource"]
            if got["response"]["status"].startswith(("200", "201")) and r["resourceType"] != "Group":
                by_type.setdefault(r["resourceType"], []).append(json.dumps(r))
        assert len(by_type.get("Patient", ())) == len(patient_ids)
        for rtype, lines in by_type.items():
            (accepted / f"{rtype}.ndjson").write_text("\n".join(lines) + "\n")
        yield srv
    finally:
        srv.stop()


def _rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "worklist.ndjson").read_text().splitlines()]


def _sweep(*args: str) -> int:
    return main(["sweep", *args, "--as-of", AS_OF, "--workers", "1"])


def _status(server: Any, url: str) -> int:
    token = server.token(sekmet_server.READ_CLIENT)
    return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code


@pytest.fixture(scope="module")
def reference(server: Any, accepted: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("reference")
    assert _sweep(str(accepted), "--out", str(out), "--quiet") == 0
    rows = _rows(out)
    assert rows, "the fixtures' population gives findings"
    return rows


def test_system_export_gives_the_worklist_of_the_same_files(server: Any, keys: dict[str, Path],
                                                            reference: list[dict], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    """Kick-off → 202 polling with X-Progress → manifest → files → the same worklist; the token
    URL found from .well-known/smart-configuration; the job deleted once downloaded."""
    out = tmp_path / "out"
    code = _sweep("--export", server.base_url, "--client-id", RSA_CLIENT, "--key", str(keys[RSA_CLIENT]),
                  "--scope", sekmet_server.CANCEL_SCOPES, "--out", str(out))
    err = capsys.readouterr().err
    assert code == 0, err
    assert _rows(out) == reference
    assert "in progress (" in err                      # sekmet's X-Progress shown while it runs
    summary = json.loads((out / "summary.json").read_text())
    export = summary["export"]
    assert export["level"] == "system" and export["type_filter"]["sent"] is True
    assert export["requires_access_token"] is True and export["files"] >= 5
    assert export["files"] == len(list((out / "export").glob("*.ndjson")))
    assert set(export["files_by_type"]) <= set(export["types"]) and "Patient" in export["files_by_type"]
    state = json.loads((out / "export-state.json").read_text())
    assert state["complete"] is True and len(state["files"]) == export["files"] + len(export["errors"]["files"])
    # the status URL is DELETEd once the download is complete (sekmet: 202) and gone on the server
    assert "the download is complete: asked the server to delete the export (HTTP 202)" in err
    assert state["deleted"] is True and export["deleted_on_server"] is True
    assert _status(server, state["status_url"]) == 404
    # the same command again reuses the complete download: no new export
    assert _sweep("--export", server.base_url, "--client-id", RSA_CLIENT, "--key", str(keys[RSA_CLIENT]),
                  "--scope", sekmet_server.CANCEL_SCOPES, "--out", str(out)) == 0
    assert "already downloaded" in capsys.readouterr().err
    assert _rows(out) == reference


def test_group_export_with_an_es384_key(server: Any, keys: dict[str, Path], reference: list[dict],
                                        population: tuple[Path, list[str]], tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    """Group/{id}/$export: the members' rows only, each as the whole population's sweep gives it."""
    out = tmp_path / "group"
    token_url = server.token_url
    code = _sweep("--export", server.base_url, "--client-id", EC_CLIENT, "--key", str(keys[EC_CLIENT]),
                  "--token-url", token_url, "--group", GROUP, "--out", str(out))
    err = capsys.readouterr().err
    assert code == 0, err
    # the default scope (system/*.read) is all the sweep needs; sekmet refuses it the DELETE,
    # which is said and is not fatal (the job stays until the server drops it)
    assert "asked the server to delete the export (HTTP 403, refused" in err
    state = json.loads((out / "export-state.json").read_text())
    assert state["deleted"] is False and _status(server, state["status_url"]) == 200
    members = set(population[1][::2])
    expected = [r for r in reference if r["patient_id"] in members]
    assert expected and _rows(out) == expected
    assert json.loads((out / "summary.json").read_text())["export"]["level"] == "group"


def test_an_unregistered_key_is_refused_with_the_servers_reason(server: Any, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    other = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048), tmp_path / "other.pem")
    code = _sweep("--export", server.base_url, "--client-id", RSA_CLIENT, "--key", str(other),
                  "--out", str(tmp_path / "out"))
    err = capsys.readouterr().err
    assert code == 1
    assert "invalid_client" in err and "refused client 'bone-cds-sweep'" in err
    assert not (tmp_path / "out" / "worklist.csv").exists()



def test_a_cancel_deletes_the_export_on_the_server(server: Any, keys: dict[str, Path], tmp_path: Path) -> None:
    """Ctrl-C while the job runs (the first 202): DELETE on the status URL, answered 202 by the
    real server, and the job is gone there (404); the next run starts a new export."""
    from sweep.bulk_export import ExportCancelled, export

    said: list[str] = []
    seen: dict[str, str] = {}

    def say(text: str) -> None:
        said.append(text)
        if text.startswith("export: in progress") and not seen:
            seen["status_url"] = json.loads((tmp_path / "out" / "export-state.json").read_text())["status_url"]
            raise KeyboardInterrupt   # as Ctrl-C does, in the main thread, while polling
    with pytest.raises(ExportCancelled):
        export(server.base_url, tmp_path / "out", client_id=RSA_CLIENT, key_path=keys[RSA_CLIENT],
               scope=sekmet_server.CANCEL_SCOPES, as_of=AS_OF, say=say)
    assert seen["status_url"].startswith(server.base_url)
    assert "export: cancelled: asked the server to delete the export (HTTP 202)" in said
    assert _status(server, seen["status_url"]) == 404
    state = json.loads((tmp_path / "out" / "export-state.json").read_text())
    assert state["status_url"] is None and state["deleted"] is True and state["complete"] is False
