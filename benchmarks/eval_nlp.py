"""Accuracy of the radiology-report labels.

    python benchmarks/eval_nlp.py                 # hand-labelled set, dev split
    python benchmarks/eval_nlp.py --split heldout # the held-out split (kept out of rule tuning)
    python benchmarks/eval_nlp.py --synth OUT --patients 60 --seed 7
        # also: a synthetic cohort (pfs.synth) scored against written_label / true_label, and NLP
        # events against annotations.csv (sensitivity, lag in days and months)

Prints per-label precision/recall/F1, macro-F1 and the confusion matrix. Never prints report text
unless --show-errors is given (the eval set is hand-written, not patient data).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pfs.extractors.nlp import build_pipeline, label_reports
from pfs.extractors.nlp.evaluation import read_labelled_reports, scores
from pfs.settings import load_config

EVAL_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "radiology_eval"


def show(title: str, gold: pd.Series, pred: pd.Series) -> float:
    table, macro, confusion = scores(gold, pred)
    print(f"\n== {title}: {len(gold)} reports, macro-F1 {macro:.3f}")
    print(table.round(3).to_string())
    print(confusion.to_string())
    return macro


def eval_set(split: str, show_errors: bool) -> None:
    settings = load_config().section("nlp")
    pipeline = build_pipeline(settings)
    data = read_labelled_reports(EVAL_DIR)
    if split != "all":
        data = data.loc[data["split"] == split].reset_index(drop=True)
    labels, _, _ = label_reports(data, pipeline, settings)
    show(f"eval set ({split})", data["gold"], labels["label"])
    if show_errors:
        wrong = labels["label"] != data["gold"]
        for i in data.index[wrong]:
            print(f"\n{data.at[i, 'report_id']}: gold {data.at[i, 'gold']}, got {labels.at[i, 'label']} "
                  f"[{labels.at[i, 'rule']}] {labels.at[i, 'evidence_sentence'][:160]}")


def eval_synth(out: Path, patients: int, seed: int) -> None:
    from pfs.io import load_export
    from pfs.synth import synthesize

    if not (out / "export" / "reports.csv").exists():
        synthesize(out, patients=patients, seed=seed, images=False)
    cfg = load_config()
    export = load_export(out / "export", tables=("patients", "reports"))
    from pfs.extractors.nlp import extract

    result = extract(export, cfg)
    labels = result.tables["report_labels"]
    truth = pd.read_csv(out / "truth" / "truth_reports.csv", dtype=str)
    merged = labels.merge(truth, on="report_id", how="inner", suffixes=("", "_truth"))
    for col in ("written_label", "true_label"):
        if col in merged:
            keep = merged[col].notna() & (merged[col] != "")
            show(f"synthetic vs {col}", merged.loc[keep, col], merged.loc[keep, "label"])
    ann = pd.read_csv(out / "annotations.csv", parse_dates=["progression_date"])
    ev = result.events.groupby("patient_id")["event_date"].min()
    prog = ann.loc[ann["progressed"] == 1].set_index("patient_id")["progression_date"]
    found = prog.index.intersection(ev.index)
    lag = (ev.loc[found] - prog.loc[found]).dt.days
    n_pat = len(ann)
    print(f"\n== synthetic events: {n_pat} patients, {len(prog)} progressed per annotations")
    print(f"patients with an NLP event: {ev.index.nunique()} ({ev.index.nunique() / n_pat:.0%} of all)")
    print(f"sensitivity (annotated progressions with an NLP event): {len(found)}/{len(prog)} = "
          f"{len(found) / max(len(prog), 1):.0%}")
    false_alarm = ev.index.difference(prog.index)
    print(f"NLP events in patients without annotated progression: {len(false_alarm)}")
    if len(lag):
        print(f"lag NLP - annotation (days): mean {lag.mean():.1f}, median {lag.median():.1f}, "
              f"mean {lag.mean() / 30.44:.2f} months; earlier by > 30 days: {(lag < -30).sum()}, "
              f"within 30 days: {(lag.abs() <= 30).sum()}, later by > 30 days: {(lag > 30).sum()}")
    print("counts:", result.counts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=["dev", "heldout", "all"], default="dev")
    ap.add_argument("--show-errors", action="store_true")
    ap.add_argument("--synth", type=Path, help="directory of (or for) a synthetic cohort")
    ap.add_argument("--patients", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    eval_set(args.split, args.show_errors)
    if args.synth:
        eval_synth(args.synth, args.patients, args.seed)


if __name__ == "__main__":
    main()
