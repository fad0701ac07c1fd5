"""Accuracy guard on the hand-labelled evaluation set (tests/data/radiology_eval): the issue's goals,
progression F1 >= 0.95 and macro-F1 >= 0.90, on both the dev and the held-out split."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pfs.extractors.nlp import label_reports
from pfs.extractors.nlp.evaluation import read_labelled_reports, scores, split_of
from pfs.extractors.nlp.pipeline import ReportPipeline
from pfs.settings import load_config

EVAL_DIR = Path(__file__).resolve().parents[2] / "data" / "radiology_eval"


@pytest.fixture(scope="module")
def labelled(report_pipeline: ReportPipeline) -> pd.DataFrame:
    data = read_labelled_reports(EVAL_DIR)
    labels, quarantine, _ = label_reports(data, report_pipeline, load_config().section("nlp"))
    assert quarantine.empty
    return data.assign(pred=labels["label"].to_numpy())


def test_the_set_is_large_enough_and_covers_every_label(labelled: pd.DataFrame) -> None:
    assert len(labelled) >= 150
    assert labelled.groupby("split").size().to_dict() == {"dev": 107, "heldout": 53}
    assert labelled["gold"].value_counts().min() >= 9


@pytest.mark.parametrize("split", ["dev", "heldout"])
def test_accuracy_goals_hold_on_each_split(labelled: pd.DataFrame, split: str) -> None:
    part = labelled.loc[labelled["split"] == split]
    table, macro, _ = scores(part["gold"], part["pred"])
    assert macro >= 0.90
    assert table.loc["progression", "f1"] >= 0.95


def test_scores_are_computed_as_defined() -> None:
    table, macro, confusion = scores(pd.Series(["progression", "stable", "stable"]),
                                     pd.Series(["progression", "progression", "stable"]))
    assert table.loc["progression", "precision"] == 0.5 and table.loc["progression", "recall"] == 1.0
    assert table.loc["stable", "recall"] == 0.5
    assert macro == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert confusion.loc["stable", "progression"] == 1


def test_split_is_fixed_by_the_id() -> None:
    assert [split_of(x) for x in ("E001", "E003", "E150", "E151")] == ["dev", "heldout", "heldout", "dev"]
