"""The three progression sources. Each is a subpackage whose ``extract(export, config)`` returns an
:class:`ExtractorResult`; this dict is the one place that lists them (the CLI reads it).

Modules are imported only when their source runs, so ``pfs --help`` never pays for spaCy or torch.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar

import pandas as pd

from pfs.io.schema import empty_frame

T = TypeVar("T")

#: source name -> module implementing ``extract(export, config) -> ExtractorResult``
EXTRACTORS: dict[str, str] = {
    "steroid": "pfs.extractors.steroid",
    "nlp": "pfs.extractors.nlp",
    "imaging": "pfs.extractors.imaging",
}


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
    return empty_frame("events")


def load_extractor(name: str) -> ModuleType | None:
    """The module of source ``name``, or None when that source is not built in this version."""
    module = importlib.import_module(EXTRACTORS[name])
    return module if hasattr(module, "extract") else None


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
