"""Reading the hand-labelled report set and scoring labels: per-label precision/recall/F1, macro-F1, confusion.

The labelled set lives in ``tests/data/radiology_eval/`` as plain text, one record per report::

    ### E001 | progression | MRI BRAIN W/WO CONTRAST
    <report text, any number of lines>

Report IDs whose number is divisible by 3 form the held-out split (kept out of rule tuning).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from pfs.vocab import ReportLabel

_HEADER = re.compile(r"^### (\S+) \| (\w+) \| (.*)$")


def split_of(report_id: str) -> str:
    """'heldout' for IDs whose number is divisible by 3, else 'dev' (fixed before any tuning)."""
    digits = re.sub(r"\D", "", report_id)
    return "heldout" if digits and int(digits) % 3 == 0 else "dev"


def read_labelled_reports(folder: Path | str) -> pd.DataFrame:
    """All records of ``folder/*.txt`` as a reports-table frame plus ``gold`` and ``split`` columns."""
    records = []
    for path in sorted(Path(folder).glob("*.txt")):
        current: dict | None = None
        for line in path.read_text(encoding="utf-8").splitlines():
            m = _HEADER.match(line)
            if m:
                if current:
                    records.append(current)
                current = {"report_id": m.group(1), "gold": m.group(2), "procedure": m.group(3).strip(), "lines": []}
            elif current is not None:
                current["lines"].append(line)
            elif line.strip() and not line.startswith("#"):
                raise ValueError(f"{path}: text before the first ### header")
        if current:
            records.append(current)
    frame = pd.DataFrame([{
        "patient_id": "EVAL", "report_id": r["report_id"], "report_date": pd.Timestamp("2021-01-01"),
        "procedure": r["procedure"], "text": "\n".join(r["lines"]).strip() + "\n", "gold": r["gold"],
        "split": split_of(r["report_id"]),
    } for r in records])
    valid = {str(x) for x in ReportLabel}
    bad = sorted(set(frame["gold"]) - valid)
    if bad:
        raise ValueError(f"unknown gold labels {bad}")
    if frame["report_id"].duplicated().any():
        raise ValueError(f"duplicate report ids {frame.loc[frame['report_id'].duplicated(), 'report_id'].tolist()}")
    return frame


def scores(gold: pd.Series, pred: pd.Series) -> tuple[pd.DataFrame, float, pd.DataFrame]:
    """(per-label precision/recall/F1/support, macro-F1 over labels present in gold, confusion gold x pred)."""
    gold = gold.astype(str).reset_index(drop=True)
    pred = pred.astype(str).reset_index(drop=True)
    labels = [str(x) for x in ReportLabel if str(x) in set(gold) | set(pred)]
    rows = []
    for lab in labels:
        tp = int(((gold == lab) & (pred == lab)).sum())
        fp = int(((gold != lab) & (pred == lab)).sum())
        fn = int(((gold == lab) & (pred != lab)).sum())
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        rows.append({"label": lab, "precision": p, "recall": r, "f1": f, "support": tp + fn})
    table = pd.DataFrame(rows).set_index("label")
    present = table.loc[table["support"] > 0]
    macro = float(present["f1"].mean()) if len(present) else 0.0
    confusion = pd.crosstab(pd.Categorical(gold, labels), pd.Categorical(pred, labels),
                            rownames=["gold"], colnames=["predicted"], dropna=False)
    return table, macro, confusion
