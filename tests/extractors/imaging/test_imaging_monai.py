"""The MONAI segmenter loads a local bundle or TorchScript file and runs sliding-window inference on CPU.

The networks are built here, tiny and seeded: a randomly initialised UNet saved as a bundle (weights as
a state dict, loaded with weights_only=True), and a TorchScript module with a known rule so that its
mask can be checked voxel by voxel.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is an optional dependency of the MONAI segmenter")
monai = pytest.importorskip("monai", reason="monai is an optional dependency of the MONAI segmenter")

from pfs.exceptions import ConfigError, ModelFileError  # noqa: E402
from pfs.extractors.imaging.loading import load_study  # noqa: E402
from pfs.extractors.imaging.segmenters.monai_model import MonaiSegmenter  # noqa: E402
from pfs.settings import load_config  # noqa: E402

NET = {"_target_": "monai.networks.nets.UNet", "spatial_dims": 3, "in_channels": 2, "out_channels": 2,
       "channels": [4, 8], "strides": [2], "num_res_units": 0}


def _settings(path: Path, **kw) -> dict:
    s = load_config().section("imaging")["monai"]
    s.update({"model_path": str(path), "channels": ["T1C", "FLAIR"], "device": "cpu", "output": "softmax",
              "et_index": 1, "axis_aligned": False}, **kw)
    return s


def _bundle(root: Path, preprocessing: list[dict]) -> torch.nn.Module:
    from monai.bundle import ConfigParser

    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    config = {
        "bundle_root": ".",
        "network_def": NET,
        "preprocessing": {"_target_": "Compose", "transforms": preprocessing},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [16, 16, 16]},
    }
    (root / "configs" / "inference.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    net = ConfigParser({"net": NET}).get_parsed_content("net")
    torch.save(net.state_dict(), root / "models" / "model.pt")
    return net


def test_bundle_weights_are_loaded_and_mask_is_on_the_t1c_grid(tmp_path, phantom_factory):
    from monai.inferers import sliding_window_inference
    from monai.transforms import NormalizeIntensity

    ph = phantom_factory(spacing=(2.0, 2.0, 2.0), with_t1=False)
    net = _bundle(tmp_path / "bundle", [
        {"_target_": "LoadImaged", "keys": "image"},
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        {"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": True, "channel_wise": True},
    ])
    images, _ = load_study({"T1C": ph.t1c, "FLAIR": ph.flair}, optional=("FLAIR",))
    seg = MonaiSegmenter(_settings(tmp_path / "bundle", roi_size=[]))(images, 25.0, 0.05)
    assert seg.et.shape == images.t1c.shape
    # The same network, run here by hand on the same input, gives the same mask: the weights were loaded.
    x = torch.from_numpy(np.stack([images.t1c.transpose(2, 1, 0), images.flair.transpose(2, 1, 0)]).copy())
    x = NormalizeIntensity(nonzero=True, channel_wise=True)(x)
    with torch.no_grad():
        ref = sliding_window_inference(x[None].float(), (16, 16, 16), 1, net.eval(), overlap=0.25)
    expected = (torch.argmax(ref[0], 0) == 1).numpy().transpose(2, 1, 0)
    assert np.array_equal(seg.et, expected)


def test_bundle_spacing_transform_is_undone(tmp_path, phantom_factory):
    ph = phantom_factory(spacing=(2.0, 2.0, 2.0), with_t1=False)
    _bundle(tmp_path / "bundle", [
        {"_target_": "Spacingd", "keys": "image", "pixdim": [4.0, 4.0, 4.0], "mode": "bilinear"},
        {"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": True, "channel_wise": True},
    ])
    images, _ = load_study({"T1C": ph.t1c, "FLAIR": ph.flair}, optional=("FLAIR",))
    seg = MonaiSegmenter(_settings(tmp_path / "bundle"))(images, 25.0, 0.05)
    assert seg.et.shape == images.t1c.shape


class _Bright(torch.nn.Module):
    """Two-class logits: class 1 where T1C (channel 0) exceeds 1400, i.e. the phantom's enhancing rim."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x[:, :1] - 1400.0
        return torch.cat([-score, score], dim=1)


def test_torchscript_model_runs_by_sliding_window(tmp_path, phantom_factory):
    ph = phantom_factory(spacing=(2.0, 2.0, 2.0), with_t1=False, vessel=False, dura=False)
    path = tmp_path / "model.ts"
    torch.jit.script(_Bright()).save(str(path))
    images, _ = load_study({"T1C": ph.t1c, "FLAIR": ph.flair}, optional=("FLAIR",))
    seg = MonaiSegmenter(_settings(path, roi_size=[16, 16, 16]))(images, 25.0, 0.05)
    assert np.array_equal(seg.et, images.t1c > 1400.0)
    assert seg.lesions and seg.lesions[0].volume_ml > 1.0


def test_missing_model_and_unsafe_checkpoint_are_config_errors(tmp_path):
    with pytest.raises(ModelFileError, match="nowhere.*does not exist"):
        MonaiSegmenter(_settings(tmp_path / "nowhere"))
    _bundle(tmp_path / "bundle", [])
    # A checkpoint that pickles arbitrary objects cannot be loaded with weights_only=True.
    torch.save({"model": {}, "extra": Path("x")}, tmp_path / "bundle" / "models" / "model.pt")
    with pytest.raises(ConfigError, match="weights_only"):
        MonaiSegmenter(_settings(tmp_path / "bundle"))


def test_monai_segmenter_chosen_in_config_runs_through_extract(tmp_path, phantom_factory):
    from pfs.extractors.imaging import extract
    from pfs.io.export import load_export

    ph = phantom_factory("a", spacing=(2.0, 2.0, 2.0), with_t1=False, vessel=False, dura=False)
    torch.jit.script(_Bright()).save(str(tmp_path / "model.ts"))
    (tmp_path / "patients.csv").write_text("patient_id,diagnosis_date\nP1,2020-01-01\n")
    (tmp_path / "imaging.csv").write_text("patient_id,study_id,study_date,sequence,path\n"
                                          f"P1,S1,2020-05-01,T1C,{ph.t1c.relative_to(tmp_path)}\n")
    cfg = load_config({"imaging": {"segmenter": "monai", "monai": {
        "model_path": str(tmp_path / "model.ts"), "channels": ["T1C"], "roi_size": [16, 16, 16], "device": "cpu",
        "output": "softmax", "et_index": 1}}})
    vol = extract(load_export(tmp_path), cfg).tables["volumes"]
    assert vol["segmenter"].tolist() == ["monai"]
    assert vol["et_volume_ml"].iloc[0] > 1.0
