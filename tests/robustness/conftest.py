"""Session fixtures of the robustness suite: the clean export and its clean run, built once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from robustness_export import build_clean

from pfs.pipeline import RunResult, run_extract


@dataclass(frozen=True)
class Clean:
    root: Path
    export: Path
    config: Path
    out: Path
    result: RunResult


@pytest.fixture(scope="session")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Clean:
    root = tmp_path_factory.mktemp("clean")
    export = build_clean(root)
    out = root / "out"
    result = run_extract(export, out, config=root / "config.toml")
    return Clean(root=root, export=export, config=root / "config.toml", out=out, result=result)
