"""pfs: progression-free-survival endpoints for glioblastoma from EHR exports.

The Python API mirrors the CLI; heavy libraries are imported only when a function needs them.
"""

from __future__ import annotations

from typing import Any

from pfs.version import __version__

__all__ = ["__version__", "compare", "convert", "extract", "load_export", "plot", "report", "synth", "validate"]


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


def compare(out: Any, annotations: Any) -> Any:
    """Run ``pfs compare``; returns the comparison DataFrame (also written to OUT/comparison.csv/.md)."""
    from pfs.evaluate.compare import compare as _compare

    return _compare(out, annotations)


def plot(out: Any, annotations: Any = None) -> Any:
    """Run ``pfs plot``; returns the paths of the PNG and SVG files written under OUT/plots."""
    from pfs.report.plots import plot as _plot

    return _plot(out, annotations)


def report(out: Any, annotations: Any = None, output: Any = None) -> Any:
    """Run ``pfs report``; returns the path of the self-contained HTML file."""
    from pfs.report.html import report as _report

    return _report(out, annotations, output)


def convert(src: Any, out: Any, fmt: str, **options: Any) -> Any:
    """Run ``pfs convert`` (OMOP or FHIR to the native layout); returns a ConvertResult."""
    from pfs.io.formats import convert as _convert

    return _convert(src, out, fmt, **options)
