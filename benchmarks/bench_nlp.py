"""Speed of the radiology-report extractor, end to end (load -> labels and events written).

    python benchmarks/bench_nlp.py --reports 3000 --workers 1 2 [--medspacy-reports 1000]

workers=1 runs in this process; 2 starts a local Dask cluster (one spaCy pipeline per worker process).
Then, side by side in this process on the same texts, pfs's report analysis (``label_reports``) and
medspaCy's default pipeline (``medspacy.load()``: its tokenizer, PyRuSH sentences, TargetMatcher with pfs's
target rules, ConText with its default rules) over ``nlp.pipe``, and the ratio of their speeds (goal >= 20x).

Builds an export of ~1.5 kB brain-MRI reports (the hand-written evaluation texts, each preceded by a
realistic history/technique/comparison block) in a temporary directory, then times
``load_export`` + ``pfs.extractors.nlp.extract`` + writing report_labels.csv and events.csv.
The pipeline build (imports, rules) is timed separately: it is paid once per run.
The target is >= 500 reports/s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from pfs.extractors.nlp.evaluation import read_labelled_reports
from pfs.io import load_export
from pfs.io.output import write_table
from pfs.settings import load_config

EVAL_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "radiology_eval"
PREAMBLE = (
    "EXAM: MRI BRAIN WITH AND WITHOUT CONTRAST\n\n"
    "CLINICAL HISTORY: {age}-year-old with glioblastoma of the {side} {lobe} lobe, status post resection and "
    "chemoradiation with temozolomide. Follow-up imaging for treatment response.\n\n"
    "TECHNIQUE: Multiplanar multisequence MR imaging of the brain was performed before and after the intravenous "
    "administration of {ml} mL gadobutrol. Sequences include sagittal T1, axial T2, axial FLAIR, axial DWI with "
    "ADC map, "
    "axial SWI, DSC perfusion and post-contrast 3D T1 MPRAGE with multiplanar reformats.\n\n"
    "COMPARISON: MRI brain {d1} and {d2}.\n\n"
    "Ventricles and sulci are appropriate for age. No extra-axial collection. Major intracranial flow voids are "
    "preserved. Paranasal sinuses and mastoid air cells are clear. Orbits are unremarkable. There is no acute "
    "infarct on diffusion-weighted imaging. Scattered punctate foci of T2/FLAIR hyperintensity in the periventricular "
    "and subcortical white matter are nonspecific, likely chronic microangiopathy. Susceptibility-weighted images show "
    "postoperative blood products along the surgical tract. The pituitary gland and the craniocervical junction are "
    "unremarkable. Calvarium: postoperative changes of craniotomy, otherwise normal marrow signal. The visualized "
    "portions of the cervical spinal cord are normal. No abnormal leptomeningeal enhancement is seen.\n"
)


def make_export(root: Path, n: int) -> None:
    evals = read_labelled_reports(EVAL_DIR)
    evals = evals.loc[~evals["gold"].eq("not_applicable")].reset_index(drop=True)
    rows = []
    for i in range(n):
        src = evals.iloc[i % len(evals)]
        text = PREAMBLE.format(age=40 + i % 40, side=("left", "right")[i % 2],
                               lobe=("frontal", "temporal", "parietal")[i % 3], ml=5 + i % 4,
                               d1=f"2021-0{1 + i % 9}-1{i % 10}", d2=f"2020-1{i % 3}-0{1 + i % 9}") + src["text"]
        rows.append({"patient_id": f"P{i // 10:05d}", "report_id": f"R{i:06d}",
                     "report_date": (pd.Timestamp("2021-01-01") + pd.Timedelta(days=i % 700)).date().isoformat(),
                     "procedure": src["procedure"], "text": text})
    reports = pd.DataFrame(rows)
    patients = pd.DataFrame({"patient_id": sorted(reports["patient_id"].unique())})
    patients["diagnosis_date"] = "2020-01-01"
    patients["surgery_date"] = "2020-01-10"
    patients["rt_end_date"] = "2020-03-20"
    root.mkdir(parents=True, exist_ok=True)
    patients.to_csv(root / "patients.csv", index=False)
    reports.to_csv(root / "reports.csv", index=False)
    size = reports["text"].str.len().mean()
    print(f"{n} reports, mean {size:.0f} characters")


def compare_with_medspacy(root: Path, n: int) -> None:
    """Reports/s of pfs's analysis and of medspaCy's default pipeline on the same n texts, one process."""
    import warnings

    import medspacy
    from medspacy.target_matcher import TargetRule

    import pfs.extractors.nlp as nlp_mod
    from pfs.extractors.nlp.pipeline import read_rule_file

    reports = pd.read_csv(root / "reports.csv").head(n)
    texts = reports["text"].tolist()
    settings = load_config().section("nlp")
    pipeline = nlp_mod.pipeline_for(settings)
    t0 = time.perf_counter()
    nlp_mod.label_reports(reports.assign(report_date=pd.to_datetime(reports["report_date"])), pipeline, settings)
    pfs_rate = len(texts) / (time.perf_counter() - t0)
    try:  # PyRuSH (medspaCy's sentence splitter) logs every sentence through loguru at DEBUG level
        from loguru import logger

        logger.remove()
    except ImportError:
        pass
    ms = medspacy.load()
    ms.get_pipe("medspacy_target_matcher").add([TargetRule.from_dict(dict(r)) for r in read_rule_file("targets")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        list(ms.pipe(texts[:20]))  # warm-up
        t0 = time.perf_counter()
        for _ in ms.pipe(texts, batch_size=64):
            pass
    ms_rate = len(texts) / (time.perf_counter() - t0)
    print(f"same {len(texts)} texts, one process: pfs label_reports {pfs_rate:.0f} reports/s, "
          f"medspaCy default pipeline {ms_rate:.1f} reports/s, ratio {pfs_rate / ms_rate:.1f}x (goal >= 20x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reports", type=int, default=3000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--medspacy-reports", type=int, default=1000,
                    help="texts for the side-by-side comparison with medspaCy's default pipeline (0: skip)")
    args = ap.parse_args()
    import pfs.extractors.nlp as nlp_mod
    from pfs.execution import make_runner
    from pfs.sources import run_source

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "export"
        make_export(root, args.reports)
        cfg = load_config()
        t0 = time.perf_counter()
        nlp_mod.pipeline_for(cfg.section("nlp"))
        print(f"pipeline build (imports + rules): {time.perf_counter() - t0:.2f} s (once per process)")
        export = load_export(root, tables=("patients", "reports"))
        for workers in args.workers:
            t0 = time.perf_counter()
            runner = make_runner(workers)
            try:
                run_source("nlp", export, cfg, runner=runner)  # warm-up: each worker builds its pipeline
                warm = time.perf_counter() - t0
                t0 = time.perf_counter()
                result = run_source("nlp", export, cfg, runner=runner).result
                write_table(result.tables["report_labels"], Path(tmp) / "out" / "report_labels.csv")
                write_table(result.events, Path(tmp) / "out" / "events.csv")
                dt = time.perf_counter() - t0
            finally:
                runner.close()
            print(f"workers={workers}: {args.reports / dt:.0f} reports/s ({dt:.2f} s; {len(result.events)} events; "
                  f"start-up and first pass {warm:.1f} s)")
        if args.medspacy_reports:
            compare_with_medspacy(root, min(args.medspacy_reports, args.reports))


if __name__ == "__main__":
    main()
