"""Shared pieces of the "Trust" tests: JWT keys and tokens, a probe rule, a live server.

Kept apart from ``tests/factory.py`` (FHIR builders) because these are about the service's
trust boundary: callers (JWT), logs, storage and the real gunicorn process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import jwt
import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from cards.model import OVERRIDE_SYSTEM, Card, Coding, Suggestion
from cards.registry import ALL_HOOKS, REGISTRY, RuleSpec, load_rules

ISS = "https://ehr.example.org"
PUBLIC_BASE = "https://cds.example.org"
KID = "ec-test-1"
PROBE_RULE = "AR-CONCURRENT-ANTIRESORPTIVE"


# ---- JWT ------------------------------------------------------------------------------------


class Signer:
    """An EC P-384 key (ES384, like the sandbox: IOP-2) and its inline JWK Set."""

    def __init__(self, iss: str = ISS, kid: str = KID) -> None:
        self.iss, self.kid = iss, kid
        self.key = ec.generate_private_key(ec.SECP384R1())
        jwk = ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update({"kid": kid, "use": "sig", "alg": "ES384"})
        self.jwks = {"keys": [jwk]}

    def env(self, **extra: str) -> dict[str, str]:
        """``BONE_CDS_*`` variables turning JWT auth on with this signer as the one trusted issuer."""
        return {
            "BONE_CDS_AUTH": "jwt",
            "BONE_CDS_TRUSTED_ISSUERS": json.dumps({self.iss: {"jwks": self.jwks}}),
            "BONE_CDS_AUDIENCE_BASE_URLS": PUBLIC_BASE,
            **extra,
        }

    def token(
        self, aud: str | list[str], *, lifetime: int = 300, now: float | None = None, **claims: Any
    ) -> str:
        """A CDS Hooks 2.0 client JWT (SEC-4, SEC-5): fresh ``jti``, no ``sub``."""
        now = time.time() if now is None else now
        payload: dict[str, Any] = {
            "iss": self.iss,
            "aud": aud,
            "iat": int(now),
            "exp": int(now) + lifetime,
            "jti": str(uuid.uuid4()),
            **claims,
        }
        return jwt.encode(payload, self.key, algorithm="ES384", headers={"typ": "JWT", "kid": self.kid})

    def bearer(self, aud: str | list[str], **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(aud, **claims)}"}


# ---- a probe rule ---------------------------------------------------------------------------


def probe_card(inp: Any) -> Card:
    """A card with a suggestion and an override reason, whatever the chart says."""
    return Card(
        rule_id=PROBE_RULE,
        rule_title="Probe rule (tests)",
        summary="Probe card for the trust tests",
        indicator="warning",
        source_label="tests",
        detail="probe",
        suggestions=[Suggestion("Do the probe thing")],
        override_reasons=[Coding(OVERRIDE_SYSTEM, "not-relevant", "Not relevant")],
    )


@pytest.fixture
def probe_rule(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register a rule that always fires on every hook (restored afterwards); returns its id.

    Tests of logs, attribution and the report need a card whatever the clinical rules (owned and
    changed elsewhere) decide. The real rules are loaded first so none registers over it."""
    load_rules()
    monkeypatch.setitem(
        REGISTRY,
        PROBE_RULE,
        RuleSpec(PROBE_RULE, "Probe rule (tests)", frozenset(ALL_HOOKS), frozenset(), probe_card),
    )
    return PROBE_RULE


# ---- the feedback databases ------------------------------------------------------------------

PG_ENV = "BONE_CDS_TEST_POSTGRES_URL"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the server named by BONE_CDS_TEST_POSTGRES_URL; the store's URL uses it."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} not set")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.fail(f"{PG_ENV} is set but psycopg is missing: pip install -e '.[test,postgres]'")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, pool_pre_ping=True)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request, tmp_path) -> str:
    """``BONE_CDS_FEEDBACK_DB`` for one backend: a SQLite file path, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "store" / "feedback.sqlite3")
    return request.getfixturevalue("postgres_url")


# ---- a live server --------------------------------------------------------------------------


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``bone-cds serve`` on a free loopback port, in its own process group."""

    def __init__(self, proc: subprocess.Popen, base: str, log_path: Path) -> None:
        self.proc, self.base, self.log_path = proc, base, log_path

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole group (gunicorn master and workers) and reap the master."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def live_server(
    tmp_path: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    env: dict[str, str] | None = None,
    startup_timeout: float = 20.0,
) -> Iterator[LiveServer]:
    """Start the service as a subprocess (``python -m cds_service.cli serve``) and wait for /healthz."""
    port = free_port()
    data = tmp_path / "data"
    log_path = tmp_path / "server.log"
    full_env = {**os.environ, "BONE_CDS_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1", **(env or {})}
    root = Path(__file__).resolve().parent.parent
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cds_service.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--threads",
                str(threads),
            ],
            cwd=root,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LiveServer(proc, f"http://127.0.0.1:{port}", log_path)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bone-cds serve exited with {proc.returncode}:\n{server.log()}")
            try:
                if requests.get(f"{server.base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"bone-cds serve did not answer /healthz in {startup_timeout} s:\n{server.log()}"
                )
            time.sleep(0.1)
        yield server
    finally:
        server.kill()


def drip_server(drip_seconds: float = 0.05, total: int = 400):
    """A loopback HTTP server answering 200 with a body it sends one byte at a time."""
    import socket
    import threading
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    open_conns = [0]
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        open_conns[0] += 1
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
                         b"Content-Length: %d\r\n\r\n" % total)
            for _ in range(total):
                if stop.is_set():
                    return
                conn.sendall(b" ")
                stop.wait(drip_seconds)
        except OSError:
            pass   # the client closed the connection: what we want
        finally:
            open_conns[0] -= 1
            conn.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    return srv, open_conns, stop
