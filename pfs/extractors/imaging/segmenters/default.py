"""Training-free enhancing-tumour segmentation, for when no trained model is available.

The idea a neuroradiologist would recognise: enhancing tumour is tissue that is clearly brighter after
gadolinium than normal white matter (or than itself before gadolinium, when a pre-contrast T1 exists),
that lies inside the brain rather than on its surface (dura), that is thicker than a vessel, and that
sits in abnormal (oedematous) FLAIR tissue rather than in CSF (choroid plexus), and that is about as
FLAIR-bright as the study's tumour itself (vessels and sinuses are not). Such components are confident
seeds; the fainter rim around them (partial volume, slower uptake) is grown into within a few mm where
it still enhances. Enhancement that reaches only a lenient threshold is returned apart as *faint
lesions* (for the patient's next scans, see :mod:`..longitudinal`), and the volume at stricter and
more lenient thresholds is the measurement uncertainty. Every number is a parameter in
``pfs/config/imaging.toml`` with its rationale; developed against real labelled BraTS 2018 studies
(``benchmarks/eval_real_imaging.py``).

Work is done on the bounding box of the head and the brain mask on a coarse grid, which keeps one
240 x 240 x 155 volume at about a second of CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from pfs.extractors.imaging.loading import StudyImages
from pfs.extractors.imaging.segmenters.base import Segmentation, group_lesions

_FULL = np.ones((3, 3, 3), bool)


@dataclass(frozen=True)
class DefaultParams:
    """Parameters of the training-free segmenter (see ``[default]`` in imaging.toml)."""

    brain_grid_mm: float
    brain_erode_mm: float
    surface_mm: float
    reference_percentile: float
    bias_sigma_mm: float
    smooth_mm: float
    t1c_high: float
    t1c_low: float
    subtraction_min: float
    min_component_ml: float
    max_surface_fraction: float
    surface_flair_rescue: float
    min_thickness_mm: float
    flair_context: bool
    flair_context_mm: float
    flair_context_min: float
    flair_voxel_min: float
    flair_high: float
    flair_low: float
    flair_lesion_relative: float
    t1c_faint: float
    grow_mm: float
    grow_t1c: float
    grow_t1c_without_t1: float
    grow_subtraction: float
    grow_flair_min: float
    uncertainty_step: float
    lesion_merge_mm: float
    min_lesion_ml: float

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> DefaultParams:
        return cls(**{k: section[k] for k in cls.__dataclass_fields__})


def otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold (between-class variance maximum) of a 1-D sample."""
    hist, edges = np.histogram(values, bins=bins)
    hist = hist.astype(float)
    mids = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * mids) / np.maximum(w0, 1)
    m1 = (np.sum(hist * mids) - np.cumsum(hist * mids)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(mids[int(np.argmax(between[:-1]))])


def _upsample(small: np.ndarray, factors: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    idx = [np.minimum(np.arange(n) // f, m - 1) for n, f, m in zip(shape, factors, small.shape, strict=True)]
    return small[np.ix_(*idx)]


def brain_mask(t1c: np.ndarray, spacing: tuple[float, float, float], p: DefaultParams
               ) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """(brain mask, depth below the brain surface in mm, coarse factors), both on the full grid.

    Thresholding at Otsu separates air (and skull, which is dark) from tissue; eroding then breaks the
    thin bridges between brain and scalp, the largest remaining component is the brain, and dilating
    back by the same distance restores its edge. On skull-stripped input the same steps change nothing
    but the outermost voxels, so one method serves both.
    """
    f = tuple(max(1, int(round(p.brain_grid_mm / s))) for s in spacing)
    small = t1c[:: f[0], :: f[1], :: f[2]]
    sp = tuple(s * k for s, k in zip(spacing, f, strict=True))
    fg = small > otsu(small.ravel())
    inner = ndimage.distance_transform_edt(fg, sampling=sp) > p.brain_erode_mm
    labels, n = ndimage.label(inner)
    if n == 0:
        brain = fg
    else:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        core = labels == int(np.argmax(sizes))
        near = ndimage.distance_transform_edt(~core, sampling=sp) <= p.brain_erode_mm
        brain = near & fg
    brain = ndimage.binary_fill_holes(brain)
    depth = ndimage.distance_transform_edt(brain, sampling=sp).astype(np.float32)
    return _upsample(brain, f, t1c.shape), _upsample(depth, f, t1c.shape), f


def _level(img: np.ndarray, ref: np.ndarray, stride: int, percentile: float) -> float:
    sample = img[ref][::stride]
    return float(np.percentile(sample, percentile)) if sample.size else float(np.percentile(img, 99))


def _bias_field(img: np.ndarray, ref: np.ndarray, level: float, f: tuple[int, ...],
                spacing: tuple[float, float, float], sigma_mm: float) -> np.ndarray:
    """Slowly varying gain (coil sensitivity) estimated from normal-looking tissue, on a coarse grid.

    Normalised convolution of tissue within +-35 % of the reference level (white and grey matter;
    tumour, fat and CSF excluded) gives the local level; its ratio to the global level is the gain.
    """
    small = img[:: f[0], :: f[1], :: f[2]]
    m = ref[:: f[0], :: f[1], :: f[2]] & (small > 0.65 * level) & (small < 1.35 * level)
    sig = [sigma_mm / (s * k) for s, k in zip(spacing, f, strict=True)]
    num = ndimage.gaussian_filter(np.where(m, small, 0).astype(np.float32), sig, mode="constant")
    den = ndimage.gaussian_filter(m.astype(np.float32), sig, mode="constant")
    local = np.where(den > 0.05, num / np.maximum(den, 1e-6), level)
    gain = np.clip(local / level, 0.5, 2.0).astype(np.float32)
    return _upsample(gain, f, img.shape)


def _normalise(img: np.ndarray, ref: np.ndarray, f: tuple[int, ...], spacing, p: DefaultParams) -> np.ndarray:
    """Intensity as a multiple of normal-appearing white matter: independent of scanner scale and gain."""
    stride = max(1, int(ref.sum() // 200_000))
    level = _level(img, ref, stride, p.reference_percentile)
    if level <= 0:
        return np.zeros_like(img)
    out = img / np.float32(level)
    if p.bias_sigma_mm > 0:
        out /= _bias_field(img, ref, level, f, spacing, p.bias_sigma_mm)
        level2 = _level(out, ref, stride, p.reference_percentile)
        if level2 > 0:
            out /= np.float32(level2)
    return out


def _crop_box(t1c: np.ndarray) -> tuple[slice, ...]:
    fg = t1c > t1c.min()
    if not fg.any():
        return tuple(slice(0, n) for n in t1c.shape)
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        nz = np.flatnonzero(fg.any(axis=other))
        box.append(slice(max(0, nz[0] - 2), min(t1c.shape[axis], nz[-1] + 3)))
    return tuple(box)


def _component_filter(cand: np.ndarray, depth: np.ndarray, flair_n: np.ndarray | None,
                      spacing: tuple[float, float, float], voxel_ml: float, p: DefaultParams,
                      flags: list[str]) -> np.ndarray:
    """Drop components that are too small, lie on the brain surface, are thin, or sit outside oedema."""
    labels, n = ndimage.label(cand, structure=_FULL)
    if n == 0:
        return cand
    size = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    on_surface = np.bincount(labels[depth <= p.surface_mm], minlength=n + 1)[1:]
    surface = on_surface / np.maximum(size, 1)
    big = size * voxel_ml >= p.min_component_ml
    on_edge = big & (surface > p.max_surface_fraction)
    use_flair = flair_n is not None and p.flair_context
    # Without FLAIR a component on the surface is dura; with FLAIR it may be a cortical tumour (below).
    keep = big & ~on_edge if not use_flair else big.copy()
    dropped = {"small": int((~big).sum()), "surface": 0 if use_flair else int(on_edge.sum()), "thin": 0,
               "no_oedema": 0}
    slices = ndimage.find_objects(labels)
    margin = [int(np.ceil(p.flair_context_mm / s)) + 1 for s in spacing]
    # A component thicker than min_thickness_mm survives erosion by half that (one pass for all).
    radius = p.min_thickness_mm / 2.0
    r = [int(np.floor(radius / s)) for s in spacing]
    zz, yy, xx = np.ogrid[-r[0]:r[0] + 1, -r[1]:r[1] + 1, -r[2]:r[2] + 1]
    ball = (zz * spacing[0]) ** 2 + (yy * spacing[1]) ** 2 + (xx * spacing[2]) ** 2 <= radius ** 2
    core = ndimage.binary_erosion(cand, structure=ball) if ball.sum() > 1 else cand
    thick = np.bincount(labels[core], minlength=n + 1)[1:] > 0
    thin = keep & ~thick
    dropped["thin"] = int(thin.sum())
    keep &= ~thin
    own = np.zeros(n)
    if use_flair:
        for i in np.flatnonzero(keep):
            sl = tuple(slice(max(0, s.start - m), min(dim, s.stop + m))
                       for s, m, dim in zip(slices[i], margin, cand.shape, strict=True))
            comp = labels[sl] == i + 1
            # The component and its surroundings: tumour and oedema are FLAIR-bright, a vessel is a flow
            # void in normal brain, choroid plexus floats in suppressed CSF, dura lies on FLAIR-dark CSF.
            region = ndimage.distance_transform_edt(~comp, sampling=spacing) <= p.flair_context_mm
            region &= depth[sl] > 0
            level = float(np.median(flair_n[sl][region])) if region.any() else 0.0
            own[i] = float(np.median(flair_n[sl][comp]))
            if on_edge[i] and level < p.surface_flair_rescue:
                keep[i] = False
                dropped["surface"] += 1
            elif level < p.flair_context_min:
                keep[i] = False
                dropped["no_oedema"] += 1
        # Pieces of one tumour share its FLAIR signature; vessels, sinuses and choroid plexus are less
        # FLAIR-bright than the tumour itself, so they are judged against this study's most FLAIR-bright
        # enhancing component of lesion size (relative: independent of the scanner's FLAIR contrast).
        sized = keep & (size * voxel_ml >= p.min_lesion_ml)
        if sized.any():
            faint_flair = keep & (own < p.flair_lesion_relative * own[sized].max())
            dropped["below_tumour_flair"] = int(faint_flair.sum())
            keep &= ~faint_flair
    flags.extend(f"dropped_{k}={v}" for k, v in dropped.items() if v)
    lut = np.concatenate([[False], keep])
    return lut[labels]


def _hysteresis(score: np.ndarray, low: float, high: float, allowed: np.ndarray) -> np.ndarray:
    weak = (score > low) & allowed
    labels, n = ndimage.label(weak, structure=_FULL)
    if n == 0:
        return weak
    strong = np.zeros(n + 1, bool)
    strong[np.unique(labels[(score > high) & weak])] = True
    strong[0] = False
    return strong[labels]


def _growth_allowed(score: np.ndarray, subtraction: np.ndarray | None, flair_n: np.ndarray | None,
                    brain: np.ndarray, p: DefaultParams):
    """Voxels into which a seed may grow, as a function of a threshold shift (+ stricter, - more lenient).

    The rim of enhancing tumour is fainter than its core (partial volume, slower contrast uptake):
    next to a confident seed, weaker enhancement of the same tumour is enhancing tumour, whereas the
    same intensity far from any seed would be noise or normal grey matter.
    """
    def allowed(shift: float) -> np.ndarray:
        if subtraction is not None:
            ok = brain & (score > p.grow_t1c + shift) & (subtraction > p.grow_subtraction + shift)
        else:
            ok = brain & (score > p.grow_t1c_without_t1 + shift)
        if flair_n is not None:
            ok &= flair_n > p.grow_flair_min
        return ok
    return allowed


def _grow(seeds: np.ndarray, allowed: np.ndarray, spacing: tuple[float, float, float], grow_mm: float
          ) -> np.ndarray:
    """``seeds`` plus the ``allowed`` voxels connected to them within ``grow_mm`` (worked on their box)."""
    if not seeds.any() or grow_mm <= 0:
        return seeds.copy()
    margin = [int(np.ceil(grow_mm / s)) + 1 for s in spacing]
    nz = np.nonzero(seeds)
    sl = tuple(slice(max(0, int(i.min()) - m), min(n, int(i.max()) + m + 1))
               for i, m, n in zip(nz, margin, seeds.shape, strict=True))
    near = ndimage.distance_transform_edt(~seeds[sl], sampling=spacing) <= grow_mm
    labels, n = ndimage.label((allowed[sl] & near) | seeds[sl], structure=_FULL)
    hit = np.zeros(n + 1, bool)
    hit[np.unique(labels[seeds[sl]])] = True
    hit[0] = False
    out = seeds.copy()
    out[sl] = hit[labels]
    return out


def segment(images: StudyImages, p: DefaultParams) -> Segmentation:
    """Enhancing tumour (and FLAIR hyperintensity) of one study; see the module docstring."""
    grid = images.grid
    spacing = grid.spacing_zyx
    flags: list[str] = []
    box = _crop_box(images.t1c)
    t1c = images.t1c[box]
    brain, depth, f = brain_mask(t1c, spacing, p)
    if brain.sum() * grid.voxel_ml < 150:  # an adult brain is 900-1500 mL: the mask failed
        flags.append("small_brain_mask")
    ref = brain & (depth > p.surface_mm)
    if not ref.any():
        ref = brain
    t1c_n = _normalise(t1c, ref, f, spacing, p)
    sig = [p.smooth_mm / s for s in spacing]
    allowed = brain
    t1_n = None
    if images.t1 is not None:
        # Pre-contrast T1 vetoes what was bright before gadolinium (blood products, fat, calcification).
        t1_n = _normalise(images.t1[box], ref, f, spacing, p)
        allowed = brain & ((t1c_n - t1_n) > p.subtraction_min)
        flags.append("subtraction")
    flair_n = _normalise(images.flair[box], ref, f, spacing, p) if images.flair is not None else None
    if flair_n is None:
        # Without FLAIR only size, surface and thickness separate tumour from sinuses and large veins.
        flags.append("no_flair_low_specificity")
    elif p.flair_context:
        # Vessels (flow voids) and CSF around choroid plexus are FLAIR-dark: cutting them voxel by voxel
        # keeps a vessel that touches the tumour from joining its component.
        allowed = allowed & (flair_n > p.flair_voxel_min)
    # truncate=2: a 5-tap kernel at 1 mm is enough against speckle and half the cost of the default 4.
    score = ndimage.gaussian_filter(t1c_n, sig, truncate=2.0) if p.smooth_mm > 0 else t1c_n
    # Seeds: components reaching t1c_faint (lenient) that pass the vessel / dura / choroid filters; those
    # also reaching t1c_high are confident enhancing tumour, the others faint (kept for the follow-up).
    cand = _hysteresis(score, p.t1c_low, p.t1c_faint, allowed)
    seeds = _component_filter(cand, depth, flair_n, spacing, grid.voxel_ml, p, flags)
    confident = _hysteresis(score, p.t1c_low, p.t1c_high, seeds)
    grow = _growth_allowed(score, t1c_n - t1_n if t1_n is not None else None, flair_n, brain, p)
    et_box = _grow(confident, grow(0.0), spacing, p.grow_mm)
    strict = _grow(confident, grow(+p.uncertainty_step), spacing, p.grow_mm)
    lenient = _grow(seeds, grow(-p.uncertainty_step), spacing, p.grow_mm)
    faint_box = lenient & ~_grow(confident, grow(-p.uncertainty_step), spacing, p.grow_mm)
    et = np.zeros(images.t1c.shape, bool)
    et[box] = et_box
    flair_mask = None
    if flair_n is not None:
        hyper = _hysteresis(flair_n, p.flair_low, p.flair_high, brain & (depth > p.surface_mm)) | et_box
        labels, n = ndimage.label(hyper, structure=_FULL)
        if n:
            touching = np.zeros(n + 1, bool)
            touching[np.unique(labels[et_box])] = True
            touching[0] = False
            hyper = touching[labels]
        flair_mask = np.zeros(images.t1c.shape, bool)
        flair_mask[box] = hyper
    lesions = group_lesions(et, grid, p.lesion_merge_mm, p.min_lesion_ml)
    faint = np.zeros(images.t1c.shape, bool)
    faint[box] = faint_box
    if faint_box.any():
        flags.append("faint_enhancement")
    return Segmentation(et=et, grid=grid, flair=flair_mask, lesions=lesions, flags=flags,
                        faint_lesions=group_lesions(faint, grid, p.lesion_merge_mm, p.min_lesion_ml),
                        et_volume_low_ml=float(strict.sum()) * grid.voxel_ml,
                        et_volume_high_ml=float(lenient.sum()) * grid.voxel_ml)
