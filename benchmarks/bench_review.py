"""Serving time of `pfs review` at 10,000 patients: the patient list and a patient page (target < 300 ms each).

    python benchmarks/bench_review.py [--patients 10000] [--template OUT] [--work DIR] [--requests 30]

How the 10,000-patient run is built (no full extract): a small real run (`pfs synth --no-images`,
12 patients, seed 7, then `pfs extract --sources steroid,nlp`; or any `--template OUT`) is replicated
table by table: every output table (endpoints, events, reconciled_events, report_labels, steroid
courses and daily doses, volumes) and the export tables the review reads (patients, medications,
reports) are copied with new patient ids and every row id (report, medication, study, course and
event reference ids) suffixed per copy, so ids stay unique and the offsets still point into the same
report texts. The server is a real uvicorn on 127.0.0.1, timed from a separate client (httpx) over
HTTP; the first start, which copies report texts into the review database, is timed separately.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

ID_COLUMNS = ("report_id", "medication_id", "study_id", "course_id", "ref_id", "first_medication_id", "ref_ids")


def _template(work: Path) -> Path:
    out = work / "template-out"
    if (out / "endpoints.csv").exists():
        return out
    from pfs.pipeline import run_extract
    from pfs.synth import synthesize

    synth = synthesize(work / "template-synth", patients=12, seed=7, images=False)
    run_extract(synth.export, out, sources=["steroid", "nlp"], workers=1)
    return out


def _replicate(frame: pd.DataFrame, copies: int) -> pd.DataFrame:
    parts = []
    for k in range(copies):
        part = frame.copy()
        suffix = f"-c{k:04d}"
        part["patient_id"] = part["patient_id"] + suffix
        for col in ID_COLUMNS:
            if col in part:
                part[col] = part[col].map(
                    lambda v, s=suffix: ",".join(t + s if t else t for t in str(v).split(",")) if v else v)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def build_big_run(template: Path, work: Path, patients: int) -> Path:
    """The replicated run in WORK/big-out (export in WORK/big-export); reused when already built."""
    out, export = work / f"big-out-{patients}", work / f"big-export-{patients}"
    if (out / "endpoints.csv").exists():
        return out
    manifest = json.loads((template / "manifest.json").read_text(encoding="utf-8"))
    base = pd.read_csv(template / "endpoints.csv", dtype=str, keep_default_na=False)
    copies = -(-patients // base["patient_id"].nunique())
    out.mkdir(parents=True, exist_ok=True)
    export.mkdir(parents=True, exist_ok=True)
    for name in ("endpoints", "events", "reconciled_events", "report_labels", "steroid_courses", "steroid_daily",
                 "volumes"):
        path = template / f"{name}.csv"
        if path.exists():
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            _replicate(frame, copies).to_csv(out / f"{name}.csv", index=False)
    src = Path(manifest["export"])
    for name in ("patients", "medications", "reports"):
        frame = pd.read_csv(src / f"{name}.csv", dtype=str, keep_default_na=False)
        _replicate(frame, copies).to_csv(export / f"{name}.csv", index=False)
    manifest["export"] = str(export)
    manifest["inputs"] = {"replicated_from": str(template), "copies": copies}
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return out


def _time(client, url: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(url)
        times.append(1000 * (time.perf_counter() - t))
        if r.status_code != 200:
            raise SystemExit(f"{url}: HTTP {r.status_code}")
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=10_000)
    ap.add_argument("--template", type=Path, help="a `pfs extract` output to replicate (default: build one)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "pfs-bench-review")
    ap.add_argument("--requests", type=int, default=30, help="requests per timed URL")
    args = ap.parse_args()
    os.environ.setdefault("PFS_WORKERS", "1")
    args.work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    out = build_big_run(args.template or _template(args.work), args.work, args.patients)
    print(f"run: {out} ({time.perf_counter() - t:.1f} s to build or reuse)")

    import httpx
    import uvicorn

    from pfs.review.app import create_app
    from pfs.review.server import build_state

    db_path = args.work / f"review-{args.patients}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    t = time.perf_counter()
    state = build_state(out, db_path=db_path, reviewer="bench", say=lambda m: print(f"  {m}"))
    print(f"first start (read run, copy report texts into SQLite): {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    state = build_state(out, db_path=db_path, reviewer="bench")
    print(f"later start (texts reused): {time.perf_counter() - t:.1f} s")
    n = len(state.run.summary)
    port = 8791
    srv = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning",
                                        access_log=False))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    ids = state.run.summary["patient_id"].tolist()
    picks = [ids[i * (n - 1) // 9] for i in range(10)]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        csrf = state.csrf
        posts = []
        for pid in ids[: n // 5]:  # a fifth of the cohort already reviewed, so statuses are mixed
            t = time.perf_counter()
            r = client.post(f"/api/patients/{pid}/review", json={"decision": "accept"}, headers={"X-CSRF-Token": csrf})
            posts.append(1000 * (time.perf_counter() - t))
            if r.status_code != 200:
                raise SystemExit(f"POST review: HTTP {r.status_code}")
        posts.sort()
        print(f"POST /api/patients/{{id}}/review x {len(posts)}: median {statistics.median(posts):.1f} ms, "
              f"p95 {posts[int(0.95 * len(posts))]:.1f} ms")
        cases = {
            "list page (HTML, first 100)": ["/"],
            "list page sorted by reconciled date, desc": ["/?sort=reconciled_date&desc=1"],
            "list page filtered: unreviewed, page 50": [f"/?filter=unreviewed&offset={100 * 50}"],
            "list page filtered: sources disagree": ["/?filter=disagree"],
            "GET /api/patients (100)": ["/api/patients"],
            "patient page (HTML), 10 patients": [f"/patients/{p}" for p in picks],
            "GET /api/patients/{id}, 10 patients": [f"/api/patients/{p}" for p in picks],
        }
        print(f"\n{n:,} patients; {args.requests} requests per URL; ms per request (client side, over HTTP)")
        print(f"{'what':48} {'median':>8} {'p95':>8} {'max':>8}")
        for label, urls in cases.items():
            _time(client, urls[0], 2)  # warm
            times = [x for u in urls for x in _time(client, u, max(1, args.requests // len(urls)))]
            times.sort()
            p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
            print(f"{label:48} {statistics.median(times):8.1f} {p95:8.1f} {max(times):8.1f}")
    srv.should_exit = True
    print(f"\ncores: {os.cpu_count()}; python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
