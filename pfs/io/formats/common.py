"""What the OMOP and FHIR converters share: the result, values, quarantining and the native output.

The native output is meant to be inspected and fixed by the user, so it is plain CSV with a
``conversion_quarantine.csv`` (every input row set aside, with the reason, in the one quarantine
format of :mod:`pfs.io.quarantine`) and a ``conversion_manifest.json`` (what was read, kept and
skipped).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pfs.io.output import write_json, write_table
from pfs.io.quarantine import Quarantine
from pfs.io.schema import load_schema

#: The native tables a converter writes (imaging and procedures only when the export has rows for them).
NATIVE_TABLES = ("patients", "medications", "reports", "imaging", "procedures")
_ONLY_WHEN_ROWS = ("imaging", "procedures")
QUARANTINE_FILE = "conversion_quarantine.csv"
MANIFEST_FILE = "conversion_manifest.json"
#: The quarantine stage of rows a converter sets aside.
STAGE = "convert"


@dataclass(frozen=True)
class ConvertResult:
    """What a conversion wrote: the native export directory, its counts and the rows set aside."""

    out: Path
    counts: dict[str, Any]
    quarantine: pd.DataFrame


def set_aside(
    quarantine: Quarantine,
    table: str,
    row: int,
    reason: str,
    *,
    patient_id: object = "",
    column: str = "",
    value: object = "",
) -> None:
    """Quarantine one row of a foreign export's ``table`` (1-based row, or line, in its file)."""
    quarantine.add_one(table, row, reason, stage=STAGE, patient_id=patient_id, column=column, value=value)


def set_aside_rows(
    quarantine: Quarantine,
    table: str,
    frame: pd.DataFrame,
    reason: str,
    *,
    column: str = "",
    patient_column: str = "person_id",
) -> None:
    """Quarantine every row of ``frame`` (which carries ``_row``) with one reason."""
    if frame.empty:
        return
    pids = frame[patient_column] if patient_column in frame else pd.Series("", index=frame.index)
    vals = frame[column] if column and column in frame else pd.Series("", index=frame.index)
    for r, p, v in zip(frame["_row"].tolist(), pids.tolist(), vals.tolist(), strict=True):
        set_aside(quarantine, table, r, reason, patient_id=p, column=column, value=v)


# ---------------------------------------------------------------------------------------------
# Values

_ISO = re.compile(r"^\s*(\d{4})-?(\d{2})-?(\d{2})(?:[T ].*)?\s*$")


def iso_date(value: object) -> str:
    """'2014-04-22', '2014-04-22 00:00:00', '20140422' or a FHIR dateTime -> '2014-04-22'; else ''."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    m = _ISO.match(str(value))
    if not m:
        return ""
    y, mo, d = (int(g) for g in m.groups())
    try:
        pd.Timestamp(year=y, month=mo, day=d)
    except ValueError:
        return ""
    return f"{y:04d}-{mo:02d}-{d:02d}"


def iso_dates(values: pd.Series) -> pd.Series:
    """Vectorised :func:`iso_date` over the distinct values (exports repeat dates a lot)."""
    s = values.fillna("").astype(str)
    uniq = pd.Series(s.unique())
    table = dict(zip(uniq, uniq.map(iso_date), strict=True))
    return s.map(table)


def number_text(value: object) -> str:
    """A number as the native CSV writes it ('4', '0.5'); '' when blank or not a number."""
    try:
        x = float(str(value).strip())
    except ValueError:
        return ""
    if not pd.notna(x):
        return ""
    return str(int(x)) if x.is_integer() else repr(x)


def treatment_dates(
    procs: pd.DataFrame, diagnosis: str, window_days: int, gap_days: int
) -> tuple[str, str, str]:
    """(surgery, RT start, RT end) from a patient's resection and radiotherapy rows (kind, date, end).

    Surgery is the first resection/biopsy from ``window_days`` before the diagnosis on.
    The first RT course is the run of RT rows (on or after that same point) with gaps under
    ``gap_days``; it ends at the last row's end date (or date when it is one
    fraction of many); a lone row without an end date leaves the end blank rather than guess it.
    """
    if procs.empty:
        return "", "", ""
    floor = (pd.Timestamp(diagnosis) - pd.Timedelta(days=window_days)).strftime("%Y-%m-%d")
    res = procs.loc[(procs["kind"] == "resection") & (procs["date"] >= floor), "date"]
    surgery = res.min() if not res.empty else ""
    rt = procs.loc[(procs["kind"] == "radiotherapy") & (procs["date"] >= floor)].sort_values("date")
    if rt.empty:
        return surgery, "", ""
    gap = pd.Timedelta(days=gap_days)
    course = []
    last_end = None
    for date, end in zip(rt["date"], rt["end"], strict=True):
        stop = max(end, date) if end else date
        if last_end is not None and pd.Timestamp(date) - pd.Timestamp(last_end) > gap:
            break
        course.append((date, end))
        last_end = stop if last_end is None else max(last_end, stop)
    rt_start = course[0][0]
    if len(course) == 1 and not course[0][1]:
        return surgery, rt_start, ""
    return surgery, rt_start, last_end or ""


# ---------------------------------------------------------------------------------------------
# Output


def native_frame(name: str, rows: pd.DataFrame | list[dict[str, Any]]) -> pd.DataFrame:
    """Rows in the column order of the native schema ``name``; blanks as ''."""
    cols = load_schema(name).columns
    frame = pd.DataFrame(rows)
    for c in cols:
        if c not in frame:
            frame[c] = ""
    return frame[cols].fillna("").astype(str).reset_index(drop=True)


def write_native(
    out: Path, tables: Mapping[str, pd.DataFrame], quarantine: Quarantine, counts: dict[str, Any]
) -> ConvertResult:
    """Write the native tables, the conversion quarantine and the manifest; return the result."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in NATIVE_TABLES:
        frame = tables.get(name)
        if frame is None:
            continue
        if name in _ONLY_WHEN_ROWS and frame.empty:
            (out / f"{name}.csv").unlink(missing_ok=True)  # not a stale one from an earlier conversion
            continue
        write_table(native_frame(name, frame), out / f"{name}.csv")
        counts[f"{name}_rows"] = int(len(frame))
    rows = quarantine.frame()
    counts["quarantined"] = int(len(rows))
    write_table(rows, out / QUARANTINE_FILE)
    write_json(counts, out / MANIFEST_FILE)
    return ConvertResult(out=out, counts=dict(counts), quarantine=rows)


def place_file(source: Path, target: Path) -> None:
    """Put an image file or DICOM folder inside the native export (hard link, else copy).

    The loader refuses paths that resolve outside the export directory, so a symbolic link would
    not do; a hard link costs no space when source and target share a file system.
    """
    if source.is_dir():
        for child in sorted(source.rglob("*")):
            if child.is_file():
                place_file(child, target / child.relative_to(source))
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def safe_relative(path: str) -> str | None:
    """A relative POSIX path that stays inside its root, or None (absolute paths and '..' escape)."""
    p = Path(str(path).replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        return None
    return p.as_posix()
