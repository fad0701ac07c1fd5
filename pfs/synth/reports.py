"""Synthetic radiology reports rendered from the true course (to be written)."""

from __future__ import annotations

import pandas as pd

from pfs.synth.course import PatientCourse


def generate(courses: list[PatientCourse], seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows in the native ``reports`` layout, truth: report_id, patient_id, report_date, true_label, written_label, bt_rads)."""
    raise NotImplementedError("synthetic reports are not written yet")
