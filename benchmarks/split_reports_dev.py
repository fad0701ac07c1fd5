"""Fix the tune / held-out split of the shared radiology-report development set (run once, before tuning).

    python benchmarks/split_reports_dev.py [../shared/data/radiology-reports-dev/reports.csv]

A seeded, stratified third of the reports (by setting and gold label) is held out: it is scored only at the
end, its texts and per-report errors unread while rules are tuned. Writes the report ids, one per line, to
tests/data/radiology_eval/dev_split/tune.txt and holdout.txt. Reads only ids, settings and labels.
"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT.parent / "shared" / "data" / "radiology-reports-dev" / "reports.csv"
OUT = ROOT / "tests" / "data" / "radiology_eval" / "dev_split"
SEED = 15


def split(rows: list[dict[str, str]], seed: int = SEED) -> tuple[list[str], list[str]]:
    """(tune ids, held-out ids): every (setting, label) stratum contributes a third (rounded) to held-out."""
    strata: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        strata.setdefault((r["setting"], r["label"]), []).append(r["report_id"])
    rng = random.Random(seed)
    tune, held = [], []
    for key in sorted(strata):
        ids = sorted(strata[key])
        rng.shuffle(ids)
        k = round(len(ids) / 3)
        held += ids[:k]
        tune += ids[k:]
    return sorted(tune), sorted(held)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    csv.field_size_limit(sys.maxsize)
    with open(path, newline="", encoding="utf-8") as f:
        rows = [{k: r[k] for k in ("report_id", "setting", "label")} for r in csv.DictReader(f)]
    tune, held = split(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "tune.txt").write_text("\n".join(tune) + "\n", encoding="utf-8")
    (OUT / "holdout.txt").write_text("\n".join(held) + "\n", encoding="utf-8")
    print(f"{len(tune)} tune, {len(held)} held out (seed {SEED})")


if __name__ == "__main__":
    main()
