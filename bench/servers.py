"""Servers the benchmark starts: ``bone-cds serve`` and the floor, each a gunicorn subprocess on a
free 127.0.0.1 port, and the stub FHIR server (a thread in this process).

Every server is a context manager and is stopped on exit, exception or Ctrl-C: a subprocess is
started in its own session (process group) and stopped by that group's id only (SIGTERM, then
SIGKILL after a grace period); the stub is shut down and its socket closed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import parse_qs, urlsplit

import requests

HOST = "127.0.0.1"


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the caller retries if another process takes it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class ServerError(RuntimeError):
    pass


def group_processes(pgid: int) -> dict[int, tuple[int, float, bytes]] | None:
    """Process id → (parent id, CPU seconds user + system, command line) of the live processes in
    process group ``pgid``, from Linux ``/proc`` (None where it is unavailable)."""
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[int, float, bytes]] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            if len(fields) <= 12 or fields[2] != str(pgid):   # state ppid pgrp ... utime(11) stime(12)
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read()
        except (OSError, IndexError):
            continue   # gone meanwhile, or not readable
        out[pid] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, cmd)
    return out


def group_cpu_seconds(pgid: int) -> float | None:
    """CPU seconds (user + system) of the live processes in process group ``pgid``."""
    procs = group_processes(pgid)
    return None if procs is None else sum(cpu for _ppid, cpu, _cmd in procs.values())


class GunicornProcess:
    """A server command run as a subprocess with ``--host 127.0.0.1 --port N`` appended.

    ``ready_path`` is polled with GET until it answers 200 (at most ``start_timeout`` seconds).
    Output goes to a log file in ``log_dir`` (read back when the server fails to start).
    """

    def __init__(self, name: str, argv: Sequence[str], *, ready_path: str, env: Mapping[str, str],
                 log_dir: Path, start_timeout: float = 30.0, attempts: int = 3) -> None:
        self.name = name
        self.argv = list(argv)
        self.ready_path = ready_path
        self.env = dict(env)
        self.log_path = log_dir / f"{name}.log"
        self.start_timeout = start_timeout
        self.attempts = attempts
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._log: Any = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> "GunicornProcess":
        self._log = open(self.log_path, "ab")
        last = ""
        for _ in range(self.attempts):
            self.port = free_port()
            self.proc = subprocess.Popen(self.argv + ["--host", HOST, "--port", str(self.port)],
                                         stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=self.env, start_new_session=True)
            try:
                self._wait_ready()
                return self
            except ServerError as exc:
                last = str(exc)
                self.stop()
        self._log.close()
        raise ServerError(f"{self.name} did not start: {last}\n--- {self.log_path} (tail) ---\n{self.log_tail()}")

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        with requests.Session() as s:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise ServerError(f"exited with code {self.proc.returncode}")
                try:
                    if s.get(self.base_url + self.ready_path, timeout=1.0).status_code == 200:
                        return
                except requests.RequestException:
                    pass
                time.sleep(0.1)
        raise ServerError(f"not ready after {self.start_timeout:.0f}s")

    def cpu_seconds(self) -> float | None:
        """User + system CPU seconds used so far by every process of the server's process group (the
        gunicorn master and its workers, with their threads), from ``/proc`` (None where unavailable):
        a figure that a busy machine inflates far less than latency does."""
        if self.proc is None:
            return None
        return group_cpu_seconds(self.proc.pid)

    def log_offset(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_lines_since(self, offset: int) -> list[str]:
        """Log lines written after byte ``offset`` (the service logs one JSON line per hook call)."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                return fh.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM to the server's own process group, SIGKILL after ``grace`` seconds."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)   # the group this subprocess leads (start_new_session)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        if self._log is not None:
            self._log.close()


def server_env(data_dir: Path) -> dict[str, str]:
    """This process's environment without any ``BONE_CDS_*`` setting, plus a temp data dir
    (so a developer's shell configuration cannot change what is measured)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BONE_CDS_")}
    env["BONE_CDS_DATA_DIR"] = str(data_dir)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def bone_cds(log_dir: Path, data_dir: Path, workers: int, threads: int,
             settings: Mapping[str, str] | None = None) -> GunicornProcess:
    """``bone-cds serve``; ``settings``: ``BONE_CDS_*`` variables the measurement sets itself."""
    argv = [sys.executable, "-m", "cds_service.cli", "serve", "--workers", str(workers), "--threads", str(threads)]
    env = {**server_env(data_dir), **(settings or {})}
    return GunicornProcess("bone-cds", argv, ready_path="/healthz", env=env, log_dir=log_dir)


def floor(log_dir: Path, data_dir: Path, workers: int, threads: int) -> GunicornProcess:
    argv = [sys.executable, "-m", "bench.floor", "--workers", str(workers), "--threads", str(threads)]
    return GunicornProcess("floor", argv, ready_path="/healthz", env=server_env(data_dir), log_dir=log_dir)


def temp_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="bone-cds-bench-")


# ------------------------------------------------------------------ stub FHIR server


class StubFhir:
    """A FHIR server on 127.0.0.1 answering each read after ``delay`` seconds with the workload's data.

    ``GET /fhir/Patient/<id>`` → the Patient; ``GET /fhir/<Type>?patient=<id>&...`` → a searchset
    Bundle of that patient's resources of ``Type`` (pre-encoded, so the stub costs almost no CPU).
    HTTP/1.1 with keep-alive, one thread per connection. ``reads`` records (type, seconds) served.
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.payloads: dict[tuple[str, str], bytes] = {}   # (type, patient id) -> body
        self.reads: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add_patient(self, pid: str, by_type: Mapping[str, list[dict[str, Any]]], searchset: Any) -> None:
        for rtype, resources in by_type.items():
            if rtype == "Patient":
                if resources:
                    self.payloads[("Patient", pid)] = json.dumps(resources[0]).encode()
            else:
                self.payloads[(rtype, pid)] = json.dumps(searchset(resources)).encode()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://{HOST}:{self._server.server_address[1]}/fhir"

    def __enter__(self) -> "StubFhir":
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True   # else headers and body in two writes meet delayed ACK (+40 ms)

            def log_message(self, *args: Any) -> None:   # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                t0 = time.perf_counter()
                parts = urlsplit(self.path)
                segs = [s for s in parts.path.split("/") if s]
                body, status, rtype = b'{"resourceType":"OperationOutcome"}', 404, "?"
                if len(segs) >= 2 and segs[0] == "fhir":
                    rtype = segs[1]
                    pid = segs[2] if len(segs) == 3 else (parse_qs(parts.query).get("patient") or [""])[0]
                    found = stub.payloads.get((rtype, pid))
                    if found is not None:
                        body, status = found, 200
                time.sleep(stub.delay)
                self.send_response_only(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                # headers and body in one write (end_headers would flush the headers on their own)
                self._headers_buffer.append(b"\r\n")
                self.wfile.write(b"".join(self._headers_buffer) + body)
                self._headers_buffer = []
                with stub._lock:
                    stub.reads.append((rtype, time.perf_counter() - t0))

        server = ThreadingHTTPServer((HOST, 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="stub-fhir", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None
