"""Read one MRI study from disk into arrays on the T1C grid.

SimpleITK reads both NIfTI and DICOM series into one physical (LPS) space: the header's direction
cosines, spacing and origin, with NIfTI ``scl_slope``/``scl_inter`` and DICOM RescaleSlope/Intercept
applied. Everything downstream works on arrays in the T1C's own voxel order, so volumes come from the
header spacing (never from the array shape) and RAS, LPS and oblique exports are all the same to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Tolerance (mm and direction cosine) below which two grids are treated as the same.
_GEOMETRY_TOL = 1e-3


class ImagingInputError(Exception):
    """A sequence or mask that cannot be used; the message is the quarantine reason."""


@dataclass(frozen=True)
class Grid:
    """Geometry of the T1C: what every other sequence and mask is brought onto.

    ``spacing`` is in array order (z, y, x), matching ``numpy`` arrays from SimpleITK.
    """

    size_xyz: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        return tuple(reversed(self.spacing_xyz))  # type: ignore[return-value]

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing_xyz)) / 1000.0

    def index_to_mm(self, idx_zyx: np.ndarray) -> np.ndarray:
        """Physical (LPS, mm) coordinates of array indices (N x 3, z/y/x order)."""
        ijk = np.asarray(idx_zyx, dtype=float)[:, ::-1]
        d = np.asarray(self.direction, dtype=float).reshape(3, 3)
        return np.asarray(self.origin) + (ijk * np.asarray(self.spacing_xyz)) @ d.T


@dataclass
class StudyImages:
    """The usable sequences of one study, all on the T1C grid (float32, z/y/x)."""

    t1c: np.ndarray
    grid: Grid
    t1: np.ndarray | None = None
    flair: np.ndarray | None = None
    t2: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    reference: object | None = None  # the SimpleITK T1C image, for writing masks in its geometry


def _sitk():
    import SimpleITK as sitk

    return sitk


def _read_nifti(path: Path):
    """NIfTI voxels via nibabel, geometry via SimpleITK's header reader.

    nibabel applies scl_slope/scl_inter, keeps NaNs (ITK silently turns them into 0) and fails on a
    truncated file (ITK returns zeros); SimpleITK gives the LPS direction cosines the rest of pfs uses.
    """
    import nibabel as nib

    sitk = _sitk()
    info = sitk.ImageFileReader()
    info.SetFileName(str(path))
    info.ReadImageInformation()
    img = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float32)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ImagingInputError(f"image is {data.ndim}-D (shape {data.shape}); a 3-D volume is needed")
    size = tuple(int(v) for v in info.GetSize()[:3])
    if data.shape != size:
        raise ImagingInputError(f"header geometry {size} disagrees with the voxel data {data.shape}")
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    image.SetSpacing(info.GetSpacing()[:3])
    image.SetOrigin(info.GetOrigin()[:3])
    d = np.asarray(info.GetDirection()).reshape(info.GetDimension(), info.GetDimension())[:3, :3]
    image.SetDirection([float(v) for v in d.ravel()])
    return image


def _check_slice_spacing(reader, n_files: int) -> None:
    """Refuse a DICOM series with missing slices: ITK stacks what is there at an averaged spacing.

    A lost slice would otherwise shrink the volume silently (and shift every voxel above the gap).
    Slice positions are ImagePositionPatient projected on the slice normal; a series whose tags
    cannot be read is left to ITK's own checks.
    """
    if n_files < 3:
        return
    try:
        cosines = [float(v) for v in reader.GetMetaData(0, "0020|0037").split("\\")]
        normal = np.cross(cosines[:3], cosines[3:6])
        positions = np.array([[float(v) for v in reader.GetMetaData(i, "0020|0032").split("\\")]
                              for i in range(n_files)])
    except (RuntimeError, ValueError, IndexError):
        return
    gaps = np.diff(np.sort(positions @ normal))
    step = float(np.median(gaps))
    if step <= 0 or np.any(np.abs(gaps - step) > max(0.1 * step, 0.01)):
        raise ImagingInputError(
            f"DICOM series has missing slices or uneven slice spacing ({n_files} slices, gaps "
            f"{gaps.min():.2f} to {gaps.max():.2f} mm); export the complete series"
        )


def read_image(path: Path):
    """A 3-D SimpleITK image (float32) from a NIfTI file or a folder holding one DICOM series.

    Raises:
        ImagingInputError: unreadable/corrupt file, empty or mixed DICOM folder, not 3-D, NaN/inf values.
    """
    sitk = _sitk()
    path = Path(path)
    try:
        if path.is_dir():
            reader = sitk.ImageSeriesReader()
            series = reader.GetGDCMSeriesIDs(str(path))
            if not series:
                raise ImagingInputError("DICOM folder holds no readable series")
            if len(series) > 1:
                raise ImagingInputError(f"DICOM folder mixes {len(series)} series; give one series per folder")
            files = reader.GetGDCMSeriesFileNames(str(path), series[0])
            reader.SetFileNames(files)
            reader.MetaDataDictionaryArrayUpdateOn()
            image = reader.Execute()
            _check_slice_spacing(reader, len(files))
        elif path.name.lower().endswith((".nii", ".nii.gz")):
            image = _read_nifti(path)
        else:
            image = sitk.ReadImage(str(path))
    except ImagingInputError:
        raise
    except Exception as err:  # ITK, nibabel, gzip and zlib each raise their own types for a corrupt file
        lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "rror" in ln or "annot" in ln), lines[-1] if lines else type(err).__name__)
        raise ImagingInputError(f"cannot read image (corrupt or truncated?): {detail[:160]}") from err
    size = image.GetSize()
    if image.GetDimension() == 4 and size[3] == 1:
        image = image[:, :, :, 0]
        size = image.GetSize()
    if image.GetDimension() != 3:
        raise ImagingInputError(f"image is {image.GetDimension()}-D (size {size}); a 3-D volume is needed")
    if min(size) < 2:
        raise ImagingInputError(f"image is 2-D (size {size}); a 3-D volume is needed")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImagingInputError("image has vector pixels (RGB?); a scalar MR volume is needed")
    if image.GetPixelID() != sitk.sitkFloat32:
        image = sitk.Cast(image, sitk.sitkFloat32)
    arr = sitk.GetArrayViewFromImage(image)
    if not np.isfinite(arr).all():
        n = int((~np.isfinite(arr)).sum())
        raise ImagingInputError(f"image holds {n} NaN/infinite voxels")
    return image


def grid_of(image) -> Grid:
    return Grid(size_xyz=tuple(image.GetSize()), spacing_xyz=tuple(image.GetSpacing()),
                origin=tuple(image.GetOrigin()), direction=tuple(image.GetDirection()))


def same_grid(a: Grid, b: Grid) -> bool:
    return (a.size_xyz == b.size_xyz
            and np.allclose(a.spacing_xyz, b.spacing_xyz, atol=_GEOMETRY_TOL)
            and np.allclose(a.origin, b.origin, atol=_GEOMETRY_TOL * 100)
            and np.allclose(a.direction, b.direction, atol=_GEOMETRY_TOL))


def _overlap_fraction(moving, reference) -> float:
    """Share of the reference's corner-to-corner box covered by the moving image (physical space)."""
    def box(img):
        size = np.asarray(img.GetSize()) - 1
        corners = [img.TransformContinuousIndexToPhysicalPoint([float(c) for c in (i, j, k)])
                   for i in (0, size[0]) for j in (0, size[1]) for k in (0, size[2])]
        c = np.asarray(corners)
        return c.min(axis=0), c.max(axis=0)

    lo_r, hi_r = box(reference)
    lo_m, hi_m = box(moving)
    inter = np.clip(np.minimum(hi_r, hi_m) - np.maximum(lo_r, lo_m), 0, None)
    vol_r = np.prod(np.maximum(hi_r - lo_r, 1e-6))
    return float(np.prod(inter) / vol_r)


def resample_to(moving, reference, *, nearest: bool = False, min_overlap: float = 0.5):
    """``moving`` on ``reference``'s grid (physical space, identity transform).

    Same-study sequences share the scanner frame, so no registration is needed; when their boxes
    barely overlap they are not the same head position and resampling would invent data.
    """
    sitk = _sitk()
    if same_grid(grid_of(moving), grid_of(reference)):
        return moving
    overlap = _overlap_fraction(moving, reference)
    if overlap < min_overlap:
        raise ImagingInputError(
            f"geometry does not match the T1C (only {overlap:.0%} of the T1C field of view is covered); cannot resample"
        )
    interp = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    return sitk.Resample(moving, reference, sitk.Transform(), interp, 0.0, moving.GetPixelID())


def to_array(image) -> np.ndarray:
    return _sitk().GetArrayFromImage(image).astype(np.float32, copy=False)


def load_study(paths: dict[str, Path], *, optional: tuple[str, ...] = ("T1", "FLAIR"),
               min_overlap: float = 0.5) -> tuple[StudyImages, dict[str, str]]:
    """Read the sequences of one study; T1C is required, the ``optional`` ones are used when readable.

    Returns the images and ``{sequence: reason}`` for optional sequences that could not be used
    (the caller quarantines those rows; the study goes on without them).

    Raises:
        ImagingInputError: the T1C is missing or unusable (the whole study is set aside).
    """
    if "T1C" not in paths:
        raise ImagingInputError("study has no T1C sequence (required for enhancing-tumour volumetry)")
    t1c_img = read_image(paths["T1C"])
    grid = grid_of(t1c_img)
    images = StudyImages(t1c=to_array(t1c_img), grid=grid, reference=t1c_img)
    failed: dict[str, str] = {}
    for seq in optional:
        if seq not in paths:
            continue
        try:
            raw = read_image(paths[seq])
            img = resample_to(raw, t1c_img, min_overlap=min_overlap)
        except ImagingInputError as err:
            failed[seq] = str(err)
            continue
        if img is not raw:
            images.notes.append(f"{seq.lower()}_resampled")
        setattr(images, seq.lower(), to_array(img))
    return images, failed


def read_mask(path: Path, reference, labels: list[int]) -> np.ndarray:
    """A precomputed mask as a boolean array on the T1C grid, keeping ``labels``."""
    return np.isin(read_label_map(path, reference), labels)


def read_label_map(path: Path, reference) -> np.ndarray:
    """A precomputed label map as integers on the T1C grid (its convention is read by the caller).

    A mask whose voxel grid differs in size from the T1C is rejected rather than resampled: it was
    made on another image, and which one cannot be known.
    """
    sitk = _sitk()
    try:
        mask = read_image(path)
    except ImagingInputError as err:
        raise ImagingInputError(f"mask: {err}") from err
    if tuple(mask.GetSize()) != tuple(reference.GetSize()):
        raise ImagingInputError(
            f"mask shape {tuple(mask.GetSize())} does not match the T1C shape {tuple(reference.GetSize())}"
        )
    if not same_grid(grid_of(mask), grid_of(reference)):
        # Same voxel grid size but a header that differs (e.g. rounding in another tool): trust the voxels.
        mask.CopyInformation(reference)
    return np.rint(sitk.GetArrayFromImage(mask)).astype(np.int32)


def write_mask(mask: np.ndarray, reference, path: Path) -> None:
    """Write a boolean mask as uint8 NIfTI in the T1C's own geometry."""
    sitk = _sitk()
    img = sitk.GetImageFromArray(mask.astype(np.uint8))
    img.CopyInformation(reference)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path), useCompression=True)
