"""Reading studies: header geometry and scaling honoured, bad files refused with a reason."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from pfs.extractors.imaging.loading import ImagingInputError, load_study, read_image, read_mask


def test_scale_slope_and_intercept_are_applied(tmp_path):
    raw = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(2.0, 10.0)
    nib.save(img, tmp_path / "a.nii.gz")
    arr = sitk.GetArrayFromImage(read_image(tmp_path / "a.nii.gz"))
    assert arr.transpose(2, 1, 0)[1, 2, 3] == pytest.approx(raw[1, 2, 3] * 2 + 10)


def test_voxel_volume_comes_from_the_header(phantom_factory):
    ph = phantom_factory(spacing=(1.0, 2.0, 3.0), dtype=np.int16, slope=0.5, inter=3.0, with_t1=False)
    images, _ = load_study({"T1C": ph.t1c})
    assert images.grid.voxel_ml == pytest.approx(0.006)
    assert images.t1c.shape == tuple(reversed(nib.load(ph.t1c).shape))


def test_flair_on_another_grid_is_resampled_onto_the_t1c(phantom_factory):
    a = phantom_factory("a", spacing=(1.5, 1.5, 1.5), with_t1=False)
    b = phantom_factory("b", spacing=(2.0, 2.0, 3.0), lps=True, with_t1=False)
    images, failed = load_study({"T1C": a.t1c, "FLAIR": b.flair})
    assert failed == {}
    assert images.flair.shape == images.t1c.shape
    assert "flair_resampled" in images.notes


def test_flair_that_does_not_overlap_is_set_aside(phantom_factory, tmp_path):
    a = phantom_factory("a", with_t1=False)
    img = nib.load(a.flair)
    moved = img.affine.copy()
    moved[:3, 3] += 500.0
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), moved), tmp_path / "far.nii.gz")
    images, failed = load_study({"T1C": a.t1c, "FLAIR": tmp_path / "far.nii.gz"})
    assert images.flair is None
    assert "cannot resample" in failed["FLAIR"]


def test_missing_t1c_is_refused():
    with pytest.raises(ImagingInputError, match="no T1C"):
        load_study({"FLAIR": Path("x.nii.gz")})


def test_truncated_file_is_refused(phantom_factory, tmp_path):
    ph = phantom_factory(with_t1=False)
    data = ph.t1c.read_bytes()
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImagingInputError, match="cannot read"):
        read_image(bad)


def test_two_d_image_is_refused(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((20, 20, 1), np.float32), np.eye(4)), tmp_path / "slice.nii.gz")
    with pytest.raises(ImagingInputError, match="2-D"):
        read_image(tmp_path / "slice.nii.gz")


def test_nan_voxels_are_refused(tmp_path):
    arr = np.ones((8, 8, 8), np.float32)
    arr[2, 2, 2] = np.nan
    nib.save(nib.Nifti1Image(arr, np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(ImagingInputError, match="NaN"):
        read_image(tmp_path / "nan.nii.gz")


def test_not_gzip_at_all_is_refused(tmp_path):
    p = tmp_path / "junk.nii.gz"
    p.write_bytes(gzip.compress(b"not an image"))
    with pytest.raises(ImagingInputError):
        read_image(p)


def _write_dicom_series(folder: Path, arr: np.ndarray, series_uid: str, spacing=(1.0, 1.0, 2.0)) -> None:
    """One DICOM file per slice with the geometry tags GDCM needs to rebuild the volume."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(arr.shape[0]):
        sl = sitk.GetImageFromArray(arr[k].astype(np.int16))
        for tag, value in {
            "0008|0060": "MR", "0020|000d": "1.2.826.0.1.3680043.2.1125.1", "0020|000e": series_uid,
            "0020|0037": "1\\0\\0\\0\\1\\0", "0020|0032": f"0\\0\\{k * spacing[2]}",
            "0028|0030": f"{spacing[1]}\\{spacing[0]}", "0018|0050": str(spacing[2]), "0020|0013": str(k + 1),
            "0008|0018": f"{series_uid}.{k + 1}", "0028|1053": "2", "0028|1052": "5",
        }.items():
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{series_uid[-3:]}_{k:03d}.dcm"))
        writer.Execute(sl)


def test_dicom_series_folder_is_read_with_rescale_and_spacing(tmp_path):
    arr = np.full((6, 10, 12), 100, np.int16)
    _write_dicom_series(tmp_path / "dcm", arr, "1.2.826.0.1.3680043.2.1125.2.101")
    img = read_image(tmp_path / "dcm")
    assert img.GetSize() == (12, 10, 6)
    assert img.GetSpacing()[2] == pytest.approx(2.0)
    # The writer stored (100 - 5) / 2 = 47 with RescaleSlope 2, RescaleIntercept 5; reading rescales back.
    import pydicom

    stored = pydicom.dcmread(sorted((tmp_path / "dcm").iterdir())[0]).pixel_array
    assert stored[4, 5] == 47
    assert sitk.GetArrayFromImage(img)[3, 4, 5] == pytest.approx(47 * 2 + 5)


def test_empty_and_mixed_dicom_folders_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImagingInputError, match="no readable series"):
        read_image(tmp_path / "empty")
    arr = np.full((4, 8, 8), 50, np.int16)
    _write_dicom_series(tmp_path / "mixed", arr, "1.2.826.0.1.3680043.2.1125.2.201")
    _write_dicom_series(tmp_path / "mixed", arr, "1.2.826.0.1.3680043.2.1125.2.202")
    with pytest.raises(ImagingInputError, match="mixes 2 series"):
        read_image(tmp_path / "mixed")


def test_mask_with_the_wrong_shape_is_refused(phantom_factory, tmp_path):
    ph = phantom_factory(with_t1=False)
    ref = read_image(ph.t1c)
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.uint8), np.eye(4)), tmp_path / "m.nii.gz")
    with pytest.raises(ImagingInputError, match="does not match the T1C shape"):
        read_mask(tmp_path / "m.nii.gz", ref, [1])


def test_mask_labels_are_selected(phantom_factory, tmp_path):
    ph = phantom_factory(with_t1=False)
    ref = read_image(ph.t1c)
    shape = nib.load(ph.t1c).shape
    lab = np.zeros(shape, np.uint8)
    lab[10:12, 10:12, 10:12] = 3
    lab[20:22, 20:22, 20:22] = 2
    nib.save(nib.Nifti1Image(lab, ph.affine), tmp_path / "lab.nii.gz")
    assert read_mask(tmp_path / "lab.nii.gz", ref, [3]).sum() == 8
