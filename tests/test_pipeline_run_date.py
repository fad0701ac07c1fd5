"""The run date: input dates after it are typing errors, and a pinned run date reproduces a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pfs.exceptions import ConfigError
from pfs.pipeline import run_extract


def test_dates_after_a_pinned_run_date_are_quarantined_and_the_date_is_recorded(small_export: Path,
                                                                                 tmp_path: Path) -> None:
    result = run_extract(small_export, tmp_path / "out", sources=["steroid"],
                         config={"pipeline": {"as_of": "2020-05-15"}})
    q = result.quarantine
    late = q.loc[q["reason"].str.startswith("date in the future")]
    assert not late.empty
    assert set(late["table"]) <= {"medications", "reports", "patients"}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["as_of"] == "2020-05-15"
    today = run_extract(small_export, None, sources=["steroid"])
    assert not today.quarantine["reason"].str.startswith("date in the future").any()


def test_a_run_date_that_is_not_a_date_is_a_config_error(small_export: Path) -> None:
    with pytest.raises(ConfigError, match="pipeline.as_of"):
        run_extract(small_export, None, config={"pipeline": {"as_of": "yesterday"}})
