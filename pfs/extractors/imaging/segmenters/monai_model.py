"""A user-supplied MONAI model: a bundle folder or a TorchScript file, on local disk.

torch and MONAI take seconds to import, so they are imported only when this segmenter is built.
Weights are loaded with ``torch.load(weights_only=True)``: a checkpoint cannot run code. The
bundle's own intensity and spatial pre-processing is applied (its file-reading transforms are
skipped: pfs hands over the arrays it already read), inference is sliding-window, and the mask is
brought back onto the T1C grid through the affine that the pre-processing leaves on the tensor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pfs.exceptions import ConfigError
from pfs.extractors.imaging.loading import ImagingInputError, StudyImages
from pfs.extractors.imaging.segmenters.base import Segmentation, group_lesions

#: Bundle transforms that read or write files: pfs passes arrays instead.
_IO_TRANSFORMS = {"LoadImaged", "LoadImage", "EnsureChannelFirstd", "EnsureChannelFirst", "SaveImaged",
                  "SaveImage"}
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _affine_ras(images: StudyImages) -> np.ndarray:
    g = images.grid
    d = np.asarray(g.direction, dtype=float).reshape(3, 3)
    a = np.eye(4)
    a[:3, :3] = d * np.asarray(g.spacing_xyz)
    a[:3, 3] = g.origin
    return _LPS_TO_RAS @ a


class MonaiSegmenter:
    """A loaded network plus how to feed it; build once, call per study."""

    def __init__(self, settings: dict[str, Any]) -> None:
        import torch

        path = Path(settings["model_path"]).expanduser()
        if not settings["model_path"] or not path.exists():
            raise ConfigError(f"imaging.monai.model_path {settings['model_path']!r} does not exist; give a local "
                              "MONAI bundle folder or TorchScript file")
        if settings["output"] not in ("sigmoid", "softmax"):
            raise ConfigError(f"imaging.monai.output must be 'sigmoid' or 'softmax', not {settings['output']!r}")
        device = settings["device"]
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.channels = list(settings["channels"])
        self.output = settings["output"]
        self.et_index = int(settings["et_index"])
        self.threshold = float(settings["threshold"])
        self.sw_batch_size = int(settings["sw_batch_size"])
        self.overlap = float(settings["overlap"])
        self.preprocess = None
        roi = list(settings["roi_size"])
        if path.is_dir():
            self.net, self.preprocess, bundle_roi = self._load_bundle(path)
            roi = roi or bundle_roi
        else:
            self.net = torch.jit.load(str(path), map_location=self.device)
        if not roi:
            raise ConfigError("imaging.monai.roi_size is needed (the model does not say its patch size)")
        self.roi_size = tuple(int(r) for r in roi)
        self.net.to(self.device).eval()

    def _load_bundle(self, root: Path):
        import torch
        from monai.bundle import ConfigParser
        from monai.transforms import Compose

        cfg_file = next((root / "configs" / n for n in ("inference.json", "inference.yaml", "inference.yml")
                         if (root / "configs" / n).exists()), None)
        if cfg_file is None:
            raise ConfigError(f"{root}: not a MONAI bundle (no configs/inference.json or .yaml)")
        parser = ConfigParser()
        parser.read_config(str(cfg_file))
        parser["bundle_root"] = str(root)
        ts, pt = root / "models" / "model.ts", root / "models" / "model.pt"
        if pt.exists():
            key = "network_def" if "network_def" in parser else "network"
            net = parser.get_parsed_content(key, instantiate=True)
            try:
                state = torch.load(str(pt), map_location="cpu", weights_only=True)
            except Exception as err:
                raise ConfigError(f"{pt}: cannot load weights safely (weights_only): {err}") from err
            if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
                state = state["model"]
            net.load_state_dict(state)
        elif ts.exists():
            net = torch.jit.load(str(ts), map_location=self.device)
        else:
            raise ConfigError(f"{root}: bundle has neither models/model.pt nor models/model.ts")
        transforms = []
        if "preprocessing" in parser:
            spec = parser["preprocessing"]
            items = spec.get("transforms", []) if isinstance(spec, dict) else []
            for i, item in enumerate(items):
                target = str(item.get("_target_", "")).rsplit(".", 1)[-1] if isinstance(item, dict) else ""
                if target in _IO_TRANSFORMS:
                    continue
                transforms.append(parser.get_parsed_content(f"preprocessing#transforms#{i}", instantiate=True))
        roi: list[int] = []
        if "inferer" in parser and isinstance(parser["inferer"], dict):
            roi = list(parser["inferer"].get("roi_size", []) or [])
        return net, (Compose(transforms) if transforms else None), roi

    def __call__(self, images: StudyImages, merge_mm: float, min_lesion_ml: float) -> Segmentation:
        import torch
        from monai.data import MetaTensor
        from monai.inferers import sliding_window_inference

        arrays = []
        for name in self.channels:
            arr = {"T1C": images.t1c, "T1": images.t1, "FLAIR": images.flair, "T2": images.t2}.get(name)
            if arr is None:
                raise ImagingInputError(f"the MONAI model needs a {name} sequence, which this study lacks")
            arrays.append(arr.transpose(2, 1, 0))  # (z, y, x) -> (x, y, z), MONAI's voxel order
        affine = _affine_ras(images)
        data = {"image": MetaTensor(torch.from_numpy(np.stack(arrays).copy()), affine=torch.from_numpy(affine))}
        if self.preprocess is not None:
            data = self.preprocess(data)
        x = data["image"]
        out_affine = np.asarray(x.affine, dtype=float) if hasattr(x, "affine") else affine
        with torch.no_grad():
            logits = sliding_window_inference(torch.as_tensor(x)[None].float().to(self.device), self.roi_size,
                                              self.sw_batch_size, self.net, overlap=self.overlap)
        logits = torch.as_tensor(logits)[0].cpu()
        if self.output == "sigmoid":
            pred = (torch.sigmoid(logits[self.et_index]) > self.threshold).numpy()
        else:
            pred = (torch.argmax(logits, dim=0) == self.et_index).numpy()
        et = self._to_t1c_grid(pred, out_affine, images)
        return Segmentation(et=et, grid=images.grid, lesions=group_lesions(et, images.grid, merge_mm, min_lesion_ml),
                            flags=["monai"])

    @staticmethod
    def _to_t1c_grid(pred: np.ndarray, affine_ras: np.ndarray, images: StudyImages) -> np.ndarray:
        """The prediction (x, y, z voxels, RAS affine) nearest-neighbour resampled onto the T1C grid."""
        import SimpleITK as sitk

        zyx = pred.transpose(2, 1, 0)
        if zyx.shape == images.t1c.shape and np.allclose(affine_ras, _affine_ras(images), atol=1e-3):
            return zyx.astype(bool)
        lps = _LPS_TO_RAS @ affine_ras
        spacing = np.linalg.norm(lps[:3, :3], axis=0)
        img = sitk.GetImageFromArray(zyx.astype(np.uint8))
        img.SetSpacing([float(s) for s in spacing])
        img.SetDirection([float(v) for v in (lps[:3, :3] / spacing).ravel()])
        img.SetOrigin([float(v) for v in lps[:3, 3]])
        back = sitk.Resample(img, images.reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        return sitk.GetArrayFromImage(back).astype(bool)


def describe(settings: dict[str, Any]) -> str:
    """One line naming the model for the volumes table (no weights are read)."""
    return "monai:" + json.dumps(Path(settings["model_path"]).name)[1:-1]
