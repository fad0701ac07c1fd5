"""Masks made elsewhere (HD-GLIO, nnU-Net, BraTS labels, a manual segmentation), read in their declared convention."""

from __future__ import annotations

from pathlib import Path

from pfs.extractors.imaging.loading import ImagingInputError, StudyImages, read_label_map
from pfs.extractors.imaging.segmenters.base import Segmentation, group_lesions
from pfs.extractors.imaging.segmenters.labels import Convention, check_label_map


def segment(images: StudyImages, mask_path: Path | None, conv: Convention, merge_mm: float,
            min_lesion_ml: float) -> Segmentation:
    """The supplied mask's enhancing-tumour labels on the T1C grid.

    Raises:
        ImagingInputError: no mask given for the study, one that does not fit the T1C, or one holding
            labels that ``imaging.precomputed.convention`` does not define (the wrong convention).
    """
    if mask_path is None:
        raise ImagingInputError("segmenter 'precomputed' needs a mask_path for the study's T1C row")
    label_map = read_label_map(mask_path, images.reference)
    try:
        et, flags = check_label_map(label_map, conv, "mask")
    except ValueError as err:
        raise ImagingInputError(f"{err} (imaging.precomputed.convention)") from err
    lesions = group_lesions(et, images.grid, merge_mm, min_lesion_ml)
    return Segmentation(et=et, grid=images.grid, lesions=lesions, flags=["precomputed", *flags])
