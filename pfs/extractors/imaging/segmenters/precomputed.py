"""Masks made elsewhere (HD-GLIO, nnU-Net, a manual segmentation), used as given."""

from __future__ import annotations

from pathlib import Path

from pfs.extractors.imaging.loading import ImagingInputError, StudyImages, read_mask
from pfs.extractors.imaging.segmenters.base import Segmentation, group_lesions


def segment(images: StudyImages, mask_path: Path | None, et_labels: list[int], merge_mm: float,
            min_lesion_ml: float) -> Segmentation:
    """The supplied mask's enhancing-tumour labels on the T1C grid.

    Raises:
        ImagingInputError: no mask given for the study, or one that does not fit the T1C.
    """
    if mask_path is None:
        raise ImagingInputError("segmenter 'precomputed' needs a mask_path for the study's T1C row")
    et = read_mask(mask_path, images.reference, et_labels)
    lesions = group_lesions(et, images.grid, merge_mm, min_lesion_ml)
    return Segmentation(et=et, grid=images.grid, lesions=lesions, flags=["precomputed"])
