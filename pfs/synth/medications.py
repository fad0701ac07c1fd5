"""Synthetic medication orders rendered from the true course (to be written)."""

from __future__ import annotations

import pandas as pd

from pfs.synth.course import PatientCourse


def generate(courses: list[PatientCourse], seed: int) -> pd.DataFrame:
    """Medication rows in the native ``medications`` layout (dates as ISO strings)."""
    raise NotImplementedError("synthetic medications are not written yet")
