"""Orders that look unrelated to the tumour are discounted, with the first matching reason."""

from __future__ import annotations

import pandas as pd
import pytest

from pfs.extractors.steroid.discounting import discount_reason
from pfs.settings import load_config


@pytest.fixture(scope="module")
def settings():
    return load_config().section("steroid")


def _orders(*rows):
    cols = ["drug", "start_day", "stop_day", "dose_pack", "antiemetic", "once", "peak_dex_mg_per_day"]
    return pd.DataFrame(list(rows), columns=cols)


def test_each_reason_and_its_precedence(settings):
    o = _orders(
        ("dexamethasone", 0, 29, False, False, False, 8.0),  # a tumour course: counted
        ("methylprednisolone", 0, 5, True, True, False, 4.8),  # dose pack wins over antiemetic
        ("dexamethasone", 0, 0, False, True, True, 8.0),  # antiemetic wins over single dose
        ("dexamethasone", 0, 1, False, False, True, 8.0),  # single dose (2 days <= single_dose_max_days)
        ("dexamethasone", 0, 2, False, False, True, 8.0),  # 3 days is longer than a single dose: counted
        ("prednisone", 0, 9, False, False, False, 6.0),  # 10-day prednisone burst
        ("prednisone", 0, 10, False, False, False, 6.0),  # 11 days is not a burst: counted
        ("dexamethasone", 0, 3, False, False, False, 2.0),  # a short dexamethasone course is not a burst
        ("hydrocortisone", 0, 99, False, False, False, 0.75),  # replacement dose (<= physiological)
    )
    assert settings["single_dose_max_days"] == 2 and settings["burst_max_days"] == 10
    assert settings["physiological_mg_per_day"] == 0.75
    assert discount_reason(o, settings).fillna("counted").tolist() == [
        "counted",
        "dose pack",
        "antiemetic or premedication use",
        "single dose",
        "counted",
        "short prednisone burst",
        "counted",
        "counted",
        "physiological (replacement) dose",
    ]
