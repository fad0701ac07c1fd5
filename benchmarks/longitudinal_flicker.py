"""Small-volume reproducibility: a stable ~1.3 mL residual measured on consecutive synthetic scans.

Builds, with pfs synth's renderer, patients whose enhancing residual stays at about 1.3 mL (+-0.1) over
eight follow-up scans (no progression), runs the imaging extractor and prints per patient the measured
et_volume_ml series (with et_volume_low_ml..et_volume_high_ml where the code reports them), how often
a measurement flips between < 0.3 mL and >= 0.3 mL, and every progression event (all are false).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/longitudinal_flicker.py [--patients 4] [--seed 3] [--ml 1.3] [--out DIR]
    PYTHONPATH=$PWD .venv/bin/python benchmarks/longitudinal_flicker.py --phantom --out DIR   # rim near threshold
    PYTHONPATH=OLD_TREE .venv/bin/python benchmarks/longitudinal_flicker.py --reuse --out DIR  # same export, old code
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np


def build(out: Path, patients: int, seed: int, args_ml: float = 1.3, scanner: int | None = None,
          no_t1: bool = False) -> Path:
    from pfs.synth import mri, patients_frame
    from pfs.synth.course import simulate_cohort

    rng = np.random.default_rng(seed)
    courses = []
    for c in simulate_cohort(patients, seed):
        first = c.rt_end_date + timedelta(days=30)
        template = c.scans[-1]
        scans = tuple(dataclasses.replace(
            template, study_id=f"{c.patient_id}_S{k + 1}", date=first + timedelta(days=60 * k), phase="follow_up",
            et_volume_ml=round(args_ml + float(rng.normal(0, 0.05)), 3), flair_volume_ml=12.0, distant_lesion_ml=0.0,
            pseudo=False, scanner=int(rng.integers(0, 8)) if scanner is None else scanner,
            has_t1=bool(rng.random() < 0.5) and not no_t1) for k in range(8))
        courses.append(dataclasses.replace(c, scans=scans, true_progression_date=None, rano_progression_date=None,
                                           progression_type=None, pseudoprogression=False,
                                           last_followup_date=scans[-1].date + timedelta(days=30), death_date=None))
    export = out / "export"
    export.mkdir(parents=True, exist_ok=True)
    rows, _ = mri.write_studies(courses, export, out / "truth", seed)
    write_table(patients_frame(courses, seed), export / "patients.csv")
    write_table(rows, export / "imaging.csv")
    return export


#: Peak enhancement of the residual's rim on eight scans (multiples of white matter): the first clearly
#: enhancing, the others varying around the confident threshold as contrast timing and dose vary.
PHANTOM_RIMS = (1.75, 1.38, 1.5, 1.36, 1.48, 1.4, 1.52, 1.37)


def build_phantoms(out: Path, seed: int) -> Path:
    """One patient, eight scans of the test-suite phantom head (tests/.../conftest.py), a ~1.1 mL rim."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "extractors" / "imaging"))
    from conftest import make_phantom

    export = out / "export"
    rows = []
    for k, rim in enumerate(PHANTOM_RIMS):
        sid, day = f"S{k + 1}", f"2021-{k + 1:02d}-15"
        ph = make_phantom(export / "images", sid, ring_t1c=rim, lesion_r=7.0, vessel=False, seed=seed + k)
        for seq, path in (("T1C", ph.t1c), ("FLAIR", ph.flair), ("T1", ph.t1)):
            rows.append(f"P1,{sid},{day},{seq},{path.relative_to(export)},")
    (export / "patients.csv").write_text(
        "patient_id,diagnosis_date,surgery_date,rt_start_date,rt_end_date,last_followup_date,death_date\n"
        "P1,2020-09-01,2020-09-10,2020-10-10,2020-11-20,2021-10-01,\n")
    (export / "imaging.csv").write_text("patient_id,study_id,study_date,sequence,path,mask_path\n"
                                        + "\n".join(rows) + "\n")
    return export


def write_table(frame, path):
    frame.to_csv(path, index=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=4)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--ml", type=float, default=1.3, help="true residual volume (mL)")
    ap.add_argument("--scanner", type=int, help="every scan on this scanner of pfs/rules/synth_mri.json")
    ap.add_argument("--no-t1", action="store_true", help="no pre-contrast T1 on any scan")
    ap.add_argument("--reuse", action="store_true", help="use an export already built in --out")
    ap.add_argument("--phantom", action="store_true",
                    help="the test-suite phantom with a rim enhancing around the threshold (PHANTOM_RIMS)")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="pfs_flicker_"))
    if args.reuse:
        export = out / "export"
    elif args.phantom:
        export = build_phantoms(out, args.seed)
    else:
        export = build(out, args.patients, args.seed, args.ml, args.scanner, args.no_t1)

    from pfs.extractors.imaging import extract
    from pfs.io.export import load_export
    from pfs.settings import load_config

    result = extract(load_export(export), load_config())
    vol = result.tables["volumes"]
    flips = 0
    for pid, g in vol.groupby("patient_id"):
        g = g.sort_values("study_date")
        series = g["et_volume_ml"].to_numpy(float)
        flips += int(np.sum(np.diff(series >= 0.3) != 0))
        if "et_volume_low_ml" in g:
            text = ", ".join(f"{v:.1f} [{lo:.1f}-{hi:.1f}]" for v, lo, hi in
                             zip(series, g["et_volume_low_ml"], g["et_volume_high_ml"], strict=True))
        else:
            text = ", ".join(f"{v:.1f}" for v in series)
        print(f"{pid}: {text}")
    print(f"flips across 0.3 mL: {flips}; false progression events: {len(result.events)}")
    for e in result.events.itertuples():
        print(f"  {e.patient_id} {e.event_date:%Y-%m-%d} {e.kind}: {e.evidence}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
