"""Closed vocabularies shared by every stage."""

from __future__ import annotations

from enum import StrEnum

from pfs.extractors import SOURCES


#: Where a progression event came from: one member per registered source (see :data:`pfs.extractors.SOURCES`).
Source = StrEnum("Source", {name.upper(): name for name in SOURCES})

#: A way of dating progression: one source alone, the reconciled result, or the manual reference.
Method = StrEnum("Method", {**{name.upper(): name for name in SOURCES}, "RECONCILED": "reconciled", "MANUAL": "manual"})

#: The methods ``pfs compare`` scores, in the order the reference study reports them (``manual`` is the reference).
METHODS: list[str] = [*SOURCES, "reconciled"]

#: Days in an average month, for lags and medians reported in months as the reference study does.
DAYS_PER_MONTH = 365.25 / 12


class ReportLabel(StrEnum):
    """The assessment a brain-MRI report makes of the tumour."""

    PROGRESSION = "progression"
    STABLE = "stable"
    IMPROVED = "improved"
    TREATMENT_EFFECT = "treatment_effect"
    INDETERMINATE = "indeterminate"
    NO_ASSESSMENT = "no_assessment"
    NOT_APPLICABLE = "not_applicable"


class Sequence(StrEnum):
    """MRI sequences pfs understands; series descriptions are classified by :mod:`pfs.io.series`."""

    T1 = "T1"
    T1C = "T1C"
    T2 = "T2"
    FLAIR = "FLAIR"


class IndexDate(StrEnum):
    """The date PFS is counted from."""

    DIAGNOSIS = "diagnosis"
    SURGERY = "surgery"
    RT_START = "rt_start"
