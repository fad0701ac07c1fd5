"""Does reading a cohort through OMOP or FHIR give the native run's endpoints? (issue 16, section 3)

Runs ``pfs extract`` on a synthetic cohort three times (native layout, ``--format omop``,
``--format fhir``; the formats written by ``pfs synth --format`` with vendor-style series
descriptions) and prints, per format, the share of patients whose reconciled endpoint
(progressed, progression date, PFS event, PFS days) equals the native run's, the imaging
endpoint's agreement too, and how each run used the series.

    python benchmarks/eval_formats_agreement.py COHORT WORK [--workers N]

COHORT is a folder written by ``pfs synth COHORT --format omop`` whose ``fhir/`` was added with
``pfs.synth.formats.native_to_fhir`` (or a second ``pfs synth`` run with ``--format fhir``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

FIELDS = ["progressed", "progression_date", "pfs_event", "pfs_date", "pfs_days"]


def _extract(src: Path, out: Path, fmt: str, workers: int) -> float:
    cmd = [sys.executable, "-m", "pfs", "extract", str(src), "--out", str(out), "--format", fmt,
           "--workers", str(workers), "--no-cache"]
    if fmt == "omop":
        cmd += ["--patient-id", "person_source_value"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode not in (0,):
        print(done.stdout[-2000:], done.stderr[-2000:])
        raise SystemExit(f"pfs extract --format {fmt} failed ({done.returncode})")
    return time.perf_counter() - start


def _endpoints(out: Path, method: str) -> pd.DataFrame:
    ep = pd.read_csv(out / "endpoints.csv", dtype=str, keep_default_na=False)
    return ep.loc[ep["method"] == method].set_index("patient_id")[FIELDS]


def _agreement(native: pd.DataFrame, other: pd.DataFrame) -> tuple[int, int, list[str]]:
    ids = sorted(native.index)
    other = other.reindex(ids).fillna("<missing>")
    same = (native.loc[ids] == other).all(axis=1)
    return int(same.sum()), len(ids), [str(i) for i in same.index[~same]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cohort", type=Path)
    ap.add_argument("work", type=Path)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    runs = {"native": (args.cohort / "export", "native"), "omop": (args.cohort / "omop", "omop"),
            "fhir": (args.cohort / "fhir", "fhir")}
    for name, (src, fmt) in runs.items():
        secs = _extract(src, args.work / name, fmt, args.workers)
        series = pd.read_csv(args.work / name / "series.csv", dtype=str, keep_default_na=False)
        q = pd.read_csv(args.work / name / "quarantine.csv", dtype=str, keep_default_na=False)
        vol = pd.read_csv(args.work / name / "volumes.csv", dtype=str, keep_default_na=False)
        roles = series.loc[series["used"] == "yes", "role"].value_counts().to_dict()
        print(f"{name}: {secs:.0f} s; {len(series)} series, used by role {roles}, "
              f"{int((series['used'] == 'no').sum())} not used; {len(vol)} studies measured; "
              f"{int((q['table'] == 'imaging').sum())} imaging quarantine rows")
    for method in ("reconciled", "imaging"):
        native = _endpoints(args.work / "native", method)
        for name in ("omop", "fhir"):
            same, n, differ = _agreement(native, _endpoints(args.work / name, method))
            print(f"{method} endpoint, {name} vs native: {same}/{n} patients equal ({100 * same / n:.1f} %)"
                  + (f"; differ: {', '.join(differ[:10])}" if differ else ""))


if __name__ == "__main__":
    main()
