"""Shared fixtures: small native exports written to tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pfs_testdata import MEDICATIONS, PATIENTS, REPORTS, write_export

# The CLI's default is a Dask cluster on all cores; tests take the plain in-process path unless a
# test asks for workers (tests/test_parallel.py starts a real LocalCluster).
os.environ.setdefault("PFS_WORKERS", "1")


@pytest.fixture
def small_export(tmp_path: Path) -> Path:
    return write_export(tmp_path / "export", patients=PATIENTS, medications=MEDICATIONS, reports=REPORTS)
