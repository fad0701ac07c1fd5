"""Score the report NLP on the shared development set and count progression calls on real clinical notes.

    python benchmarks/eval_reports.py [--out DIR] [--split tune|holdout|both] [--show-errors]

* ``../shared/data/radiology-reports-dev/reports.csv`` (243 labelled brain-MRI reports): labels every report
  with the extractor API (``label_reports``), writes ``DIR/report_labels.csv`` and scores it with
  ``../shared/tools/score_reports.py`` on the fixed splits (``tests/data/radiology_eval/dev_split/*.txt``,
  made by ``split_reports_dev.py``). Held-out errors are never listed (only the figures): keep it unseen.
* ``../shared/data/mtsamples-neuro/notes.csv`` (62 real notes, unlabelled): every note must get a row;
  prints how many are called progression and their ids (no text).

Skips with a message when ../shared is absent. Report text is never printed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from pfs.extractors.nlp import build_pipeline, label_reports
from pfs.settings import load_config

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DEV = SHARED / "data" / "radiology-reports-dev" / "reports.csv"
NOTES = SHARED / "data" / "mtsamples-neuro" / "notes.csv"
SCORER = SHARED / "tools" / "score_reports.py"
SPLITS = ROOT / "tests" / "data" / "radiology_eval" / "dev_split"


def _as_reports(frame: pd.DataFrame, id_col: str, procedure: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"patient_id": "DEV", "report_id": frame[id_col].astype(str),
                         "report_date": pd.Timestamp("2021-01-01"), "procedure": procedure.fillna(""),
                         "text": frame["text"].fillna("")})


def score(labels_csv: Path, split: str, show_errors: bool) -> None:
    ids = SPLITS / f"{split}.txt"
    out = subprocess.run([sys.executable, str(SCORER), str(labels_csv), str(DEV), "--ids", str(ids)],
                         capture_output=True, text=True, check=True).stdout
    print(f"\n== {split} split ({ids.name})")
    for line in out.splitlines():
        if line.startswith("misread:") and not (show_errors and split == "tune"):
            continue
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="folder for report_labels.csv (default: temporary)")
    ap.add_argument("--split", choices=["tune", "holdout", "both"], default="tune")
    ap.add_argument("--show-errors", action="store_true", help="list misread tune-split ids (never held-out)")
    args = ap.parse_args()
    if not DEV.exists():
        print(f"skipped: {DEV} is absent")
        return
    settings = load_config().section("nlp")
    pipeline = build_pipeline(settings)
    out = args.out or Path(tempfile.mkdtemp(prefix="pfs_eval_reports_"))
    out.mkdir(parents=True, exist_ok=True)
    dev = pd.read_csv(DEV, dtype=str, keep_default_na=False)
    t0 = time.perf_counter()
    labels, _, _ = label_reports(_as_reports(dev, "report_id", dev["procedure"]), pipeline, settings)
    dt = time.perf_counter() - t0
    assert len(labels) == len(dev), "every report must get a row"
    labels.drop(columns=["certainty", "markup_cleaned"], errors="ignore").to_csv(out / "report_labels.csv", index=False)
    print(f"{len(dev)} dev reports labelled in {dt:.2f} s -> {out / 'report_labels.csv'}")
    for split in (["tune", "holdout"] if args.split == "both" else [args.split]):
        score(out / "report_labels.csv", split, args.show_errors)
    if NOTES.exists():
        notes = pd.read_csv(NOTES, dtype=str, keep_default_na=False)
        # As exported (no procedure: the text decides whether it is a brain MRI) and read as if every note were
        # a brain-MRI report (the harder test: the content alone must not make progression).
        for name, procedure in (("as exported", ""), ("as brain MRI", "MRI BRAIN W/WO CONTRAST")):
            nl, _, _ = label_reports(_as_reports(notes, "id", pd.Series([procedure] * len(notes))), pipeline,
                                     settings)
            assert len(nl) == len(notes), "every note must get a row"
            tag = "exported" if not procedure else "brain_mri"
            nl.drop(columns=["certainty", "markup_cleaned"], errors="ignore").to_csv(
                out / f"notes_labels_{tag}.csv", index=False)
            prog = nl.loc[nl["label"] == "progression", "report_id"].tolist()
            counts = nl["label"].value_counts().to_dict()
            print(f"\n== mtsamples-neuro {name}: {len(notes)} notes, labels {counts}")
            print(f"called progression: {len(prog)} {' '.join(prog)}")


if __name__ == "__main__":
    main()
