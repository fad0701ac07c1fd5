"""Closed vocabularies shared by every stage."""

from __future__ import annotations

from enum import StrEnum


class Source(StrEnum):
    """Where a progression event came from."""

    STEROID = "steroid"
    NLP = "nlp"
    IMAGING = "imaging"


class Method(StrEnum):
    """A way of dating progression: one source alone, the reconciled result, or the manual reference."""

    STEROID = "steroid"
    NLP = "nlp"
    IMAGING = "imaging"
    RECONCILED = "reconciled"
    MANUAL = "manual"


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
