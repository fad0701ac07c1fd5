"""pfs: progression-free-survival endpoints for glioblastoma from EHR exports.

The Python API mirrors the CLI; heavy libraries are imported only when a function needs them.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "extract", "load_export", "synth", "validate"]


def extract(export_dir: Any, out: Any = None, **kwargs: Any) -> Any:
    """Run ``pfs extract``; returns a :class:`pfs.pipeline.RunResult` of DataFrames."""
    from pfs.pipeline import run_extract

    return run_extract(export_dir, out, **kwargs)


def load_export(export_dir: Any, mapping: Any = None) -> Any:
    """Load and validate an export; returns a :class:`pfs.io.Export`."""
    from pfs.io.export import load_export as _load

    return _load(export_dir, mapping)


def validate(export_dir: Any, mapping: Any = None) -> Any:
    """Check an export without extracting; returns the quarantine DataFrame."""
    return load_export(export_dir, mapping).quarantine.frame()


def synth(out: Any, patients: int = 20, seed: int = 0, **kwargs: Any) -> Any:
    """Write a synthetic export (see :func:`pfs.synth.synthesize`)."""
    from pfs.synth import synthesize

    return synthesize(out, patients=patients, seed=seed, **kwargs)
