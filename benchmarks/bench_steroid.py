"""Benchmark: 1,000,000 prescription rows for 20,000 patients, load_export + steroid extract.

Usage::

    .venv/bin/python benchmarks/bench_steroid.py [--rows 1000000] [--patients 20000] [--seed 0] [--profile]

The export is generated with vectorised numpy (about a third of the rows are corticosteroids, the
rest other drugs; names, units, frequencies and sigs drawn from realistic templates with varied
doses) and written to a temporary directory. The timed part runs in a fresh child process so its
peak memory (``ru_maxrss``) is that of loading and extracting alone. Target: <= 10 s and <= 2 GB.
``--profile`` adds a cProfile of the child, split into load_export and extract.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

STEROID_NAMES = [
    "dexAMETHasone (DECADRON) {s} MG tablet",
    "dexamethasone {s} mg tablet",
    "DEXAMETHASONE {s} MG TABLET",
    "Decadron {s} mg tab",
    "dexamethasone",
    "Decadron",
    "predniSONE {s} MG tablet",
    "prednisone {s} mg tab",
    "methylPREDNISolone (MEDROL) 4 MG tablet",
    "Solu-Medrol 125 mg injection",
    "hydrocortisone (CORTEF) 5 MG tablet",
    "dexamethasone sodium phosphate 4 mg/mL injection",
    "hydrocortisone 1 % cream",
    "fluticasone nasal spray",
]
OTHER_NAMES = [
    "levETIRAcetam (KEPPRA) 500 MG tablet",
    "temozolomide (TEMODAR) 140 MG capsule",
    "ondansetron (ZOFRAN) 8 MG tablet",
    "acetaminophen 650 mg",
    "famotidine (PEPCID) 20 MG tablet",
    "LORazepam (ATIVAN) 1 MG tablet",
    "metformin 1000 mg tab",
    "oxycodone 5 mg tab",
    "pantoprazole 40 mg",
    "bevacizumab 10 mg/kg IV",
    "sennosides 8.6 mg",
    "lisinopril 10 mg",
]
FREQ = [
    "BID",
    "daily",
    "TID",
    "q6h",
    "QID",
    "",
    "2 (two) times daily",
    "every 12 hours",
    "once",
    "qHS",
    "Q8H",
]
SIGS = [
    "{d} mg PO {f}",
    "Take {d} mg by mouth {f}",
    "Take 1 tablet by mouth twice daily",
    "",
    "{d} mg PO BID x 5 days, then {h} mg PO BID x 5 days, then stop",
    "{d} mg IV once prior to chemotherapy",
    "take {d}mg orally every 12 (twelve) hours",
]
ROUTES = ["PO", "oral", "ORAL", "by mouth", "IV", ""]


def _fill(text: pd.Series, placeholder: str, values: np.ndarray) -> pd.Series:
    """Replace ``placeholder`` in each row by that row's value (column-wise, no Python loop over rows)."""
    parts = text.str.split(placeholder, n=1, expand=True, regex=False)
    if parts.shape[1] == 1:
        return text
    tail = parts[1]
    return parts[0] + pd.Series(values, index=text.index).astype(str).where(tail.notna(), "") + tail.fillna("")


def make_export(root: Path, rows: int, patients: int, seed: int) -> None:
    """Write patients.csv and medications.csv (vectorised; about 3 s for a million rows)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    pid = np.char.add("P", np.char.zfill(np.arange(1, patients + 1).astype(str), 6))
    dx = np.datetime64("2015-01-01") + rng.integers(0, 5 * 365, patients).astype("timedelta64[D]")
    surg = dx + rng.integers(3, 22, patients).astype("timedelta64[D]")
    rt_end = surg + rng.integers(65, 80, patients).astype("timedelta64[D]")
    fu = surg + rng.integers(365, 1200, patients).astype("timedelta64[D]")
    pd.DataFrame(
        {
            "patient_id": pid,
            "diagnosis_date": dx.astype(str),
            "surgery_date": surg.astype(str),
            "rt_start_date": (surg + np.timedelta64(28, "D")).astype(str),
            "rt_end_date": rt_end.astype(str),
            "last_followup_date": fu.astype(str),
            "death_date": "",
        }
    ).to_csv(root / "patients.csv", index=False)
    p = rng.integers(0, patients, rows)
    span = (fu[p] - dx[p]).astype(int)
    order = dx[p] + (rng.random(rows) * span).astype(int).astype("timedelta64[D]")
    dur = rng.choice([1, 5, 7, 14, 21, 30, 60, 90], rows)
    end = np.where(rng.random(rows) < 0.15, "", (order + dur.astype("timedelta64[D]")).astype(str))
    steroid = rng.random(rows) < 0.35
    strength = rng.choice(["0.5", "1", "2", "4", "6"], rows)
    s_name = np.array(STEROID_NAMES, dtype=object)[rng.integers(0, len(STEROID_NAMES), rows)]
    o_name = np.array(OTHER_NAMES, dtype=object)[rng.integers(0, len(OTHER_NAMES), rows)]
    name = _fill(pd.Series(np.where(steroid, s_name, o_name)), "{s}", strength)
    dose = rng.choice([0.5, 1, 2, 4, 6, 8, 10, 20, 40], rows)
    dose_s = np.where(rng.random(rows) < 0.1, "", dose.astype(str))
    unit = np.where(dose_s == "", "", rng.choice(["mg", "MG", "mg", "tablet"], rows, p=[0.6, 0.2, 0.15, 0.05]))
    freq = np.array(FREQ, dtype=object)[rng.integers(0, len(FREQ), rows)]
    sig_t = pd.Series(np.array(SIGS, dtype=object)[rng.integers(0, len(SIGS), rows)])
    sig = _fill(
        _fill(_fill(sig_t, "{d}", dose.astype(str)), "{h}", (dose / 2).astype(str)),
        "{f}",
        np.where(freq == "", "daily", freq),
    )
    route = np.array(ROUTES, dtype=object)[rng.integers(0, len(ROUTES), rows)]
    pd.DataFrame(
        {
            "patient_id": pid[p],
            "medication_id": np.char.add("M", np.arange(rows).astype(str)),
            "order_date": order.astype(str),
            "end_date": end,
            "drug_name": name,
            "dose": dose_s,
            "dose_unit": unit,
            "frequency": freq,
            "route": route,
            "sig": sig,
        }
    ).to_csv(root / "medications.csv", index=False)


def timed_run(export: Path, profile: bool) -> dict:
    """The child: load_export + extract, timed, with peak RSS."""
    import resource

    from pfs.extractors.steroid import extract
    from pfs.io import load_export
    from pfs.settings import load_config

    cfg = load_config()
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()

    def cpu() -> float:
        u = resource.getrusage(resource.RUSAGE_SELF)
        return u.ru_utime + u.ru_stime

    t0, c0 = time.perf_counter(), cpu()
    ex = load_export(export, tables=("patients", "medications"))
    t1, c1 = time.perf_counter(), cpu()
    peak_after_load_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res = extract(ex, cfg)
    t2, c2 = time.perf_counter(), cpu()
    if prof is not None:
        import pstats

        prof.disable()
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "load_s": round(t1 - t0, 2),
        "extract_s": round(t2 - t1, 2),
        "total_s": round(t2 - t0, 2),
        "load_cpu_s": round(c1 - c0, 2),
        "extract_cpu_s": round(c2 - c1, 2),
        "peak_rss_mb": round(peak_mb),
        "peak_rss_after_load_mb": round(peak_after_load_mb),
        "rows": int(ex.rows_read["medications"]),
        "counts": res.counts,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--patients", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(timed_run(args.child, args.profile)))
        return 0
    with tempfile.TemporaryDirectory(prefix="pfs-bench-steroid-") as tmp:
        export = Path(tmp) / "export"
        t = time.perf_counter()
        make_export(export, args.rows, args.patients, args.seed)
        size = (export / "medications.csv").stat().st_size / 1e6
        print(
            f"generated {args.rows:,} rows for {args.patients:,} patients in {time.perf_counter() - t:.1f} s "
            f"({size:.0f} MB CSV)"
        )
        cmd = [sys.executable, __file__, "--child", str(export)] + (["--profile"] if args.profile else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(out.stderr)
            return out.returncode
        if args.profile:
            print(out.stderr)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"load_export {r['load_s']} s + extract {r['extract_s']} s = {r['total_s']} s "
            f"(target <= 10 s); peak RSS {r['peak_rss_mb']} MB (target <= 2048 MB; "
            f"{r['peak_rss_after_load_mb']} MB already after load_export)"
        )
        print(
            f"CPU time (less sensitive to other load on the machine): load_export {r['load_cpu_s']} s, "
            f"extract {r['extract_cpu_s']} s"
        )
        print("counts:", r["counts"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
