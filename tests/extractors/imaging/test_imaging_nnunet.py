"""An nnU-Net v2 results folder runs through the optional nnunetv2 package, loaded without unpickling code.

The folder is built here as nnU-Net writes it: dataset.json (channel_names, labels, BraTS-style region
labels with regions_class_order), plans.json (one 3d_fullres configuration with a tiny PlainConvUNet)
and fold_N/checkpoint_final.pth holding what nnU-Net's trainer saves (network_weights, optimizer
state, a training log with numpy scalars, init_args with a torch.device, trainer name, mirroring axes).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is needed by the nnU-Net segmenter")
pytest.importorskip("nnunetv2", reason="nnunetv2 is the optional extra pfs[nnunet]")

from pfs.exceptions import ConfigError, ModelFileError  # noqa: E402
from pfs.extractors.imaging.loading import load_study  # noqa: E402
from pfs.extractors.imaging.segmenters.labels import FLAG_ET_EMPTY  # noqa: E402
from pfs.extractors.imaging.segmenters.nnunet import NnunetSegmenter  # noqa: E402
from pfs.settings import load_config  # noqa: E402

ARCH = {
    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "arch_kwargs": {"n_stages": 2, "features_per_stage": [4, 8], "conv_op": "torch.nn.modules.conv.Conv3d",
                    "kernel_sizes": [[3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [2, 2, 2]],
                    "n_conv_per_stage": [1, 1], "n_conv_per_stage_decoder": [1], "conv_bias": True,
                    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                    "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
                    "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}},
    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
}
BRATS21_CHANNELS = {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"}  # nnU-Net's Dataset137_BraTS2021
BRATS21_REGIONS = {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}
BRATS23_LABELS = {"background": 0, "NCR": 1, "ED": 2, "ET": 3}


def _resampling(is_seg: bool, order: int) -> dict:
    return {"is_seg": is_seg, "order": order, "order_z": 0, "force_separate_z": None}


def _plans(spacing_zyx: list[float]) -> dict:
    cfg = {"data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
           "patch_size": [32, 32, 32], "median_image_size_in_voxels": [40, 40, 40], "spacing": spacing_zyx,
           "normalization_schemes": ["ZScoreNormalization"] * 4, "use_mask_for_norm": [True] * 4,
           "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": _resampling(False, 3),
           "resampling_fn_seg": "resample_data_or_seg_to_shape", "resampling_fn_seg_kwargs": _resampling(True, 1),
           "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
           "resampling_fn_probabilities_kwargs": _resampling(False, 1), "architecture": ARCH, "batch_dice": False}
    props = {"max": 2000.0, "mean": 1000.0, "median": 1000.0, "min": 0.0, "percentile_00_5": 100.0,
             "percentile_99_5": 1900.0, "std": 300.0}
    return {"dataset_name": "Dataset999_Test", "plans_name": "nnUNetPlans",
            "original_median_spacing_after_transp": spacing_zyx, "original_median_shape_after_transp": [40, 40, 40],
            "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
            "configurations": {"3d_fullres": cfg}, "experiment_planner_used": "ExperimentPlanner",
            "label_manager": "LabelManager",
            "foreground_intensity_properties_per_channel": {str(i): props for i in range(4)}}


def _results_folder(root: Path, channels: dict, labels: dict, folds=(0,), spacing_zyx=(4.0, 2.5, 2.5)) -> list[dict]:
    """dataset.json, plans.json and seeded fold checkpoints; returns each fold's weights."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    root.mkdir(parents=True)
    dataset = {"channel_names": channels, "labels": labels, "numTraining": 1, "file_ending": ".nii.gz"}
    if any(isinstance(v, list) for v in labels.values()):
        dataset["regions_class_order"] = [1, 2, 3]
    plans = _plans(list(spacing_zyx))
    (root / "dataset.json").write_text(json.dumps(dataset))
    (root / "plans.json").write_text(json.dumps(plans))
    weights = []
    for f in folds:
        torch.manual_seed(100 + f)
        net = get_network_from_plans(ARCH["network_class_name"], ARCH["arch_kwargs"], ARCH["_kw_requires_import"],
                                     4, 3 if "regions_class_order" in dataset else len(labels), allow_init=True,
                                     deep_supervision=False)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.99)
        ck = {"network_weights": net.state_dict(), "optimizer_state": opt.state_dict(), "grad_scaler_state": None,
              "logging": {"mean_fg_dice": [np.float64(0.5)], "ema_fg_dice": [np.float64(0.4)],
                          "dice_per_class_or_region": [[np.float64(0.3)] * 3]},
              "_best_ema": np.float64(0.4), "current_epoch": 1000,
              "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": f, "dataset_json": dataset,
                            "device": torch.device("cpu")},
              "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1, 2)}
        (root / f"fold_{f}").mkdir()
        torch.save(ck, root / f"fold_{f}" / "checkpoint_final.pth")
        weights.append(net.state_dict())
    return weights


def _settings(path: Path, **kw) -> dict:
    s = load_config().section("imaging")["nnunet"]
    s.update({"model_path": str(path), "device": "cpu", "use_mirroring": False}, **kw)
    return s


def _study(ph, tmp_path: Path) -> dict[str, Path]:
    t1 = nib.load(ph.t1)
    t2 = tmp_path / "s_t2.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(t1.dataobj, np.float32) * 0.5, t1.affine), t2)
    return {"T1C": ph.t1c, "T1": ph.t1, "T2": t2, "FLAIR": ph.flair}


class _Echo(torch.nn.Module):
    """Softmax logits for labels background, NCR, ED, ET: ET where z-scored channel ``et_from`` > 2,
    ED where z-scored channel ``ed_from`` > 1 (or nowhere when -1)."""

    def __init__(self, et_from: int, ed_from: int = -1, et_on: bool = True) -> None:
        super().__init__()
        self.et_from, self.ed_from, self.et_on = et_from, ed_from, et_on

    def forward(self, x):
        zero = torch.zeros_like(x[:, :1])
        et = 10 * (x[:, self.et_from:self.et_from + 1] - 2.0) if self.et_on else zero - 100
        ed = 5 * (x[:, self.ed_from:self.ed_from + 1] - 1.0) if self.ed_from >= 0 else zero - 100
        return torch.cat([zero, zero - 100, ed, et], dim=1)


def _dice(a, b) -> float:
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def test_results_folder_loads_safely_and_runs_on_an_oblique_anisotropic_study(tmp_path, phantom_factory):
    weights = _results_folder(tmp_path / "m", BRATS21_CHANNELS, BRATS21_REGIONS, folds=(0, 1))
    model = NnunetSegmenter(_settings(tmp_path / "m"))
    assert model.channels == ["T1", "T1C", "T2", "FLAIR"]
    assert model.convention.et_values == [3]  # region "enhancing tumor" is painted as 3 by regions_class_order
    loaded = model.predictor.list_of_parameters
    assert len(loaded) == 2 and all(torch.equal(loaded[i][k], weights[i][k]) for i in (0, 1) for k in weights[i])
    ph = phantom_factory(spacing=(2.5, 2.5, 4.0), oblique_deg=15.0)
    images, failed = load_study(_study(ph, tmp_path), optional=("T1", "T2", "FLAIR"))
    assert not failed
    seg = model(images, 25.0, 0.05)
    assert seg.et.shape == images.t1c.shape and seg.flags[0] == "nnunet"
    again = model(images, 25.0, 0.05)
    assert np.array_equal(seg.et, again.et)  # deterministic


def test_channel_order_and_et_label_come_from_dataset_json(tmp_path, phantom_factory):
    """dataset.json lists FLAIR first and T1ce second; a network echoing channel 1 gives the enhancing rim."""
    _results_folder(tmp_path / "m", {"0": "FLAIR", "1": "T1ce", "2": "T1", "3": "T2"}, BRATS23_LABELS)
    model = NnunetSegmenter(_settings(tmp_path / "m"))
    assert model.channels == ["FLAIR", "T1C", "T1", "T2"] and model.convention.et_values == [3]
    model.predictor.network = _Echo(et_from=1, ed_from=0)
    model.predictor.list_of_parameters = [{}]
    ph = phantom_factory(spacing=(2.0, 2.0, 2.0), lps=True, vessel=False, dura=False)
    images, _ = load_study(_study(ph, tmp_path), optional=("T1", "T2", "FLAIR"))
    seg = model(images, 25.0, 0.05)
    brain = images.t1c > 0
    z = (images.t1c - images.t1c[brain].mean()) / images.t1c[brain].std()
    assert _dice(seg.et, brain & (z > 2.0)) > 0.9
    truth = np.asarray(ph.truth).transpose(2, 1, 0)
    assert _dice(seg.et, truth) > 0.8
    assert FLAG_ET_EMPTY not in seg.flags


def test_empty_et_beside_oedema_is_flagged(tmp_path, phantom_factory):
    _results_folder(tmp_path / "m", {"0": "FLAIR", "1": "T1ce", "2": "T1", "3": "T2"}, BRATS23_LABELS)
    model = NnunetSegmenter(_settings(tmp_path / "m"))
    model.predictor.network = _Echo(et_from=1, ed_from=0, et_on=False)
    model.predictor.list_of_parameters = [{}]
    ph = phantom_factory(spacing=(2.0, 2.0, 2.0), lps=True, vessel=False, dura=False)
    images, _ = load_study(_study(ph, tmp_path), optional=("T1", "T2", "FLAIR"))
    seg = model(images, 25.0, 0.05)
    assert not seg.et.any() and FLAG_ET_EMPTY in seg.flags


def test_missing_files_are_one_clear_error_naming_them(tmp_path):
    _results_folder(tmp_path / "m", BRATS21_CHANNELS, BRATS21_REGIONS)
    with pytest.raises(ModelFileError, match=r"fold_3/checkpoint_final\.pth: weight file not found"):
        NnunetSegmenter(_settings(tmp_path / "m", folds=[3]))
    (tmp_path / "m" / "fold_0" / "checkpoint_final.pth").unlink()
    with pytest.raises(ModelFileError, match=r"fold_0/checkpoint_final\.pth: weight file not found"):
        NnunetSegmenter(_settings(tmp_path / "m"))
    (tmp_path / "m" / "plans.json").unlink()
    with pytest.raises(ModelFileError, match=r"plans\.json: file not found"):
        NnunetSegmenter(_settings(tmp_path / "m"))


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    _results_folder(tmp_path / "m", BRATS21_CHANNELS, BRATS21_REGIONS)
    path = tmp_path / "m" / "fold_0" / "checkpoint_final.pth"
    ck = torch.load(path, weights_only=False)
    ck["init_args"]["evil"] = Path("x")  # any class outside the allowed data types
    torch.save(ck, path)
    with pytest.raises(ModelFileError, match="weights_only"):
        NnunetSegmenter(_settings(tmp_path / "m"))


def test_label_names_that_name_no_et_need_a_convention(tmp_path):
    _results_folder(tmp_path / "m", BRATS21_CHANNELS, {"background": 0, "label1": 1, "label2": 2, "label3": 3})
    with pytest.raises(ConfigError, match="none of the labels"):
        NnunetSegmenter(_settings(tmp_path / "m"))
    model = NnunetSegmenter(_settings(tmp_path / "m", convention="brats_2023"))
    assert model.convention.et_values == [3]


def test_without_nnunetv2_the_error_says_how_to_install(tmp_path, monkeypatch):
    _results_folder(tmp_path / "m", BRATS21_CHANNELS, BRATS21_REGIONS)
    monkeypatch.setitem(sys.modules, "nnunetv2.inference.predict_from_raw_data", None)
    with pytest.raises(ConfigError, match=r"pip install 'pfs\[nnunet\]'"):
        NnunetSegmenter(_settings(tmp_path / "m"))


def test_nnunet_chosen_in_config_runs_through_extract(tmp_path, phantom_factory):
    """No code: segmenter = "nnunet" and a model_path give a volumes row per study."""
    from pfs.extractors.imaging import extract
    from pfs.io.export import load_export

    _results_folder(tmp_path / "m", BRATS21_CHANNELS, BRATS21_REGIONS)
    ph = phantom_factory("a", spacing=(4.0, 4.0, 4.0))
    paths = _study(ph, tmp_path)
    rows = "".join(f"P1,S1,2020-05-01,{seq},{p.relative_to(tmp_path)}\n" for seq, p in paths.items())
    (tmp_path / "patients.csv").write_text("patient_id,diagnosis_date\nP1,2020-01-01\n")
    (tmp_path / "imaging.csv").write_text("patient_id,study_id,study_date,sequence,path\n" + rows)
    cfg = load_config({"imaging": {"segmenter": "nnunet", "nnunet": {
        "model_path": str(tmp_path / "m"), "device": "cpu", "use_mirroring": False}}})
    result = extract(load_export(tmp_path), cfg)
    vol = result.tables["volumes"]
    assert vol["segmenter"].tolist() == ["nnunet"] and result.quarantine.empty
    assert vol["sequences"].iloc[0] == "T1C,T1,T2,FLAIR"
    assert "nnunet" in vol["qc_flags"].iloc[0]


def test_fold_all_only_when_alone_and_v1_style_labels(tmp_path):
    from pfs.extractors.imaging.segmenters.nnunet import model_files, output_convention

    _results_folder(tmp_path / "m", BRATS21_CHANNELS, BRATS21_REGIONS, folds=(0, 1))
    (tmp_path / "m" / "fold_all").mkdir()
    (tmp_path / "m" / "fold_all" / "checkpoint_final.pth").write_bytes(b"")
    _, _, _, ckpts = model_files(_settings(tmp_path / "m"))
    assert [c.parent.name for c in ckpts] == ["fold_0", "fold_1"]  # as nnU-Net: the cross-validation folds
    _, _, _, ckpts = model_files(_settings(tmp_path / "m", folds=["all"]))
    assert [c.parent.name for c in ckpts] == ["fold_all"]
    hd_glio_like = {"labels": {"0": "background", "1": "non-enhancing T2/FLAIR abnormality",
                               "2": "contrast-enhancing tumor"}}
    conv = output_convention(_settings(tmp_path / "m"), hd_glio_like, tmp_path / "m")
    assert conv.et_values == [2] and conv.labels[1] == "ED"
