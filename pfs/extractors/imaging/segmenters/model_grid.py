"""The grid a trained network sees, and the way back to the study's T1C grid.

Networks learn the voxel layout of their training data: BraTS volumes are axis-aligned, 1 mm,
stored with the first array axis running right-to-left (SimpleITK's identity direction in LPS).
A clinical T1C may be oblique, sagittal or 0.5 x 0.5 x 5 mm. So the study is resampled (linear)
onto an axis-aligned LPS grid covering the same physical box, at the spacing the model documents
(or the T1C's own spacing, assigned to the nearest axes), and the network's probability map is
resampled (linear, as MONAI's ``Invertd`` does) back onto the T1C grid before it is thresholded.
"""

from __future__ import annotations

import numpy as np

from pfs.extractors.imaging.loading import ImagingInputError, StudyImages

_TOL = 1e-3


def _sitk():
    import SimpleITK as sitk

    return sitk


def model_reference(images: StudyImages, spacing_xyz: tuple[float, float, float] | None, axis_aligned: bool):
    """A SimpleITK reference image for the model grid, or None when the T1C grid already is it."""
    sitk = _sitk()
    ref = images.reference
    direction = np.asarray(ref.GetDirection(), float).reshape(3, 3)
    spacing = np.asarray(ref.GetSpacing(), float)
    identity = np.allclose(direction, np.eye(3), atol=_TOL)
    if (identity or not axis_aligned) and (spacing_xyz is None or np.allclose(spacing, spacing_xyz, atol=_TOL)):
        return None
    if not axis_aligned:  # keep the T1C's orientation, change only the spacing
        out_dir = direction
        out_sp = np.asarray(spacing_xyz, float)
        extent = (np.asarray(ref.GetSize()) * spacing)
        size = np.maximum(np.ceil(extent / out_sp - _TOL), 1).astype(int)
        first = np.asarray(ref.TransformContinuousIndexToPhysicalPoint([-0.5, -0.5, -0.5]))
        origin = first + out_dir @ (out_sp / 2)
    else:
        out_dir = np.eye(3)
        size_in = np.asarray(ref.GetSize())
        corners = np.array([ref.TransformContinuousIndexToPhysicalPoint([float(c) for c in (i, j, k)])
                            for i in (-0.5, size_in[0] - 0.5) for j in (-0.5, size_in[1] - 0.5)
                            for k in (-0.5, size_in[2] - 0.5)])
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        if spacing_xyz is None:  # the T1C's spacing, each physical axis taking its nearest index axis's
            out_sp = spacing[np.argmax(np.abs(direction), axis=1)]
        else:
            out_sp = np.asarray(spacing_xyz, float)
        size = np.maximum(np.ceil((hi - lo) / out_sp - _TOL), 1).astype(int)
        origin = lo + out_sp / 2
    grid = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    grid.SetSpacing([float(s) for s in out_sp])
    grid.SetDirection([float(v) for v in out_dir.ravel()])
    grid.SetOrigin([float(v) for v in origin])
    return grid


def input_channels(images: StudyImages, channels: list[str], model: str) -> list[np.ndarray]:
    """The study's sequences in the model's channel order; a missing one is an input error for this study."""
    arrays = []
    for name in channels:
        arr = getattr(images, name.lower())
        if arr is None:
            raise ImagingInputError(f"the {model} model needs a {name} sequence, which this study lacks")
        arrays.append(arr)
    return arrays


def _image(arr_zyx: np.ndarray, like):
    sitk = _sitk()
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr_zyx, dtype=np.float32))
    img.CopyInformation(like)
    return img


def to_model_grid(arrays_zyx: list[np.ndarray], images: StudyImages, model_ref) -> list[np.ndarray]:
    """Arrays on the T1C grid resampled (linear) onto ``model_ref``; unchanged when it is None."""
    if model_ref is None:
        return arrays_zyx
    sitk = _sitk()
    return [sitk.GetArrayFromImage(sitk.Resample(_image(a, images.reference), model_ref, sitk.Transform(),
                                                 sitk.sitkLinear, 0.0, sitk.sitkFloat32)) for a in arrays_zyx]


def to_study_grid(values_zyx: np.ndarray, model_ref, images: StudyImages) -> np.ndarray:
    """A probability map on ``model_ref`` resampled (linear) back onto the T1C grid."""
    if model_ref is None:
        return values_zyx
    sitk = _sitk()
    back = sitk.Resample(_image(values_zyx, model_ref), images.reference, sitk.Transform(), sitk.sitkLinear, 0.0,
                         sitk.sitkFloat32)
    return sitk.GetArrayFromImage(back)


def from_affine_ras(values_xyz: np.ndarray, affine_ras: np.ndarray, images: StudyImages) -> np.ndarray:
    """A map in MONAI's layout (x, y, z voxels, RAS affine) resampled (linear) onto the T1C grid."""
    sitk = _sitk()
    if values_xyz.shape == images.t1c.shape[::-1] and np.allclose(affine_ras, affine_ras_of(images.reference),
                                                                   atol=_TOL):
        return np.ascontiguousarray(values_xyz.transpose(2, 1, 0))
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(affine_ras, float)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    img = sitk.GetImageFromArray(np.ascontiguousarray(values_xyz.transpose(2, 1, 0), dtype=np.float32))
    img.SetSpacing([float(s) for s in spacing])
    img.SetDirection([float(v) for v in (lps[:3, :3] / spacing).ravel()])
    img.SetOrigin([float(v) for v in lps[:3, 3]])
    back = sitk.Resample(img, images.reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(back)


def affine_ras_of(ref) -> np.ndarray:
    """The RAS voxel-to-world affine (x, y, z voxel order) of a SimpleITK image, as MONAI's MetaTensor holds it."""
    d = np.asarray(ref.GetDirection(), float).reshape(3, 3)
    a = np.eye(4)
    a[:3, :3] = d * np.asarray(ref.GetSpacing(), float)
    a[:3, 3] = ref.GetOrigin()
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ a
