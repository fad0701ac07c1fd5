"""The clean export every robustness test starts from, and the helpers that run and compare pfs on it.

One small synthetic cohort (:func:`pfs.synth.synthesize`, no synthetic MRI: it would dominate the run
time) plus hand-written tiny MRI studies for three patients: NIfTI studies for two of them, DICOM
series folders for the third, each T1C with a precomputed enhancing-tumour mask, so the imaging
extractor runs through its real loading code in well under a second.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pfs.synth import synthesize

N_PATIENTS = 8
SEED = 3
#: Patients given MRI studies: NIfTI for the first two, one DICOM series folder per study for the third.
IMAGING_PATIENTS = ("P0001", "P0003", "P0005")
DICOM_PATIENT = "P0005"
#: Image grid (x, y, z voxels) and spacing (mm): small enough to read in milliseconds.
SHAPE_XYZ = (20, 20, 16)
SPACING = 2.0
#: Mask radius (voxels) per study: a post-operative residue, the nadir after RT, then clear growth.
RADII = (3, 2.5, 5)
#: A UTF-8 character in one clean report, so a file decoded the wrong way changes its bytes.
UTF8_PATIENT = "P0002"
UTF8_TEXT = " Cavity measures 3 × 2 cm."
CONFIG_TOML = '[imaging]\nsegmenter = "precomputed"\n'
#: Output tables compared patient by patient between a faulted run and the clean one.
PATIENT_TABLES = ("events", "endpoints", "reconciled_events", "steroid_daily", "steroid_courses",
                  "report_labels", "volumes")


def _sphere(radius: float) -> np.ndarray:
    x, y, z = np.indices(SHAPE_XYZ, dtype=float)
    c = (np.asarray(SHAPE_XYZ) - 1) / 2
    return ((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) <= radius**2


def _t1c(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = 100 + 5 * rng.standard_normal(SHAPE_XYZ)
    img[mask] += 80
    return img.astype(np.float32)


def _affine() -> np.ndarray:
    return np.diag([SPACING, SPACING, SPACING, 1.0])


def write_nifti(data: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, _affine()), path)


def write_dicom_series(folder: Path, data_xyz: np.ndarray, series_uid: str, *, slices: list[int] | None = None) -> None:
    """One DICOM file per axial slice, with the geometry tags GDCM needs to stack them again."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    arr = np.ascontiguousarray(data_xyz.transpose(2, 1, 0)).astype(np.int16)  # z, y, x
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in slices if slices is not None else range(arr.shape[0]):
        sl = sitk.GetImageFromArray(arr[k])
        sl.SetSpacing((SPACING, SPACING))
        for tag, value in {
            "0008|0060": "MR", "0020|000d": "1.2.826.0.1.3680043.2.1125.9", "0020|000e": series_uid,
            "0020|0037": "1\\0\\0\\0\\1\\0", "0020|0032": f"0\\0\\{k * SPACING}",
            "0028|0030": f"{SPACING}\\{SPACING}", "0018|0050": str(SPACING), "0020|0013": str(k + 1),
            "0008|0018": f"{series_uid}.{k + 1}",
        }.items():
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{series_uid.rsplit('.', 1)[-1]}_{k:03d}.dcm"))
        writer.Execute(sl)


def add_imaging(export: Path, seed: int = SEED) -> pd.DataFrame:
    """Write the MRI studies and imaging.csv; returns the imaging table as written."""
    rng = np.random.default_rng(seed)
    patients = pd.read_csv(export / "patients.csv", dtype=str, keep_default_na=False).set_index("patient_id")
    rows = []
    for n, pid in enumerate(IMAGING_PATIENTS):
        p = patients.loc[pid]
        surgery, rt_end = pd.Timestamp(p["surgery_date"]), pd.Timestamp(p["rt_end_date"])
        dates = (surgery + pd.Timedelta(days=2), rt_end + pd.Timedelta(days=30), rt_end + pd.Timedelta(days=150))
        for k, (date, radius) in enumerate(zip(dates, RADII, strict=True)):
            sid = f"S{pid[1:]}-{k + 1}"
            mask = _sphere(radius)
            write_nifti(mask.astype(np.uint8), export / "images" / pid / f"{sid}_mask.nii.gz")
            if pid == DICOM_PATIENT:
                rel = f"images/{pid}/{sid}_t1c"
                write_dicom_series(export / rel, _t1c(mask, rng), f"1.2.826.0.1.3680043.2.1125.9.{n}{k}")
            else:
                rel = f"images/{pid}/{sid}_t1c.nii.gz"
                write_nifti(_t1c(mask, rng), export / rel)
            rows.append({"patient_id": pid, "study_id": sid, "study_date": date.strftime("%Y-%m-%d"),
                         "sequence": "T1C", "path": rel, "mask_path": f"images/{pid}/{sid}_mask.nii.gz"})
    table = pd.DataFrame(rows)
    table.to_csv(export / "imaging.csv", index=False, lineterminator="\n")
    return table


def _add_utf8_text(export: Path) -> None:
    reports = pd.read_csv(export / "reports.csv", dtype=str, keep_default_na=False)
    i = reports.index[reports["patient_id"] == UTF8_PATIENT][0]
    reports.loc[i, "text"] = reports.loc[i, "text"] + UTF8_TEXT
    reports.to_csv(export / "reports.csv", index=False, lineterminator="\n", encoding="utf-8")


def build_clean(root: Path) -> Path:
    """The clean export (root/export) and its config (root/config.toml); returns the export."""
    result = synthesize(root, patients=N_PATIENTS, seed=SEED, images=False)
    _add_utf8_text(result.export)
    add_imaging(result.export)
    (root / "config.toml").write_text(CONFIG_TOML, encoding="utf-8")
    return result.export


def copy_export(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


@dataclass(frozen=True)
class CliRun:
    code: int
    output: str
    out: Path


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """``pfs ARGS`` through the real entry point, so the exit code is the one a shell would see."""
    from pfs.cli import main

    monkeypatch.setattr(sys, "argv", ["pfs", *args])
    # The CLI points the root logger at the (captured) stderr; put it back so later tests can log.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def extract_cli(export: Path, out: Path, config: Path, monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture, *extra: str) -> CliRun:
    code, output = run_cli(["extract", str(export), "--out", str(out), "--config", str(config), *extra],
                           monkeypatch, capsys)
    return CliRun(code, output, out)


def read_output(out: Path, name: str) -> pd.DataFrame | None:
    path = out / f"{name}.csv"
    if not path.exists():
        return None
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def rows_of_others(frame: pd.DataFrame | None, touched: set[str]) -> pd.DataFrame | None:
    if frame is None:
        return None
    return frame.loc[~frame["patient_id"].isin(touched)].reset_index(drop=True)


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every output file (the per-patient cache under cache/ is not an output)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.relative_to(folder).parts[0] != "cache"}
