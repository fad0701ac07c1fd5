"""Segmenters: one interface, chosen by ``imaging.segmenter`` in the config.

Each entry of :data:`SEGMENTERS` builds, from the ``[imaging]`` config section, a callable
``(images, mask_path) -> Segmentation``. The default and precomputed ones are plain picklable
functions (they run in worker processes); the MONAI one holds a loaded network.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pfs.extractors.imaging.loading import StudyImages
from pfs.extractors.imaging.segmenters import default, precomputed
from pfs.extractors.imaging.segmenters.base import Segmentation

SegmentFn = Callable[[StudyImages, Path | None], Segmentation]


def _default(images: StudyImages, mask_path: Path | None, params: default.DefaultParams) -> Segmentation:
    return default.segment(images, params)


def _precomputed(images: StudyImages, mask_path: Path | None, labels: list[int], merge_mm: float,
                 min_ml: float) -> Segmentation:
    return precomputed.segment(images, mask_path, labels, merge_mm, min_ml)


def _build_default(cfg: dict[str, Any]) -> SegmentFn:
    return partial(_default, params=default.DefaultParams.from_config(cfg["default"]))


def _build_precomputed(cfg: dict[str, Any]) -> SegmentFn:
    d = cfg["default"]
    return partial(_precomputed, labels=[int(v) for v in cfg["precomputed"]["et_labels"]],
                   merge_mm=d["lesion_merge_mm"], min_ml=d["min_lesion_ml"])


def _build_monai(cfg: dict[str, Any]) -> SegmentFn:
    from pfs.extractors.imaging.segmenters.monai_model import MonaiSegmenter

    model = MonaiSegmenter(cfg["monai"])
    d = cfg["default"]
    return lambda images, mask_path: model(images, d["lesion_merge_mm"], d["min_lesion_ml"])


#: segmenter name -> builder taking the ``[imaging]`` config section.
SEGMENTERS: dict[str, Callable[[dict[str, Any]], SegmentFn]] = {
    "default": _build_default,
    "monai": _build_monai,
    "precomputed": _build_precomputed,
}


def sequences_needed(cfg: dict[str, Any]) -> tuple[str, ...]:
    """Optional sequences a segmenter reads besides the T1C (so nothing else is loaded)."""
    if cfg["segmenter"] == "monai":
        return tuple(s for s in cfg["monai"]["channels"] if s != "T1C")
    if cfg["segmenter"] == "precomputed":
        return ()
    return ("T1", "FLAIR")
