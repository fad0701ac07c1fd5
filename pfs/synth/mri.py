"""Synthetic MRI studies rendered from the true course (to be written)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pfs.synth.course import PatientCourse


def write_studies(courses: list[PatientCourse], export: Path, truth: Path, seed: int,
                  progress=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write NIfTI files under ``export/images`` and truth masks under ``truth/masks``.

    Returns (rows in the native ``imaging`` layout, truth: study_id, patient_id, study_date, true_et_volume_ml, ...).
    """
    raise NotImplementedError("synthetic MRI is not written yet")
