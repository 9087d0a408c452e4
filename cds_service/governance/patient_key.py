"""The pseudonymous patient key: HMAC-SHA256 of the patient id with a server secret.

The key lets the report count unique patients (and lets repeats be recognised) without the
store ever holding a patient id. The secret is ``BONE_CDS_PATIENT_KEY_SECRET`` when set, else
a random 32-byte secret generated once and kept in ``<data dir>/patient-key.secret`` (mode
0600), so keys stay stable across restarts and workers. Whoever holds the secret and a list
of patient ids can recompute the keys: keep the file as private as the database credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
import time
from pathlib import Path

log = logging.getLogger("cds_service.governance")

SECRET_FILE = "patient-key.secret"
ENV = "BONE_CDS_PATIENT_KEY_SECRET"


class PatientKeyer:
    """Turns a patient id into its key; holds the secret, never the ids."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError(f"{ENV}: the secret must be at least 16 bytes")
        self._secret = secret

    def __repr__(self) -> str:   # never show the secret
        return "PatientKeyer(<secret>)"

    def key(self, patient_id: str | None) -> str | None:
        """The hex HMAC-SHA256 of ``patient_id`` (None for a missing or empty id)."""
        if not patient_id or not isinstance(patient_id, str):
            return None
        return hmac.new(self._secret, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()


def load_secret(setting: str, data_dir: Path) -> bytes:
    """The secret: ``setting`` when not empty, else the data folder's file, created (0600,
    exclusively: two processes starting at once end up with the same secret) when missing."""
    if setting.strip():
        return setting.strip().encode("utf-8")
    path = Path(data_dir) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        log.info("patient-key secret generated in %s (set %s to supply your own)", path, ENV)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s is readable by other users (mode %o): chmod 600 it", path, mode)
    text = ""
    for _ in range(50):   # another process may have created the file and not yet written it
        text = path.read_text(encoding="ascii").strip()
        if text:
            break
        time.sleep(0.02)
    if len(text) < 32:
        raise ValueError(f"{path}: the patient-key secret is too short (delete the file to generate one)")
    return text.encode("ascii")


def patient_keyer(setting: str, data_dir: Path) -> PatientKeyer:
    """The service's keyer from ``BONE_CDS_PATIENT_KEY_SECRET`` or the data folder."""
    return PatientKeyer(load_secret(setting, data_dir))
