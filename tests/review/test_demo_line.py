"""`pfs demo` ends by printing the `pfs review` command for its own run."""

from __future__ import annotations

import shlex
from pathlib import Path
from types import SimpleNamespace

import pfs.demo
import pfs.pipeline


def test_demo_prints_the_review_command_for_its_run(tmp_path, monkeypatch):
    monkeypatch.setattr(pfs.demo, "ensure_cohort", lambda cache, n, images, progress=None: cache / "cohort x")
    monkeypatch.setattr(pfs.pipeline, "run_extract",
                        lambda export, out, progress=None: SimpleNamespace(manifest={"sources": {}}))
    monkeypatch.setattr(pfs.demo, "_optional", lambda module, func: None)
    lines = [str(x) for x in pfs.demo.run_demo(tmp_path, patients=2, images=False)]
    out = tmp_path / "cohort x" / "out"
    assert f"pfs review {shlex.quote(str(out))}" in lines[-2]
    assert shlex.split(lines[-2].split(":", 1)[1]) == ["pfs", "review", str(Path(out))]
    assert "--export reviewed.csv" in lines[-1]
