"""The progression sources, declared once.

:data:`SOURCES` is the one registry: every other list of sources (the CLI, the pipeline's defaults,
the events schema's enum, the reconciler's roles, the comparison's methods, the plot colours) is
derived from it, and a test checks the schemas against it. Each source is a subpackage whose
``extract(export, config)`` returns an :class:`ExtractorResult`. Modules are imported only when
their source runs, so ``pfs --help`` never pays for spaCy or torch; this module imports nothing heavy.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")


class Role(StrEnum):
    """What a source's events say about the tumour, which decides how the reconciler weighs them."""

    #: sees the tumour itself (RANO rests on imaging; a report is the radiologist's reading of it)
    TUMOUR = "tumour"
    #: a clinical signal only (RANO: a steroid increase alone is not progression)
    CLINICAL = "clinical"
    #: a treatment decision (a next line of therapy): specific for progression but late; it confirms a
    #: tumour event and dates progression only when no tumour event precedes it
    TREATMENT = "treatment"


class WorkUnit(StrEnum):
    """How a source's work is cut into tasks."""

    #: batches of consecutive patients
    PATIENTS = "patients"
    #: one task per MRI study, assembled per batch of patients
    STUDIES = "studies"


@dataclass(frozen=True)
class SourceSpec:
    """Everything pfs needs to know about one progression source."""

    name: str
    #: module implementing ``extract(export, config) -> ExtractorResult``
    module: str
    #: the input table it reads; a source whose table is absent is skipped, not run on nothing
    input_table: str
    #: that table's date column (a dated record there shows the patient was followed up)
    record_date: str
    #: its own output tables (written as NAME.csv, each with a schema in pfs/schemas)
    output_tables: tuple[str, ...]
    role: Role
    #: display name in plots and reports
    label: str
    #: colour in plots (ColorBrewer Dark2, distinguishable in print and for colour-blind readers)
    colour: str
    unit: WorkUnit = WorkUnit.PATIENTS
    #: columns of ``input_table`` naming files it reads (their size and mtime join the cache key)
    file_columns: tuple[str, ...] = ()
    #: further optional input tables it reads when the export has them (they join the cache key)
    extra_tables: tuple[str, ...] = ()

    @property
    def input_tables(self) -> tuple[str, ...]:
        """Every input table the source reads: ``input_table`` first."""
        return (self.input_table, *self.extra_tables)


#: The registry, in the order the reference study reports the sources.
SOURCES: dict[str, SourceSpec] = {
    spec.name: spec
    for spec in (
        SourceSpec("steroid", "pfs.extractors.steroid", "medications", "order_date", ("steroid_daily", "steroid_courses"),
                   Role.CLINICAL, "Corticosteroids", "#d95f02"),
        SourceSpec("nlp", "pfs.extractors.nlp", "reports", "report_date", ("report_labels",),
                   Role.TUMOUR, "Radiology reports (NLP)", "#7570b3"),
        SourceSpec("imaging", "pfs.extractors.imaging", "imaging", "study_date", ("volumes", "series"),
                   Role.TUMOUR, "MRI volumetry", "#1b9e77", unit=WorkUnit.STUDIES,
                   file_columns=("path", "mask_path")),
        SourceSpec("treatment", "pfs.extractors.treatment", "medications", "order_date", (),
                   Role.TREATMENT, "Next-line therapy", "#66a61e", extra_tables=("procedures",)),
    )
}


def source_spec(name: str) -> SourceSpec:
    """The registered source ``name``; a clear error naming the known ones otherwise."""
    from pfs.exceptions import ConfigError

    try:
        return SOURCES[name]
    except KeyError:
        raise ConfigError(f"unknown source {name!r} (known: {', '.join(SOURCES)})") from None


def sources_with_role(role: Role) -> list[str]:
    return [name for name, spec in SOURCES.items() if spec.role == role]


@dataclass(frozen=True)
class ExtractorResult:
    """What an extractor hands on: its events, its own tables (written as NAME.csv), its quarantine rows.

    ``counts`` holds whatever the extractor counted (rows examined, recognised, discounted ...) and
    goes into the manifest. ``patient_counts`` holds the same counts per patient (index patient_id),
    so that results of single patients can be cached and summed into exact cohort totals.
    """

    events: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    quarantine: pd.DataFrame | None = None
    counts: dict[str, int] = field(default_factory=dict)
    patient_counts: pd.DataFrame | None = None


def empty_events() -> pd.DataFrame:
    from pfs.io.schema import empty_frame

    return empty_frame("events")


def load_extractor(name: str) -> ModuleType:
    """The module of source ``name`` (imported on first use)."""
    return importlib.import_module(source_spec(name).module)


_BUILT: dict[str, tuple[str, Any]] = {}


def built_once(kind: str, settings: dict[str, Any], build: Callable[[], T]) -> T:
    """``build()`` once per process for these settings (a spaCy pipeline, a loaded network).

    A Dask worker runs many tasks; rebuilding per task would cost seconds each. One object per
    ``kind`` is kept: new settings replace it.
    """
    key = json.dumps(settings, sort_keys=True, default=str)
    held = _BUILT.get(kind)
    if held is None or held[0] != key:
        held = _BUILT[kind] = (key, build())
    return held[1]


def count_per_patient(patient_ids: Iterable[str], **columns: pd.Series | Iterable[str]) -> pd.DataFrame:
    """A patients x counts frame: each keyword is a list of patient ids, one per counted thing.

    ``count_per_patient(pids, events=events["patient_id"])`` counts each patient's events; patients
    with none get 0, ids outside ``patient_ids`` are not counted.
    """
    import pandas as pd

    index = pd.Index([str(p) for p in patient_ids], name="patient_id")
    out = pd.DataFrame(index=index)
    for name, ids in columns.items():
        values = ids if isinstance(ids, pd.Series) else pd.Series(list(ids), dtype=object)
        counted = values.value_counts()
        counted.index = counted.index.astype(str)
        out[name] = counted.groupby(level=0).sum().reindex(index, fill_value=0).astype("int64")
    return out


def totals(patient_counts: pd.DataFrame) -> dict[str, int]:
    """Cohort counts from per-patient counts, in column order."""
    return {str(k): int(v) for k, v in patient_counts.sum(axis=0).items()}
