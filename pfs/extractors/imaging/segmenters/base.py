"""What every segmenter returns, and the lesion bookkeeping they share."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from pfs.extractors.imaging.loading import Grid


@dataclass(frozen=True)
class Lesion:
    """One enhancing lesion: where it is (LPS mm, scanner frame) and how big."""

    centroid_mm: tuple[float, float, float]
    volume_ml: float


@dataclass
class Segmentation:
    """An enhancing-tumour mask on the T1C grid plus what the volumetry and the QC need."""

    et: np.ndarray
    grid: Grid
    flair: np.ndarray | None = None
    lesions: list[Lesion] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    #: Enhancement below the confident threshold (not in ``et``): looked for again at the same place on
    #: the patient's other scans, so a small stable residual does not flicker (see imaging.longitudinal).
    faint_lesions: list[Lesion] = field(default_factory=list)
    #: Measurement uncertainty: the volume at stricter and at more lenient thresholds (None: not given).
    et_volume_low_ml: float | None = None
    et_volume_high_ml: float | None = None

    @property
    def et_volume_ml(self) -> float:
        return float(self.et.sum()) * self.grid.voxel_ml

    @property
    def flair_volume_ml(self) -> float | None:
        return None if self.flair is None else float(self.flair.sum()) * self.grid.voxel_ml


def group_lesions(mask: np.ndarray, grid: Grid, merge_mm: float, min_ml: float = 0.0) -> list[Lesion]:
    """Connected components of ``mask`` joined when their centroids lie within ``merge_mm``.

    A ring-enhancing tumour often falls apart into several pieces at a threshold; counting pieces
    would invent "new lesions", so nearby pieces are one lesion (single linkage on centroids).
    """
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return []
    where = np.nonzero(labels)
    lab = labels[where]
    counts = np.bincount(lab, minlength=n + 1)[1:].astype(float)
    cents = np.stack([np.bincount(lab, weights=w, minlength=n + 1)[1:] for w in where], axis=1)
    cents /= counts[:, None]
    mm = grid.index_to_mm(cents)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if n > 1:
        d = np.linalg.norm(mm[:, None, :] - mm[None, :, :], axis=-1)
        for i, j in zip(*np.nonzero(np.triu(d <= merge_mm, 1)), strict=True):
            parent[find(int(i))] = find(int(j))
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    out = []
    for members in groups.values():
        w = counts[members]
        vol = float(w.sum()) * grid.voxel_ml
        if vol < min_ml:
            continue
        c = (mm[members] * w[:, None]).sum(axis=0) / w.sum()
        out.append(Lesion(centroid_mm=(float(c[0]), float(c[1]), float(c[2])), volume_ml=round(vol, 4)))
    return sorted(out, key=lambda lesion: -lesion.volume_ml)
