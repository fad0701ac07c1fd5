"""Quality of the imaging extractor against the synthetic truth.

Reports, for a synthetic cohort (``pfs synth``) or one made here:

- Dice of the configured segmenter vs the truth masks (``truth/masks/<study_id>_et.nii.gz``), per study;
- median absolute % error of et_volume_ml vs the rendered truth volume (studies with truth >= 0.5 mL,
  where a percentage means something) and the median absolute error in mL over all studies;
- sensitivity of imaging events vs ``annotations.csv`` (share of annotated progressions with an
  imaging event), false events among non-progressors, and the lag (event date - annotated date, in
  months of 30.44 days; negative = earlier), to compare with the reference study: 54 %, 2.6 months early.

Usage::

    .venv/bin/python benchmarks/eval_imaging.py --cohort /tmp/cohort            # an existing synth output
    .venv/bin/python benchmarks/eval_imaging.py --make /tmp/cohort --patients 30 --seed 7
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def evaluate(cohort: Path, overrides: dict | None = None, masks_dir: Path | None = None,
             details: Path | None = None) -> dict:
    import SimpleITK as sitk

    from pfs.extractors.imaging import extract
    from pfs.io.export import load_export
    from pfs.settings import load_config

    masks_dir = masks_dir or cohort / "eval_masks"
    imaging = {"save_masks": True, "masks_dir": str(masks_dir)} | (overrides or {})
    export = load_export(cohort / "export")
    t0 = time.perf_counter()
    result = extract(export, load_config({"imaging": imaging}))
    seconds = time.perf_counter() - t0
    vol = result.tables["volumes"]
    truth = pd.read_csv(cohort / "truth" / "truth_volumes.csv")
    tcol = "rendered_et_volume_ml" if "rendered_et_volume_ml" in truth else "true_et_volume_ml"
    m = vol.merge(truth[["study_id", tcol, "mask_path"]], on="study_id", how="inner")
    dices: list[float] = []
    per_study: list[dict] = []
    for r in m.itertuples():
        pred_path = masks_dir / r.patient_id / f"{r.study_id}_et.nii.gz"
        true_path = cohort / "truth" / str(r.mask_path)
        if not pred_path.exists() or not true_path.exists():
            continue
        pred = sitk.GetArrayFromImage(sitk.ReadImage(str(pred_path))) > 0
        true = sitk.GetArrayFromImage(sitk.ReadImage(str(true_path))) > 0
        if pred.shape == true.shape:
            dices.append(dice(pred, true))
            per_study.append({"study_id": r.study_id, "dice": round(dices[-1], 3), "et_volume_ml": r.et_volume_ml,
                              "truth_ml": getattr(r, tcol), "qc_flags": r.qc_flags})
    if details is not None:
        pd.DataFrame(per_study).merge(truth, on="study_id", how="left").to_csv(details, index=False)
    err_ml = (m["et_volume_ml"] - m[tcol]).abs()
    big = m[tcol] >= 0.5
    pct = 100 * err_ml[big] / m.loc[big, tcol]

    ann = pd.read_csv(cohort / "annotations.csv", parse_dates=["progression_date"])
    ev = result.events.sort_values("event_date").groupby("patient_id", as_index=False).first()
    j = ann.merge(ev[["patient_id", "event_date", "kind"]], on="patient_id", how="left")
    prog = j["progressed"] == 1
    found = prog & j["event_date"].notna()
    lag = (j.loc[found, "event_date"] - j.loc[found, "progression_date"]).dt.days / 30.44
    return {
        "studies": int(result.counts["studies"]),
        "studies_measured": int(result.counts["studies_measured"]),
        "seconds_per_study": round(seconds / max(1, result.counts["studies"]), 3),
        "dice_median": round(float(np.median(dices)), 3) if dices else None,
        "dice_mean": round(float(np.mean(dices)), 3) if dices else None,
        "dice_p10": round(float(np.percentile(dices, 10)), 3) if dices else None,
        "dice_n": len(dices),
        "volume_median_abs_pct_error": round(float(np.median(pct)), 2) if len(pct) else None,
        "volume_median_abs_error_ml": round(float(np.median(err_ml)), 3) if len(err_ml) else None,
        "patients": int(len(ann)),
        "annotated_progressions": int(prog.sum()),
        "sensitivity": round(float(found.sum() / max(1, prog.sum())), 3),
        "false_events_in_non_progressors": int((~prog & j["event_date"].notna()).sum()),
        "lag_months_mean": round(float(lag.mean()), 2) if len(lag) else None,
        "lag_months_median": round(float(lag.median()), 2) if len(lag) else None,
        "same_scan_share": round(float((lag.abs() < 0.5).mean()), 3) if len(lag) else None,
        "event_kinds": result.events["kind"].value_counts().to_dict(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cohort", type=Path, help="an existing pfs synth output folder")
    ap.add_argument("--make", type=Path, help="make a synthetic cohort here first")
    ap.add_argument("--patients", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--config", type=str, default="{}", help="JSON overrides of the [imaging] section")
    ap.add_argument("--details", type=Path, help="write per-study Dice and volumes to this CSV")
    args = ap.parse_args()
    cohort = args.cohort
    if args.make:
        from pfs.synth import synthesize

        synthesize(args.make, patients=args.patients, seed=args.seed, images=True)
        cohort = args.make
    if cohort is None:
        ap.error("give --cohort or --make")
    print(json.dumps(evaluate(cohort, json.loads(args.config), details=args.details), indent=2))


if __name__ == "__main__":
    main()
