"""``pfs convert``: read an OMOP CDM or FHIR R4 export and write pfs's native layout.

Both converters share what is here: the result object, the conversion quarantine, code sets read
from the mapping rule files (``pfs/rules/omop_mapping.json``, ``pfs/rules/fhir_mapping.json``), date
normalisation, and writing the native tables so that ``pfs extract`` reads them like any export.
The native output is meant to be inspected and fixed by the user, so it is plain CSV with a
``conversion_quarantine.csv`` (every input row set aside, with the reason) and a
``conversion_manifest.json`` (what was read, kept and skipped).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from pfs.exceptions import ExportError, RuleFileError
from pfs.io.output import write_json, write_table
from pfs.io.quarantine import COLUMNS as QUARANTINE_COLUMNS
from pfs.io.quarantine import MAX_VALUE_CHARS
from pfs.io.schema import load_schema

#: The native tables a converter writes (imaging only when the export has images).
NATIVE_TABLES = ("patients", "medications", "reports", "imaging")
QUARANTINE_FILE = "conversion_quarantine.csv"
MANIFEST_FILE = "conversion_manifest.json"
FORMATS = ("omop", "fhir")


@dataclass(frozen=True)
class ConvertResult:
    """What a conversion wrote: the native export directory, its counts and the rows set aside."""

    out: Path
    counts: dict[str, Any]
    quarantine: pd.DataFrame


class ConversionLog:
    """Collects conversion-quarantine rows; cheap to append to one at a time or in bulk."""

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []

    def add(
        self,
        table: str,
        row: int,
        reason: str,
        *,
        patient_id: object = "",
        column: str = "",
        value: object = "",
    ) -> None:
        text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
        self._rows.append(
            {
                "table": table,
                "row": int(row),
                "patient_id": "" if patient_id is None else str(patient_id),
                "column": column,
                "value": text[:MAX_VALUE_CHARS],
                "reason": reason,
                "stage": "convert",
            }
        )

    def add_frame(
        self,
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
            self.add(table, r, reason, patient_id=p, column=column, value=v)

    def frame(self) -> pd.DataFrame:
        if not self._rows:
            return pd.DataFrame(
                {c: pd.Series(dtype="int64" if c == "row" else "object") for c in QUARANTINE_COLUMNS}
            )
        out = pd.DataFrame(self._rows, columns=QUARANTINE_COLUMNS)
        return out.sort_values(["table", "row", "column"], kind="stable").reset_index(drop=True)

    def __len__(self) -> int:
        return len(self._rows)


# ---------------------------------------------------------------------------------------------
# Rule files


def load_rule_file(name: str, allowed: set[str]) -> dict[str, Any]:
    """Read a shipped mapping rule file, rejecting keys pfs does not know (a typo must not be ignored)."""
    try:
        data = json.loads(resources.files("pfs.rules").joinpath(name).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise RuleFileError(f"rules/{name}: cannot read: {err}") from err
    unknown = set(data) - allowed
    if unknown:
        raise RuleFileError(f"rules/{name}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")
    return data


def _compile(patterns: Iterable[str], where: str) -> re.Pattern[str] | None:
    pats = list(patterns)
    if not pats:
        return None
    try:
        return re.compile("|".join(f"(?:{p})" for p in pats), re.IGNORECASE)
    except re.error as err:
        raise RuleFileError(f"{where}: invalid regular expression: {err}") from err


_CODESET_KEYS = {
    "description",
    "codes",
    "code_patterns",
    "concept_ids",
    "name_patterns",
    "source_value_patterns",
    "title_patterns",
    "text_patterns",
}


@dataclass(frozen=True)
class CodeSet:
    """One clinical code list: exact codes and code patterns per vocabulary/system, and text patterns.

    ``codes``/``code_patterns`` are keyed by OMOP vocabulary_id or by a FHIR system key; matching
    on them is exact (codes) or by regular expression (patterns), case-insensitive.
    """

    name: str
    codes: Mapping[str, frozenset[str]]
    code_patterns: Mapping[str, re.Pattern[str]]
    concept_ids: frozenset[str]
    names: re.Pattern[str] | None
    source_values: re.Pattern[str] | None
    titles: re.Pattern[str] | None

    def matches_code(self, system: str, code: str) -> bool:
        code = str(code).strip()
        if not code:
            return False
        if code.upper() in self.codes.get(system, frozenset()):
            return True
        pat = self.code_patterns.get(system)
        return bool(pat and pat.search(code))

    def matches_name(self, text: str | None) -> bool:
        return bool(text and self.names and self.names.search(str(text)))

    def source_mask(self, values: pd.Series) -> pd.Series:
        """Vectorised: which source values (codes or text as the source wrote them) match."""
        return _search_distinct(values, self.source_values)

    def title_mask(self, values: pd.Series) -> pd.Series:
        return _search_distinct(values, self.titles)

    def concept_mask(self, concepts: pd.DataFrame) -> pd.Series:
        """Which rows of a CONCEPT table (vocabulary_id, concept_code, concept_name) the set selects."""
        vocab = concepts["vocabulary_id"].fillna("").astype(str).str.strip()
        code = concepts["concept_code"].fillna("").astype(str).str.strip()
        mask = pd.Series(False, index=concepts.index)
        for v, codes in self.codes.items():
            mask |= (vocab == v) & code.str.upper().isin(codes)
        for v, pat in self.code_patterns.items():
            mask |= (vocab == v) & code.str.contains(pat, regex=True)
        mask |= _search_distinct(concepts["concept_name"], self.names)
        mask |= concepts["concept_id"].astype(str).isin(self.concept_ids)
        return mask


def _search_distinct(values: pd.Series, pattern: re.Pattern[str] | None) -> pd.Series:
    """Which values contain ``pattern``; each distinct value is searched once (exports repeat codes)."""
    if pattern is None or values.empty:
        return pd.Series(False, index=values.index)
    s = values.fillna("").astype(str).str.strip()
    uniq = s.unique()
    found = {u: bool(pattern.search(u)) for u in uniq}
    return s.map(found).astype(bool)


def parse_code_set(spec: Mapping[str, Any], name: str, origin: str) -> CodeSet:
    """Validate one code set of a mapping file."""
    where = f"rules/{origin}: {name}"
    if not isinstance(spec, Mapping):
        raise RuleFileError(f"{where}: must be an object")
    unknown = set(spec) - _CODESET_KEYS
    if unknown:
        raise RuleFileError(f"{where}: unknown keys {sorted(unknown)}")
    codes = {k: frozenset(str(c).strip().upper() for c in v) for k, v in spec.get("codes", {}).items()}
    pats: dict[str, re.Pattern[str]] = {}
    for k, v in spec.get("code_patterns", {}).items():
        pat = _compile(v, f"{where}.code_patterns.{k}")
        if pat is not None:
            pats[k] = pat
    texts = list(spec.get("name_patterns", [])) + list(spec.get("text_patterns", []))
    return CodeSet(
        name=name,
        codes=codes,
        code_patterns=pats,
        concept_ids=frozenset(str(c) for c in spec.get("concept_ids", [])),
        names=_compile(texts, f"{where}.name_patterns"),
        source_values=_compile(spec.get("source_value_patterns", []), f"{where}.source_value_patterns"),
        titles=_compile(spec.get("title_patterns", []), f"{where}.title_patterns"),
    )


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
    out: Path, tables: Mapping[str, pd.DataFrame], log: ConversionLog, counts: dict[str, Any]
) -> ConvertResult:
    """Write the native tables, the conversion quarantine and the manifest; return the result."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in NATIVE_TABLES:
        frame = tables.get(name)
        if frame is None:
            continue
        if name == "imaging" and frame.empty:
            continue
        write_table(native_frame(name, frame), out / f"{name}.csv")
        counts[f"{name}_rows"] = int(len(frame))
    quarantine = log.frame()
    counts["quarantined"] = int(len(quarantine))
    write_table(quarantine, out / QUARANTINE_FILE)
    write_json(counts, out / MANIFEST_FILE)
    return ConvertResult(out=out, counts=dict(counts), quarantine=quarantine)


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


# ---------------------------------------------------------------------------------------------
# Entry point


def convert(src: Path | str, out: Path | str, fmt: str, **options: Any) -> ConvertResult:
    """Convert the export at ``src`` (format ``fmt``: 'omop' or 'fhir') into the native layout at ``out``.

    ``options`` go to :func:`pfs.io.omop.convert_omop` or :func:`pfs.io.fhir.convert_fhir`
    (e.g. ``require_gbm=False`` to keep every person of a whole-hospital sample).
    """
    key = str(fmt).strip().lower()
    src = Path(src)
    if not src.exists():
        raise ExportError(f"{src}: {key or fmt} export not found")
    if key == "omop":
        from pfs.io.omop import convert_omop

        return convert_omop(src, Path(out), **options)
    if key == "fhir":
        from pfs.io.fhir import convert_fhir

        return convert_fhir(src, Path(out), **options)
    raise ExportError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)} (or 'native')")
