"""The evidence line of an event reads like a note in the chart, from the order behind it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pfs.extractors.steroid.evidence import dose_text, evidence_text, fmt


def _orders(*rows):
    cols = ["drug", "per_day", "mg_per_admin", "drug_mg_per_day", "once", "taper", "split_dose", "dose_pack"]
    return pd.DataFrame(list(rows), columns=cols)


def test_numbers_as_people_write_them():
    assert [fmt(x) for x in (4.0, 0.75, 1.333333, 16.0, 160.4, 1234.5)] == ["4", "0.75", "1.33", "16", "160", "1234"]


def test_dose_text_of_each_order_form():
    o = _orders(
        ("dexamethasone", 2.0, 4.0, 8.0, False, False, False, False),
        ("dexamethasone", 3.0, 4.0, 12.0, False, False, False, False),
        ("dexamethasone", 5.0, 1.0, 5.0, False, False, False, False),
        ("dexamethasone", 1.0, 8.0, 8.0, True, False, False, False),
        ("dexamethasone", np.nan, np.nan, 8.0, False, True, False, False),
        ("dexamethasone", np.nan, np.nan, 6.0, False, False, True, False),
        ("methylprednisolone", 1.0, 24.0, 24.0, False, False, False, True),
    )
    assert dose_text(o).tolist() == [
        "4 mg BID",
        "4 mg TID",
        "1 mg 5x/day",
        "8 mg once",
        "taper from 8 mg/day",
        "split doses of 6 mg/day",
        "dose pack",
    ]


def test_one_line_per_rule():
    src = _orders(*[("dexamethasone", 2.0, 4.0, 8.0, False, False, False, False)] * 4)
    kind = np.array(["new_course", "new_course", "dose_rise", "prescription_frequency"])
    lines = evidence_text(kind, src, pd.Series([8.0, 8.0, 8.0, 8.0]), np.array([120.0, np.nan, 2.0, 4.0]), 30)
    assert lines.tolist() == [
        "dexamethasone restarted 4 mg BID (8 mg/day dex-eq) after 120 steroid-free days",
        "dexamethasone restarted 4 mg BID (8 mg/day dex-eq) with no earlier course",
        "dexamethasone raised to 8 mg/day dex-eq (4 mg BID) from a post-treatment nadir of 2 mg/day",
        "4 steroid prescriptions within 30 days, latest dexamethasone 4 mg BID (8 mg/day dex-eq)",
    ]
