"""Enhancing-tumour Dice, volume error and speed of the default segmenter on real labelled studies.

Runs the configured default segmenter on every study of a BraTS-layout folder (one sub-folder per case:
``<case>_{t1,t1ce,t2,flair,seg}.nii.gz``; BraTS 2023 names ``-t1n/-t1c/-t2w/-t2f/-seg`` too), scores the
enhancing tumour against the expert label map, and prints per study Dice, volumes, relative volume error
and seconds, then the figures of the issue (median Dice, worst Dice with >= 3 mL ET, median volume error)
for all studies and for a tune/check split.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/eval_real_imaging.py \
        --data ../shared/data/brats2018-labelled [--check CASE,CASE,CASE] [--set t1c_high=1.4 ...] \
        [--masks OUT/masks --pairs OUT/pairs.csv]   # then ../shared/tools/score_masks.py OUT/pairs.csv

Skips cleanly (exit 0, with the reason) when the data folder is absent.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import numpy as np

_SUFFIXES = {"T1C": ("t1ce", "t1c"), "T1": ("t1", "t1n"), "FLAIR": ("flair", "t2f"), "T2": ("t2", "t2w"),
             "SEG": ("seg",)}
#: The check part of the split (never used for tuning): an LGG with little enhancement, a CBICA and a TCIA case.
DEFAULT_CHECK = ("Brats18_TCIA10_628_1", "Brats18_CBICA_AQN_1", "Brats18_TCIA01_378_1")


def find_sequences(case: Path) -> dict[str, Path]:
    out = {}
    for f in sorted(case.glob("*.nii*")):
        stem = f.name.split(".nii")[0]
        tail = stem.rsplit("_", 1)[-1] if "_" in stem else stem.rsplit("-", 1)[-1]
        tail = stem.rsplit("-", 1)[-1] if tail == stem else tail
        for seq, names in _SUFFIXES.items():
            if tail.lower() in names:
                out[seq] = f
    return out


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def summary(rows: list[dict]) -> str:
    if not rows:
        return "no studies"
    dices = [r["dice"] for r in rows]
    big = [r for r in rows if r["gt_ml"] >= 3.0]
    errs = [r["err"] for r in big]
    worst = min((r["dice"] for r in big), default=float("nan"))
    return (f"{len(rows)} studies: median ET Dice {statistics.median(dices):.3f}; worst with >= 3 mL ET "
            f"{worst:.3f}; median volume error {statistics.median(errs) if errs else float('nan'):.0%}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path,
                    default=Path(__file__).resolve().parents[2] / "shared" / "data" / "brats2018-labelled")
    ap.add_argument("--et-label", type=int, default=4, help="ET label value (4: BraTS <= 2020, 3: 2023+)")
    ap.add_argument("--check", default=",".join(DEFAULT_CHECK), help="held-out cases (comma-separated)")
    ap.add_argument("--set", action="append", default=[], help="override a [default] parameter: key=value")
    ap.add_argument("--drop", action="append", default=[], help="sequence not to use (T1, T2, FLAIR)")
    ap.add_argument("--masks", type=Path, help="write ET masks here")
    ap.add_argument("--pairs", type=Path, help="write a pairs.csv for shared/tools/score_masks.py")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"skipped: no labelled data at {args.data}")
        return 0

    from pfs.extractors.imaging.loading import load_study, read_image, to_array, write_mask
    from pfs.extractors.imaging.segmenters.default import DefaultParams, segment
    from pfs.settings import load_config

    section = dict(load_config().section("imaging")["default"])
    for kv in args.set:
        k, v = kv.split("=", 1)
        section[k] = _value(v)
    params = DefaultParams.from_config(section)
    check = set(filter(None, args.check.split(",")))
    rows = []
    pairs = []
    for case in sorted(p for p in args.data.iterdir() if p.is_dir()):
        seqs = find_sequences(case)
        if "T1C" not in seqs or "SEG" not in seqs:
            continue
        paths = {k: v for k, v in seqs.items() if k != "SEG" and k not in args.drop}
        images, _ = load_study(paths, optional=tuple(k for k in ("T1", "FLAIR", "T2") if k in paths))
        t0 = time.process_time()
        seg = segment(images, params)
        sec = time.process_time() - t0
        gt = np.rint(to_array(read_image(seqs["SEG"]))).astype(np.int32) == args.et_label
        pred = seg.et
        dice = 2 * (pred & gt).sum() / max(1, pred.sum() + gt.sum())
        v_pred, v_gt = pred.sum() * images.grid.voxel_ml, gt.sum() * images.grid.voxel_ml
        err = abs(v_pred - v_gt) / v_gt if v_gt > 0 else float("nan")
        part = "check" if case.name in check else "tune"
        rows.append({"case": case.name, "part": part, "dice": float(dice), "pred_ml": v_pred, "gt_ml": v_gt,
                     "err": err, "sec": sec, "flags": ";".join(seg.flags)})
        print(f"{case.name:24s} {part:5s} Dice {dice:.3f}  {v_pred:6.1f} mL found, {v_gt:6.1f} expert "
              f"({err:4.0%})  {sec:.2f} s  {';'.join(seg.flags)}", flush=True)
        if args.masks:
            path = args.masks / f"{case.name}_et.nii.gz"
            write_mask(pred, images.reference, path)
            pairs.append({"study_id": case.name, "pred_path": str(path), "label_path": str(seqs["SEG"]),
                          "et_label": args.et_label})
    if args.pairs and pairs:
        with open(args.pairs, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(pairs[0]))
            w.writeheader()
            w.writerows(pairs)
    print("all:  ", summary(rows))
    print("tune: ", summary([r for r in rows if r["part"] == "tune"]))
    print("check:", summary([r for r in rows if r["part"] == "check"]))
    print(f"segment CPU seconds per study: median {statistics.median(r['sec'] for r in rows):.2f}, "
          f"max {max(r['sec'] for r in rows):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
