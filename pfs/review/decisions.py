"""A reviewer's decision: checked, turned into an annotation row, and exported for ``pfs compare``.

Decisions: ``accept`` the reconciled call; ``date`` (a candidate of one source, or a typed date)
means progression on that date; ``no_progression`` with the censor date (last date known
progression-free). The export follows pfs/schemas/annotations.json.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from pfs.exceptions import PfsError
from pfs.review import db
from pfs.review.run import SOURCES, Run

DECISIONS = ("accept", "date", "no_progression")
STATUSES = ("unreviewed", "accepted", "changed", "no progression")
ANNOTATION_COLUMNS = ["patient_id", "progressed", "progression_date", "censor_date"]
_REVIEWER = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}")
_MAX_COMMENT = 4000


class DecisionError(PfsError):
    """A decision that cannot be stored (shown to the reviewer, never logged with its content)."""


def check_reviewer(name: str) -> str:
    name = (name or "").strip()
    if not _REVIEWER.fullmatch(name):
        raise DecisionError("reviewer must be 1-64 letters, digits, spaces or ._@- (e.g. 'jdoe')")
    return name


def _iso(value: Any, what: str) -> str:
    text = str(value or "").strip()
    try:
        return date.fromisoformat(text).isoformat() if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else _bad(what, text)
    except ValueError:
        return _bad(what, text)


def _bad(what: str, text: str) -> str:
    raise DecisionError(f"{what} must be a date written YYYY-MM-DD, not {text[:20]!r}")


def decide(run: Run, patient_id: str, body: dict[str, Any], default_reviewer: str | None) -> dict[str, Any]:
    """Validate a posted decision against the run; returns the row to store."""
    if not isinstance(body, dict):
        raise DecisionError("the request body must be a JSON object")
    kind = body.get("decision")
    if kind not in DECISIONS:
        raise DecisionError(f"decision must be one of {', '.join(DECISIONS)}, not {str(kind)[:20]!r}")
    reviewer = check_reviewer(body.get("reviewer") or default_reviewer or "")
    comment = str(body.get("comment") or "")
    if len(comment) > _MAX_COMMENT:
        raise DecisionError(f"comment is longer than {_MAX_COMMENT} characters")
    source = str(body.get("chosen_source") or "")
    if source and source not in (*SOURCES, "reconciled", "reviewer"):
        raise DecisionError(f"chosen_source must be one of {', '.join((*SOURCES, 'reconciled', 'reviewer'))}")
    row = run.summary.loc[run.summary["patient_id"] == patient_id].iloc[0]
    rec_progressed, rec_date, censor = row.get("reconciled", ""), row.get("reconciled_date", ""), row["censor_date"]
    if kind == "accept":
        if rec_progressed not in ("0", "1"):
            raise DecisionError("this patient has no reconciled call to accept; pick a date or no progression")
        progressed = int(rec_progressed)
        prog_date, censor_date = (rec_date, "") if progressed else ("", censor)
        source, status = "reconciled", "accepted"
    elif kind == "date":
        progressed, prog_date, censor_date = 1, _iso(body.get("progression_date"), "progression_date"), ""
        source = source or "reviewer"
        status = "accepted" if rec_progressed == "1" and prog_date == rec_date else "changed"
    else:
        progressed, prog_date = 0, ""
        censor_date = _iso(body.get("censor_date") or censor, "censor_date")
        source = source or "reviewer"
        status = "accepted" if rec_progressed == "0" else "no progression"
    return {"patient_id": patient_id, "reviewer": reviewer, "decision": kind, "progressed": progressed,
            "progression_date": prog_date, "censor_date": censor_date, "chosen_source": source,
            "comment": comment, "status": status}


def annotations(db_path: Path, reviewer: str | None = None) -> pd.DataFrame:
    """One annotation row per reviewed patient: the reviewer's decision, or the latest of anyone's."""
    rows = db.reviews(db_path)
    if reviewer is not None:
        rows = rows[rows["reviewer"] == reviewer]
    rows = rows.sort_values("updated_at", kind="stable").drop_duplicates("patient_id", keep="last")
    out = rows[ANNOTATION_COLUMNS].sort_values("patient_id").reset_index(drop=True)
    out["progressed"] = out["progressed"].astype(int)
    return out.fillna("")


def annotations_csv(db_path: Path, reviewer: str | None = None) -> bytes:
    return annotations(db_path, reviewer).to_csv(index=False, lineterminator="\n").encode("utf-8")


def export_annotations(out: Path | str, target: Path | str, db_path: Path | str | None = None,
                       reviewer: str | None = None) -> tuple[Path, Path, int]:
    """Write the reviewed annotations (``target``) and the whole audit log (``review_log.csv`` beside it).

    Returns (annotations path, log path, number of patients written).
    """
    from pfs.io.output import write_bytes, write_table

    out = Path(out)
    path = Path(db_path) if db_path else out / db.DEFAULT_DB_NAME
    if not path.exists():
        raise PfsError(f"{path}: no review database yet; run `pfs review {out}` and review some patients first")
    target = Path(target)
    table = annotations(path, reviewer)
    if table.empty:
        who = f" by {reviewer}" if reviewer else ""
        raise PfsError(f"{path}: no patient has been reviewed{who} yet; nothing to export")
    write_bytes(annotations_csv(path, reviewer), target)
    log_path = write_table(db.log(path), target.parent / "review_log.csv")
    return target, log_path, len(table)
