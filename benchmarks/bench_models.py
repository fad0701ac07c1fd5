"""Time pfs's MONAI-bundle segmenter with the brats_mri_segmentation architecture on a real BraTS study (CPU).

The bundle is built in a temporary folder in the model-zoo layout with the public bundle's network
(SegResNet, 16 filters, blocks 1-2-2-4, 4 in / 3 out) and sliding window (240 x 240 x 160, overlap
0.5) but seeded random weights: nothing is downloaded, so the figure is speed and memory, not Dice.

    PYTHONPATH=. python benchmarks/bench_models.py [--study ../shared/data/brats2018-labelled/Brats18_CBICA_ALU_1]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STUDY = ROOT.parent / "shared" / "data" / "brats2018-labelled" / "Brats18_CBICA_ALU_1"
NET = {"_target_": "SegResNet", "blocks_down": [1, 2, 2, 4], "blocks_up": [1, 1, 1], "init_filters": 16,
       "in_channels": 4, "out_channels": 3, "dropout_prob": 0.2}


def _bundle(root: Path, roi: list[int]) -> None:
    import torch
    from monai.networks.nets import SegResNet

    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    meta = {"image_classes": "4 channel data, T1c, T1, T2, FLAIR at 1x1x1 mm", "network_data_format": {
        "inputs": {"image": {"num_channels": 4, "spatial_shape": ["8*n"] * 3,
                             "channel_def": {"0": "T1c", "1": "T1", "2": "T2", "3": "FLAIR"}}},
        "outputs": {"pred": {"num_channels": 3, "channel_def": {"0": "Tumor core", "1": "Whole tumor",
                                                                "2": "Enhancing tumor"}}}}}
    inference = {"network_def": NET, "preprocessing": {"_target_": "Compose", "transforms": [
        {"_target_": "LoadImaged", "keys": "image"},
        {"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": True, "channel_wise": True}]},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": roi, "sw_batch_size": 1, "overlap": 0.5},
        "postprocessing": {"_target_": "Compose", "transforms": [{"_target_": "Activationsd", "keys": "pred",
                                                                   "sigmoid": True}]}}
    (root / "configs" / "metadata.json").write_text(json.dumps(meta))
    (root / "configs" / "inference.json").write_text(json.dumps(inference))
    torch.manual_seed(0)
    net = SegResNet(**{k: v for k, v in NET.items() if k != "_target_"})
    torch.save(net.state_dict(), root / "models" / "model.pt")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", type=Path, default=DEFAULT_STUDY, help="a BraTS 2018 case folder")
    ap.add_argument("--roi", type=int, nargs=3, default=[240, 240, 160])
    args = ap.parse_args()
    from pfs.extractors.imaging.loading import load_study
    from pfs.extractors.imaging.segmenters.monai_model import MonaiSegmenter
    from pfs.settings import load_config

    case = args.study.name
    paths = {"T1C": args.study / f"{case}_t1ce.nii.gz", "T1": args.study / f"{case}_t1.nii.gz",
             "T2": args.study / f"{case}_t2.nii.gz", "FLAIR": args.study / f"{case}_flair.nii.gz"}
    with tempfile.TemporaryDirectory() as tmp:
        _bundle(Path(tmp) / "bundle", list(args.roi))
        settings = load_config().section("imaging")["monai"]
        settings.update(model_path=str(Path(tmp) / "bundle"), device="cpu")
        t0 = time.perf_counter()
        model = MonaiSegmenter(settings)
        t1 = time.perf_counter()
        images, failed = load_study(paths, optional=("T1", "T2", "FLAIR"))
        t2 = time.perf_counter()
        seg = model(images, 25.0, 0.05)
        t3 = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"study {case} {images.t1c.shape} spacing {images.grid.spacing_xyz} failed={failed}")
    print(f"model build+load {t1 - t0:.1f} s; study read {t2 - t1:.1f} s; inference+resampling {t3 - t2:.1f} s "
          f"(roi {args.roi}, overlap 0.5, CPU); peak RSS {peak_mb:.0f} MB; ET {seg.et_volume_ml:.1f} mL "
          f"(random weights); flags {seg.flags}")


if __name__ == "__main__":
    main()
