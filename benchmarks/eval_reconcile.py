"""Evaluation: reconciled progression dates and the next-line therapy source on ``pfs synth`` cohorts.

Usage::

    .venv/bin/python benchmarks/eval_reconcile.py [--patients 92] [--seed 1] [--images]
        [--cohort-dir /tmp/pfs-eval-reconcile] [--outputs OUT ...]

For each cohort (synthesized once under ``--cohort-dir`` and reused) it runs ``pfs extract`` twice in
child processes of this interpreter (so ``PYTHONPATH`` decides which pfs tree runs):

``rules off``  the guideline without this issue's rules: no treatment source, no conflicts
               (``conflicting_assessments = []``), no non-measurable-nadir rule
               (``measurable_nadir_ml = 0``), steroid back-dating into the window allowed, the
               window opening at RT start (on a text-only cohort this reproduces the outputs of
               main before this work, b800e08, exactly);
``rules on``   the shipped configuration (all four sources).

``--outputs`` adds already written ``pfs extract`` folders of the same cohort (e.g. one made by an
older pfs tree) as further columns. ``--reuse OUT`` skips both extractions (MRI volumetry of a
92-patient cohort takes half an hour on a loaded 2-core machine) and reconciles again, in process,
the events and per-source tables of an existing ``pfs extract`` folder of the cohort, with the
treatment source's events computed afresh; the extractors' own outputs are the same, so this gives
the same endpoints as a full run. Printed per method (each source alone and reconciled): status
agreement with the annotations; share of the reference progressors dated within ±15 and ±30 days,
> 60 days early and > 60 days late; the median absolute lag (the reconciled row also against the
RANO date of the simulated course, which the annotations date one scan late for 10 % of patients);
and, for the treatment source, recall
within 7 days of the second-line start of the truth (``truth/truth_treatment.csv``) and the patients
who never start a second line yet get a treatment event.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

RULES_OFF = """[reconcile.guideline]
window_opens = "rt_start"
conflicting_assessments = []
measurable_nadir_ml = 0.0
steroid_backdate_after_window = false
steroid_backdate_max_days = 90
[pipeline]
sources = ["steroid", "nlp", "imaging"]
"""


def _pfs(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pfs", *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"pfs {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")


def cohort(root: Path, patients: int, seed: int, images: bool) -> Path:
    where = root / f"synth-{patients}-{seed}-{'img' if images else 'noimg'}"
    if not (where / "annotations.csv").exists():
        t = time.perf_counter()
        flags = [] if images else ["--no-images"]
        _pfs("synth", str(where), "--patients", str(patients), "--seed", str(seed), *flags)
        print(f"synthesized {where} in {time.perf_counter() - t:.0f} s")
    return where


def extract(export: Path, out: Path, config: str | None) -> float:
    args = ["extract", str(export), "--out", str(out), "--workers", "1"]
    if config:
        path = out.parent / f"{out.name}.toml"
        path.write_text(config, encoding="utf-8")
        args += ["--config", str(path)]
    t = time.perf_counter()
    _pfs(*args)
    return time.perf_counter() - t


def truth_reference(truth: Path) -> pd.DataFrame:
    """The RANO date of the simulated course itself (the annotations add rater variability to it)."""
    t = pd.read_csv(truth / "truth_patients.csv", dtype={"patient_id": str}, parse_dates=["rano_progression_date"])
    return pd.DataFrame({"patient_id": t["patient_id"], "progressed": t["rano_progression_date"].notna().astype(int),
                         "progression_date": t["rano_progression_date"]})


def scores(out: Path, annotations: Path | pd.DataFrame) -> pd.DataFrame:
    """Per method: status agreement, date shares of the reference progressors, median |lag|."""
    ep = pd.read_csv(out / "endpoints.csv", dtype={"patient_id": str}, parse_dates=["progression_date"])
    ann = annotations if isinstance(annotations, pd.DataFrame) else pd.read_csv(
        annotations, dtype={"patient_id": str}, parse_dates=["progression_date"])
    rows = []
    for method, e in ep.groupby("method", sort=False):
        m = e.merge(ann, on="patient_id", suffixes=("", "_ref"))
        ref = m["progressed_ref"] == 1
        lag = (m["progression_date"] - m["progression_date_ref"]).dt.days[ref & (m["progressed"] == 1)]
        n_ref = int(ref.sum())
        rows.append({"method": method, "status agreement": (m["progressed"] == m["progressed_ref"]).mean(),
                     "within ±15 d": (lag.abs() <= 15).sum() / n_ref, "within ±30 d": (lag.abs() <= 30).sum() / n_ref,
                     "> 60 d early": (lag < -60).sum() / n_ref, "> 60 d late": (lag > 60).sum() / n_ref,
                     "median |lag| d": lag.abs().median()})
    return pd.DataFrame(rows).set_index("method")


def treatment_scores(out: Path, truth: Path) -> dict[str, str]:
    ev = pd.read_csv(out / "events.csv", dtype={"patient_id": str}, parse_dates=["event_date"])
    ev = ev.loc[ev["source"] == "treatment"]
    if not (truth / "truth_treatment.csv").exists():  # a cohort made before pfs synth wrote it
        return {}
    t = pd.read_csv(truth / "truth_treatment.csv", dtype={"patient_id": str}, parse_dates=["second_line_start_date"])
    first = ev.groupby("patient_id")["event_date"].min()
    starts = t.dropna(subset=["second_line_start_date"])
    hit = sum(1 for r in starts.itertuples() if r.patient_id in first.index
              and abs((first[r.patient_id] - r.second_line_start_date).days) <= 7)
    never = t.loc[t["second_line_start_date"].isna(), "patient_id"]
    false = int(never.isin(first.index).sum())
    return {"second-line starters": f"{len(starts)}",
            "events within 7 days": f"{hit} ({hit / max(1, len(starts)):.0%})",
            "never start one": f"{len(never)}", "of them with a treatment event": f"{false}"}


def rereconcile(cohort_root: Path, out: Path, dest: Path, config: str | None) -> Path:
    """Endpoints of ``out``'s events (plus the treatment source's) reconciled again under ``config``."""
    import tomllib

    from pfs.extractors import SOURCES, load_extractor
    from pfs.io.export import load_export
    from pfs.io.output import write_table
    from pfs.pipeline import endpoints_for
    from pfs.reconcile.assessments import from_tables
    from pfs.settings import load_config

    cfg = load_config(tomllib.loads(config) if config else None)
    sources = list(cfg.section("pipeline")["sources"] or SOURCES)
    export = load_export(cohort_root / "export")
    events = pd.read_csv(out / "events.csv", dtype={"patient_id": str, "ref_id": str}, parse_dates=["event_date"],
                         keep_default_na=False, na_values=[""])
    events = events.loc[events["source"] != "treatment"]
    if "treatment" in sources:
        events = pd.concat([events, load_extractor("treatment").extract(export, cfg).events], ignore_index=True)
    events = events.loc[events["source"].isin(sources)].reset_index(drop=True)
    ran = [s for s in sources if (events["source"] == s).any() or s in ("steroid", "nlp", "treatment")]
    old = pd.read_csv(out / "endpoints.csv", dtype={"patient_id": str}, parse_dates=["last_followup_date"])
    fu = old.drop_duplicates("patient_id").set_index("patient_id")["last_followup_date"]
    tables = {n: out / f"{n}.csv" for n in ("report_labels", "volumes") if (out / f"{n}.csv").exists()}
    patients = export.table("patients")
    endpoints, reconciled = endpoints_for(patients, [fu.dropna().rename("d")], events, cfg, ran, from_tables(tables))
    dest.mkdir(parents=True, exist_ok=True)
    write_table(endpoints, dest / "endpoints.csv")
    write_table(events, dest / "events.csv")
    write_table(reconciled, dest / "reconciled_events.csv")
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=92)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--images", action="store_true", help="with MRI volumes (slow on 2 cores)")
    ap.add_argument("--cohort-dir", type=Path, default=Path("/tmp/pfs-eval-reconcile"))
    ap.add_argument("--outputs", type=Path, nargs="*", default=[], help="more extract folders of this cohort")
    ap.add_argument("--reuse", type=Path, help="reconcile again the events of this extract folder of the cohort")
    ap.add_argument("--cohort", type=Path, help="an existing pfs synth folder (instead of --patients/--seed)")
    a = ap.parse_args()
    root = a.cohort or cohort(a.cohort_dir, a.patients, a.seed, a.images)
    runs = {}
    for label, config in (("rules off", RULES_OFF), ("rules on", None)):
        out = root.parent / f"{root.name}-{label.replace(' ', '-')}"
        t = time.perf_counter()
        if a.reuse:
            rereconcile(root, a.reuse, out, config)
            print(f"{label}: reconciled again from {a.reuse} in {time.perf_counter() - t:.0f} s")
        else:
            print(f"{label}: pfs extract {extract(root / 'export', out, config):.0f} s")
        runs[label] = out
    for extra in a.outputs:
        runs[str(extra)] = extra
    pd.set_option("display.width", 160)
    for label, out in runs.items():
        print(f"\n== {label} ({out})")
        print(scores(out, root / "annotations.csv").to_string(float_format=lambda x: f"{x:.3f}"))
        print("reconciled against the RANO date of the simulated course (no rater variability): " + "; ".join(
            f"{k} {v:.3f}" for k, v in scores(out, truth_reference(root / "truth")).loc["reconciled"].items()))
        tx = treatment_scores(out, root / "truth")
        if tx:
            print("treatment source: " + "; ".join(f"{k}: {v}" for k, v in tx.items()))


if __name__ == "__main__":
    main()
