"""Small QC pictures: the T1C through the largest lesion with the mask outlined, for a human glance.

matplotlib is imported here only, when a picture is asked for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage


def _centre(mask: np.ndarray) -> tuple[int, int, int]:
    """Array index (z, y, x) through the middle of the largest component, or the volume's centre."""
    if not mask.any():
        return tuple(n // 2 for n in mask.shape)  # type: ignore[return-value]
    labels, n = ndimage.label(mask)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    c = ndimage.center_of_mass(labels == int(np.argmax(sizes)))
    return tuple(int(round(v)) for v in c)  # type: ignore[return-value]


def _window(img: np.ndarray) -> tuple[float, float]:
    fg = img[img > img.min()]
    if fg.size == 0:
        return float(img.min()), float(img.max()) + 1.0
    lo, hi = np.percentile(fg, [1, 99.5])
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def qc_png(t1c: np.ndarray, mask: np.ndarray, spacing_zyx: tuple[float, float, float], path: Path,
           title: str = "", flair_mask: np.ndarray | None = None) -> Path:
    """Write a three-plane PNG (array axes, not anatomical labels) through the largest lesion.

    The mask outline is red (enhancing tumour) and, when given, the FLAIR hyperintensity cyan.
    Aspect ratios follow the voxel spacing so anisotropic scans are not distorted.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z, y, x = _centre(mask)
    lo, hi = _window(t1c)
    sz, sy, sx = spacing_zyx
    planes = [
        (t1c[z], mask[z], None if flair_mask is None else flair_mask[z], sy / sx, f"k={z}"),
        (t1c[:, y], mask[:, y], None if flair_mask is None else flair_mask[:, y], sz / sx, f"j={y}"),
        (t1c[:, :, x], mask[:, :, x], None if flair_mask is None else flair_mask[:, :, x], sz / sy, f"i={x}"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4), dpi=90)
    for ax, (img, m, fm, aspect, label) in zip(axes, planes, strict=True):
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, origin="lower", aspect=aspect, interpolation="nearest")
        if fm is not None and fm.any():
            ax.contour(fm, levels=[0.5], colors="cyan", linewidths=0.6)
        if m.any():
            ax.contour(m, levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
