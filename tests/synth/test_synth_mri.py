"""Synthetic MRI: each study's files load, its mask is the true enhancing volume, and its pixels look like MRI."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from importlib import resources
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from pfs.exceptions import RuleFileError
from pfs.io.series import roles
from pfs.synth import mri
from pfs.synth.course import PatientCourse, simulate_cohort


def _coarse_params() -> mri.MriParams:
    """The shipped parameters on ~1.5x coarser grids, so that the tests stay fast."""
    raw = json.loads(resources.files("pfs.rules").joinpath("synth_mri.json").read_text(encoding="utf-8"))
    for s in raw["scanners"]:
        s["spacing_mm"] = [round(v * 1.5, 2) for v in s["spacing_mm"]]
    return mri.load_params(json.dumps(raw))


def _courses() -> list[PatientCourse]:
    """Two patients whose hand-set studies visit all four scanners, a distant lesion and a trace volume."""
    a, b = simulate_cohort(2, 5)

    def scans(c: PatientCourse, spec: list[tuple[str, float, float, float, int, bool]]):
        return tuple(dataclasses.replace(c.scans[0], study_id=f"{c.patient_id}-S{k + 1:02d}", phase=phase,
                                         date=c.surgery_date + timedelta(days=2 + 60 * k), et_volume_ml=et,
                                         flair_volume_ml=fl, distant_lesion_ml=dist, scanner=scanner, has_t1=t1)
                     for k, (phase, et, fl, dist, scanner, t1) in enumerate(spec))

    a = dataclasses.replace(a, scans=scans(a, [("postop", 3.0, 18.0, 0.0, 0, True),
                                               ("follow_up", 12.0, 45.0, 1.5, 1, True)]))
    b = dataclasses.replace(b, scans=scans(b, [("postop", 0.02, 9.0, 0.0, 2, False),
                                               ("follow_up", 6.0, 30.0, 0.0, 3, True)]))
    return [a, b]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, pd.DataFrame, list[str]]:
    root = tmp_path_factory.mktemp("synth_mri")
    messages: list[str] = []
    rows, truth = mri.write_studies(_courses(), root / "export", root / "truth", seed=7, progress=messages.append,
                                    params=_coarse_params(), workers=2)
    return root, rows, truth, messages


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(path)
    return np.asarray(img.dataobj, dtype=np.float64), img.affine


def _study_images(root: Path, rows: pd.DataFrame, study: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    sub = rows[rows["study_id"] == study]
    return {seq: _load(root / "export" / p) for seq, p in zip(roles(sub["sequence"]), sub["path"], strict=True)}


def test_every_study_has_t1c_and_flair_and_t1_only_when_acquired(written) -> None:
    root, rows, truth, messages = written
    assert set(roles(rows["sequence"])) == {"T1C", "FLAIR", "T1"}
    per_study = rows.assign(seq=roles(rows["sequence"])).groupby("study_id")["seq"].apply(set)
    assert per_study.to_dict() == {
        "P0001-S01": {"T1C", "FLAIR", "T1"}, "P0001-S02": {"T1C", "FLAIR", "T1"},
        "P0002-S01": {"T1C", "FLAIR"}, "P0002-S02": {"T1C", "FLAIR", "T1"},
    }
    assert list(rows.columns) == ["patient_id", "study_id", "study_date", "sequence", "path", "mask_path"]
    assert (rows["mask_path"] == "").all()
    for p in rows["path"]:
        assert not Path(p).is_absolute() and "\\" not in p and p.startswith("images/")
        assert (root / "export" / p).is_file()
    assert messages[-1] == "4/4 studies"


def test_mask_volume_is_the_course_volume_in_the_t1c_geometry(written) -> None:
    root, rows, truth, _ = written
    for _, t in truth.iterrows():
        img = nib.load(root / "truth" / t["mask_path"])
        voxel_ml = float(np.prod(img.header.get_zooms()[:3])) / 1000
        ml = float(np.asarray(img.dataobj).sum()) * voxel_ml
        assert ml == pytest.approx(t["rendered_et_volume_ml"], abs=1e-3)
        if t["true_et_volume_ml"] < 0.05:
            assert ml == 0.0  # a trace volume is drawn as no enhancement
        else:
            assert ml == pytest.approx(t["true_et_volume_ml"], rel=0.03)
        t1c_path = rows[(rows["study_id"] == t["study_id"]) & roles(rows["sequence"]).eq("T1C")]["path"]
        t1c = nib.load(root / "export" / t1c_path.iloc[0])
        assert img.shape == t1c.shape and np.allclose(img.affine, t1c.affine)
    with_distant = truth.set_index("study_id").loc["P0001-S02"]
    assert with_distant["rendered_distant_ml"] == pytest.approx(1.5, rel=0.05)
    assert (truth["rendered_flair_volume_ml"] / truth["true_flair_volume_ml"]).between(0.9, 1.02).all()


def test_enhancing_tumour_is_brighter_than_white_matter_and_dark_before_contrast(written) -> None:
    root, rows, truth, _ = written
    params = _coarse_params()
    for study, scanner in [("P0001-S01", 0), ("P0001-S02", 1), ("P0002-S02", 3)]:
        imgs = _study_images(root, rows, study)
        mask = np.asarray(nib.load(root / "truth" / "masks" / f"{study}_et.nii.gz").dataobj) > 0
        wm = mri._scanner_grid(params.scanners[scanner], params).maps["wm"] > 0.95
        normal = wm & ~ndi.binary_dilation(mask, iterations=8)
        t1c = imgs["T1C"][0]
        assert np.median(t1c[mask]) > 1.25 * np.median(t1c[normal])
        t1 = imgs["T1"][0]
        assert np.median(t1[mask]) < np.median(t1[normal])  # it enhances: not bright before contrast


def test_enhancing_confounders_lie_outside_the_tumour_mask(written) -> None:
    root, rows, truth, _ = written
    params = _coarse_params()
    study = "P0001-S01"  # skull-stripped, so the bright voxels cannot be scalp fat
    imgs = _study_images(root, rows, study)
    mask = np.asarray(nib.load(root / "truth" / "masks" / f"{study}_et.nii.gz").dataobj) > 0
    grid = mri._scanner_grid(params.scanners[0], params)
    t1c, t1 = imgs["T1C"][0], imgs["T1"][0]
    wm_level = np.median(t1c[grid.maps["wm"] > 0.95])
    away = ~ndi.binary_dilation(mask, iterations=10)
    bright = (t1c > 1.35 * wm_level) & away
    assert bright.sum() >= 30  # sinuses, cortical veins, choroid plexus, dura
    # They enhance: most are not bright on the pre-contrast T1 of the same study.
    t1_wm = np.median(t1[grid.maps["wm"] > 0.95])
    assert np.mean(t1[bright] > 1.2 * t1_wm) < 0.3
    assert (grid.maps["vent"][bright] > 0.3).sum() >= 1  # choroid plexus inside the ventricles


def test_scanners_differ_in_orientation_spacing_dtype_and_scaling(written) -> None:
    root, rows, truth, _ = written
    assert set(truth["orientation"]) == {"RAS", "LPS"}
    assert truth["voxel_spacing"].nunique() == 4
    dtypes = set()
    for p in rows["path"]:
        img = nib.load(root / "export" / p)
        dtypes.add(str(img.get_data_dtype()))
        assert "".join(nib.aff2axcodes(img.affine)) in {"RAS", "LPS"}
    assert {"float32", "int16", "uint16"} <= dtypes
    scaled = rows[rows["study_id"] == "P0001-S02"]["path"].iloc[0]  # scanner B: int16 with scl_slope/scl_inter
    proxy = nib.load(root / "export" / scaled).dataobj
    assert (float(proxy.slope), float(proxy.inter)) == (2.0, 10.0)
    oblique = nib.load(root / "export" / rows[rows["study_id"] == "P0002-S01"]["path"].iloc[0]).affine
    assert abs(oblique[2, 1]) > 0.1  # the tilted scanner's slices are not axis-aligned
    stripped = _study_images(root, rows, "P0002-S02")["T1C"][0]
    full_head = _study_images(root, rows, "P0001-S02")["T1C"][0]
    assert (stripped[0] == 0).all() and (stripped[-1] == 0).all()
    assert (full_head[0] > 0).mean() > 0.5  # background noise and scalp outside the brain


def test_same_seed_gives_the_same_bytes(written, tmp_path: Path) -> None:
    root, rows, truth, _ = written
    rows2, truth2 = mri.write_studies(_courses(), tmp_path / "export", tmp_path / "truth", seed=7,
                                      params=_coarse_params(), workers=1)
    pd.testing.assert_frame_equal(rows, rows2)
    pd.testing.assert_frame_equal(truth, truth2)
    files = sorted(p.relative_to(root) for p in root.rglob("*.nii.gz"))
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.nii.gz"))
    for f in files:
        assert (root / f).read_bytes() == (tmp_path / f).read_bytes(), f


def test_parameter_file_rejects_unknown_keys() -> None:
    raw = json.loads(resources.files("pfs.rules").joinpath("synth_mri.json").read_text(encoding="utf-8"))
    assert len(mri.load_params(json.dumps(raw)).scanners) == 4
    raw["lesion"]["necrosis_ml"] = 2.0
    with pytest.raises(RuleFileError, match="necrosis_ml"):
        mri.load_params(json.dumps(raw))
    raw["lesion"].pop("necrosis_ml")
    raw["scanners"][0]["orientation"] = "LAS"
    with pytest.raises(RuleFileError, match="RAS or LPS"):
        mri.load_params(json.dumps(raw))
