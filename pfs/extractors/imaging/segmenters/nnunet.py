"""A user-supplied nnU-Net v2 model: a results folder (dataset.json, plans.json, fold_N/checkpoint_final.pth).

nnU-Net's own code (the optional ``nnunetv2`` package, ``pip install 'pfs[nnunet]'``) does what it
does best: its plans.json resampling and normalisation, Gaussian sliding window, mirroring,
fold ensembling and resampling back. pfs does the loading itself so that nothing runs code: the
checkpoints are read with ``torch.load(weights_only=True)`` (nnU-Net's loader unpickles everything),
and the network is the one plans.json names (a ``dynamic_network_architectures`` class with
``torch.nn`` building blocks), not a trainer class found by name. The label meaning comes from
dataset.json's label names (``"enhancing tumor"``, ``"ET"``; region-based BraTS models too).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from pfs.exceptions import ConfigError, ModelFileError
from pfs.extractors.imaging.loading import ImagingInputError, StudyImages
from pfs.extractors.imaging.segmenters import labels as conventions
from pfs.extractors.imaging.segmenters import model_grid
from pfs.extractors.imaging.segmenters.base import Segmentation, group_lesions


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelFileError(f"{path}: file not found; an nnU-Net v2 results folder holds dataset.json, plans.json "
                             "and fold_N/checkpoint_final.pth")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelFileError(f"{path}: not readable JSON ({err})") from err
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: expected a JSON object")
    return data


def model_files(settings: dict[str, Any]) -> tuple[Path, dict[str, Any], dict[str, Any], list[Path]]:
    """Root, dataset.json, plans.json and the checkpoint of each fold, all checked to exist."""
    if not settings["model_path"]:
        raise ConfigError("imaging.nnunet.model_path is empty; give a local nnU-Net v2 results folder")
    root = Path(settings["model_path"]).expanduser()
    if not root.is_dir():
        raise ModelFileError(f"imaging.nnunet.model_path {str(root)!r} is not a folder; give the nnU-Net results "
                             "folder (TRAINER__PLANS__CONFIGURATION) holding dataset.json and fold_N/")
    dataset, plans = _json(root / "dataset.json"), _json(root / "plans.json")
    name = str(settings["checkpoint"])
    if settings["folds"]:
        ckpts = [root / f"fold_{f}" / name for f in settings["folds"]]
        for c in ckpts:
            if not c.is_file():
                raise ModelFileError(f"{c}: weight file not found (imaging.nnunet.folds {settings['folds']})")
    else:
        found = sorted(p / name for p in root.glob("fold_*") if (p / name).is_file())
        # as nnU-Net: the cross-validation folds; fold_all (trained on everything) only when alone
        ckpts = [c for c in found if c.parent.name != "fold_all"] or found
        if not ckpts:
            raise ModelFileError(f"{root / 'fold_0' / name}: weight file not found (no fold_*/{name} in {root})")
    return root, dataset, plans, ckpts


def resolve_channels(settings: dict[str, Any], dataset: dict[str, Any], root: Path) -> list[str]:
    names = dataset.get("channel_names", dataset.get("modality", {}))
    from_json = []
    for key in sorted(names, key=int):
        seq = conventions.sequence_of(names[key])
        if seq is None and not settings["channels"]:
            raise ModelFileError(f"{root / 'dataset.json'}: channel {key} {names[key]!r} is not a sequence pfs knows "
                                 "(T1C, T1, T2, FLAIR); set imaging.nnunet.channels")
        from_json.append(seq)
    given = [str(c) for c in settings["channels"]]
    if given and len(given) != len(from_json):
        raise ConfigError(f"imaging.nnunet.channels {given} has {len(given)} entries; dataset.json has "
                          f"{len(from_json)} channels {list(names.values())}")
    if given and any(f is not None and f != g for f, g in zip(from_json, given, strict=True)):
        raise ConfigError(f"imaging.nnunet.channels {given} disagrees with dataset.json {list(names.values())}")
    channels = given or [str(c) for c in from_json]
    if not channels:
        raise ModelFileError(f"{root / 'dataset.json'}: no channel_names")
    return channels


def output_convention(settings: dict[str, Any], dataset: dict[str, Any], root: Path) -> conventions.Convention:
    """What each value of the model's label map means: dataset.json names, or a named convention."""
    if settings["convention"] != "auto":
        return conventions.convention(settings["convention"], "imaging.nnunet.convention")
    labels = dataset.get("labels", {})
    if any(isinstance(v, list) for v in labels.values()):  # region-based: value i+1 painted in regions_class_order
        order = dataset.get("regions_class_order")
        fg = [n for n, v in labels.items() if not (v == 0 or v == [0])]
        if not order or len(order) != len(fg):
            raise ModelFileError(f"{root / 'dataset.json'}: region labels need regions_class_order of length {len(fg)}")
        names = {int(order[i]): n for i, n in enumerate(fg)}
    elif labels and all(str(k).isdigit() for k in labels):  # nnU-Net v1 style: {"1": "edema"}
        names = {int(k): str(n) for k, n in labels.items() if int(k) != 0}
    else:
        try:
            names = {int(v): n for n, v in labels.items() if int(v) != 0}
        except (TypeError, ValueError) as err:
            raise ModelFileError(f"{root / 'dataset.json'}: labels {labels} are not name -> value") from err
    return conventions.convention_from_names(names, str(root / "dataset.json"))


def check(settings: dict[str, Any]) -> list[str]:
    """Config and files checked without torch; returns the input sequences."""
    root, dataset, _, _ = model_files(settings)
    output_convention(settings, dataset, root)
    return resolve_channels(settings, dataset, root)


def _load_checkpoint(path: Path) -> dict[str, Any]:
    import numpy.core.multiarray as multiarray
    import torch

    # nnU-Net stores numpy scalars in its training log; these are data, allowed, nothing else is.
    allowed = [multiarray.scalar, multiarray._reconstruct, np.ndarray, np.dtype,
               *[t for t in vars(np.dtypes).values() if isinstance(t, type)]]
    try:
        with torch.serialization.safe_globals(allowed):
            ck = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise ModelFileError(f"{path}: cannot load the checkpoint safely (weights_only): "
                             f"{str(err).splitlines()[0][:200]}") from err
    if not isinstance(ck, dict) or "network_weights" not in ck:
        raise ModelFileError(f"{path}: not an nnU-Net v2 checkpoint (no network_weights)")
    return ck


class NnunetSegmenter:
    """nnU-Net's predictor around a network pfs built and weights pfs loaded; build once, call per study."""

    def __init__(self, settings: dict[str, Any]) -> None:
        root, dataset, plans, ckpts = model_files(settings)
        self.channels = resolve_channels(settings, dataset, root)
        self.convention = output_convention(settings, dataset, root)
        self.axis_aligned = bool(settings["axis_aligned"])
        try:
            import torch
            with contextlib.redirect_stdout(io.StringIO()):  # nnU-Net prints path warnings on import
                from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
                from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
                from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
                from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
        except ImportError as err:
            raise ConfigError(f"segmenter 'nnunet' needs the nnunetv2 package ({err}); install the optional "
                              "extra: pip install 'pfs[nnunet]'") from err
        checkpoints = [_load_checkpoint(p) for p in ckpts]
        first = checkpoints[0]
        configuration = str(first.get("init_args", {}).get("configuration", ""))
        plans_manager = PlansManager(plans)
        try:
            cm = plans_manager.get_configuration(configuration)
        except Exception as err:
            raise ModelFileError(f"{ckpts[0]}: configuration {configuration!r} is not in plans.json") from err
        if cm.previous_stage_name is not None:
            raise ModelFileError(f"{root}: cascade configuration {configuration!r} needs the previous stage's "
                                 "segmentation; pfs runs single-stage nnU-Net models only")
        arch = cm.network_arch_class_name
        kwargs, needs_import = cm.network_arch_init_kwargs, cm.network_arch_init_kwargs_req_import
        bad = [kwargs.get(k) for k in needs_import
               if kwargs.get(k) is not None and not str(kwargs.get(k)).startswith("torch.nn.")]
        if not arch.startswith("dynamic_network_architectures.") or bad:
            raise ModelFileError(f"{root / 'plans.json'}: network {arch} with {bad or 'its blocks'} is not a "
                                 "dynamic_network_architectures class built from torch.nn blocks")
        n_in = determine_num_input_channels(plans_manager, cm, dataset)
        if n_in != len(self.channels):
            raise ModelFileError(f"{root}: plans.json expects {n_in} input channels, dataset.json names "
                                 f"{len(self.channels)}")
        n_out = plans_manager.get_label_manager(dataset).num_segmentation_heads
        network = get_network_from_plans(arch, kwargs, needs_import, n_in, n_out, allow_init=True,
                                         deep_supervision=False)
        params = [ck["network_weights"] for ck in checkpoints]
        for path, p in zip(ckpts, params, strict=True):
            try:
                network.load_state_dict(p)
            except (RuntimeError, TypeError) as err:
                raise ModelFileError(f"{path}: weights do not fit the network plans.json describes (a custom "
                                     f"trainer {first.get('trainer_name')!r} may build its own; pfs builds "
                                     f"plans.json's): {str(err).splitlines()[0][:160]}") from err
        device = settings["device"]
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dev = torch.device(device)
        with contextlib.redirect_stdout(io.StringIO()):  # it prints a CPU notice
            self.predictor = nnUNetPredictor(
                tile_step_size=float(settings["tile_step_size"]), use_gaussian=True,
                use_mirroring=bool(settings["use_mirroring"]), perform_everything_on_device=dev.type == "cuda",
                device=dev, verbose=False, verbose_preprocessing=False, allow_tqdm=False)
            self.predictor.manual_initialization(network, plans_manager, cm, params, dataset,
                                                 str(first.get("trainer_name", "nnUNetTrainer")),
                                                 first.get("inference_allowed_mirroring_axes"))

    def __call__(self, images: StudyImages, merge_mm: float, min_lesion_ml: float) -> Segmentation:
        arrays = model_grid.input_channels(images, self.channels, "nnU-Net")
        ref = model_grid.model_reference(images, None, self.axis_aligned)
        arrays = model_grid.to_model_grid(arrays, images, ref)
        spacing_zyx = [float(s) for s in reversed((ref if ref is not None else images.reference).GetSpacing())]
        with contextlib.redirect_stdout(io.StringIO()):
            seg = self.predictor.predict_single_npy_array(np.stack(arrays).astype(np.float32),
                                                          {"spacing": spacing_zyx}, None, None, False)
        try:
            et, flags = conventions.check_label_map(np.asarray(seg), self.convention, "nnU-Net output")
        except ValueError as err:
            raise ImagingInputError(str(err)) from err
        if ref is not None:
            et = model_grid.to_study_grid(et.astype(np.float32), ref, images) >= 0.5
        return Segmentation(et=et, grid=images.grid, lesions=group_lesions(et, images.grid, merge_mm, min_lesion_ml),
                            flags=["nnunet", *flags])
