"""The Bulk Data export client (``sweep/bulk_export.py``) against ``responses``: the fault cases a
real server is hard to make show (issue 15; the happy path against sekmet-fhir is in
``tests/integration/test_bulk_export.py``)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cds_service.chart.medication_refs import MEDICATION_RECORD_TYPES
from sweep.bulk_export import (STATE_FILE, BulkExport, ExportCancelled, ExportError, ExportSettings,
                               retry_after, sweep_request)
from sweep.smart_backend import ClientKey, TokenSource

BASE = "https://ehr.example/fhir"
TOKEN = "https://ehr.example/auth/token"
STATUS = "https://ehr.example/fhir/bulk-status/job-1"
FILES = "https://ehr.example/fhir/bulk-files/job-1"
PATIENT = '{"resourceType":"Patient","id":"p1"}\n'
REQUEST = '{"resourceType":"MedicationRequest","id":"m1","subject":{"reference":"Patient/p1"}}\n'


@pytest.fixture(scope="module")
def key_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "key.pem"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


class Clock:
    """A fake monotonic clock that sleeping advances."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


class Tokens:
    """The token endpoint: tok-1, tok-2, … (each call counted)."""

    def __init__(self, rsps: responses.RequestsMock, lifetime: int = 600) -> None:
        self.issued = 0
        self.lifetime = lifetime
        rsps.add_callback(responses.POST, TOKEN, callback=self._issue)

    def _issue(self, _req: requests.PreparedRequest) -> tuple[int, dict, str]:
        self.issued += 1
        return 200, {}, json.dumps({"access_token": f"tok-{self.issued}", "expires_in": self.lifetime})


def job(tmp_path: Path, key_path: Path, clock: Clock, said: list[str], **kw: Any) -> BulkExport:
    session = requests.Session()
    tokens = TokenSource(session, TOKEN, "sweep-client", ClientKey.load(key_path), clock=kw.pop("token_clock", clock.now))
    settings = ExportSettings(sleep=clock.sleep, clock=clock.now, **kw.pop("settings", {}))
    return BulkExport(sweep_request(BASE, **kw.pop("request", {})), tmp_path, tokens, session=session,
                      settings=settings, say=said.append, **kw)


def manifest(*files: tuple[str, str], errors: tuple[str, ...] = (), token: bool = True) -> dict[str, Any]:
    return {"transactionTime": "2026-11-23T08:00:00Z", "request": f"{BASE}/$export", "requiresAccessToken": token,
            "output": [{"type": t, "url": f"{FILES}/{name}"} for t, name in files],
            "error": [{"type": "OperationOutcome", "url": f"{FILES}/{name}"} for name in errors]}


def kickoff(rsps: responses.RequestsMock, status: int = 202, **kw: Any) -> None:
    headers = {"Content-Location": STATUS} if status == 202 else {}
    rsps.add(responses.GET, f"{BASE}/$export", status=status, headers=headers, **kw)


def calls(rsps: responses.RequestsMock, method: str, prefix: str) -> list[Any]:
    return [c for c in rsps.calls if c.request.method == method and c.request.url.startswith(prefix)]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    from datetime import datetime, timezone
    now = datetime(2026, 11, 23, 8, 0, 0, tzinfo=timezone.utc)
    assert retry_after("120") == 120.0
    assert retry_after("Mon, 23 Nov 2026 08:00:30 GMT", now) == 30.0
    assert retry_after("Mon, 23 Nov 2026 07:00:00 GMT", now) == 0.0   # in the past: now
    assert retry_after("soon") is None and retry_after(None) is None


def test_kickoff_polling_manifest_and_files(tmp_path: Path, key_path: Path) -> None:
    """202 with Retry-After (seconds, an HTTP-date, one too long: bounded) and X-Progress, then the
    manifest; every file downloaded, the status URL deleted; the kick-off asks for the sweep's
    types, ndjson, and an Observation code filter only."""
    clock, said = Clock(), []
    with responses.RequestsMock() as rsps:
        tokens = Tokens(rsps)
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, status=202, headers={"X-Progress": "12% done", "Retry-After": "7"})
        rsps.add(responses.GET, STATUS, status=202, headers={"X-Progress": "50%", "Retry-After": "100000"})
        rsps.add(responses.GET, STATUS, status=202, headers={"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"})
        rsps.add(responses.GET, STATUS, json=manifest(("Patient", "Patient.ndjson"),
                                                      ("MedicationRequest", "MedicationRequest.ndjson"),
                                                      ("Encounter", "Encounter.ndjson")))
        rsps.add(responses.GET, f"{FILES}/Patient.ndjson", body=PATIENT)
        rsps.add(responses.GET, f"{FILES}/MedicationRequest.ndjson", body=REQUEST)
        rsps.add(responses.DELETE, STATUS, status=202)
        result = job(tmp_path, key_path, clock, said, settings={"poll_max": 60}).run()
        start = calls(rsps, "GET", f"{BASE}/$export")[0].request
        assert start.headers["Accept"] == "application/fhir+json" and start.headers["Prefer"] == "respond-async"
        assert start.headers["Authorization"] == "Bearer tok-1"
        q = {k: v[0] for k, v in parse_qs(urlsplit(start.url).query).items()}
        assert q["_outputFormat"] == "application/fhir+ndjson"
        assert set(q["_type"].split(",")) == {"Patient", "Observation", "Condition", "Procedure", "Medication",
                                              *MEDICATION_RECORD_TYPES}
        filters = q["_typeFilter"].split(",")
        assert len(filters) == 1 and filters[0].startswith("Observation?code=")   # D3: no drug filter
        assert "http://loinc.org|" in parse_qs(filters[0].split("?", 1)[1])["code"][0]
        assert not any(c.request.url.endswith("Encounter.ndjson") for c in rsps.calls)   # not a type read
        assert len(calls(rsps, "DELETE", STATUS)) == 1
    assert clock.t == pytest.approx(7 + 60 + 1)        # Retry-After honoured, bounded to [1, 60]
    assert any("12% done" in s for s in said) and any("(50%)" in s for s in said)
    assert (tmp_path / "export" / "Patient.1.ndjson").read_text() == PATIENT
    assert (tmp_path / "export" / "MedicationRequest.1.ndjson").read_text() == REQUEST
    assert not list((tmp_path / "export").glob("*.part"))
    s = result.summary
    assert s["files"] == 2 and s["skipped_types"] == ["Encounter"] and s["deleted_on_server"] is True
    assert tokens.issued == 1
    assert not any("tok-" in line for line in said)


def test_a_file_404_keeps_the_others_and_the_rerun_downloads_only_what_is_missing(tmp_path: Path, key_path: Path) -> None:
    clock, said = Clock(), []
    m = manifest(("Patient", "Patient.ndjson"), ("MedicationRequest", "MedicationRequest.ndjson"))
    with responses.RequestsMock() as rsps:
        Tokens(rsps)
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, json=m)
        rsps.add(responses.GET, f"{FILES}/Patient.ndjson", body=PATIENT)
        rsps.add(responses.GET, f"{FILES}/MedicationRequest.ndjson", status=404,
                 json={"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]})
        with pytest.raises(ExportError) as info:
            job(tmp_path, key_path, clock, said).run()
        assert info.value.resumable and "MedicationRequest.1.ndjson: HTTP 404" in str(info.value)
        assert "run the same command again" in str(info.value)
        assert not calls(rsps, "DELETE", STATUS)          # resumable: the job is kept on the server
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["status_url"] == STATUS and state["manifest"] == m
    assert [f["path"] for f in state["files"].values()] == ["export/Patient.1.ndjson"]
    assert (tmp_path / "export" / "Patient.1.ndjson").read_text() == PATIENT
    with responses.RequestsMock() as rsps:                # the same command again
        Tokens(rsps)
        rsps.add(responses.GET, f"{FILES}/MedicationRequest.ndjson", body=REQUEST)
        rsps.add(responses.DELETE, STATUS, status=202)
        result = job(tmp_path, key_path, clock, said).run()
        assert [c.request.url for c in calls(rsps, "GET", FILES)] == [f"{FILES}/MedicationRequest.ndjson"]
        assert not calls(rsps, "GET", f"{BASE}/$export") and not calls(rsps, "GET", STATUS)
    assert result.summary["resumed"] is True and result.summary["files"] == 2
    assert any("1 file(s) already downloaded, 1 to go" in s for s in said)


def test_an_interrupted_download_is_resumed_and_a_changed_file_fetched_again(tmp_path: Path, key_path: Path) -> None:
    """A connection that drops mid-file (retries exhausted): the whole files are kept, the part
    file is not taken for a whole one; on the rerun a file altered on disk is fetched again."""
    clock, said = Clock(), []
    m = manifest(("Patient", "Patient.ndjson"), ("MedicationRequest", "MedicationRequest.ndjson"),
                 ("Condition", "Condition.ndjson"))
    with responses.RequestsMock() as rsps:
        Tokens(rsps)
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, json=m)
        rsps.add(responses.GET, f"{FILES}/Patient.ndjson", body=PATIENT)
        rsps.add(responses.GET, f"{FILES}/MedicationRequest.ndjson", body=REQUEST)
        rsps.add(responses.GET, f"{FILES}/Condition.ndjson", body=requests.ConnectionError("reset"))
        with pytest.raises(ExportError) as info:
            job(tmp_path, key_path, clock, said, settings={"retries": 2}).run()
        assert info.value.resumable and "ConnectionError after 3 attempt(s)" in str(info.value)
    assert not (tmp_path / "export" / "Condition.1.ndjson").exists()
    (tmp_path / "export" / "MedicationRequest.1.ndjson").write_text("tampered\n")
    with responses.RequestsMock() as rsps:
        Tokens(rsps)
        rsps.add(responses.GET, f"{FILES}/MedicationRequest.ndjson", body=REQUEST)
        rsps.add(responses.GET, f"{FILES}/Condition.ndjson", body="{}\n")
        rsps.add(responses.DELETE, STATUS, status=202)
        job(tmp_path, key_path, clock, said).run()
        fetched = sorted(c.request.url.rsplit("/", 1)[1] for c in calls(rsps, "GET", FILES))
        assert fetched == ["Condition.ndjson", "MedicationRequest.ndjson"]   # Patient not again
    assert (tmp_path / "export" / "MedicationRequest.1.ndjson").read_text() == REQUEST


def test_the_status_endpoint_failing_then_recovering_is_waited_out(tmp_path: Path, key_path: Path) -> None:
    clock, said = Clock(), []
    with responses.RequestsMock() as rsps:
        Tokens(rsps)
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, status=500, body="upstream hiccup")
        rsps.add(responses.GET, STATUS, status=503, headers={"Retry-After": "30"},
                 json={"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "transient"}]})
        rsps.add(responses.GET, STATUS, json=manifest(("Patient", "Patient.ndjson")))
        rsps.add(responses.GET, f"{FILES}/Patient.ndjson", body=PATIENT)
        rsps.add(responses.DELETE, STATUS, status=202)
        result = job(tmp_path, key_path, clock, said, settings={"backoff": 2}).run()
    assert clock.t == pytest.approx(2 + 30)
    assert result.summary["retries"] == {"http_500": 1, "http_503": 1}
    assert any("HTTP 500; retrying (1/5)" in s for s in said)


def test_a_status_endpoint_that_keeps_failing_stops_resumably(tmp_path: Path, key_path: Path) -> None:
    clock, said = Clock(), []
    with responses.RequestsMock() as rsps:
        Tokens(rsps)
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, status=502)
        with pytest.raises(ExportError) as info:
            job(tmp_path, key_path, clock, said, settings={"retries": 3}).run()
        assert not calls(rsps, "DELETE", STATUS)
    assert info.value.resumable and "HTTP 502 after 4 attempt(s)" in str(info.value)
    assert json.loads((tmp_path / STATE_FILE).read_text())["status_url"] == STATUS


def test_an_export_that_failed_says_the_servers_outcome(tmp_path: Path, key_path: Path) -> None:
    clock, said = Clock(), []
    outcome = {"resourceType": "OperationOutcome",
               "issue": [{"severity": "fatal", "code": "too-costly", "diagnostics": "export exceeds 10 GB"}]}
    with responses.RequestsMock() as rsps:
        Tokens(rsps)
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, status=500, json=outcome)
        rsps.add(responses.DELETE, STATUS, status=202)
        with pytest.raises(ExportError) as info:
            job(tmp_path, key_path, clock, said).run()
        assert len(calls(rsps, "GET", STATUS)) == 1          # not transient: not retried
    assert not info.value.resumable
    assert "status HTTP 500: fatal/too-costly: export exceeds 10 GB" in str(info.value)
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["status_url"] is None                        # the next run kicks off anew


def test_a_token_expiring_mid_download_is_refreshed_once(tmp_path: Path, key_path: Path) -> None:
    clock, said = Clock(), []
    with responses.RequestsMock() as rsps:
        tokens = Tokens(rsps)
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, json=manifest(("Patient", "Patient.ndjson")))
        rsps.add(responses.GET, f"{FILES}/Patient.ndjson", status=401)
        rsps.add(responses.GET, f"{FILES}/Patient.ndjson", body=PATIENT)
        rsps.add(responses.DELETE, STATUS, status=202)
        result = job(tmp_path, key_path, clock, said).run()
        auths = [c.request.headers["Authorization"] for c in calls(rsps, "GET", FILES)]
        assert calls(rsps, "DELETE", STATUS)[0].request.headers["Authorization"] == "Bearer tok-2"
    assert auths == ["Bearer tok-1", "Bearer tok-2"] and tokens.issued == 2
    assert result.summary["retries"] == {"token_refreshed_on_401": 1}
    assert (tmp_path / "export" / "Patient.1.ndjson").read_text() == PATIENT


def test_a_second_401_is_not_retried_forever(tmp_path: Path, key_path: Path) -> None:
    clock, said = Clock(), []
    with responses.RequestsMock() as rsps:
        tokens = Tokens(rsps)
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, json=manifest(("Patient", "Patient.ndjson")))
        rsps.add(responses.GET, f"{FILES}/Patient.ndjson", status=401)
        with pytest.raises(ExportError, match="HTTP 401"):
            job(tmp_path, key_path, clock, said).run()
        assert len(calls(rsps, "GET", FILES)) == 2 and tokens.issued == 2


def test_cancel_deletes_the_export_on_the_server(tmp_path: Path, key_path: Path) -> None:
    clock, said = Clock(), []

    def interrupt(_s: float) -> None:
        raise KeyboardInterrupt     # Ctrl-C (SIGTERM is turned into the same) while waiting
    with responses.RequestsMock() as rsps:
        Tokens(rsps)
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, status=202, headers={"Retry-After": "5"})
        rsps.add(responses.DELETE, STATUS, status=202)
        export = job(tmp_path, key_path, clock, said)
        export.settings.sleep = interrupt
        with pytest.raises(ExportCancelled):
            export.run()
        assert len(calls(rsps, "DELETE", STATUS)) == 1
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["status_url"] is None and state["deleted"] is True


def test_a_type_filter_refused_is_asked_again_without(tmp_path: Path, key_path: Path) -> None:
    clock, said = Clock(), []
    with responses.RequestsMock() as rsps:
        Tokens(rsps)
        kickoff(rsps, status=400, json={"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "not-supported", "diagnostics": "_typeFilter is not supported"}]})
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, json=manifest(("Patient", "Patient.ndjson")))
        rsps.add(responses.GET, f"{FILES}/Patient.ndjson", body=PATIENT)
        rsps.add(responses.DELETE, STATUS, status=202)
        result = job(tmp_path, key_path, clock, said).run()
        starts = [parse_qs(urlsplit(c.request.url).query) for c in calls(rsps, "GET", f"{BASE}/$export")]
    assert "_typeFilter" in starts[0] and "_typeFilter" not in starts[1]
    assert starts[0]["_type"] == starts[1]["_type"]
    assert result.summary["type_filter"] == {"sent": False, "rejected_by_server": (
        "HTTP 400: error/not-supported: _typeFilter is not supported")}


def test_a_kickoff_refused_for_another_reason_stops_with_it(tmp_path: Path, key_path: Path) -> None:
    clock, said = Clock(), []
    refusal = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden",
                                                              "diagnostics": "client may not export"}]}
    with responses.RequestsMock() as rsps:
        Tokens(rsps)
        kickoff(rsps, status=403, json=refusal)
        with pytest.raises(ExportError, match="HTTP 403: error/forbidden: client may not export") as info:
            job(tmp_path, key_path, clock, said, request={"type_filter": False}).run()
    assert not info.value.resumable


def test_files_off_the_servers_origin_are_refused_unless_allowed_and_get_no_token_unless_required(
        tmp_path: Path, key_path: Path) -> None:
    clock, said = Clock(), []
    bucket = "https://bucket.example/export/Patient.ndjson?X-Signature=secret"
    m = manifest()
    m["requiresAccessToken"] = False
    m["output"] = [{"type": "Patient", "url": bucket}]
    with responses.RequestsMock() as rsps:
        Tokens(rsps)
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, json=m)
        with pytest.raises(ExportError) as info:
            job(tmp_path, key_path, clock, said).run()
        assert "--allow-origin https://bucket.example" in str(info.value)
        assert "secret" not in str(info.value)                # no query string in messages
        assert not calls(rsps, "GET", "https://bucket.example")
    with responses.RequestsMock() as rsps:                    # rerun with the origin allowed
        Tokens(rsps)
        rsps.add(responses.GET, bucket, body=PATIENT)
        rsps.add(responses.DELETE, STATUS, status=202)
        job(tmp_path, key_path, clock, said, settings={"allow_origins": ("https://bucket.example",)}).run()
        fetched = calls(rsps, "GET", "https://bucket.example")[0].request
        assert "Authorization" not in fetched.headers         # requiresAccessToken: false
        assert calls(rsps, "DELETE", STATUS)[0].request.headers["Authorization"].startswith("Bearer ")


def test_a_redirect_to_another_origin_never_carries_the_token(tmp_path: Path, key_path: Path) -> None:
    clock, said = Clock(), []
    target = "https://cdn.example/Patient.ndjson"
    with responses.RequestsMock() as rsps:
        Tokens(rsps)
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, json=manifest(("Patient", "Patient.ndjson")))
        rsps.add(responses.GET, f"{FILES}/Patient.ndjson", status=302, headers={"Location": target})
        rsps.add(responses.GET, target, body=PATIENT)
        rsps.add(responses.DELETE, STATUS, status=202)
        job(tmp_path, key_path, clock, said, settings={"allow_origins": ("https://cdn.example",)}).run()
        assert calls(rsps, "GET", FILES)[0].request.headers["Authorization"] == "Bearer tok-1"
        assert "Authorization" not in calls(rsps, "GET", target)[0].request.headers


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path, key_path: Path) -> None:
    clock, said = Clock(), []
    with responses.RequestsMock() as rsps:
        Tokens(rsps)
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, json=manifest(("Patient", "Patient.ndjson")))
        rsps.add(responses.GET, f"{FILES}/Patient.ndjson", body=PATIENT * 100)
        with pytest.raises(ExportError, match="more than the limit of 1,000 bytes"):
            job(tmp_path, key_path, clock, said, settings={"max_file_bytes": 1000}).run()
    assert not list((tmp_path / "export").iterdir())          # neither the file nor its part


def test_error_files_are_downloaded_apart_and_summarised(tmp_path: Path, key_path: Path) -> None:
    clock, said = Clock(), []
    outcome = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "processing", "diagnostics": "Observation/o9 could not be read"},
        {"severity": "warning", "code": "not-supported"}]}
    with responses.RequestsMock() as rsps:
        Tokens(rsps)
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, json=manifest(("Patient", "Patient.ndjson"), errors=("err.ndjson",)))
        rsps.add(responses.GET, f"{FILES}/Patient.ndjson", body=PATIENT)
        rsps.add(responses.GET, f"{FILES}/err.ndjson", body=json.dumps(outcome) + "\n")
        rsps.add(responses.DELETE, STATUS, status=202)
        result = job(tmp_path, key_path, clock, said).run()
    errors = result.summary["errors"]
    assert errors["files"] == ["export-errors/OperationOutcome.1.ndjson"]
    assert errors["issues"] == {"error/processing": 1, "warning/not-supported": 1}
    assert "could not be read" in errors["first"][0]
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["Patient.1.ndjson"]  # not swept


def test_the_timeout_stops_resumably_and_the_rerun_resumes_polling(tmp_path: Path, key_path: Path) -> None:
    clock, said = Clock(), []
    with responses.RequestsMock() as rsps:
        Tokens(rsps)
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, status=202, headers={"Retry-After": "60"})
        with pytest.raises(ExportError, match="did not finish within the timeout") as info:
            job(tmp_path, key_path, clock, said, settings={"timeout": 150}).run()
    assert info.value.resumable
    with responses.RequestsMock() as rsps:
        Tokens(rsps)
        rsps.add(responses.GET, STATUS, json=manifest(("Patient", "Patient.ndjson")))
        rsps.add(responses.GET, f"{FILES}/Patient.ndjson", body=PATIENT)
        rsps.add(responses.DELETE, STATUS, status=202)
        job(tmp_path, key_path, clock, said).run()
        assert not calls(rsps, "GET", f"{BASE}/$export")       # polled the same job, no new kick-off


def test_another_requests_state_is_not_resumed(tmp_path: Path, key_path: Path) -> None:
    clock, said = Clock(), []
    with responses.RequestsMock() as rsps:
        Tokens(rsps)
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, status=503)
        with pytest.raises(ExportError):
            job(tmp_path, key_path, clock, said, settings={"retries": 0}).run()
    with responses.RequestsMock():
        with pytest.raises(ExportError, match="holds an export of another request"):
            job(tmp_path, key_path, clock, said, request={"group": "g1"}).run()
    with responses.RequestsMock() as rsps:                    # --restart: the old one deleted, a new one
        Tokens(rsps)
        rsps.add(responses.DELETE, STATUS, status=202)
        rsps.add(responses.GET, f"{BASE}/Group/g1/$export", status=202, headers={"Content-Location": STATUS + "b"})
        rsps.add(responses.GET, STATUS + "b", json=manifest(("Patient", "Patient.ndjson")))
        rsps.add(responses.GET, f"{FILES}/Patient.ndjson", body=PATIENT)
        rsps.add(responses.DELETE, STATUS + "b", status=202)
        job(tmp_path, key_path, clock, said, request={"group": "g1"}, restart=True).run()
        assert [c.request.url for c in calls(rsps, "DELETE", STATUS)] == [STATUS, STATUS + "b"]


def test_plain_http_is_refused_off_loopback(tmp_path: Path, key_path: Path) -> None:
    clock, said = Clock(), []
    export = job(tmp_path, key_path, clock, said)
    export.request = sweep_request("http://ehr.example/fhir")
    with pytest.raises(ExportError, match="https is required"):
        export.run()


def test_a_connection_dropped_mid_file_is_fetched_again_from_its_start(tmp_path: Path, key_path: Path) -> None:
    clock, said = Clock(), []

    class Dropping(io.BufferedReader):
        """A body that breaks after its first bytes (what a reset connection does to iter_content)."""

        sent = False

        def read(self, *_a: Any, **_k: Any) -> bytes:
            if not self.sent:
                self.sent = True
                return PATIENT[:10].encode()
            raise requests.exceptions.ChunkedEncodingError("connection reset")

    with responses.RequestsMock() as rsps:
        Tokens(rsps)
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, json=manifest(("Patient", "Patient.ndjson")))
        rsps.add(responses.GET, f"{FILES}/Patient.ndjson", body=Dropping(io.BytesIO(PATIENT.encode())))
        rsps.add(responses.GET, f"{FILES}/Patient.ndjson", body=PATIENT)
        rsps.add(responses.DELETE, STATUS, status=202)
        result = job(tmp_path, key_path, clock, said).run()
    assert (tmp_path / "export" / "Patient.1.ndjson").read_text() == PATIENT
    assert result.summary["retries"] == {"dropped_mid_file": 1}
