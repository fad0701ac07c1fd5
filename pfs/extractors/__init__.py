"""The three progression sources. Each is a subpackage whose ``extract(export, config)`` returns an
:class:`ExtractorResult`; this dict is the one place that lists them (the CLI reads it).

Modules are imported only when their source runs, so ``pfs --help`` never pays for spaCy or torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType

import pandas as pd

from pfs.io.schema import empty_frame

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
    goes into the manifest.
    """

    events: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    quarantine: pd.DataFrame | None = None
    counts: dict[str, int] = field(default_factory=dict)


def empty_events() -> pd.DataFrame:
    return empty_frame("events")


def load_extractor(name: str) -> ModuleType | None:
    """The module of source ``name``, or None when that source is not built in this version."""
    module = importlib.import_module(EXTRACTORS[name])
    return module if hasattr(module, "extract") else None
