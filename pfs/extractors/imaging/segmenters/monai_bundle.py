"""Read a MONAI bundle's files (model-zoo layout) as data, never as code.

A bundle's ``configs/inference.json`` is a program for ``monai.bundle.ConfigParser``: ``$``
expressions are Python, ``_target_`` imports anything. pfs does not run it. It reads what inference
needs from literal values only: the network class and its arguments (a short list of MONAI
segmentation networks), the intensity/spatial pre-processing (a short list of deterministic MONAI
transforms), the sliding-window ROI and overlap, and the activation in the post-processing. From
``configs/metadata.json`` (``network_data_format``) it reads the input channel order and the meaning
of each output channel, e.g. for ``brats_mri_segmentation``: inputs T1c, T1, T2, FLAIR; outputs Tumor
core, Whole tumor, Enhancing tumor; images "at 1x1x1 mm". Anything that needs code is one clear error
that suggests exporting the network as TorchScript (``models/model.ts``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pfs.exceptions import ModelFileError

#: MONAI segmentation networks pfs may build from ``network_def`` (classes in monai.networks.nets).
NETWORKS = {"SegResNet", "SegResNetDS", "SegResNetVAE", "UNet", "BasicUNet", "BasicUNetPlusPlus", "DynUNet",
            "AttentionUnet", "UNETR", "SwinUNETR", "VNet", "HighResNet"}
#: Deterministic pre-processing transforms pfs applies (classes in monai.transforms), with literal arguments.
TRANSFORMS = {"NormalizeIntensityd", "ScaleIntensityd", "ScaleIntensityRanged", "ScaleIntensityRangePercentilesd",
              "Spacingd", "Orientationd", "CropForegroundd", "SpatialPadd", "DivisiblePadd", "CenterSpatialCropd",
              "EnsureTyped", "CastToTyped", "ToTensord", "ThresholdIntensityd", "ClipIntensityPercentilesd"}
#: Transforms that read files or only rearrange what pfs already hands over as one channel-first array.
SKIPPED = {"LoadImaged", "LoadImage", "EnsureChannelFirstd", "EnsureChannelFirst", "AddChanneld",
           "ConcatItemsd", "DeleteItemsd", "SaveImaged", "SaveImage", "Identityd"}
_CONFIG_NAMES = ("inference.json", "inference.yaml", "inference.yml")


@dataclass(frozen=True)
class BundleSpec:
    """What pfs needs to run a bundle, all plain data."""

    root: Path
    weights: Path
    torchscript: bool
    channels: list[str] = field(default_factory=list)  # input channel names as the bundle writes them
    outputs: dict[int, str] = field(default_factory=dict)  # output channel -> name
    activation: str = ""  # "sigmoid", "softmax" or "" (not stated)
    network: tuple[str, dict[str, Any]] | None = None
    preprocessing: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    roi_size: list[int] = field(default_factory=list)
    overlap: float | None = None
    sw_batch_size: int | None = None
    spacing_mm: list[float] = field(default_factory=list)  # documented input spacing, when stated
    divisible_by: int = 1


def _target(item: Any) -> str:
    t = str(item.get("_target_", "")) if isinstance(item, dict) else ""
    return t.rsplit(".", 1)[-1]


def _literal(value: Any, cfg: dict[str, Any], where: str, depth: int = 0) -> Any:
    """``value`` with ``@key`` references to literal values resolved; code is refused."""
    if isinstance(value, str):
        if value.startswith("@") and depth < 5:
            node: Any = cfg
            for part in value[1:].split("#"):
                if not isinstance(node, dict) or part not in node:
                    raise ModelFileError(f"{where}: reference {value!r} points at nothing")
                node = node[part]
            return _literal(node, cfg, where, depth + 1)
        if value.startswith(("$", "%", "@")):
            raise ModelFileError(f"{where} is code ({value[:60]!r}); pfs does not run bundle code. Give a literal "
                                 "value, or export the network as TorchScript (models/model.ts)")
        return value
    if isinstance(value, list):
        return [_literal(v, cfg, where, depth) for v in value]
    if isinstance(value, dict):
        if "_target_" in value:
            raise ModelFileError(f"{where} builds an object ({value['_target_']!r}); pfs reads literal values only")
        return {k: _literal(v, cfg, f"{where}.{k}", depth) for k, v in value.items()}
    return value


def _kwargs(item: dict[str, Any], cfg: dict[str, Any], where: str) -> dict[str, Any]:
    return {k: _literal(v, cfg, f"{where}.{k}") for k, v in item.items() if not k.startswith("_")}


def _read_config(path: Path) -> dict[str, Any]:
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            import yaml

            data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelFileError(f"{path}: cannot read ({err})") from err
    except Exception as err:  # yaml's own error types
        raise ModelFileError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: expected a mapping at the top level")
    return data


def _metadata(root: Path) -> dict[str, Any]:
    path = root / "configs" / "metadata.json"
    if not path.exists():
        return {}
    data = _read_config(path)
    fmt = data.get("network_data_format", {}) or {}
    inputs = fmt.get("inputs", {}) or {}
    outputs = fmt.get("outputs", {}) or {}
    out: dict[str, Any] = {}
    if inputs:
        first = inputs.get("image", next(iter(inputs.values())))
        cdef = first.get("channel_def", {}) or {}
        if cdef:
            out["channels"] = [str(cdef[k]) for k in sorted(cdef, key=int)]
            n = first.get("num_channels")
            if n is not None and int(n) != len(out["channels"]):
                raise ModelFileError(f"{path}: num_channels {n} but channel_def names {len(out['channels'])}")
        shape = first.get("spatial_shape", [])
        mult = [int(m.group(1)) for s in shape if isinstance(s, str) for m in [re.match(r"\s*(\d+)\s*\*\s*n", s)] if m]
        out["divisible_by"] = max(mult, default=1)
    if outputs:
        first = outputs.get("pred", next(iter(outputs.values())))
        cdef = first.get("channel_def", {}) or {}
        out["outputs"] = {int(k): str(v) for k, v in cdef.items()}
    # brats_mri_segmentation states its input spacing only in prose: "4 channel data, T1c, T1, T2, FLAIR at 1x1x1 mm".
    m = re.search(r"(\d+(?:\.\d+)?)\s*[x×]\s*(\d+(?:\.\d+)?)\s*[x×]\s*(\d+(?:\.\d+)?)\s*mm",
                  str(data.get("image_classes", "")))
    if m:
        out["spacing_mm"] = [float(v) for v in m.groups()]
    return out


def _activation(cfg: dict[str, Any]) -> str:
    post = cfg.get("postprocessing", {})
    items = post.get("transforms", []) if isinstance(post, dict) else []
    for item in items if isinstance(items, list) else []:
        name = _target(item)
        if name in ("Activationsd", "Activations"):
            if item.get("sigmoid") is True:
                return "sigmoid"
            if item.get("softmax") is True:
                return "softmax"
        if name in ("AsDiscreted", "AsDiscrete") and item.get("argmax") is True:
            return "softmax"
    return ""


def read_bundle(root: Path) -> BundleSpec:
    """The bundle at ``root`` as data.

    Raises:
        ModelFileError: no inference config, no weight file, or a part pfs would have to run code for.
    """
    cfg_file = next((root / "configs" / n for n in _CONFIG_NAMES if (root / "configs" / n).exists()), None)
    if cfg_file is None:
        raise ModelFileError(f"{root}: not a MONAI bundle (no configs/inference.json or configs/inference.yaml)")
    pt, ts = root / "models" / "model.pt", root / "models" / "model.ts"
    if not pt.exists() and not ts.exists():
        raise ModelFileError(f"{pt}: weight file not found (nor {ts.name}); the bundle's weights are downloaded "
                             "separately, put model.pt or model.ts into its models/ folder")
    cfg = _read_config(cfg_file)
    meta = _metadata(root)
    spec: dict[str, Any] = {"root": root, "weights": pt if pt.exists() else ts, "torchscript": not pt.exists(),
                            "channels": meta.get("channels", []), "outputs": meta.get("outputs", {}),
                            "activation": _activation(cfg), "spacing_mm": meta.get("spacing_mm", []),
                            "divisible_by": meta.get("divisible_by", 1)}
    where = cfg_file.name
    if pt.exists():
        try:
            net = cfg.get("network_def")
            name = _target(net)
            if name not in NETWORKS:
                raise ModelFileError(f"{where}: network_def {name or 'missing'!r} is not a network pfs builds from "
                                     f"data (known: {', '.join(sorted(NETWORKS))}); export it as models/model.ts")
            spec["network"] = (name, _kwargs(net, cfg, f"{where}: network_def"))
        except ModelFileError:
            if not ts.exists():
                raise
            spec.update(weights=ts, torchscript=True)  # the bundle's TorchScript export needs no network_def
    pre = cfg.get("preprocessing", {})
    items = pre.get("transforms", []) if isinstance(pre, dict) else []
    if not isinstance(items, list):
        raise ModelFileError(f"{where}: preprocessing.transforms is code ({str(items)[:60]!r}); "
                             "pfs reads a literal list")
    steps = []
    for i, item in enumerate(items):
        name = _target(item)
        if name in SKIPPED:
            continue
        if name not in TRANSFORMS:
            raise ModelFileError(f"{where}: preprocessing transform {i} {name or item!r} is not one pfs applies "
                                 f"(known: {', '.join(sorted(TRANSFORMS))})")
        steps.append((name, _kwargs(item, cfg, f"{where}: preprocessing#{i}")))
    spec["preprocessing"] = steps
    inferer = cfg.get("inferer", {})
    if isinstance(inferer, dict):
        if "roi_size" in inferer:
            spec["roi_size"] = [int(v) for v in _literal(inferer["roi_size"], cfg, f"{where}: inferer.roi_size")]
        if "overlap" in inferer:
            spec["overlap"] = float(_literal(inferer["overlap"], cfg, f"{where}: inferer.overlap"))
        if "sw_batch_size" in inferer:
            spec["sw_batch_size"] = int(_literal(inferer["sw_batch_size"], cfg, f"{where}: inferer.sw_batch_size"))
    return BundleSpec(**spec)
