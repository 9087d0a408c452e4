"""Shared fixtures: a fresh app and client per test (Flask tutorial style), a fixed clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds_service.app import create_app
from cds_service.config import Settings
from tests.factory import NOW


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded defaults with the feedback store in a temporary folder."""
    return Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path / "data")})


@pytest.fixture
def app(settings: Settings):
    return create_app(settings, clock=lambda: NOW)


@pytest.fixture
def client(app):
    return app.test_client()
