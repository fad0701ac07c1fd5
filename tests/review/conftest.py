"""One small real run for the review tests: `pfs synth` (4 patients, no images) then `pfs extract`, once
per session. One report gets a <script> appended, so every page test also checks escaping."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from review_testdata import EVIL


@pytest.fixture(scope="session")
def review_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pfs.pipeline import run_extract
    from pfs.synth import synthesize

    root = tmp_path_factory.mktemp("review-run")
    synth = synthesize(root / "synth", patients=4, seed=3, images=False)
    reports_csv = Path(synth.export) / "reports.csv"
    reports = pd.read_csv(reports_csv, dtype=str, keep_default_na=False)
    first = reports.index[reports["patient_id"] == "P0001"][0]
    reports.loc[first, "text"] = reports.loc[first, "text"] + "\n" + EVIL
    reports.to_csv(reports_csv, index=False)
    run_extract(synth.export, root / "out", sources=["steroid", "nlp"], workers=1)
    return root / "out"


@pytest.fixture
def state(review_run: Path, tmp_path: Path):
    """A fresh review database for each test, over the shared run."""
    from pfs.review.server import build_state

    return build_state(review_run, db_path=tmp_path / "review.sqlite", reviewer="alice")


@pytest.fixture
def client(state):
    from starlette.testclient import TestClient

    from pfs.review.app import create_app

    with TestClient(create_app(state)) as c:
        yield c
