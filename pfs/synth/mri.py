"""Synthetic MRI studies rendered from the true course: a realistic head with a lesion that follows the truth.

Every :class:`~pfs.synth.course.Scan` becomes a T1C and a FLAIR NIfTI (plus a pre-contrast T1 when the scan
has one) under ``export/images/<patient_id>/<study_id>/``, and its true enhancing-tumour mask is written in
the T1C geometry under ``truth/masks/<study_id>_et.nii.gz``.

How a study is made, and why:

* **Anatomy** comes from the MNI152 template, grey/white-matter maps and brain mask that ship inside
  nilearn (offline). The 1 mm maps are built once per process, resampled once per scanner geometry,
  and every study reuses them, so a 92-patient cohort writes in minutes.
* **Tumour site**: a resection cavity (fluid-like, not enhancing) in one hemisphere's white matter near
  the cortex, and the enhancing tumour on its deep wall. The enhancing set is an irregular shell (smoothed
  random harmonics on the radius; necrotic core once the lesion exceeds ~1-4 mL) whose size is solved so
  that its voxel count times the voxel volume equals the true volume: the written mask *is* the truth,
  up to one voxel. FLAIR oedema grows preferentially along white matter to the true FLAIR volume. A new
  distant lesion (another lobe, >= 60 mm away) is drawn when the course has one.
* **Confounders** a segmenter must ignore: enhancing dura (thicker near the craniotomy), the superior
  sagittal and straight sinuses and cortical veins, choroid plexus, methaemoglobin (bright before
  contrast) in the fresh post-operative cavity wall, and the bright scalp and diploic fat of
  non-skull-stripped scanners.
* **Acquisition**: per-scanner voxel spacing (incl. thick 2D slices), array order (RAS or LPS), an oblique
  plane, dtype and intensity scale (float 0-1, int16 with scl_slope/scl_inter, uint16), skull stripping;
  per study a smooth multiplicative bias field, a gain, Rician noise and a few mm of header translation
  (patients are never positioned twice the same way).

Parameters and their rationale live in ``pfs/rules/synth_mri.json``. Courses whose true volume is beyond
what fits in a brain (the course model's exponential regrowth is unbounded) are rendered at
``max_enhancing_ml`` / ``max_flair_ml`` and flagged ``capped`` in the truth table.

Deterministic: each patient draws from ``patient_rng(seed, index, 30)`` and gzip streams carry no
timestamp, so the same seed gives the same bytes.
"""

from __future__ import annotations

import gzip
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pfs.exceptions import RuleFileError
from pfs.synth.course import PatientCourse, Scan, patient_rng

#: Label codes of the rendered lesion map (a higher code wins where two structures meet).
OEDEMA, CAVITY, BLOOD, NECROSIS, ENHANCING = 1, 2, 3, 4, 5
_SEQUENCES = ("T1C", "FLAIR", "T1")
_TISSUE_KEYS = {"gm", "csf", "oedema_factor", "enhancing", "necrosis", "cavity", "dura_boost", "vessel",
                "choroid", "blood_products", "bone", "marrow", "muscle", "fat", "skin"}
_LAYERS = ("csf", "inner_table", "marrow", "outer_table", "muscle", "fat", "skin")
_LAYER_TISSUE = ("csf", "bone", "marrow", "bone", "muscle", "fat", "skin")
_LESION_KEYS = {"enhancement_scale", "texture",
                "min_enhancing_ml", "max_enhancing_ml", "max_flair_ml", "necrosis_from_ml", "necrosis_full_ml",
                "necrotic_radius_fraction", "irregularity", "cavity_ml", "cavity_shrink_by_6_months",
                "distant_min_distance_mm", "distant_oedema_per_ml", "blood_products_ml",
                "postop_dura_radius_mm", "postop_dura_boost"}
_SCANNER_KEYS = {"name", "spacing_mm", "orientation", "oblique_deg", "skull_stripped", "dtype",
                 "white_matter_level", "max_value", "slope", "inter", "noise_sd"}
_TOP_KEYS = {"_source", "fov_margin_mm", "scanners", "intensity", "head_layers_mm", "lesion",
             "bias_field_strength", "study_gain_sd", "header_jitter_mm", "gzip_level", "sequence_names"}
_DTYPES = {"float32": np.float32, "int16": np.int16, "uint16": np.uint16}
_SHAPE_TERMS = 8
_THIN_MAPS = {"brain", "vent", "choroid", "vessel", "dura"}


# --------------------------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class ScannerSpec:
    """How one scanner writes its images (geometry, dtype and intensity scale)."""

    name: str
    spacing_mm: tuple[float, float, float]
    orientation: str  # RAS | LPS: the direction the voxel axes run
    oblique_deg: float
    skull_stripped: bool
    dtype: str
    white_matter_level: float
    max_value: float
    slope: float
    inter: float
    noise_sd: float


@dataclass(frozen=True)
class MriParams:
    """Validated content of ``synth_mri.json``; intensities stay as JSON text so they can key a cache."""

    scanners: tuple[ScannerSpec, ...]
    fov_margin_mm: tuple[float, float]  # (skull-stripped, full head)
    intensity_json: str
    lesion: dict[str, Any]
    bias_field_strength: float
    study_gain_sd: float
    header_jitter_mm: float
    gzip_level: int
    sequence_names: dict[str, tuple[str, ...]]

    @property
    def intensity(self) -> dict[str, Any]:
        return json.loads(self.intensity_json)


def _reject_unknown(found: dict, allowed: set[str], where: str) -> None:
    unknown = set(found) - allowed
    missing = allowed - set(found) - {"_source"}
    if unknown:
        raise RuleFileError(f"synth_mri.json: unknown keys {sorted(unknown)} in {where}")
    if missing:
        raise RuleFileError(f"synth_mri.json: missing keys {sorted(missing)} in {where}")


def load_params(text: str | None = None) -> MriParams:
    """Read and validate the phantom parameters (the shipped file unless ``text`` is given)."""
    if text is None:
        text = resources.files("pfs.rules").joinpath("synth_mri.json").read_text(encoding="utf-8")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise RuleFileError(f"synth_mri.json is not valid JSON: {err}") from err
    _reject_unknown(raw, _TOP_KEYS, "the top level")
    scanners = []
    for i, s in enumerate(raw["scanners"]):
        _reject_unknown(s, _SCANNER_KEYS, f"scanners[{i}]")
        if s["orientation"] not in ("RAS", "LPS"):
            raise RuleFileError(
                f"synth_mri.json: scanners[{i}].orientation must be RAS or LPS, not {s['orientation']!r}")
        if s["dtype"] not in _DTYPES:
            raise RuleFileError(
                f"synth_mri.json: scanners[{i}].dtype must be one of {sorted(_DTYPES)}, not {s['dtype']!r}")
        if len(s["spacing_mm"]) != 3 or min(s["spacing_mm"]) <= 0:
            raise RuleFileError(
                f"synth_mri.json: scanners[{i}].spacing_mm must be 3 positive numbers, not {s['spacing_mm']}")
        scanners.append(ScannerSpec(**{**s, "spacing_mm": tuple(float(v) for v in s["spacing_mm"])}))
    for seq, tissues in raw["intensity"].items():
        if seq not in _SEQUENCES:
            raise RuleFileError(f"synth_mri.json: intensity has an unknown sequence {seq!r}")
        _reject_unknown(tissues, _TISSUE_KEYS, f"intensity.{seq}")
    _reject_unknown(raw["head_layers_mm"], set(_LAYERS), "head_layers_mm")
    _reject_unknown(raw["lesion"], _LESION_KEYS, "lesion")
    _reject_unknown(raw["fov_margin_mm"], {"skull_stripped", "full_head"}, "fov_margin_mm")
    _reject_unknown(raw["sequence_names"], set(_SEQUENCES), "sequence_names")
    intensity = {"tissue": raw["intensity"], "layers": raw["head_layers_mm"]}
    return MriParams(
        scanners=tuple(scanners),
        fov_margin_mm=(float(raw["fov_margin_mm"]["skull_stripped"]), float(raw["fov_margin_mm"]["full_head"])),
        intensity_json=json.dumps(intensity, sort_keys=True),
        lesion=dict(raw["lesion"]),
        bias_field_strength=float(raw["bias_field_strength"]),
        study_gain_sd=float(raw["study_gain_sd"]),
        header_jitter_mm=float(raw["header_jitter_mm"]),
        gzip_level=int(raw["gzip_level"]),
        sequence_names={k: tuple(v) for k, v in raw["sequence_names"].items()},
    )


# ------------------------------------------------------------------------------------ 1 mm anatomical atlas
@dataclass(frozen=True)
class _Atlas:
    """Intensity-free 1 mm maps on the MNI grid (world = RAS mm), plus tumour-site candidates."""

    origin: np.ndarray  # world coordinate of voxel (0, 0, 0); the grid is axis-aligned, 1 mm
    maps: dict[str, np.ndarray]
    brain_box: tuple[np.ndarray, np.ndarray]  # world bounds of the brain mask
    sites: np.ndarray  # (n, 3) world coordinates: deep white matter near cortex, off the midline


def _tubes(shape: tuple[int, ...], origin: np.ndarray, lines: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Partial-volume map of tubes around polylines (world mm) of the given radii."""
    out = np.zeros(shape, np.float32)
    for pts, radius in lines:
        seg = [pts[0]]
        for a, b in zip(pts[:-1], pts[1:], strict=True):
            n = max(1, int(np.ceil(np.linalg.norm(b - a) / 0.5)))
            seg.extend(a + (b - a) * t for t in np.linspace(0, 1, n + 1)[1:])
        reach = int(np.ceil(radius + 1))
        for p in seg:
            c = np.round(p - origin).astype(int)
            lo = np.maximum(c - reach, 0)
            hi = np.minimum(c + reach + 1, shape)
            if np.any(hi <= lo):
                continue
            g = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            d = np.sqrt(sum((g[k] + origin[k] - p[k]) ** 2 for k in range(3)))
            box = out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            np.maximum(box, np.clip(radius + 0.5 - d, 0, 1), out=box)
    return out


def _coarse_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Unit-variance noise smooth at scale ``sigma`` voxels, drawn on a 4x coarser grid (large kernels are slow)."""
    from scipy import ndimage as ndi

    small = tuple(n // 4 + 2 for n in shape)
    n = ndi.gaussian_filter(rng.standard_normal(small).astype(np.float32), sigma / 4)
    n = ndi.zoom(n / (n.std() + 1e-9), [a / b for a, b in zip(shape, small, strict=True)], order=1)
    return n[:shape[0], :shape[1], :shape[2]]


@lru_cache(maxsize=1)
def _atlas() -> _Atlas:
    """Load nilearn's MNI152 maps once and derive ventricles, vessels, choroid plexus, dura and head layers."""
    from nilearn import datasets
    from scipy import ndimage as ndi

    t1_img = datasets.load_mni152_template(resolution=1)
    t1 = t1_img.get_fdata(dtype=np.float32)
    gm = datasets.load_mni152_gm_template(resolution=1).get_fdata(dtype=np.float32)
    wm = datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32)
    brain = datasets.load_mni152_brain_mask(resolution=1).get_fdata(dtype=np.float32) > 0.5
    # Keep only what any field of view can see (the widest margin is the scalp): every later step is cheaper.
    bidx = np.argwhere(brain)
    lo = np.maximum(bidx.min(0) - 17, 0)
    hi = np.minimum(bidx.max(0) + 18, brain.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    t1, gm, wm, brain = (np.ascontiguousarray(a[crop]) for a in (t1, gm, wm, brain))
    origin = t1_img.affine[:3, 3].astype(float) + lo
    shape = brain.shape

    total = np.clip(gm + wm, 0, 1)
    scale = np.clip(1.0 / np.maximum(gm + wm, 1e-6), 0, 1)
    gm, wm = gm * scale * brain, wm * scale * brain
    csf = np.where(brain, 1.0 - total, 0.0).astype(np.float32)
    t1 = t1 / float(t1[wm > 0.9].mean())
    depth = ndi.distance_transform_edt(brain).astype(np.float32)
    outside = ndi.distance_transform_edt(~brain).astype(np.float32)

    deep_csf = (csf > 0.6) & (depth > 12)
    lab, n = ndi.label(deep_csf)
    sizes = ndi.sum(deep_csf, lab, index=np.arange(1, n + 1))
    vent = np.isin(lab, 1 + np.flatnonzero(sizes >= 500))

    ijk = np.indices(shape, sparse=True)
    world = [ijk[k] + origin[k] for k in range(3)]
    # Choroid plexus: a blob in the atrium (posterior third) of each lateral ventricle.
    choroid = np.zeros(shape, bool)
    vidx = np.argwhere(vent)
    vworld = vidx + origin
    near_vent = ndi.binary_dilation(vent, iterations=1)
    for side in (-1.0, 1.0):
        pick = vworld[vworld[:, 0] * side > 6]
        if len(pick) == 0:
            continue
        back = pick[pick[:, 1] <= np.percentile(pick[:, 1], 30)]
        centre = back[np.argmin(np.linalg.norm(back - back.mean(0), axis=1))]
        d2 = sum((world[k] - centre[k]) ** 2 for k in range(3))
        choroid |= (d2 <= 4.5 ** 2) & near_vent
    # Venous sinuses along the midline (superior sagittal along the vertex and occiput, straight sinus)
    # and a few cortical veins: bright tubes just inside the brain mask, so skull stripping keeps them.
    x0 = int(round(-origin[0]))
    mid = brain[x0]
    lines: list[tuple[np.ndarray, float]] = []
    top = [(j, np.flatnonzero(mid[j]).max()) for j in range(shape[1]) if mid[j].any()]
    sss = np.array([[0.0, j + origin[1], k + origin[2] - 3.5] for j, k in top if k + origin[2] > 20])
    back = [(np.flatnonzero(mid[:, k]).min(), k) for k in range(shape[2]) if mid[:, k].any()]
    occ = np.array([[0.0, j + origin[1] + 3.5, k + origin[2]] for j, k in back if -5 < k + origin[2] <= 40])
    if len(sss) > 1:
        lines.append((sss, 3.0))
    if len(occ) > 1:
        lines.append((occ[::-1], 3.0))
        torcula = occ[np.argmin(np.abs(occ[:, 2] - 5.0))]
        lines.append((np.array([[0.0, -48.0, 12.0], torcula]), 2.5))
    vrng = np.random.default_rng(20240601)
    surface = np.argwhere((depth >= 1.5) & (depth <= 3.0) & (world[2] > 0))[::7] + origin
    for _ in range(8):
        a = surface[vrng.integers(len(surface))]
        dist = np.linalg.norm(surface - a, axis=1)
        far = surface[(dist > 30) & (dist < 55)]
        if len(far):
            lines.append((np.array([a, far[vrng.integers(len(far))]]), float(vrng.uniform(1.0, 1.5))))
    vessel = _tubes(shape, origin, lines) * ndi.binary_dilation(brain, iterations=2)
    # Dura: the outermost ~1.5 mm of the brain mask, patchy.
    patch = np.clip(0.75 + 0.2 * _coarse_noise(vrng, shape, 6.0), 0.4, 1.0)
    dura = ((depth > 0) & (depth <= 1.5)) * patch
    outside = outside / (1.0 + 0.12 * _coarse_noise(vrng, shape, 8.0))

    maps = {
        "t1": t1 * brain, "gm": gm, "wm": wm, "csf": csf, "brain": brain.astype(np.float32),
        "depth": depth, "outside": outside.astype(np.float32), "vent": vent.astype(np.float32),
        "choroid": choroid.astype(np.float32), "vessel": vessel.astype(np.float32), "dura": dura.astype(np.float32),
    }
    bidx = np.argwhere(brain)
    brain_box = (bidx.min(0) + origin, bidx.max(0) + origin)
    # Tumour sites: deep white matter 10-22 mm under the cortex, away from ventricles and midline,
    # supratentorial (where adult GBM arises).
    near = ndi.binary_dilation(vent[::2, ::2, ::2], iterations=5)  # within ~10 mm of a ventricle
    near = np.repeat(np.repeat(np.repeat(near, 2, 0), 2, 1), 2, 2)[:shape[0], :shape[1], :shape[2]]
    ok = (wm > 0.85) & (depth >= 10) & (depth <= 22) & ~near
    ok &= (np.abs(world[0]) > 15) & (world[2] > -10) & (world[2] < 60)
    sites = (np.argwhere(ok)[::5] + origin).astype(float)
    for m in maps.values():
        m.setflags(write=False)
    return _Atlas(origin=origin, maps=maps, brain_box=brain_box, sites=sites)


# -------------------------------------------------------------------------------------- per-scanner grids
@dataclass(frozen=True)
class _Grid:
    """A scanner's voxel grid with the head rendered on it (no lesion, no noise)."""

    shape: tuple[int, int, int]
    affine: np.ndarray  # voxel -> template world (RAS mm)
    spacing: tuple[float, float, float]
    base: dict[str, np.ndarray]  # T1, T1C, FLAIR
    maps: dict[str, np.ndarray]  # brain, wm, csf, vent, depth
    noise: np.ndarray  # a bank of 2 x n_voxels standard normals; each image reads two windows of it


def _grid_affine(spacing: tuple[float, float, float], orientation: str, oblique_deg: float,
                 lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine and shape of a grid covering the world box [lo, hi], axes running RAS or LPS, tilted about x."""
    a = np.deg2rad(oblique_deg)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    flip = np.diag([-1.0, -1.0, 1.0]) if orientation == "LPS" else np.eye(3)
    direction = rot @ flip
    half = (hi - lo) / 2.0
    half_grid = np.abs(direction.T) @ half  # extent of the box along the grid's own axes
    shape = tuple(int(np.ceil(2 * h / s)) + 1 for h, s in zip(half_grid, spacing, strict=True))
    aff = np.eye(4)
    aff[:3, :3] = direction @ np.diag(spacing)
    aff[:3, 3] = (lo + hi) / 2.0 - aff[:3, :3] @ ((np.array(shape) - 1) / 2.0)
    return aff, shape  # type: ignore[return-value]


def _resampled(spacing: tuple[float, float, float], orientation: str, oblique_deg: float,
               margin: float) -> tuple[np.ndarray, tuple[int, int, int], dict[str, np.ndarray]]:
    """The atlas maps resampled onto one scanner geometry (anti-aliased, trilinear)."""
    from scipy import ndimage as ndi

    atlas = _atlas()
    lo, hi = atlas.brain_box
    lo = lo - margin
    hi = hi + margin
    lo[2] = max(lo[2], atlas.brain_box[0][2])  # the field of view stops at the foramen magnum
    aff, shape = _grid_affine(spacing, orientation, oblique_deg, lo, hi)
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    coords = aff[:3, :3].astype(np.float32) @ ijk + (aff[:3, 3] - atlas.origin)[:, None].astype(np.float32)
    sigma = [0.4 * s if s > 1.0 else 0.0 for s in spacing]
    out = {}
    for name, m in atlas.maps.items():
        # Thin structures would alias away on a coarse grid; the smooth probability and distance maps do not.
        src = ndi.gaussian_filter(m, sigma) if max(sigma) > 0 and name in _THIN_MAPS else m
        # Beyond the template is air: far outside the head, not on the brain surface.
        cval = 1000.0 if name == "outside" else 0.0
        out[name] = ndi.map_coordinates(src, coords, order=1, mode="constant", cval=cval).reshape(shape)
        out[name] = out[name].astype(np.float32, copy=False)
    return aff, shape, out


@lru_cache(maxsize=8)
def _grid(scanner: ScannerSpec, intensity_json: str, margin: float) -> _Grid:
    """The scanner's head, built once per process: tissue intensities composed on the resampled maps."""
    aff, shape, m = _resampled(scanner.spacing_mm, scanner.orientation, scanner.oblique_deg, margin)
    inten = json.loads(intensity_json)
    tissue, layers = inten["tissue"], inten["layers"]
    brain = m["brain"]
    out_d = m["outside"]
    bounds = np.array([layers[k] for k in _LAYERS])
    layer = np.searchsorted(bounds, out_d)  # 0..len-1 inside the head, len = air
    base = {}
    for seq in _SEQUENCES:
        t = tissue[seq]
        if seq == "FLAIR":
            img = m["wm"] + t["gm"] * m["gm"] + t["csf"] * m["csf"]
        else:
            img = m["t1"] + (t["gm"] - tissue["T1"]["gm"]) * m["gm"]
        img = img + t["dura_boost"] * m["dura"]
        for name in ("vessel", "choroid"):
            img = img * (1 - m[name]) + t[name] * m[name]
        head = np.array([t[k] for k in _LAYER_TISSUE] + [0.0], np.float32)[layer]
        img = brain * img + (1 - brain) * head
        base[seq] = img.astype(np.float32)
    # Drawing fresh Gaussian noise for every image dominated the run time; windows at random offsets of one
    # fixed bank give each image its own noise at the cost of a copy.
    bank = np.random.default_rng([int(v * 1000) for v in scanner.spacing_mm]).standard_normal(
        2 * int(np.prod(shape)), dtype=np.float32)
    for a in (*base.values(), *m.values(), bank):
        a.setflags(write=False)
    return _Grid(shape=shape, affine=aff, spacing=scanner.spacing_mm, base=base,
                 maps={k: m[k] for k in ("brain", "wm", "csf", "vent", "depth")}, noise=bank)


def _scanner_grid(scanner: ScannerSpec, params: MriParams) -> _Grid:
    margin = params.fov_margin_mm[0] if scanner.skull_stripped else params.fov_margin_mm[1]
    return _grid(scanner, params.intensity_json, margin)


# ----------------------------------------------------------------------------------------- lesion geometry
@dataclass(frozen=True)
class _Shape:
    """Smooth random radial modulation: r_surface(u) = S * exp(sum a_k cos(f_k pi u.v_k + phi_k))."""

    v: np.ndarray
    f: np.ndarray
    phase: np.ndarray
    amp: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, irregularity: float) -> _Shape:
        v = rng.standard_normal((_SHAPE_TERMS, 3))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        amp = irregularity * rng.uniform(0.4, 1.0, _SHAPE_TERMS) / np.sqrt(_SHAPE_TERMS / 2)
        return cls(v=v, f=rng.uniform(0.8, 2.5, _SHAPE_TERMS), phase=rng.uniform(0, 2 * np.pi, _SHAPE_TERMS), amp=amp)

    def rho(self, rel: np.ndarray) -> np.ndarray:
        """Normalised radius of points ``rel`` (..., 3) from the centre: the surface is rho == S."""
        r = np.linalg.norm(rel, axis=-1)
        u = rel / np.maximum(r, 1e-6)[..., None]
        s = np.exp((self.amp * np.cos(self.f * np.pi * (u @ self.v.T) + self.phase)).sum(-1))
        return r / s


@dataclass(frozen=True)
class _Plan:
    """What stays the same for a patient across studies: where the tumour is and what it looks like."""

    cavity_centre: np.ndarray
    cavity_radius: float
    cavity_shape: _Shape
    lesion_centre: np.ndarray
    lesion_shape: _Shape
    necrotic_fraction: float
    distant_centre: np.ndarray
    distant_shape: _Shape
    craniotomy: np.ndarray
    blood_dirs: np.ndarray
    enhancement: float  # how strongly this tumour takes up gadolinium (scales T1C enhancement over tissue)


def _plan(rng: np.random.Generator, params: MriParams) -> _Plan:
    atlas = _atlas()
    les = params.lesion
    sites = atlas.sites
    cc = sites[rng.integers(len(sites))]
    ijk = np.round(cc - atlas.origin).astype(int)
    depth = atlas.maps["depth"]
    grad = np.array([depth[tuple(ijk + e)] - depth[tuple(ijk - e)] for e in np.eye(3, dtype=int)], float)
    inward = grad / max(np.linalg.norm(grad), 1e-6)
    cav_ml = rng.uniform(*les["cavity_ml"])
    radius = float((3 * cav_ml * 1000 / (4 * np.pi)) ** (1 / 3))
    wobble = inward + 0.6 * rng.standard_normal(3)
    wobble /= np.linalg.norm(wobble)
    far = sites[np.linalg.norm(sites - cc, axis=1) >= les["distant_min_distance_mm"]]
    distant = far[rng.integers(len(far))] if len(far) else sites[rng.integers(len(sites))]
    blood = rng.standard_normal((3, 3))
    return _Plan(
        cavity_centre=cc,
        cavity_radius=radius,
        cavity_shape=_Shape.draw(rng, les["irregularity"] * 0.6),
        lesion_centre=cc + wobble * radius * 0.85,
        lesion_shape=_Shape.draw(rng, les["irregularity"]),
        necrotic_fraction=float(rng.uniform(*les["necrotic_radius_fraction"])),
        distant_centre=distant,
        distant_shape=_Shape.draw(rng, les["irregularity"]),
        craniotomy=cc - inward * float(depth[tuple(ijk)]),
        blood_dirs=blood / np.linalg.norm(blood, axis=1, keepdims=True),
        enhancement=float(rng.uniform(*les["enhancement_scale"])),
    )


def _box(grid: _Grid, centre: np.ndarray, radius: float) -> tuple[slice, slice, slice]:
    inv = np.linalg.inv(grid.affine)
    corners = np.array([[centre[0] + sx * radius, centre[1] + sy * radius, centre[2] + sz * radius, 1.0]
                        for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    vox = (inv @ corners.T)[:3]
    lo = np.clip(np.floor(vox.min(1)).astype(int), 0, grid.shape)
    hi = np.clip(np.ceil(vox.max(1)).astype(int) + 1, 0, grid.shape)
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]


def _world(grid: _Grid, box: tuple[slice, slice, slice]) -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(s.start, s.stop) for s in box], indexing="ij"), -1).astype(np.float32)
    return idx @ grid.affine[:3, :3].T.astype(np.float32) + grid.affine[:3, 3].astype(np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    from scipy import ndimage as ndi

    n = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return n / (n.std() + 1e-9)


def _take_smallest(values: np.ndarray, n: int) -> np.ndarray:
    """Boolean mask of the ``n`` smallest finite entries (ties broken by position, deterministically)."""
    flat = values.ravel()
    out = np.zeros(flat.shape, bool)
    finite = np.flatnonzero(np.isfinite(flat))
    n = min(n, len(finite))
    if n > 0:
        order = np.argsort(flat[finite], kind="stable")[:n]
        out[finite[order]] = True
    return out.reshape(values.shape)


def _ring(rho: np.ndarray, allowed: np.ndarray, n_voxels: int, k: float) -> tuple[np.ndarray, np.ndarray]:
    """Enhancing shell {k S < rho <= S} with exactly ``n_voxels`` voxels (if room), and its necrotic core."""
    vals = np.sort(rho[allowed])
    if n_voxels <= 0 or len(vals) == 0:
        return np.zeros(rho.shape, bool), np.zeros(rho.shape, bool)
    if k <= 0:
        enh = _take_smallest(np.where(allowed, rho, np.inf), n_voxels)
        return enh, np.zeros(rho.shape, bool)

    def count(s: float) -> int:
        return int(np.searchsorted(vals, s, "right") - np.searchsorted(vals, k * s, "right"))

    lo, hi = 0.0, float(vals[-1]) / max(k, 1e-6) + 1.0
    for _ in range(48):
        mid = (lo + hi) / 2
        if count(mid) < n_voxels:
            lo = mid
        else:
            hi = mid
    core = allowed & (rho <= k * hi)
    enh = _take_smallest(np.where(allowed & ~core, rho, np.inf), n_voxels)
    return enh, core


def _render_site(grid: _Grid, labels: np.ndarray, rng: np.random.Generator, centre: np.ndarray, shape: _Shape,
                 et_ml: float, flair_ml: float, necrotic_fraction: float, params: MriParams,
                 cavity: tuple[np.ndarray, float, _Shape] | None) -> int:
    """Draw cavity, enhancing shell, necrosis and oedema of one lesion into ``labels``; returns ET voxels."""
    from scipy import ndimage as ndi

    les = params.lesion
    vox_ml = float(np.prod(grid.spacing)) / 1000.0
    n_et = int(round(et_ml / vox_ml))
    span = np.clip((et_ml - les["necrosis_from_ml"]) / (les["necrosis_full_ml"] - les["necrosis_from_ml"]), 0, 1)
    k = necrotic_fraction * float(span)
    total_ml = et_ml / max(1 - k ** 3, 1e-6)
    cav_r = cavity[1] if cavity is not None else 0.0
    need = max(2.2 * (3 * total_ml * 1000 / (4 * np.pi)) ** (1 / 3) + 4,
               1.4 * (3 * (flair_ml + total_ml) * 1000 / (4 * np.pi)) ** (1 / 3) + 8,
               2.0 * cav_r + 6)
    for _ in range(3):
        box = _box(grid, centre, need)
        xyz = _world(grid, box)
        brain = grid.maps["brain"][box] > 0.5
        free = brain & (grid.maps["vent"][box] < 0.5)
        cav = np.zeros(brain.shape, bool)
        if cavity is not None:
            c_centre, c_radius, c_shape = cavity
            cav[free] = c_shape.rho(xyz[free] - c_centre) <= c_radius
        allowed = free & ~cav & (grid.maps["depth"][box] >= 1.5)
        rho = np.full(brain.shape, np.inf, np.float32)
        rho[allowed] = shape.rho(xyz[allowed] - centre)
        if n_et == 0 or int(allowed.sum()) >= 2 * n_et / max(1 - k ** 3, 0.3):
            break
        need *= 1.5
    enh, core = _ring(rho, allowed, n_et, k)
    lesion = enh | core
    n_oed = int(round(flair_ml / vox_ml)) - int(lesion.sum())
    oed = np.zeros(brain.shape, bool)
    if n_oed > 0 and (lesion.any() or cav.any()):
        dist = ndi.distance_transform_edt(~(lesion | cav), sampling=grid.spacing)
        score = dist / (0.35 + 0.65 * grid.maps["wm"][box]) + 4.0 * _smooth_noise(rng, brain.shape, 2.0)
        cand = brain & (grid.maps["csf"][box] < 0.5) & (grid.maps["vent"][box] < 0.5) & ~lesion & ~cav
        oed = _take_smallest(np.where(cand, score, np.inf), n_oed)
    new = np.zeros(brain.shape, np.uint8)
    new[oed] = OEDEMA
    new[cav] = CAVITY
    new[core] = NECROSIS
    new[enh] = ENHANCING
    np.maximum(labels[box], new, out=labels[box])
    return int(enh.sum())


def _paint_blood(grid: _Grid, labels: np.ndarray, plan: _Plan, cav_radius: float, ml: float) -> None:
    """Methaemoglobin blobs on the fresh cavity wall: bright on T1 before contrast, not tumour."""
    r_ball = (3 * ml / len(plan.blood_dirs) * 1000 / (4 * np.pi)) ** (1 / 3)
    for u in plan.blood_dirs:
        s = float(np.exp((plan.cavity_shape.amp * np.cos(plan.cavity_shape.f * np.pi * (plan.cavity_shape.v @ u)
                                                         + plan.cavity_shape.phase)).sum()))
        centre = plan.cavity_centre + u * cav_radius * s
        box = _box(grid, centre, r_ball + 2)
        d = np.linalg.norm(_world(grid, box) - centre, axis=-1)
        sub = labels[box]
        put = (d <= r_ball) & (sub <= OEDEMA) & (grid.maps["brain"][box] > 0.5)
        sub[put] = BLOOD


# ------------------------------------------------------------------------------------------ image synthesis
def _bias(rng: np.random.Generator, shape: tuple[int, ...], strength: float) -> np.ndarray:
    """Smooth multiplicative field: exp of a random quadratic in normalised voxel coordinates."""
    ax = [np.linspace(-1, 1, n, dtype=np.float32).reshape([-1 if i == k else 1 for i in range(3)])
          for k, n in enumerate(shape)]
    c = rng.normal(0, strength / 2, 9).astype(np.float32)
    log = (c[0] * ax[0] + c[1] * ax[1] + c[2] * ax[2] + c[3] * ax[0] ** 2 + c[4] * ax[1] ** 2 + c[5] * ax[2] ** 2
           + c[6] * ax[0] * ax[1] + c[7] * ax[0] * ax[2] + c[8] * ax[1] * ax[2])
    return np.exp(log - log.mean())


def _contrast(grid: _Grid, seq: str, labels: np.ndarray, lesion_box: tuple[slice, ...] | None,
              texture: np.ndarray | None, plan: _Plan, postop_dura: float, params: MriParams) -> np.ndarray:
    """Noise-free image of one sequence: the head plus this study's lesion and post-operative dura."""
    from scipy import ndimage as ndi

    t = params.intensity["tissue"][seq]
    img = grid.base[seq].copy()
    if lesion_box is not None and texture is not None:
        base = img[lesion_box]
        lab = labels[lesion_box]
        target = base.copy()
        target[lab == OEDEMA] = base[lab == OEDEMA] * t["oedema_factor"]
        target[lab == CAVITY] = t["cavity"]
        target[lab == BLOOD] = t["blood_products"]
        target[lab == NECROSIS] = t["necrosis"]
        # Enhancement varies between tumours (perfusion, dose, timing after injection) and within one.
        target[lab == ENHANCING] = t["necrosis"] + (t["enhancing"] - t["necrosis"]) * plan.enhancement
        amp = params.lesion["texture"]
        target = target * np.where(lab > 0, 1 + amp * texture, 1).astype(np.float32)
        # Partial volume at the lesion border, as a real acquisition blurs it.
        img[lesion_box] = base + ndi.gaussian_filter(target - base, 0.5)
    if seq == "T1C" and postop_dura > 0:
        r = params.lesion["postop_dura_radius_mm"]
        box = _box(grid, plan.craniotomy, r)
        d = np.linalg.norm(_world(grid, box) - plan.craniotomy, axis=-1)
        shell = (grid.maps["depth"][box] <= 3.0) & (grid.maps["brain"][box] > 0.3) & (labels[box] != ENHANCING)
        img[box] += np.where(shell & (d < r), postop_dura * (1 - d / r), 0).astype(np.float32)
    return img


def _acquire(img: np.ndarray, grid: _Grid, scanner: ScannerSpec, rng: np.random.Generator,
             params: MriParams) -> np.ndarray:
    """Bias, gain, Rician noise, skull stripping and the scanner's scale: the physical values it stores."""
    img = img * _bias(rng, grid.shape, params.bias_field_strength)
    sd = np.float32(scanner.noise_sd)
    n = img.size
    o_re, o_im = (int(v) for v in rng.integers(0, n, 2))
    re = img + sd * grid.noise[o_re:o_re + n].reshape(grid.shape)
    im = sd * grid.noise[o_im:o_im + n].reshape(grid.shape)
    mag = np.sqrt(re * re + im * im)
    if scanner.skull_stripped:
        mag *= grid.maps["brain"] > 0.5
    gain = scanner.white_matter_level * (1 + params.study_gain_sd * float(rng.standard_normal()))
    return np.clip(mag * np.float32(gain), 0, scanner.max_value)


def _nifti_gz(physical: np.ndarray | None, raw: np.ndarray | None, affine: np.ndarray, slope: float, inter: float,
              level: int) -> bytes:
    """Gzipped NIfTI-1 bytes with the given raw dtype and scl_slope/scl_inter, and no gzip timestamp."""
    import nibabel as nib

    data = raw if raw is not None else physical
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    buf = bytearray(img.to_bytes())
    if raw is not None and (slope != 1.0 or inter != 0.0):
        # nibabel recomputes scaling when it writes an array, so the scanner's own slope/intercept is
        # put into the header fields (scl_slope at byte 112, scl_inter at 116) afterwards.
        buf[112:120] = struct.pack("<ff", slope, inter)
    return gzip.compress(bytes(buf), compresslevel=level, mtime=0)


def _encode(physical: np.ndarray, scanner: ScannerSpec, affine: np.ndarray, level: int) -> bytes:
    if scanner.dtype == "float32":
        # Floats derived from 12-bit DICOM pixel data take at most 4096 distinct steps over the range.
        step = np.float32(scanner.max_value / 4096)
        return _nifti_gz((np.rint(physical / step) * step).astype(np.float32), None, affine, 1.0, 0.0, level)
    info = np.iinfo(_DTYPES[scanner.dtype])
    raw = np.clip(np.rint((physical - scanner.inter) / scanner.slope), info.min, info.max)
    raw = raw.astype(_DTYPES[scanner.dtype])
    return _nifti_gz(None, raw, affine, scanner.slope, scanner.inter, level)


def _orientation(affine: np.ndarray) -> str:
    import nibabel as nib

    return "".join(nib.aff2axcodes(affine))


# ------------------------------------------------------------------------------------------------ studies
def _study(course: PatientCourse, scan: Scan, plan: _Plan, rng: np.random.Generator, params: MriParams,
           export: Path, truth: Path) -> tuple[list[dict], dict]:
    les = params.lesion
    scanner = params.scanners[scan.scanner % len(params.scanners)]
    grid = _scanner_grid(scanner, params)
    labels = np.zeros(grid.shape, np.uint8)
    days = (scan.date - course.surgery_date).days
    shrink = 1 - les["cavity_shrink_by_6_months"] * min(1.0, max(days, 0) / 182.0)
    cav_radius = plan.cavity_radius * shrink ** (1 / 3)
    et_true = float(scan.et_volume_ml)
    flair_true = float(scan.flair_volume_ml)
    et_target = min(et_true, les["max_enhancing_ml"])
    flair_target = min(flair_true, les["max_flair_ml"])
    capped = et_target < et_true or flair_target < flair_true
    if et_target < les["min_enhancing_ml"]:
        et_target = 0.0  # below what any reader or segmenter would call enhancement: drawn as none
    # The threshold applies to the study, not to each site, so local + distant always add up to the truth.
    distant_ml = min(float(scan.distant_lesion_ml), et_target)
    local_ml = max(et_target - distant_ml, 0.0)
    distant_flair = distant_ml * (1 + les["distant_oedema_per_ml"])
    _render_site(grid, labels, rng, plan.lesion_centre, plan.lesion_shape, local_ml,
                           max(flair_target - distant_flair, 0.0), plan.necrotic_fraction, params,
                           (plan.cavity_centre, cav_radius, plan.cavity_shape))
    n_distant = 0
    if distant_flair > 0:
        n_distant = _render_site(grid, labels, rng, plan.distant_centre, plan.distant_shape, distant_ml,
                                 distant_flair, plan.necrotic_fraction, params, None)
    if scan.phase == "postop" and les["blood_products_ml"] > 0:
        _paint_blood(grid, labels, plan, cav_radius, les["blood_products_ml"])
    nz = np.nonzero(labels)
    lesion_box = None
    texture = None
    if len(nz[0]):
        lesion_box = tuple(slice(max(int(a.min()) - 3, 0), min(int(a.max()) + 4, n))
                           for a, n in zip(nz, grid.shape, strict=True))
        texture = _smooth_noise(rng, labels[lesion_box].shape, 1.2)
    postop_dura = les["postop_dura_boost"] * (1.0 if scan.phase == "postop" else 0.6)

    jitter = rng.uniform(-params.header_jitter_mm, params.header_jitter_mm, 3)
    header_affine = grid.affine.copy()
    header_affine[:3, 3] += jitter
    folder = Path("images") / course.patient_id / scan.study_id
    (export / folder).mkdir(parents=True, exist_ok=True)
    rows = []
    for seq in _SEQUENCES:
        if seq == "T1" and not scan.has_t1:
            continue
        name = str(rng.choice(params.sequence_names[seq]))
        img = _contrast(grid, seq, labels, lesion_box, texture, plan, postop_dura, params)
        data = _encode(_acquire(img, grid, scanner, rng, params), scanner, header_affine, params.gzip_level)
        rel = folder / f"{seq.lower()}_{''.join(ch if ch.isalnum() else '_' for ch in name)}.nii.gz"
        (export / rel).write_bytes(data)
        rows.append({"patient_id": course.patient_id, "study_id": scan.study_id, "study_date": scan.date.isoformat(),
                     "sequence": name, "path": rel.as_posix(), "mask_path": ""})
    mask_rel = Path("masks") / f"{scan.study_id}_et.nii.gz"
    (truth / mask_rel).parent.mkdir(parents=True, exist_ok=True)
    mask = (labels == ENHANCING).astype(np.uint8)
    (truth / mask_rel).write_bytes(_nifti_gz(None, mask, header_affine, 1.0, 0.0, params.gzip_level))
    vox_ml = float(abs(np.linalg.det(header_affine[:3, :3]))) / 1000.0
    flair_vox = int(np.isin(labels, (OEDEMA, NECROSIS, ENHANCING)).sum())
    truth_row = {
        "patient_id": course.patient_id, "study_id": scan.study_id, "study_date": scan.date.isoformat(),
        "scanner": scan.scanner, "true_et_volume_ml": et_true,
        "rendered_et_volume_ml": round(int(mask.sum()) * vox_ml, 4),
        "true_distant_ml": float(scan.distant_lesion_ml), "rendered_distant_ml": round(n_distant * vox_ml, 4),
        "true_flair_volume_ml": flair_true, "rendered_flair_volume_ml": round(flair_vox * vox_ml, 4),
        "capped": int(capped),
        "voxel_spacing": "x".join(f"{s:g}" for s in grid.spacing), "orientation": _orientation(header_affine),
        "oblique_deg": scanner.oblique_deg, "skull_stripped": int(scanner.skull_stripped),
        "dtype": scanner.dtype, "has_t1": int(scan.has_t1), "mask_path": mask_rel.as_posix(),
    }
    return rows, truth_row


def _patient(course: PatientCourse, export: Path, truth: Path, seed: int,
             params: MriParams) -> tuple[list[dict], list[dict]]:
    """All studies of one patient, from the patient's own random stream (so patients can run in parallel)."""
    rng = patient_rng(seed, course.index, 30)
    plan = _plan(rng, params)
    rows: list[dict] = []
    truth_rows: list[dict] = []
    for scan in course.scans:
        r, t = _study(course, scan, plan, rng, params, export, truth)
        rows.extend(r)
        truth_rows.append(t)
    return rows, truth_rows


def write_studies(courses: list[PatientCourse], export: Path, truth: Path, seed: int,
                  progress: Callable[[str], None] | None = None, *,
                  params: MriParams | None = None, workers: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write NIfTI files under ``export/images`` and truth masks under ``truth/masks``.

    ``workers`` processes render patients in parallel (default: up to 2, the CPUs this is sized for); the
    output does not depend on it. Returns (rows in the native ``imaging`` layout with paths relative to
    ``export``; the truth per study: true and rendered enhancing/FLAIR volumes, geometry, and the mask
    path relative to ``truth``).
    """
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    params = params or load_params()
    export, truth = Path(export), Path(truth)
    n = sum(len(c.scans) for c in courses)
    workers = min(2, os.cpu_count() or 1) if workers is None else max(1, int(workers))
    # Build the shared anatomy before forking so that workers inherit it instead of rebuilding it.
    _atlas()
    for k in sorted({s.scanner % len(params.scanners) for c in courses for s in c.scans}):
        _scanner_grid(params.scanners[k], params)
    results: dict[int, tuple[list[dict], list[dict]]] = {}
    done = 0

    def record(i: int, res: tuple[list[dict], list[dict]]) -> None:
        nonlocal done
        results[i] = res
        done += len(res[1])
        if progress is not None:
            progress(f"{done}/{n} studies")

    if workers == 1 or len(courses) < 2 or "fork" not in mp.get_all_start_methods():
        for i, course in enumerate(courses):
            record(i, _patient(course, export, truth, seed, params))
    else:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
            futures = {pool.submit(_patient, c, export, truth, seed, params): i for i, c in enumerate(courses)}
            for fut in as_completed(futures):
                record(futures[fut], fut.result())
    rows = [r for i in range(len(courses)) for r in results[i][0]]
    truth_rows = [t for i in range(len(courses)) for t in results[i][1]]
    imaging = pd.DataFrame(rows, columns=["patient_id", "study_id", "study_date", "sequence", "path", "mask_path"])
    return imaging, pd.DataFrame(truth_rows)
