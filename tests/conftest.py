"""Shared fixtures: small native exports written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
from pfs_testdata import MEDICATIONS, PATIENTS, REPORTS, write_export


@pytest.fixture
def small_export(tmp_path: Path) -> Path:
    return write_export(tmp_path / "export", patients=PATIENTS, medications=MEDICATIONS, reports=REPORTS)
