"""Tiny MRI phantoms written to tmp_path: a head with a ring-enhancing lesion and enhancing confounders.

Anatomy is defined in millimetres, so the same head can be written at any spacing and orientation.
Intensities are multiples of white matter (WM = 1), as in pfs/rules/synth_mri.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

FOV_MM = (100.0, 100.0, 84.0)  # x, y, z


@dataclass
class Phantom:
    t1c: Path
    flair: Path
    t1: Path | None
    truth: np.ndarray  # enhancing tumour on the written grid, array order (x, y, z) as nibabel
    truth_ml: float
    voxel_ml: float
    affine: np.ndarray


def _coords(spacing):
    n = [int(round(f / s)) for f, s in zip(FOV_MM, spacing, strict=True)]
    axes = [(np.arange(k) + 0.5) * s - f / 2 for k, s, f in zip(n, spacing, FOV_MM, strict=True)]
    return np.meshgrid(*axes, indexing="ij")  # mm, centred on the head


def make_phantom(folder: Path, name: str = "s", *, spacing=(1.5, 1.5, 1.5), lps: bool = False, scale: float = 1000.0,
                 lesion_mm=(18.0, 6.0, 4.0), lesion_r: float = 9.0, distant: tuple | None = None,
                 with_t1: bool = True, blood: bool = False, skull: bool = False, vessel: bool = True,
                 dura: bool = True, dtype=np.float32, slope: float = 1.0, inter: float = 0.0,
                 oblique_deg: float = 0.0, seed: int = 0, ring_t1c: float = 1.75) -> Phantom:
    """Write T1C, FLAIR (and T1) NIfTI files of one synthetic study; return the paths and the truth mask."""
    rng = np.random.default_rng(seed)
    x, y, z = _coords(spacing)
    brain = (x / 38) ** 2 + (y / 44) ** 2 + (z / 32) ** 2 <= 1
    cortex = brain & ((x / 34) ** 2 + (y / 40) ** 2 + (z / 28) ** 2 > 1)
    ventricle = ((x + 8) / 4) ** 2 + (y / 10) ** 2 + ((z - 4) / 5) ** 2 <= 1
    t1c = np.where(brain, 1.0, 0.0)
    t1c[cortex] = 0.77
    t1c[ventricle] = 0.3
    t1 = t1c.copy()
    flair = np.where(brain, 1.0, 0.0)
    flair[cortex] = 1.2
    flair[ventricle] = 0.12
    truth = np.zeros(x.shape, bool)
    for centre, radius in [(lesion_mm, lesion_r)] + ([distant] if distant else []):
        d = np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2)
        oedema = (d <= radius * 2.0) & brain
        flair[oedema] = 1.55
        t1[oedema] *= 0.85
        t1c[oedema] *= 0.87
        ring = d <= radius
        core = d <= radius * 0.6 if radius >= 6 else np.zeros_like(ring)
        t1c[ring] = ring_t1c
        t1[ring] = 0.72
        flair[ring] = 1.3
        t1c[core] = 0.45
        t1[core] = 0.42
        flair[core] = 1.1
        truth |= ring & ~core
    # Choroid plexus: enhancing blob floating in the (FLAIR-dark) ventricle.
    plexus = ((x + 8) / 2.5) ** 2 + (y / 4) ** 2 + ((z - 4) / 2.5) ** 2 <= 1
    t1c[plexus] = 1.55
    t1[plexus] = 0.55
    flair[plexus] = 0.7
    if vessel:  # a 2 mm cortical vein running through normal brain
        v = ((x + 20) ** 2 + (z + 10) ** 2 <= 1.0) & brain & (np.abs(y) < 30)
        t1c[v] = 1.85
        t1[v] = 0.45
        flair[v] = 0.3
    if dura:  # enhancing dura on the brain surface
        shell = brain & ((x / 36.5) ** 2 + (y / 42.5) ** 2 + (z / 30.5) ** 2 > 1) & (y > 10)
        t1c[shell] = 1.7
        flair[shell] = 0.3  # dura lies on suppressed CSF
    if blood:  # post-operative blood products: bright before and after contrast
        b = ((x - 18) ** 2 + (y - 20) ** 2 + (z - 4) ** 2) <= 4.0 ** 2  # in the oedema beside the tumour
        t1c[b] = t1[b] = 1.6  # methaemoglobin: bright on T1 before contrast
        flair[b] = 1.05
    if skull:  # scalp fat and marrow (bright on T1 with and without contrast), separated by dark bone
        r = np.sqrt((x / 38) ** 2 + (y / 44) ** 2 + (z / 32) ** 2)
        marrow = (r > 1.10) & (r <= 1.16)
        fat = (r > 1.22) & (r <= 1.30)
        for img, val in ((t1c, 0.95), (t1, 0.9), (flair, 0.8)):
            img[marrow] = val
        for img, val in ((t1c, 1.35), (t1, 1.35), (flair, 1.0)):
            img[fat] = val
    spacing_arr = np.asarray(spacing, float)
    affine = np.diag([*spacing_arr, 1.0])
    affine[:3, 3] = -np.asarray(FOV_MM) / 2
    if lps:  # flip x and y of the array: same anatomy, LPS-ordered voxels
        flip = np.eye(4)
        for ax, n in ((0, x.shape[0]), (1, x.shape[1])):
            flip[ax, ax] = -1
            flip[ax, 3] = n - 1
        affine = affine @ flip
        t1c, t1, flair, truth = (a[::-1, ::-1, :].copy() for a in (t1c, t1, flair, truth))
    if oblique_deg:  # tilt the acquisition plane about x: same voxels, oblique direction cosines
        a = np.deg2rad(oblique_deg)
        rot = np.eye(4)
        rot[1:3, 1:3] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
        affine = rot @ affine
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for seq, img in (("t1c", t1c), ("flair", flair), ("t1", t1)):
        if seq == "t1" and not with_t1:
            continue
        noisy = np.where(img > 0, img * (1 + rng.normal(0, 0.03, img.shape)), 0) * scale
        stored = (noisy - inter) / slope
        if np.issubdtype(np.dtype(dtype), np.integer):
            stored = np.rint(stored)
        nimg = nib.Nifti1Image(stored.astype(dtype), affine)
        if slope != 1.0 or inter != 0.0:
            nimg.header.set_slope_inter(slope, inter)
        path = folder / f"{name}_{seq}.nii.gz"
        nib.save(nimg, path)
        out[seq] = path
    voxel_ml = float(np.prod(spacing_arr)) / 1000
    return Phantom(t1c=out["t1c"], flair=out["flair"], t1=out.get("t1"), truth=truth,
                   truth_ml=float(truth.sum()) * voxel_ml, voxel_ml=voxel_ml, affine=affine)


@pytest.fixture
def phantom_factory(tmp_path: Path):
    def make(name: str = "s", **kw) -> Phantom:
        return make_phantom(tmp_path / "images", name, **kw)

    return make
