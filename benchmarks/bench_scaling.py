"""Benchmark: throughput of one source with 1 and 2 workers (issue 8 target for imaging: ratio >= 1.7).

Usage::

    .venv/bin/python benchmarks/bench_scaling.py [--source imaging] [--patients 5] [--workers 1 2]
        [--seed 0] [--cohort-dir /tmp/pfs-bench-cohorts]
    .venv/bin/python benchmarks/bench_scaling.py --source nlp --patients 1000

``--source imaging`` synthesizes (once, cached under ``--cohort-dir``) a cohort with MRI volumes
(``pfs.synth.synthesize(..., images=True)``; about 6-8 studies per patient) and runs
``pfs extract EXPORT --sources imaging --no-cache --workers W``. ``--source nlp`` uses the text
cohort of ``bench_end_to_end.py`` (same defaults, so both scripts share it) and ``--sources nlp``.
Each run is a fresh child process, measured as in ``bench_end_to_end.py`` (wall time, sampled peak
RSS of the whole process tree, CPU seconds of the tree).

``--workers 1`` runs in the pfs process (no Dask); ``--workers 2`` starts a LocalCluster of 2
processes, and that start (plus each worker importing the extractor's libraries) is inside its wall
time. To separate this fixed cost from throughput, every worker count also runs on a one-unit
export (the first patient's first study for imaging, the first patient for nlp). The marginal time
per unit, ``(wall(all) - wall(one)) / (units(all) - units(one))``, excludes start-up, loading and
writing; its inverse is the steady throughput, and the ratio of those is the scaling estimate
without start-up. Both ratios are printed; the target applies to throughput, i.e. the marginal one.

``--cluster`` compares like with like: each worker count gets its own LocalCluster of single-threaded
processes (started outside the timed command and warmed up by the one-unit run), used through
``pfs extract --scheduler``. Without it, ``--workers 1`` is the in-process path, where SimpleITK
may use both cores by itself, so the ratio understates how the work scales with workers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_end_to_end import ensure_cohort, measure, pfs_command  # noqa: E402

TARGET_RATIO = 1.7


def ensure_image_cohort(cohort_dir: Path, patients: int, seed: int) -> tuple[Path, float | None]:
    """The synthetic cohort with images, built once; its build time (None when reused)."""
    from pfs.synth import synthesize

    root = cohort_dir / f"images-n{patients}-seed{seed}"
    if (root / "done").exists():
        return root / "export", None
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    synthesize(root, patients=patients, seed=seed, images=True)
    (root / "done").write_text("")
    return root / "export", time.perf_counter() - t0


def one_unit_export(export: Path, source: str, dest: Path) -> Path:
    """A copy of ``export`` holding only its first patient (imaging: only that patient's first study)."""
    import pandas as pd

    from pfs.io.output import write_table

    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    read = dict(dtype=str, keep_default_na=False)
    pat = pd.read_csv(export / "patients.csv", **read)
    pid = pat["patient_id"].iloc[0]
    write_table(pat.iloc[:1], dest / "patients.csv")
    table = "imaging" if source == "imaging" else "reports"
    rows = pd.read_csv(export / f"{table}.csv", **read)
    rows = rows.loc[rows["patient_id"] == pid]
    if source == "imaging":
        rows = rows.loc[rows["study_id"] == rows["study_id"].iloc[0]]
        for col in ("path", "mask_path"):
            for rel in rows.get(col, pd.Series(dtype=str)):
                if rel:
                    (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(export / rel, dest / rel)
    write_table(rows, dest / f"{table}.csv")
    return dest


def units(export: Path, source: str) -> int:
    """Studies (imaging) or reports (nlp) in an export."""
    import pandas as pd

    if source == "imaging":
        return int(pd.read_csv(export / "imaging.csv", dtype=str)["study_id"].nunique())
    return len(pd.read_csv(export / "reports.csv", dtype=str, keep_default_na=False))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", choices=["imaging", "nlp"], default="imaging")
    ap.add_argument("--patients", type=int, default=None, help="default: 5 (imaging), 1000 (nlp)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cohort-dir", type=Path, default=Path(tempfile.gettempdir()) / "pfs-bench-cohorts")
    ap.add_argument("--no-one-unit", action="store_true", help="skip the one-unit runs (no start-up estimate)")
    ap.add_argument("--cluster", action="store_true",
                    help="run every worker count on its own warmed-up LocalCluster (pfs extract --scheduler), "
                         "so 1 and 2 workers use the same engine and single-threaded workers")
    args = ap.parse_args(argv)
    src = args.source
    unit = "studies" if src == "imaging" else "reports"

    t0 = time.perf_counter()
    if src == "imaging":
        patients = args.patients or 5
        export, built = ensure_image_cohort(args.cohort_dir, patients, args.seed)
        how = "reused" if built is None else f"built in {built:.1f} s"
    else:
        patients = args.patients or 1000
        export, info = ensure_cohort(args.cohort_dir, patients, 1000, args.seed, 100, 20)
        how = "reused" if info["reused"] else f"built in {time.perf_counter() - t0:.1f} s"
    n_units = units(export, src)
    print(f"cohort {export}: {patients} patients, {n_units} {unit}; {how} (not timed)")
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    with tempfile.TemporaryDirectory(prefix="pfs-bench-scaling-") as tmp:
        work = Path(tmp)
        one = None if args.no_one_unit else one_unit_export(export, src, work / "one-unit-export")
        n_one = units(one, src) if one is not None else 0
        results: dict[int, dict] = {}
        for w in args.workers:
            cluster = None
            if args.cluster:
                # The same engine for every worker count: a LocalCluster of w single-threaded processes,
                # started (and warmed up on the one-unit export) before the timed run.
                import dask
                from dask.distributed import LocalCluster

                from pfs.execution import WORKER_ENV

                with dask.config.set({"distributed.nanny.pre-spawn-environ": WORKER_ENV}):
                    cluster = LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
                cmd = [*pfs_command(), "extract", "--sources", src, "--scheduler", cluster.scheduler_address,
                       "--no-cache"]
            else:
                cmd = [*pfs_command(), "extract", "--sources", src, "--workers", str(w), "--no-cache"]
            try:
                if one is not None:
                    r1 = measure([*cmd[:2], str(one), *cmd[2:], "--out", str(work / f"one-w{w}")],
                                 work / f"one-w{w}.log")
                r = measure([*cmd[:2], str(export), *cmd[2:], "--out", str(work / f"out-w{w}")], work / f"w{w}.log")
            finally:
                if cluster is not None:
                    cluster.close()
            if r["rc"] != 0:
                print((work / f"w{w}.log").read_text(errors="replace")[-3000:])
                return 1
            if one is not None:
                r["one_wall_s"] = r1["wall_s"]
                r["one_cpu_s"] = r1["cpu_s"]
                r["marginal_s"] = (r["wall_s"] - r1["wall_s"]) / max(1, n_units - n_one)
            results[w] = r
            line = (f"--workers {w}: {r['wall_s']:7.1f} s for {n_units} {unit} = {n_units / r['wall_s']:7.2f} {unit}/s "
                    f"(start-up included); peak tree RSS {r['peak_tree_rss_mb']:5.0f} MB, largest process "
                    f"{r['max_process_rss_mb']:5.0f} MB, CPU {r['cpu_s']:6.1f} s")
            if one is not None:
                line += (f"\n             {r['one_wall_s']:7.1f} s for {n_one} {unit} (fixed cost; "
                         f"CPU {r['one_cpu_s']:.1f} s); marginal {r['marginal_s'] * 1000:.2f} ms per unit = "
                         f"{1 / r['marginal_s']:7.2f} {unit}/s without start-up")
            print(line)
    if 1 in results:
        base = results[1]
        for w, r in results.items():
            if w == 1:
                continue
            ratio = base["wall_s"] / r["wall_s"]
            msg = f"ratio {w} workers / 1 worker: {ratio:.2f} with start-up"
            if "marginal_s" in r:
                steady = base["marginal_s"] / r["marginal_s"]
                msg += f", {steady:.2f} without start-up (marginal throughput)"
                ratio = steady
            verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
            print(f"{msg}; target >= {TARGET_RATIO} ({verdict}{'' if src == 'imaging' else ', target is for imaging'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
