"""A user-supplied MONAI model: a bundle folder (model-zoo layout) or a TorchScript file, on local disk.

The bundle is read as data (:mod:`.monai_bundle`): channel order and output meaning from
``metadata.json``, network, pre-processing and sliding window from ``inference.json``. The study is
put on the grid the model expects (:mod:`.model_grid`), normalised by the bundle's own transforms,
segmented by sliding window, and the ET probability is brought back onto the T1C grid and
thresholded. torch and MONAI are imported only when this segmenter is built; weights are loaded with
``torch.load(weights_only=True)``, so a checkpoint cannot run code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pfs.exceptions import ConfigError, ModelFileError
from pfs.extractors.imaging.loading import StudyImages
from pfs.extractors.imaging.segmenters import model_grid
from pfs.extractors.imaging.segmenters.base import Segmentation, group_lesions
from pfs.extractors.imaging.segmenters.labels import et_empty_flags, sequence_of, structure_of
from pfs.extractors.imaging.segmenters.monai_bundle import BundleSpec, read_bundle

_PER_KEY = ("mode", "padding_mode", "align_corners", "dtype")


def _path(settings: dict[str, Any]) -> Path:
    if not settings["model_path"]:
        raise ConfigError("imaging.monai.model_path is empty; give a local MONAI bundle folder or TorchScript file")
    path = Path(settings["model_path"]).expanduser()
    if not path.exists():
        raise ModelFileError(f"imaging.monai.model_path {str(path)!r} does not exist; give a local MONAI bundle "
                             "folder (configs/, models/) or a TorchScript file")
    return path


def resolve_channels(settings: dict[str, Any], bundle: BundleSpec | None) -> list[str]:
    """Input sequences in the network's order: the bundle's metadata.json, checked against the config."""
    from_meta = []
    if bundle is not None and bundle.channels:
        for i, name in enumerate(bundle.channels):
            seq = sequence_of(name)
            if seq is None:
                raise ModelFileError(f"{bundle.root}/configs/metadata.json: input channel {i} {name!r} is not a "
                                     "sequence pfs knows (T1C, T1, T2, FLAIR); set imaging.monai.channels")
            from_meta.append(seq)
    given = [str(c) for c in settings["channels"]]
    bad = [c for c in given if c not in ("T1C", "T1", "T2", "FLAIR")]
    if bad:
        raise ConfigError(f"imaging.monai.channels: {bad} are not sequences (use T1C, T1, T2, FLAIR)")
    if given and from_meta and given != from_meta:
        raise ConfigError(f"imaging.monai.channels {given} disagrees with the bundle's metadata.json order "
                          f"{from_meta}; leave channels = [] to use the bundle's")
    channels = given or from_meta
    if not channels:
        raise ConfigError("imaging.monai.channels is needed: the model does not say its input channels")
    return channels


def channels_needed(settings: dict[str, Any]) -> list[str]:
    """The sequences the model reads (metadata.json only: no torch import, no weights)."""
    path = _path(settings)
    return resolve_channels(settings, read_bundle(path) if path.is_dir() else None)


class MonaiSegmenter:
    """A loaded network plus how to feed it; build once, call per study."""

    def __init__(self, settings: dict[str, Any]) -> None:
        import torch

        path = _path(settings)
        bundle = read_bundle(path) if path.is_dir() else None
        self.channels = resolve_channels(settings, bundle)
        outputs = bundle.outputs if bundle else {}
        self.structures = {i: structure_of(n) for i, n in outputs.items()}
        self.et_index = int(settings["et_index"])
        if self.et_index < 0:
            found = [i for i, s in self.structures.items() if s == "ET"]
            if len(found) != 1:
                raise ConfigError(f"{path}: metadata.json output channels {outputs or '(none)'} do not name one "
                                  "enhancing-tumour channel; set imaging.monai.et_index")
            self.et_index = found[0]
        self.output = settings["output"]
        if self.output == "auto":
            self.output = (bundle.activation if bundle else "") or (
                "softmax" if "background" in self.structures.values() else "")
        if self.output not in ("sigmoid", "softmax"):
            raise ConfigError(f"imaging.monai.output must be 'sigmoid' or 'softmax' (or 'auto' for a bundle whose "
                              f"post-processing says), not {settings['output']!r}")
        device = settings["device"]
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.threshold = float(settings["threshold"])
        self.axis_aligned = bool(settings["axis_aligned"])
        spacing = list(settings["spacing_mm"])
        has_spacing_step = bundle is not None and any(n == "Spacingd" for n, _ in bundle.preprocessing)
        if not spacing and bundle is not None and not has_spacing_step:
            spacing = bundle.spacing_mm
        if spacing and (len(spacing) != 3 or min(spacing) <= 0):
            raise ConfigError(f"imaging.monai.spacing_mm must be three positive numbers, not {spacing}")
        self.spacing = tuple(float(s) for s in spacing) if spacing else None
        roi = list(settings["roi_size"]) or (bundle.roi_size if bundle else [])
        if not roi:
            raise ConfigError("imaging.monai.roi_size is needed (the model does not say its patch size)")
        step = bundle.divisible_by if bundle else 1
        if len(roi) != 3 or any(int(r) <= 0 or int(r) % step for r in roi):
            raise ConfigError(f"imaging.monai.roi_size {roi} must be three positive multiples of {step} "
                              "(the bundle's spatial_shape)")
        self.roi_size = tuple(int(r) for r in roi)
        self.sw_batch_size = int(settings["sw_batch_size"]) or ((bundle.sw_batch_size if bundle else None) or 1)
        overlap = float(settings["overlap"])
        self.overlap = overlap if overlap >= 0 else ((bundle.overlap if bundle else None) or 0.25)
        self.preprocess = self._transforms(bundle) if bundle else None
        if bundle is None or bundle.torchscript:
            weights = bundle.weights if bundle else path
            try:
                self.net = torch.jit.load(str(weights), map_location=self.device)
            except Exception as err:  # torch raises RuntimeError or ValueError for a file that is not TorchScript
                raise ModelFileError(f"{weights}: not a TorchScript model ({str(err).splitlines()[0][:120]})") from err
        else:
            self.net = self._build(bundle)
        self.net.to(self.device).eval()

    @staticmethod
    def _build(bundle: BundleSpec):
        import torch
        from monai.networks import nets

        if bundle.network is None:
            raise ModelFileError(f"{bundle.root}/configs: no network_def for models/model.pt")
        name, kwargs = bundle.network
        try:
            net = getattr(nets, name)(**kwargs)
        except TypeError as err:
            raise ModelFileError(f"{bundle.root}/configs: network_def {name}: {err}") from err
        try:
            state = torch.load(str(bundle.weights), map_location="cpu", weights_only=True)
        except Exception as err:
            raise ModelFileError(f"{bundle.weights}: cannot load weights safely (weights_only): "
                                 f"{str(err).splitlines()[0][:200]}") from err
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]  # MONAI CheckpointSaver with several objects saved
        try:
            net.load_state_dict(state)
        except (RuntimeError, TypeError) as err:
            raise ModelFileError(f"{bundle.weights}: weights do not fit network_def {name} "
                                 f"({str(err).splitlines()[0][:200]})") from err
        return net

    @staticmethod
    def _transforms(bundle: BundleSpec):
        import monai.transforms as mt

        steps = []
        for name, kwargs in bundle.preprocessing:
            kw = dict(kwargs)
            keys = kw.get("keys", "image")
            keys = keys if isinstance(keys, list) else [keys]
            idx = keys.index("image") if "image" in keys else 0
            for k in _PER_KEY:
                if isinstance(kw.get(k), list) and len(kw[k]) == len(keys) and len(keys) > 1:
                    kw[k] = kw[k][idx]
            kw["keys"] = "image"
            if "source_key" in kw:
                kw["source_key"] = "image"
            try:
                steps.append(getattr(mt, name)(**kw))
            except TypeError as err:
                raise ModelFileError(f"{bundle.root}/configs: preprocessing {name}: {err}") from err
        return mt.Compose(steps) if steps else None

    def __call__(self, images: StudyImages, merge_mm: float, min_lesion_ml: float) -> Segmentation:
        import torch
        from monai.data import MetaTensor
        from monai.inferers import sliding_window_inference

        arrays = model_grid.input_channels(images, self.channels, "MONAI")
        ref = model_grid.model_reference(images, self.spacing, self.axis_aligned)
        arrays = model_grid.to_model_grid(arrays, images, ref)
        affine = model_grid.affine_ras_of(ref if ref is not None else images.reference)
        x = np.stack([a.transpose(2, 1, 0) for a in arrays])  # (z, y, x) -> (x, y, z), MONAI's voxel order
        data = {"image": MetaTensor(torch.from_numpy(np.ascontiguousarray(x)), affine=torch.from_numpy(affine))}
        if self.preprocess is not None:
            data = self.preprocess(data)
        x = data["image"]
        out_affine = np.asarray(x.affine, dtype=float) if hasattr(x, "affine") else affine
        with torch.no_grad():
            logits = sliding_window_inference(torch.as_tensor(x)[None].float().to(self.device), self.roi_size,
                                              self.sw_batch_size, self.net, overlap=self.overlap)
        logits = torch.as_tensor(logits)[0].float().cpu()
        others = [i for i, s in self.structures.items() if s not in (None, "ET", "background", "RC")
                  and i < logits.shape[0]]
        if self.output == "sigmoid":
            prob = torch.sigmoid(logits)
            et_prob = prob[self.et_index].numpy()
            other_found = bool(others) and bool((prob[others] > self.threshold).any())
            cut = self.threshold
        else:
            labels = torch.argmax(logits, dim=0)
            et_prob = (labels == self.et_index).float().numpy()
            other_found = bool(others) and bool(torch.isin(labels, torch.tensor(others)).any())
            cut = 0.5
        on_t1c = model_grid.from_affine_ras(et_prob, out_affine, images)
        et = on_t1c >= cut if self.output == "softmax" else on_t1c > cut  # a label map: half-covered voxels count
        flags = ["monai", *et_empty_flags(bool(et.any()), other_found)]
        return Segmentation(et=et, grid=images.grid, lesions=group_lesions(et, images.grid, merge_mm, min_lesion_ml),
                            flags=flags)


def describe(settings: dict[str, Any]) -> str:
    """One line naming the model for the volumes table (no weights are read)."""
    return "monai:" + json.dumps(Path(settings["model_path"]).name)[1:-1]
