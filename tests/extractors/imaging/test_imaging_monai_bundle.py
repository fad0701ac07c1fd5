"""A MONAI bundle in the model-zoo layout of brats_mri_segmentation runs with no code and no download.

The bundles are built here: configs/metadata.json and configs/inference.json shaped like the public
brats_mri_segmentation bundle (4 inputs T1c, T1, T2, FLAIR; 3 sigmoid outputs TC, WT, ET; "$"
expressions in the parts pfs does not read), with a tiny seeded SegResNet saved as models/model.pt
and as TorchScript models/model.ts, or with a TorchScript module that echoes one input channel, so
that channel order and the way back to an oblique, anisotropic T1C grid can be checked voxel by voxel.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is an optional dependency of the MONAI segmenter")
monai = pytest.importorskip("monai", reason="monai is an optional dependency of the MONAI segmenter")

from pfs.exceptions import ConfigError, ModelFileError  # noqa: E402
from pfs.extractors.imaging.loading import load_study  # noqa: E402
from pfs.extractors.imaging.segmenters.labels import FLAG_ET_EMPTY  # noqa: E402
from pfs.extractors.imaging.segmenters.monai_bundle import read_bundle  # noqa: E402
from pfs.extractors.imaging.segmenters.monai_model import MonaiSegmenter  # noqa: E402
from pfs.settings import load_config  # noqa: E402

SEGRESNET = {"_target_": "SegResNet", "blocks_down": [1, 1], "blocks_up": [1], "init_filters": 8,
             "in_channels": 4, "out_channels": 3, "dropout_prob": 0.2}
BRATS_ORDER = {"0": "T1c", "1": "T1", "2": "T2", "3": "FLAIR"}


def _metadata(channel_def: dict[str, str]) -> dict:
    """network_data_format as brats_mri_segmentation's metadata.json has it."""
    return {
        "version": "0.5.3", "name": "BraTS MRI segmentation (test)",
        "image_classes": "4 channel data, T1c, T1, T2, FLAIR at 1x1x1 mm",
        "label_classes": "3 channel data, channel 0 for Tumor core, channel 1 for Whole tumor, channel 2 for "
                         "Enhancing tumor",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "magnitude", "modality": "MR", "num_channels": 4,
                                 "spatial_shape": ["8*n", "8*n", "8*n"], "dtype": "float32", "value_range": [],
                                 "is_patch_data": True, "channel_def": channel_def}},
            "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": 3,
                                 "spatial_shape": ["8*n", "8*n", "8*n"], "dtype": "float32", "value_range": [0, 1],
                                 "is_patch_data": True,
                                 "channel_def": {"0": "Tumor core", "1": "Whole tumor", "2": "Enhancing tumor"}}},
        },
    }


def _inference(preprocessing: list[dict], roi: list[int], network_def: dict | None = None) -> dict:
    """inference.json as brats_mri_segmentation's, code included where pfs must not look."""
    return {
        "imports": ["$import glob", "$import os"],
        "bundle_root": ".",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": network_def or SEGRESNET,
        "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": preprocessing},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": roi, "sw_batch_size": 1, "overlap": 0.25},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "sigmoid": True},
            {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image"},
            {"_target_": "AsDiscreted", "keys": "pred", "threshold": 0.5},
            {"_target_": "Lambdad", "keys": "pred", "func": "$lambda x: torch.where(x[[2]] > 0, 4, 0)"},
        ]},
        "handlers": [{"_target_": "CheckpointLoader", "load_path": "$@bundle_root + '/models/model.pt'",
                      "load_dict": {"model": "@network"}}],
        "run": ["$@evaluator.run()"],
    }


NORMALISE = [{"_target_": "LoadImaged", "keys": "image", "image_only": False},
             {"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": True, "channel_wise": True}]


def _write(root: Path, metadata: dict, inference: dict) -> None:
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "configs" / "metadata.json").write_text(json.dumps(metadata))
    (root / "configs" / "inference.json").write_text(json.dumps(inference))


def _segresnet_bundle(root: Path, roi: list[int]) -> torch.nn.Module:
    from monai.networks.nets import SegResNet

    _write(root, _metadata(BRATS_ORDER), _inference(NORMALISE, roi))
    torch.manual_seed(0)
    net = SegResNet(**{k: v for k, v in SEGRESNET.items() if k != "_target_"}).eval()
    torch.save(net.state_dict(), root / "models" / "model.pt")
    return net


class _Echo(torch.nn.Module):
    """TC, WT and ET logits all equal to input channel ``channel`` minus 1400 (the phantom's enhancing
    rim is 1750, brain 1000); with ``et_on`` false the ET channel is empty."""

    def __init__(self, channel: int, et_on: bool = True) -> None:
        super().__init__()
        self.channel = channel
        self.et_on = et_on

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x[:, self.channel:self.channel + 1] - 1400.0
        et = s if self.et_on else torch.full_like(s, -1.0e4)
        return torch.cat([s, s, et], dim=1)


def _echo_bundle(root: Path, channel_def: dict[str, str], channel: int, et_on: bool = True) -> None:
    _write(root, _metadata(channel_def), _inference([{"_target_": "LoadImaged", "keys": "image"}], [64, 64, 64]))
    torch.jit.script(_Echo(channel, et_on)).save(str(root / "models" / "model.ts"))


def _study(ph, tmp_path: Path, name: str = "s") -> dict[str, Path]:
    """T1C, T1, FLAIR of a phantom plus a T2 (half the T1, never above the rim threshold)."""
    t1 = nib.load(ph.t1)
    t2 = tmp_path / f"{name}_t2.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(t1.dataobj, np.float32) * 0.5, t1.affine), t2)
    return {"T1C": ph.t1c, "T1": ph.t1, "T2": t2, "FLAIR": ph.flair}


def _settings(path: Path, **kw) -> dict:
    s = load_config().section("imaging")["monai"]
    s.update({"model_path": str(path), "device": "cpu"}, **kw)
    return s


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def test_brats_layout_is_read_as_data(tmp_path):
    _segresnet_bundle(tmp_path / "b", [32, 32, 32])
    spec = read_bundle(tmp_path / "b")
    assert spec.channels == ["T1c", "T1", "T2", "FLAIR"]
    assert spec.outputs == {0: "Tumor core", 1: "Whole tumor", 2: "Enhancing tumor"}
    assert spec.activation == "sigmoid" and spec.spacing_mm == [1.0, 1.0, 1.0] and spec.divisible_by == 8
    assert spec.network[0] == "SegResNet" and spec.network[1]["in_channels"] == 4
    assert [name for name, _ in spec.preprocessing] == ["NormalizeIntensityd"]  # LoadImaged is pfs's job
    seg = MonaiSegmenter(_settings(tmp_path / "b"))
    assert seg.channels == ["T1C", "T1", "T2", "FLAIR"] and seg.et_index == 2 and seg.output == "sigmoid"
    assert seg.spacing == (1.0, 1.0, 1.0) and seg.roi_size == (32, 32, 32) and seg.overlap == 0.25


@pytest.mark.parametrize("weights", ["model.pt", "model.ts"])
def test_segresnet_bundle_gives_the_networks_own_et_channel(tmp_path, phantom_factory, weights):
    """Same tiny SegResNet run by hand (normalised inputs in metadata order, sigmoid, channel 2) = pfs's mask."""
    from monai.inferers import sliding_window_inference
    from monai.transforms import NormalizeIntensity

    ph = phantom_factory(spacing=(4.0, 4.0, 4.0), lps=True)  # axis-aligned LPS: no resampling at 4 mm
    net = _segresnet_bundle(tmp_path / "b", [16, 16, 16])
    if weights == "model.ts":
        torch.jit.trace(net, torch.zeros(1, 4, 16, 16, 16)).save(str(tmp_path / "b" / "models" / "model.ts"))
        (tmp_path / "b" / "models" / "model.pt").unlink()
    images, failed = load_study(_study(ph, tmp_path), optional=("T1", "T2", "FLAIR"))
    assert not failed
    seg = MonaiSegmenter(_settings(tmp_path / "b", spacing_mm=[4.0, 4.0, 4.0]))(images, 25.0, 0.05)
    x = torch.from_numpy(np.stack([a.transpose(2, 1, 0) for a in (images.t1c, images.t1, images.t2, images.flair)]))
    x = NormalizeIntensity(nonzero=True, channel_wise=True)(x)
    with torch.no_grad():
        ref = sliding_window_inference(torch.as_tensor(x)[None].float(), (16, 16, 16), 1, net, overlap=0.25)
    expected = (torch.sigmoid(ref[0, 2]) > 0.5).numpy().transpose(2, 1, 0)
    assert seg.et.shape == images.t1c.shape
    assert expected.any() and not expected.all()  # random weights still give a non-trivial map to compare
    assert np.array_equal(seg.et, expected)


@pytest.mark.parametrize("order,echoed", [(BRATS_ORDER, 0), ({"0": "FLAIR", "1": "T2", "2": "T1", "3": "T1c"}, 3)])
def test_channel_order_comes_from_metadata(tmp_path, phantom_factory, order, echoed):
    """The network echoes the channel metadata.json calls T1c: the mask is the enhancing rim, not FLAIR oedema."""
    ph = phantom_factory(spacing=(2.0, 2.0, 2.0), lps=True, vessel=False, dura=False)
    _echo_bundle(tmp_path / "b", order, echoed)
    images, _ = load_study(_study(ph, tmp_path), optional=("T1", "T2", "FLAIR"))
    seg = MonaiSegmenter(_settings(tmp_path / "b", spacing_mm=[2.0, 2.0, 2.0]))(images, 25.0, 0.05)
    assert np.array_equal(seg.et, images.t1c > 1400.0)
    assert _dice(seg.et, images.flair > 1400.0) < 0.5


def test_oblique_anisotropic_study_goes_to_1mm_and_back(tmp_path, phantom_factory):
    """A 1.5 x 1.5 x 3 mm T1C tilted 20 degrees: resampled to the bundle's 1 mm axis-aligned grid and back."""
    ph = phantom_factory(spacing=(1.5, 1.5, 3.0), oblique_deg=20.0, vessel=False, dura=False)
    _echo_bundle(tmp_path / "b", BRATS_ORDER, 0)
    images, _ = load_study(_study(ph, tmp_path), optional=("T1", "T2", "FLAIR"))
    model = MonaiSegmenter(_settings(tmp_path / "b"))
    assert model.spacing == (1.0, 1.0, 1.0)
    seg = model(images, 25.0, 0.05)
    direct = images.t1c > 1400.0  # what a perfect round trip would give
    assert seg.et.shape == images.t1c.shape
    assert _dice(seg.et, direct) > 0.85
    assert seg.et_volume_ml == pytest.approx(float(direct.sum()) * images.grid.voxel_ml, rel=0.15)
    truth = np.asarray(ph.truth).transpose(2, 1, 0)  # phantom truth is (x, y, z)
    assert _dice(seg.et, truth) > 0.75


def test_empty_et_beside_tumour_channels_is_flagged(tmp_path, phantom_factory):
    ph = phantom_factory(spacing=(2.0, 2.0, 2.0), lps=True, vessel=False, dura=False)
    _echo_bundle(tmp_path / "b", BRATS_ORDER, 0, et_on=False)
    images, _ = load_study(_study(ph, tmp_path), optional=("T1", "T2", "FLAIR"))
    seg = MonaiSegmenter(_settings(tmp_path / "b", spacing_mm=[2.0, 2.0, 2.0]))(images, 25.0, 0.05)
    assert not seg.et.any() and FLAG_ET_EMPTY in seg.flags


def test_missing_weight_file_is_one_clear_error_naming_it(tmp_path):
    _write(tmp_path / "b", _metadata(BRATS_ORDER), _inference(NORMALISE, [32, 32, 32]))
    with pytest.raises(ModelFileError, match=r"models/model\.pt: weight file not found"):
        MonaiSegmenter(_settings(tmp_path / "b"))


def test_missing_weights_stop_extract_before_any_study(tmp_path):
    from pfs.extractors.imaging import extract
    from pfs.io.export import load_export

    _write(tmp_path / "b", _metadata(BRATS_ORDER), _inference(NORMALISE, [32, 32, 32]))
    (tmp_path / "patients.csv").write_text("patient_id,diagnosis_date\nP1,2020-01-01\n")
    cfg = load_config({"imaging": {"segmenter": "monai", "monai": {"model_path": str(tmp_path / "b")}}})
    with pytest.raises(ModelFileError, match="model.pt"):
        extract(load_export(tmp_path), cfg)


def test_bundle_code_is_refused_not_run(tmp_path):
    net = dict(SEGRESNET, init_filters="$__import__('os').system('touch pwned') or 4")
    _write(tmp_path / "b", _metadata(BRATS_ORDER), _inference(NORMALISE, [32, 32, 32], network_def=net))
    torch.save({}, tmp_path / "b" / "models" / "model.pt")
    with pytest.raises(ModelFileError, match="does not run bundle code"):
        MonaiSegmenter(_settings(tmp_path / "b"))
    assert not Path("pwned").exists()
    pre = NORMALISE + [{"_target_": "Lambdad", "keys": "image", "func": "$lambda x: x"}]
    _write(tmp_path / "c", _metadata(BRATS_ORDER), _inference(pre, [32, 32, 32]))
    torch.save({}, tmp_path / "c" / "models" / "model.pt")
    with pytest.raises(ModelFileError, match="Lambdad"):
        read_bundle(tmp_path / "c")


def test_config_that_contradicts_the_bundle_is_a_config_error(tmp_path):
    _segresnet_bundle(tmp_path / "b", [32, 32, 32])
    with pytest.raises(ConfigError, match="disagrees with the bundle's metadata.json"):
        MonaiSegmenter(_settings(tmp_path / "b", channels=["FLAIR", "T1", "T2", "T1C"]))
    with pytest.raises(ConfigError, match="multiples of 8"):
        MonaiSegmenter(_settings(tmp_path / "b", roi_size=[30, 30, 30]))


def _ml_at_1mm(image, threshold: float) -> float:
    """Volume above ``threshold`` after linear resampling to an axis-aligned 1 mm grid (SimpleITK, by hand)."""
    import SimpleITK as sitk

    ref = sitk.Image([160, 160, 160], sitk.sitkFloat32)
    ref.SetOrigin([-80.0, -80.0, -80.0])
    up = sitk.Resample(image, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return float((sitk.GetArrayFromImage(up) > threshold).sum()) / 1000.0


class _EchoSoftmax(torch.nn.Module):
    """Label logits background, necrosis, oedema, enhancing: enhancing where channel 0 > 1400."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x[:, :1] - 1400.0
        zero = torch.zeros_like(s)
        return torch.cat([zero, zero - 1.0e4, zero - 1.0e4, s], dim=1)


def test_label_outputs_in_yaml_bundle_with_its_own_crop_and_spacing(tmp_path, phantom_factory):
    """inference.yaml with Orientationd, Spacingd and CropForegroundd; outputs named per label (softmax):
    the ET label is found by name, and the bundle's own spatial steps are undone through the affine."""
    yaml = pytest.importorskip("yaml")
    root = tmp_path / "b"
    meta = _metadata({"0": "T1Gd"})
    meta["network_data_format"]["inputs"]["image"]["num_channels"] = 1
    meta["network_data_format"]["outputs"]["pred"]["channel_def"] = {
        "0": "background", "1": "necrosis", "2": "edema", "3": "enhancing tumour"}
    pre = [{"_target_": "LoadImaged", "keys": "image"}, {"_target_": "EnsureChannelFirstd", "keys": "image"},
           {"_target_": "Orientationd", "keys": ["image", "label"], "axcodes": "RAS"},
           {"_target_": "Spacingd", "keys": ["image", "label"], "pixdim": [1.0, 1.0, 1.0],
            "mode": ["bilinear", "nearest"]},
           {"_target_": "CropForegroundd", "keys": ["image", "label"], "source_key": "image", "margin": 2}]
    cfg = _inference(pre, [64, 64, 64])
    cfg["postprocessing"] = {"_target_": "Compose", "transforms": []}
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "configs" / "metadata.json").write_text(json.dumps(meta))
    (root / "configs" / "inference.yaml").write_text(yaml.safe_dump(cfg))
    torch.jit.script(_EchoSoftmax()).save(str(root / "models" / "model.ts"))
    model = MonaiSegmenter(_settings(root))
    assert model.output == "softmax" and model.et_index == 3 and model.channels == ["T1C"]
    assert model.spacing is None  # the bundle's Spacingd decides, not the metadata's "1x1x1 mm"
    ph = phantom_factory(spacing=(1.5, 1.5, 2.5), oblique_deg=10.0, vessel=False, dura=False)
    images, _ = load_study({"T1C": ph.t1c}, optional=())
    seg = model(images, 25.0, 0.05)
    direct = images.t1c > 1400.0
    assert seg.et.shape == images.t1c.shape and _dice(seg.et, direct) > 0.85  # aligned after crop and spacing
    # The volume the network found on its own 1 mm grid survives the way back (a thin rim loses voxels
    # to the linear upsampling itself: 2.0 mL at 1 mm against 2.5 mL thresholded on the 1.5 x 2.5 mm grid).
    assert seg.et_volume_ml == pytest.approx(_ml_at_1mm(images.reference, 1400.0), rel=0.1)


def test_unbuildable_network_def_falls_back_to_the_bundles_torchscript(tmp_path):
    net = dict(SEGRESNET, _target_="my_package.MyNet")
    _write(tmp_path / "b", _metadata(BRATS_ORDER), _inference(NORMALISE, [32, 32, 32], network_def=net))
    torch.save({}, tmp_path / "b" / "models" / "model.pt")
    with pytest.raises(ModelFileError, match="MyNet"):
        read_bundle(tmp_path / "b")
    torch.jit.script(_Echo(0)).save(str(tmp_path / "b" / "models" / "model.ts"))
    spec = read_bundle(tmp_path / "b")
    assert spec.torchscript and spec.weights.name == "model.ts" and spec.network is None
