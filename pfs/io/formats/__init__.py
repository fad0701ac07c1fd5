"""Foreign export formats, converted into pfs's native layout before anything else reads them.

One package per format (``omop``, ``fhir``), each with its reader, its vocabulary and one mapper
per native table; ``common`` and ``codes`` hold what they share. Rows a converter cannot use go to
the one quarantine (:mod:`pfs.io.quarantine`, stage ``convert``). :data:`FORMATS` is the registry
the CLI and the pipeline read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pfs.exceptions import ExportError
from pfs.io.formats.common import ConvertResult
from pfs.io.formats.fhir import convert_fhir
from pfs.io.formats.omop import convert_omop

#: Export format name -> its converter ``(src, out, **options) -> ConvertResult``.
FORMATS: dict[str, Callable[..., ConvertResult]] = {"omop": convert_omop, "fhir": convert_fhir}


def convert(src: Path | str, out: Path | str, fmt: str, **options: Any) -> ConvertResult:
    """Convert the export at ``src`` (a format of :data:`FORMATS`) into the native layout at ``out``.

    ``options`` go to the format's converter (e.g. ``require_gbm=False`` to keep every person of a
    whole-hospital sample, ``patient_id=`` for OMOP, ``image_map=`` for FHIR).
    """
    key = str(fmt).strip().lower()
    src = Path(src)
    if not src.exists():
        raise ExportError(f"{src}: {key or fmt} export not found")
    converter = FORMATS.get(key)
    if converter is None:
        raise ExportError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)} (or 'native')")
    return converter(src, Path(out), **options)


__all__ = ["FORMATS", "ConvertResult", "convert"]
