"""Benchmark: ``pfs extract`` end to end on a text-only cohort (load -> steroid + nlp -> reconcile -> write).

Usage::

    .venv/bin/python benchmarks/bench_end_to_end.py [--patients 10000] [--workers 1 2] [--seed 0]
        [--cohort-dir /tmp/pfs-bench-cohorts] [--rx-per-patient 100] [--reports-per-patient 20]
        [--base-patients 1000] [--no-cache-runs] [--profile]

Issue 8 target: a 10,000-patient cohort with about 1 M prescriptions and 200 k reports end to end in
<= 10 minutes on the 2-core machine, with a peak RSS <= 4 GB.

The cohort. ``pfs.synth.synthesize(..., images=False)`` writes about 36 prescriptions and 15.5
reports per patient (measured at 200 patients, seed 0) and takes about 17 ms per patient, i.e. about
3 minutes and only ~360 k prescriptions for 10,000 patients. To reach the target sizes quickly this
script therefore:

1. synthesizes a base cohort of ``--base-patients`` patients (default 1,000, about 20 s);
2. pads each base patient's orders and reports up to ``--rx-per-patient`` / ``--reports-per-patient``
   per patient on average (0 = no padding): every row gets ``floor(f)`` or ``ceil(f)`` copies in
   total (seeded draw), copy ``c`` shifted by ``c x 28`` days (a monthly refill / follow-up report)
   with new row ids. The drug-name, sig, dose and report-text mix is exactly synth's, so the work
   per row is realistic; the clinical meaning of padded rows is not (extra steroid refills become
   longer or extra courses): this benchmark measures speed, the eval_* scripts measure accuracy;
3. replicates the padded base cohort with new patient ids (``P000001`` ...) and new row ids until it
   has ``--patients`` patients (dates and texts unchanged; each copy is a different patient for the
   pipeline and for the cache keys).

The cohort is written once under ``--cohort-dir`` (keyed by its parameters) and reused by later
runs; its generation time is printed but not part of any timed figure.

The timed part. Each ``pfs extract EXPORT --out OUT --sources steroid,nlp --workers W`` runs as a
fresh child process (through a small wrapper that reports ``getrusage(RUSAGE_CHILDREN)``: the
largest ``ru_maxrss`` of any process of the tree, and the CPU seconds of the whole tree, which are
less sensitive to other load on the machine). Meanwhile the peak of the summed RSS of the whole
process tree (pfs, Dask nannies and workers) is sampled every 0.5 s with psutil (or /proc when psutil
is missing); the sum counts shared pages once per process, so it errs high. ``--workers 1`` runs in
process (no Dask); ``--workers N > 1`` includes the start of an N-process LocalCluster.

Then (unless ``--no-cache-runs``) the last --workers value runs twice with a per-patient cache: cold
(computes and writes the cache) and warm (everything reused). Finally the outputs of every run are
compared file by file (sha256 of every file outside ``cache/``): they must be byte-identical.
``--profile`` adds a cProfile of a ``--workers 1`` run (top functions by cumulative and own time).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TARGET_S = 600.0
TARGET_RSS_MB = 4096.0
SAMPLE_S = 0.5


# --- measuring a process tree ---------------------------------------------------------------------


def _tree_rss_psutil(root_pid: int, skip: int | None) -> float:
    import psutil

    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        if p.pid == skip:
            continue
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def _tree_rss_proc(root_pid: int, skip: int | None) -> float:
    """The same from /proc: children via /proc/PID/task/*/children, RSS from /proc/PID/status."""
    pids, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                pass
    total_kb = 0
    for pid in pids:
        if pid == skip:
            continue
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            pass
    return total_kb / 1024


def tree_rss_mb(root_pid: int, skip: int | None = None) -> float:
    """Summed resident memory (MiB) of ``root_pid`` and all its descendants, except ``skip``."""
    try:
        return _tree_rss_psutil(root_pid, skip)
    except ImportError:
        return _tree_rss_proc(root_pid, skip)


def measure(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> dict:
    """Run ``cmd`` through the ``--wrap`` child; wall time, sampled peak tree RSS, rusage of the tree."""
    rusage_file = log.with_suffix(".rusage.json")
    wrapper = [sys.executable, __file__, "--wrap", str(rusage_file), "--", *cmd]
    peak = [0.0]
    with log.open("w") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(wrapper, stdout=fh, stderr=subprocess.STDOUT, env=env)
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], tree_rss_mb(proc.pid, skip=proc.pid))
                stop.wait(SAMPLE_S)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rc = proc.wait()
        wall = time.perf_counter() - t0
        stop.set()
        sampler.join()
    ru = json.loads(rusage_file.read_text()) if rusage_file.exists() else {}
    return {"rc": rc, "wall_s": wall, "peak_tree_rss_mb": peak[0], **ru}


def _wrap(rusage_file: Path, cmd: list[str]) -> int:
    """The wrapper child: run ``cmd``, then record the rusage of everything it started."""
    rc = subprocess.call(cmd)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    rusage_file.write_text(json.dumps({"max_process_rss_mb": ru.ru_maxrss / 1024,
                                       "cpu_s": ru.ru_utime + ru.ru_stime}))
    return rc


# --- the cohort ---------------------------------------------------------------------------------


def _pad(frame, id_col: str, id_prefix: str, date_cols: list[str], per_patient: float, n_patients: int, seed: int):
    """Copies of every row (copy c shifted by c x 28 days) to reach ``per_patient`` rows per patient."""
    import numpy as np
    import pandas as pd

    if per_patient <= 0 or frame.empty:
        return frame
    factor = per_patient / (len(frame) / n_patients)
    if factor <= 1:
        return frame
    rng = np.random.default_rng(seed)
    copies = np.floor(factor).astype(int) + (rng.random(len(frame)) < factor - math.floor(factor))
    idx = np.repeat(np.arange(len(frame)), copies)
    # c = 0 for the original, 1, 2, ... for its copies
    c = np.arange(len(idx)) - np.repeat(np.cumsum(copies) - copies, copies)
    out = frame.iloc[idx].reset_index(drop=True)
    shift = pd.to_timedelta(c * 28, unit="D")
    for col in date_cols:
        d = pd.to_datetime(out[col], format="%Y-%m-%d", errors="coerce")
        out[col] = (d + shift).dt.strftime("%Y-%m-%d").where(d.notna(), out[col])
    out["_order"] = np.repeat(np.arange(len(frame)), copies)  # keep each patient's rows together
    out["_copy"] = c
    out = out.sort_values(["_order", "_copy"], kind="stable").drop(columns=["_order", "_copy"])
    out[id_col] = [f"{id_prefix}{i:08d}" for i in range(1, len(out) + 1)]
    return out.reset_index(drop=True)


def _replicate(frame, pid_map: dict[str, int], reps: int, n_base: int, n_total: int, id_col: str | None,
               id_prefix: str):
    """``reps`` copies of ``frame`` with patient i of copy r renamed P{r*n_base+i+1:06d}; first n_total patients."""
    import numpy as np
    import pandas as pd

    base_index = frame["patient_id"].map(pid_map).to_numpy()
    parts = []
    for r in range(reps):
        new = base_index + r * n_base
        keep = new < n_total
        part = frame.loc[keep].copy()
        part["patient_id"] = [f"P{i + 1:06d}" for i in new[keep]]
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    if id_col is not None:
        out[id_col] = np.char.add(id_prefix, np.char.zfill(np.arange(1, len(out) + 1).astype(str), 9))
    return out


def ensure_cohort(cohort_dir: Path, patients: int, base_patients: int, seed: int, rx_pp: float,
                  reports_pp: float) -> tuple[Path, dict]:
    """The export for these parameters, built once under ``cohort_dir`` (see the module docstring)."""
    import pandas as pd

    from pfs.io.output import write_table
    from pfs.synth import synthesize

    base_n = min(base_patients, patients)
    name = f"text-n{patients}-base{base_n}-seed{seed}-rx{rx_pp:g}-rep{reports_pp:g}"
    root = cohort_dir / name
    marker = root / "cohort.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        info["reused"] = True
        return root / "export", info
    if root.exists():
        shutil.rmtree(root)
    t0 = time.perf_counter()
    base = synthesize(root / "base", patients=base_n, seed=seed, images=False)
    t_synth = time.perf_counter() - t0
    read = dict(dtype=str, keep_default_na=False)
    pat = pd.read_csv(base.export / "patients.csv", **read)
    med = pd.read_csv(base.export / "medications.csv", **read)
    rep = pd.read_csv(base.export / "reports.csv", **read)
    synth_rx_pp, synth_rep_pp = len(med) / base_n, len(rep) / base_n
    med = _pad(med, "medication_id", "M", ["order_date", "end_date"], rx_pp, base_n, seed + 1)
    rep = _pad(rep, "report_id", "R", ["report_date"], reports_pp, base_n, seed + 2)
    pid_map = {pid: i for i, pid in enumerate(pat["patient_id"])}
    reps = -(-patients // base_n)
    export = root / "export"
    export.mkdir(parents=True)
    write_table(_replicate(pat, pid_map, reps, base_n, patients, None, ""), export / "patients.csv")
    med = _replicate(med, pid_map, reps, base_n, patients, "medication_id", "M")
    write_table(med, export / "medications.csv")
    rep = _replicate(rep, pid_map, reps, base_n, patients, "report_id", "R")
    write_table(rep, export / "reports.csv")
    shutil.rmtree(root / "base")
    info = {"patients": patients, "base_patients": base_n, "seed": seed,
            "synth_rx_per_patient": round(synth_rx_pp, 2), "synth_reports_per_patient": round(synth_rep_pp, 2),
            "prescriptions": len(med), "reports": len(rep),
            "csv_mb": round(sum(f.stat().st_size for f in export.glob("*.csv")) / 1e6, 1),
            "synth_s": round(t_synth, 1), "build_s": round(time.perf_counter() - t0, 1)}
    marker.write_text(json.dumps(info, indent=1))
    info["reused"] = False
    return export, info


# --- running and comparing ----------------------------------------------------------------------


def pfs_command() -> list[str]:
    """The installed ``pfs`` console script next to this interpreter, else ``python -m pfs.cli``."""
    script = Path(sys.executable).parent / "pfs"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pfs.cli"]


def output_hashes(out: Path) -> dict[str, str]:
    """sha256 of every file under ``out`` except the cache."""
    hashes = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if path.is_file() and rel.parts[0] != "cache":
            hashes[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def compare_outputs(runs: dict[str, Path]) -> tuple[bool, list[str]]:
    """Whether every run's outputs are byte-identical to the first's; the differing files otherwise."""
    names = list(runs)
    ref = output_hashes(runs[names[0]])
    diffs = []
    for name in names[1:]:
        other = output_hashes(runs[name])
        for f in sorted(set(ref) | set(other)):
            if ref.get(f) != other.get(f):
                diffs.append(f"{name} vs {names[0]}: {f}")
    return not diffs and bool(ref), diffs


def _line(label: str, r: dict, info: dict, patients: int) -> str:
    wall = r["wall_s"]
    return (f"{label:<34} {wall:8.1f} s  {patients / wall:8.1f} patients/s  {info['reports'] / wall:8.0f} reports/s  "
            f"{info['prescriptions'] / wall:9.0f} prescriptions/s  peak tree RSS {r['peak_tree_rss_mb']:6.0f} MB  "
            f"largest process {r.get('max_process_rss_mb', float('nan')):6.0f} MB  "
            f"CPU {r.get('cpu_s', float('nan')):7.1f} s"
            + ("" if r["rc"] == 0 else f"  EXIT CODE {r['rc']}"))


def _profile(export: Path, work: Path, top: int) -> None:
    """cProfile of a --workers 1 run (in this process's child), printed by cumulative and own time."""
    import pstats

    prof = work / "extract.prof"
    out = work / "out-profile"
    cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "pfs.cli", "extract", str(export),
           "--out", str(out), "--sources", "steroid,nlp", "--workers", "1", "--no-cache"]
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    print(f"\ncProfile of a --workers 1 run ({time.perf_counter() - t0:.1f} s with profiling overhead)")
    stats = pstats.Stats(str(prof), stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--wrap"]:
        return _wrap(Path(argv[1]), argv[3:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=10_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base-patients", type=int, default=1000, help="synthesized patients, replicated to --patients")
    ap.add_argument("--rx-per-patient", type=float, default=100, help="prescriptions per patient (0 = as synthesized)")
    ap.add_argument("--reports-per-patient", type=float, default=20, help="reports per patient (0 = as synthesized)")
    ap.add_argument("--cohort-dir", type=Path, default=Path(tempfile.gettempdir()) / "pfs-bench-cohorts")
    ap.add_argument("--work-dir", type=Path, default=None, help="outputs and logs (default: a temporary dir)")
    ap.add_argument("--no-cache-runs", action="store_true", help="skip the cold and warm runs with a cache")
    ap.add_argument("--profile", action="store_true", help="add a cProfile of a --workers 1 run")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    export, info = ensure_cohort(args.cohort_dir, args.patients, args.base_patients, args.seed,
                                 args.rx_per_patient, args.reports_per_patient)
    what = "reused" if info["reused"] else f"built in {time.perf_counter() - t0:.1f} s (synth {info['synth_s']} s)"
    print(f"cohort {export}: {info['patients']:,} patients (base {info['base_patients']:,}, seed {info['seed']}), "
          f"{info['prescriptions']:,} prescriptions, {info['reports']:,} reports, {info['csv_mb']} MB CSV; {what} "
          f"[synth writes {info['synth_rx_per_patient']} prescriptions and {info['synth_reports_per_patient']} "
          f"reports per patient; not timed]")
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    tmp = None
    if args.work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="pfs-bench-e2e-")
        work = Path(tmp.name)
    else:
        work = args.work_dir
        work.mkdir(parents=True, exist_ok=True)
    base_cmd = [*pfs_command(), "extract", str(export), "--sources", "steroid,nlp"]
    print(f"target: <= {TARGET_S:.0f} s end to end and peak RSS <= {TARGET_RSS_MB:.0f} MB")
    outs: dict[str, Path] = {}
    failed = False
    for w in args.workers:
        out = work / f"out-w{w}"
        shutil.rmtree(out, ignore_errors=True)
        r = measure([*base_cmd, "--out", str(out), "--workers", str(w), "--no-cache"], work / f"w{w}.log")
        print(_line(f"--workers {w} --no-cache", r, info, args.patients))
        failed |= _failed(r, work / f"w{w}.log")
        outs[f"workers={w}"] = out
        _verdict(r)
    if not args.no_cache_runs:
        w = args.workers[-1]
        out = work / f"out-w{w}-cache"
        shutil.rmtree(out, ignore_errors=True)
        for label in ("cold cache", "warm cache (rerun)"):
            r = measure([*base_cmd, "--out", str(out), "--workers", str(w)], work / f"w{w}-{label.split()[0]}.log")
            print(_line(f"--workers {w}, {label}", r, info, args.patients))
            failed |= _failed(r, work / f"w{w}-{label.split()[0]}.log")
        outs[f"workers={w} with cache"] = out
    same, diffs = compare_outputs(outs)
    if len(outs) > 1:
        print(f"outputs of {', '.join(outs)}: {'byte-identical' if same else 'DIFFERENT'} "
              f"({len(output_hashes(next(iter(outs.values()))))} files compared, cache/ excluded)")
    else:
        print("one run only: no outputs to compare")
    for d in diffs:
        print(f"  differs: {d}")
    if args.profile:
        _profile(export, work, 30)
    if tmp is not None:
        tmp.cleanup()
    return 1 if failed or not same else 0


def _failed(r: dict, log: Path) -> bool:
    """Print the end of a failed run's log (the work dir may be temporary)."""
    if r["rc"] == 0:
        return False
    print("\n".join(log.read_text(errors="replace").splitlines()[-30:]))
    return True


def _verdict(r: dict) -> None:
    ok_t = r["wall_s"] <= TARGET_S
    ok_m = r["peak_tree_rss_mb"] <= TARGET_RSS_MB
    print(f"{'':34} time {'meets' if ok_t else 'MISSES'} the target, memory {'meets' if ok_m else 'MISSES'} the target")


if __name__ == "__main__":
    sys.exit(main())
