#!/usr/bin/env python3
"""Run a real FHIR R4 server (PyPI ``sekmet-fhir``, pinned) on loopback for the integration tests.

The server lives in its OWN virtualenv so that its dependencies never mix with the project's:
default ``<repo>/build/sekmet-venv`` (``build/`` is git-ignored), or ``$BONE_CDS_SEKMET_VENV``.

Configuration written for each run (``settings.yaml`` in a fresh work directory; JSON is YAML):

* ``host: 127.0.0.1`` and a free port; ``base_url`` / links point there;
* ``simulator.enabled: false`` (no lab/pharmacy robot writing into the store);
* ``server_auth.types: [smart]``: every ``/fhir`` call needs a bearer token issued by the server's
  own token endpoint ``<root>/auth/token`` (OAuth2 client_credentials, ``client_secret_basic``);
  two clients with random secrets: ``bone-cds`` (scope ``system/*.read``, what the CDS service
  gets) and ``loader`` (``system/*.*``, loads the fixtures);
* ``backend_clients`` (optional): SMART Backend Services clients, client id → public JWK Set,
  scope ``system/*.read`` unless ``backend_scopes`` gives the client others: they authenticate
  with a signed JWT assertion (``private_key_jwt``, RS384/ES384), as ``bone-cds sweep --export``
  does; the server also serves Bulk Data ``$export``. sekmet checks a ``DELETE`` of an export's
  status URL as a delete on every type (``d`` on ``*``: ``auth/server.py`` ``_required`` and
  ``scope_allows``), so a client that must cancel its exports is registered with
  ``system/*.read system/*.d`` (:data:`CANCEL_SCOPES`);
* ``log_inbound: false`` (no traffic log in the store), its SQLite database in the work directory.

Command line::

    python scripts/sekmet_server.py --install-only      # create/refresh the venv, then exit
    python scripts/sekmet_server.py [--port N]          # start, print BASE_URL=..., run until SIGINT/SIGTERM

Library (the pytest fixture)::

    server = start()            # ready to serve when it returns
    token = server.token("bone-cds")
    server.stop()

Only the standard library is used, so any Python >= 3.11 can run it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

SEKMET_REQUIREMENT = "sekmet-fhir==0.1.1"
SEKMET_VERSION = "0.1.1"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_VENV = REPO / "build" / "sekmet-venv"
READ_CLIENT = "bone-cds"
LOAD_CLIENT = "loader"
#: What a backend client must be granted for sekmet to let it DELETE an export's status URL.
CANCEL_SCOPES = "system/*.read system/*.d"


def venv_dir() -> Path:
    return Path(os.environ.get("BONE_CDS_SEKMET_VENV") or DEFAULT_VENV)


def _bin(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / name


def ensure_venv(venv: Path | None = None, python: str = sys.executable) -> Path:
    """Create the server's own virtualenv with the pinned package (reused when already there)."""
    venv = venv or venv_dir()
    sekmet = _bin(venv, "sekmet")
    vpy = _bin(venv, "python")
    if sekmet.exists() and vpy.exists():
        probe = "import importlib.metadata as m; print(m.version('sekmet-fhir'))"
        check = subprocess.run([str(vpy), "-c", probe], capture_output=True, text=True)
        if check.returncode == 0 and check.stdout.strip() == SEKMET_VERSION:
            return sekmet
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([python, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(vpy), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                    SEKMET_REQUIREMENT], check=True)
    if not sekmet.exists():
        raise RuntimeError(f"{SEKMET_REQUIREMENT} installed in {venv} but no 'sekmet' console script")
    return sekmet


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SekmetServer:
    """A running server: its URLs, its clients' secrets, and the process we started."""

    base_url: str
    token_url: str
    workdir: Path
    process: subprocess.Popen
    secrets: dict[str, str] = field(repr=False, default_factory=dict)
    own_workdir: bool = True

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def token(self, client_id: str = READ_CLIENT, scope: str | None = None) -> str:
        """A real access token from the server's client_credentials endpoint."""
        form = {"grant_type": "client_credentials"}
        if scope:
            form["scope"] = scope
        basic = base64.b64encode(f"{client_id}:{self.secrets[client_id]}".encode()).decode()
        req = urllib.request.Request(self.token_url, data=urllib.parse.urlencode(form).encode(),
                                     method="POST",
                                     headers={"Authorization": f"Basic {basic}",
                                              "Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())["access_token"]

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process we started (SIGTERM, then SIGKILL), keep the log, drop the work dir."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def write_settings(workdir: Path, port: int, client_secrets: dict[str, str],
                   backend_clients: dict[str, dict] | None = None,
                   backend_scopes: dict[str, str] | None = None) -> Path:
    base = f"http://127.0.0.1:{port}/fhir"
    settings = {
        "base_url": base,
        "host": "127.0.0.1",
        "port": port,
        "data_dir": str(workdir / "data"),
        "own_private_key_path": str(workdir / "keys" / "sekmet_private.pem"),
        "log_inbound": False,
        "simulator": {"enabled": False},
        "server_auth": {
            "types": ["smart"],
            "token_lifetime": 900,
            "enforce_scopes": True,
            "smart_clients": [
                {"client_id": READ_CLIENT, "client_secret": client_secrets[READ_CLIENT],
                 "scopes": "system/*.read"},
                {"client_id": LOAD_CLIENT, "client_secret": client_secrets[LOAD_CLIENT],
                 "scopes": "system/*.*"},
                *({"client_id": cid, "jwks": jwks,
                   "scopes": (backend_scopes or {}).get(cid, "system/*.read")}
                  for cid, jwks in (backend_clients or {}).items()),
            ],
        },
    }
    path = workdir / "settings.yaml"
    path.write_text(json.dumps(settings, indent=2))
    path.chmod(0o600)
    return path


def wait_ready(server: SekmetServer, timeout: float = 60.0) -> None:
    """Poll ``GET {base}/metadata`` (public) until it answers 200."""
    stop_at = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < stop_at:
        if not server.running():
            raise RuntimeError(f"sekmet exited with {server.process.returncode} before it was ready:\n"
                               f"{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.base_url}/metadata", timeout=2) as resp:
                body = json.loads(resp.read())
                if resp.status == 200 and body.get("resourceType") == "CapabilityStatement":
                    return
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"sekmet was not ready after {timeout:.0f}s ({last}):\n{server.log_tail()}")


def start(venv: Path | None = None, port: int | None = None, workdir: Path | None = None,
          ready_timeout: float = 60.0, backend_clients: dict[str, dict] | None = None,
          backend_scopes: dict[str, str] | None = None) -> SekmetServer:
    """Install if needed, start ``sekmet serve`` on 127.0.0.1, return once it answers;
    ``backend_clients``: client id → public JWK Set (SMART Backend Services); ``backend_scopes``:
    client id → the scopes it is registered with (default ``system/*.read``)."""
    sekmet = ensure_venv(venv)
    own = workdir is None
    wd = Path(workdir or tempfile.mkdtemp(prefix="sekmet-"))
    wd.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    client_secrets = {READ_CLIENT: secrets.token_urlsafe(24), LOAD_CLIENT: secrets.token_urlsafe(24)}
    config = write_settings(wd, port, client_secrets, backend_clients, backend_scopes)
    log = open(wd / "server.log", "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEKMET_")}
    env["SEKMET_CONFIG"] = str(config)
    proc = subprocess.Popen([str(sekmet), "serve", "--config", str(config)], cwd=wd, env=env,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    server = SekmetServer(base_url=f"http://127.0.0.1:{port}/fhir",
                          token_url=f"http://127.0.0.1:{port}/auth/token",
                          workdir=wd, process=proc, secrets=client_secrets, own_workdir=own)
    wait_ready(server, ready_timeout)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=None,
                        help=f"virtualenv for the server (default $BONE_CDS_SEKMET_VENV or {DEFAULT_VENV})")
    parser.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="settings, database and log (default: a temp dir)")
    parser.add_argument("--install-only", action="store_true", help="create the virtualenv and exit")
    args = parser.parse_args(argv)
    if args.install_only:
        print(ensure_venv(args.venv))
        return 0
    server = start(args.venv, args.port, args.workdir)
    print(f"BASE_URL={server.base_url}")
    print(f"TOKEN_URL={server.token_url}")
    print(f"WORKDIR={server.workdir}")
    print(f"PID={server.process.pid}", flush=True)
    stopping = False

    def _stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stopping and server.running():
            time.sleep(0.5)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
