"""Segmenters: one interface, chosen by ``imaging.segmenter`` in the config.

Each entry of :data:`SEGMENTERS` builds, from the ``[imaging]`` config section, a callable
``(images, mask_path) -> Segmentation``. The default and precomputed ones are plain picklable
functions (they run in worker processes); the MONAI and nnU-Net ones hold a loaded network.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pfs.extractors.imaging.loading import StudyImages
from pfs.extractors.imaging.segmenters import default, precomputed
from pfs.extractors.imaging.segmenters.base import Segmentation
from pfs.extractors.imaging.segmenters.labels import Convention, convention

SegmentFn = Callable[[StudyImages, Path | None], Segmentation]


def _default(images: StudyImages, mask_path: Path | None, params: default.DefaultParams) -> Segmentation:
    return default.segment(images, params)


def _precomputed(images: StudyImages, mask_path: Path | None, conv: Convention, merge_mm: float,
                 min_ml: float) -> Segmentation:
    return precomputed.segment(images, mask_path, conv, merge_mm, min_ml)


def _build_default(cfg: dict[str, Any]) -> SegmentFn:
    return partial(_default, params=default.DefaultParams.from_config(cfg["default"]))


def _build_precomputed(cfg: dict[str, Any]) -> SegmentFn:
    d = cfg["default"]
    conv = convention(cfg["precomputed"]["convention"], "imaging.precomputed.convention")
    return partial(_precomputed, conv=conv, merge_mm=d["lesion_merge_mm"], min_ml=d["min_lesion_ml"])


def _build_monai(cfg: dict[str, Any]) -> SegmentFn:
    from pfs.extractors.imaging.segmenters.monai_model import MonaiSegmenter

    model = MonaiSegmenter(cfg["monai"])
    d = cfg["default"]
    return lambda images, mask_path: model(images, d["lesion_merge_mm"], d["min_lesion_ml"])


def _build_nnunet(cfg: dict[str, Any]) -> SegmentFn:
    from pfs.extractors.imaging.segmenters.nnunet import NnunetSegmenter

    model = NnunetSegmenter(cfg["nnunet"])
    d = cfg["default"]
    return lambda images, mask_path: model(images, d["lesion_merge_mm"], d["min_lesion_ml"])


#: segmenter name -> builder taking the ``[imaging]`` config section.
SEGMENTERS: dict[str, Callable[[dict[str, Any]], SegmentFn]] = {
    "default": _build_default,
    "monai": _build_monai,
    "nnunet": _build_nnunet,
    "precomputed": _build_precomputed,
}


def check_models(cfg: dict[str, Any]) -> None:
    """The chosen model's files and label convention, checked before any study (no torch import).

    Raises:
        ConfigError: a missing model folder or weight file (:class:`~pfs.exceptions.ModelFileError`,
            naming the file), an unknown convention, or channels the model does not name.
    """
    sequences_needed(cfg)
    if cfg["segmenter"] == "precomputed":
        convention(cfg["precomputed"]["convention"], "imaging.precomputed.convention")


def sequences_needed(cfg: dict[str, Any]) -> tuple[str, ...]:
    """Optional sequences a segmenter reads besides the T1C (so nothing else is loaded)."""
    if cfg["segmenter"] == "monai":
        from pfs.extractors.imaging.segmenters.monai_model import channels_needed

        return tuple(s for s in channels_needed(cfg["monai"]) if s != "T1C")
    if cfg["segmenter"] == "nnunet":
        from pfs.extractors.imaging.segmenters import nnunet

        return tuple(s for s in nnunet.check(cfg["nnunet"]) if s != "T1C")
    if cfg["segmenter"] == "precomputed":
        return ()
    return ("T1", "FLAIR")
