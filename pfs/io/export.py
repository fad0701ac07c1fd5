"""Load a native export directory: find each table, read it, validate it, quarantine what fails.

Every row read is either returned (typed, with its data-row number in ``_row``) or written to
the quarantine with the file, row, column and reason. Problems that make a whole table unusable
(no patients table, a required column missing) raise :class:`~pfs.exceptions.ExportError`
naming the file and column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from pfs.exceptions import ExportError
from pfs.io.limits import read_gzip_limited
from pfs.io.mapping import Mapping, TableMapping, load_mapping
from pfs.io.quarantine import Quarantine
from pfs.io.schema import INPUT_TABLES, coerce_and_validate, empty_frame, load_schema

REQUIRED_TABLES = ("patients",)
_DELIMITERS = (",", ";", "\t", "|")
#: A valid multi-byte UTF-8 sequence: a file that has them is UTF-8 even if a few bytes are not.
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
#: Control characters that no clinical text holds (tab, newlines, vertical tab and form feed are allowed):
#: their presence means binary data (a pasted file, a corrupt record).
_CONTROL = "[\x00-\x08\x0e-\x1f\x7f]"
#: Bytes any text file may hold; deleting them leaves only control bytes (a fast test of a whole file).
_TEXT_BYTES = bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100)) + b"\t\n\r\x0b\x0c"
#: The codec name :func:`_decode` gives a UTF-8 file holding some bytes that are not UTF-8.
UTF8_LOSSY = "utf-8 (surrogateescape)"
#: Characters that cannot come from an undecodable byte kept by errors="surrogateescape".
_UNDECODABLE = re.compile("[\udc80-\udcff]")
#: A single CSV field larger than this is a corrupt file, not a report (Python's csv default is 128 kB).
MAX_FIELD_BYTES = 16 * 1024 * 1024


@dataclass
class Export:
    """A loaded export: clean typed tables plus everything needed to account for each input row."""

    root: Path
    tables: dict[str, pd.DataFrame]
    files: dict[str, Path]
    rows_read: dict[str, int]
    quarantine: Quarantine
    notes: list[str] = field(default_factory=list)
    file_hashes: dict[str, str] = field(default_factory=dict)

    def table(self, name: str) -> pd.DataFrame:
        """The clean rows of ``name``; an empty frame with the schema's columns when the table is absent."""
        if name in self.tables:
            return self.tables[name]
        frame = empty_frame(name)
        frame["_row"] = pd.Series(dtype="int64")
        return frame

    def has(self, name: str) -> bool:
        return name in self.tables

    @property
    def patient_ids(self) -> list[str]:
        return sorted(self.table("patients")["patient_id"].astype(str).tolist())

    def partition(self, groups: list[list[str]]) -> Iterator[Export]:
        """One sub-export per group of patients, made lazily after a single pass over each table."""
        where = {pid: i for i, group in enumerate(groups) for pid in group}
        cuts = {}
        for name, frame in self.tables.items():
            code = frame["patient_id"].astype(str).map(where).fillna(-1).to_numpy(dtype="int64")
            order = np.argsort(code, kind="stable")
            bounds = np.searchsorted(code[order], np.arange(len(groups) + 1), side="left")
            cuts[name] = (frame, order, bounds)
        for i in range(len(groups)):
            tables = {name: frame.iloc[order[bounds[i]:bounds[i + 1]]].reset_index(drop=True)
                      for name, (frame, order, bounds) in cuts.items()}
            yield Export(root=self.root, tables=tables, files=dict(self.files), rows_read={},
                         quarantine=Quarantine(), notes=[], file_hashes={})


def _sequence_synonyms() -> dict[str, str]:
    data = json.loads(resources.files("pfs.rules").joinpath("sequences.json").read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for canonical, synonyms in data["sequences"].items():
        for s in [canonical, *synonyms]:
            out[_seq_key(s)] = canonical
    return out


def _seq_key(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch.isalnum() or ch == "+")


def normalise_sequence(values: pd.Series) -> pd.Series:
    """Map sequence names such as 'T1Gd', 'T1-post', 'T2-FLAIR' onto T1, T1C, T2, FLAIR; unknown stay as written."""
    synonyms = _sequence_synonyms()
    keys = values.fillna("").astype(str).map(_seq_key)
    mapped = keys.map(synonyms)
    return mapped.where(mapped.notna(), values)


def find_table_file(root: Path, name: str, tm: TableMapping) -> Path | None:
    if tm.file:
        path = root / tm.file
        if not path.exists():
            raise ExportError(f"{path}: the mapping file names this file for table '{name}', but it does not exist")
        return path
    found = [root / f"{name}{ext}" for ext in (".csv", ".csv.gz", ".parquet")]
    found = [p for p in found if p.exists()]
    if len(found) > 1:
        raise ExportError(
            f"{root}: table '{name}' exists as {' and '.join(p.name for p in found)}; keep one of them"
        )
    return found[0] if found else None


def _decode(raw: bytes, path: Path, tm: TableMapping, notes: list[str]) -> tuple[str, str]:
    """The text and the codec that produced it; :data:`UTF8_LOSSY` when some bytes were not UTF-8
    (kept as surrogates, and the values holding them quarantined by :func:`_quarantine_binary`)."""
    if tm.encoding:
        try:
            return raw.decode(tm.encoding), tm.encoding
        except (UnicodeDecodeError, LookupError) as err:
            raise ExportError(f"{path}: cannot decode as {tm.encoding}: {err}") from err
    try:
        return raw.decode("utf-8-sig"), "utf-8-sig"
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        if _UTF8_MULTIBYTE.search(raw):
            # A UTF-8 file with a few foreign bytes (binary garbage pasted into a field): keep the file
            # UTF-8 rather than re-reading every other patient's text as Latin-1.
            notes.append(f"{path.name}: bytes that are not UTF-8 (first on line {line}); those values quarantined")
            return raw.decode("utf-8-sig", errors="surrogateescape"), UTF8_LOSSY
        # Excel on Windows writes cp1252/Latin-1; decoding as Latin-1 never fails, so say we did it.
        notes.append(f"{path.name}: not valid UTF-8 (first bad byte on line {line}); read as Latin-1")
        return raw.decode("latin-1"), "latin-1"


def _sniff_delimiter(header: str, path: Path, tm: TableMapping, notes: list[str]) -> str:
    if tm.delimiter:
        return tm.delimiter
    counts = {d: header.count(d) for d in _DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    if counts[best] == 0:
        return ","
    if best != ",":
        notes.append(f"{path.name}: delimiter {best!r} detected instead of ','")
    return best


def _read_csv_arrow(data: bytes, header: list[str], delim: str) -> pd.DataFrame | None:
    """Parse well-formed UTF-8 CSV with pyarrow (multi-threaded, Arrow strings); None when malformed.

    This is the fast path for large exports (a million rows in under a second); any row with the
    wrong number of fields makes it give up so the slower readers can quarantine that row exactly.
    """
    import pyarrow as pa
    from pyarrow import csv as pa_csv

    if not header:
        return None
    try:
        table = pa_csv.read_csv(
            io.BytesIO(data),
            parse_options=pa_csv.ParseOptions(delimiter=delim, newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(column_types={c: pa.string() for c in header},
                                                  strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.column_names != header:
        return None
    df = table.to_pandas(types_mapper=pd.ArrowDtype)
    df["_row"] = np.arange(1, len(df) + 1, dtype="int64")
    return df


def _read_csv_text(text: str, path: Path, delim: str, table: str, quarantine: Quarantine,
                   data: bytes | None = None) -> pd.DataFrame:
    """Parse CSV text to strings; rows with the wrong number of fields are quarantined, not guessed.

    ``data`` is the same content as UTF-8 bytes, for the pyarrow fast path.
    """
    header_line = _first_line(text).rstrip("\r")
    header = next(csv.reader([header_line], delimiter=delim), [])
    # An odd number of quotes means the file ends inside a quoted field, which pyarrow accepts.
    if data is not None and data.count(b'"') % 2 == 0 and len(set(header)) == len(header):
        fast = _read_csv_arrow(data, header, delim)
        if fast is not None:
            return fast
    # Malformed records, undecodable bytes or duplicate header names: the csv module reads exactly what
    # is there (duplicate names reach _check_columns, which names them) and says which records are bad.
    return _read_csv_records(text, path, delim, table, quarantine)


def _read_csv_records(text: str, path: Path, delim: str, table: str, quarantine: Quarantine) -> pd.DataFrame:
    """Slow path, only for malformed files: the csv module tells us exactly which records are bad."""
    csv.field_size_limit(MAX_FIELD_BYTES)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    try:
        header = next(reader)
    except StopIteration as err:
        raise ExportError(f"{path}: the file is empty (no header row)") from err
    rows, numbers = [], []
    n = 0
    while True:
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            n += 1
            quarantine.add(table, [n], f"unreadable CSV record: {err}", stage="load")
            break
        if not rec:
            continue
        n += 1
        if len(rec) != len(header):
            quarantine.add(table, [n], f"row has {len(rec)} fields, the header has {len(header)} ({path.name})",
                           stage="load")
            continue
        rows.append(rec)
        numbers.append(n)
    if rows and numbers[-1] == n and text.count('"') % 2 == 1:
        # An odd number of quote characters: the file ends inside a quoted field (cut in the middle
        # of a report), and the csv module would hand back the cut record as if it were whole.
        rows.pop()
        quarantine.add(table, [numbers.pop()], "unreadable CSV record: the file ends inside a quoted field "
                       f"(truncated file?) ({path.name})", stage="load")
    df = pd.DataFrame(rows, columns=header, dtype=str)
    df["_row"] = numbers
    return df


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises many types for corrupt files
        raise ExportError(f"{path}: cannot read Parquet file: {err}") from err
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_datetime64_any_dtype(s):
            out[col] = s.dt.strftime("%Y-%m-%d").fillna("")
        else:
            out[col] = s.map(lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))
    out["_row"] = range(1, len(out) + 1)
    return out.reset_index(drop=True)


def _first_line(text: str) -> str:
    end = text.find("\n")
    return text if end < 0 else text[:end]


def read_table(path: Path, name: str, tm: TableMapping, quarantine: Quarantine,
               notes: list[str]) -> tuple[pd.DataFrame, int, str, bool]:
    """Read one table file into strings with ``_row``.

    Returns (frame, rows read, sha256, binary); ``binary`` says whether the file holds bytes no text
    should (control characters or bytes that are not UTF-8): only then are the values searched.
    """
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ExportError(f"{path}: cannot read file: {err.strerror}") from err
    digest = hashlib.sha256(raw).hexdigest()
    binary = True  # parquet: checked value by value
    if path.suffix == ".parquet":
        df = _read_parquet(path)
        n_read = len(df)
    else:
        if path.suffix == ".gz":
            raw = read_gzip_limited(path)
        text, codec = _decode(raw, path, tm, notes)
        binary = codec == UTF8_LOSSY or len(raw.translate(None, _TEXT_BYTES)) > 0
        if not text or text.isspace():
            raise ExportError(f"{path}: the file is empty (no header row)")
        delim = _sniff_delimiter(_first_line(text), path, tm, notes)
        # UTF-8 bytes for the pyarrow reader: the file's own when it is UTF-8; none when it holds
        # undecodable bytes (only the csv module can carry those to the quarantine).
        if codec == "utf-8-sig":
            utf8: bytes | None = raw.removeprefix(b"\xef\xbb\xbf")
        else:
            utf8 = None if codec == UTF8_LOSSY else text.encode("utf-8")
        before = len(quarantine)
        df = _read_csv_text(text, path, delim, name, quarantine, data=utf8)
        # Rows read = clean records + records already quarantined as malformed.
        n_read = len(df) + (len(quarantine) - before)
    df.columns = [c if c == "_row" else str(c).strip().lstrip("\ufeff") for c in df.columns]
    if tm.columns:
        df = df.rename(columns=tm.columns)
    return df, n_read, digest, binary


def _check_columns(df: pd.DataFrame, name: str, path: Path, notes: list[str]) -> pd.DataFrame:
    schema = load_schema(name)
    missing = [c for c in schema.required_columns if c not in df.columns]
    if missing:
        raise ExportError(
            f"{path}: required column {', '.join(repr(c) for c in missing)} missing "
            f"(found: {', '.join(c for c in df.columns if c != '_row')}); rename it in the file or in a mapping file"
        )
    if df.columns.duplicated().any():
        dup = df.columns[df.columns.duplicated()].tolist()
        raise ExportError(f"{path}: column {dup[0]!r} appears more than once in the header")
    for col in schema.columns:
        if col not in df.columns:
            df[col] = ""
    extra = [c for c in df.columns if c not in schema.columns and c != "_row"]
    if extra:
        notes.append(f"{path.name}: ignored columns {', '.join(extra)}")
    return df[schema.columns + ["_row"]]


def _check_paths(df: pd.DataFrame, root: Path, name: str, quarantine: Quarantine) -> pd.DataFrame:
    """Quarantine rows whose file paths escape the export directory or do not exist."""
    schema = load_schema(name)
    real_root = root.resolve()
    keep = pd.Series(True, index=df.index)
    for f in schema.fields:
        if not f.is_path:
            continue
        for idx, value in df[f.name].items():
            if not keep[idx] or value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
                continue
            target = (root / str(value)).resolve()
            if not target.is_relative_to(real_root):
                reason = "path escapes the export directory"
            elif not target.exists():
                reason = "file not found"
            else:
                continue
            quarantine.add(name, [df.at[idx, "_row"]], reason, stage="load", column=f.name, values=[value],
                           patient_ids=[df.at[idx, "patient_id"]])
            keep[idx] = False
    return df.loc[keep].reset_index(drop=True)


def load_export(root: Path | str, mapping: Mapping | Path | str | None = None,
                tables: tuple[str, ...] = INPUT_TABLES, as_of: pd.Timestamp | None = None) -> Export:
    """Read and validate the native export at ``root``.

    Args:
        root: the export directory.
        mapping: a :class:`Mapping` or the path of a mapping TOML file, for non-native names.
        tables: which tables to read (the patients table is always read).
        as_of: dates after this day are typing errors and quarantined (default: today).
    """
    as_of = pd.Timestamp.today().normalize() if as_of is None else pd.Timestamp(as_of).normalize()
    root = Path(root)
    if not root.is_dir():
        raise ExportError(f"{root}: export directory not found")
    if not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)
    quarantine = Quarantine()
    notes: list[str] = []
    out: dict[str, pd.DataFrame] = {}
    files: dict[str, Path] = {}
    counts: dict[str, int] = {}
    hashes: dict[str, str] = {}
    wanted = ("patients",) + tuple(t for t in tables if t != "patients")
    for name in wanted:
        tm = mapping.for_table(name)
        path = find_table_file(root, name, tm)
        if path is None:
            if name in REQUIRED_TABLES:
                raise ExportError(f"{root}: required table '{name}' not found (expected {name}.csv or {name}.parquet)")
            notes.append(f"table '{name}' not present")
            continue
        df, n_read, digest, binary = read_table(path, name, tm, quarantine, notes)
        df = _check_columns(df, name, path, notes)
        if binary:
            df = _quarantine_binary(df, name, quarantine)
        if name == "imaging":
            df["sequence"] = normalise_sequence(df["sequence"].replace("", pd.NA)).fillna("")
        df = coerce_and_validate(df, load_schema(name), quarantine, table=name, date_format=tm.date_format)
        df = _quarantine_future_dates(df, name, quarantine, as_of)
        if name != "patients" and "patient_id" in df:
            known = set(out["patients"]["patient_id"])
            unknown = ~df["patient_id"].isin(known)
            if unknown.any():
                quarantined_patients = set(_quarantined_patient_ids(quarantine))
                reason = pd.Series("unknown patient_id (not in the patients table)", index=df.index).mask(
                    df["patient_id"].isin(quarantined_patients), "patient was quarantined in the patients table"
                )
                quarantine.add_from(name, df, unknown, reason, stage="load", column="patient_id")
                df = df.loc[~unknown].reset_index(drop=True)
        if name == "imaging":
            df = _check_paths(df, root, name, quarantine)
        if name == "annotations":
            df = _check_annotations(df, quarantine)
        out[name] = df
        files[name] = path
        counts[name] = n_read
        hashes[str(path.relative_to(root))] = digest
    return Export(root=root, tables=out, files=files, rows_read=counts, quarantine=quarantine, notes=notes,
                  file_hashes=hashes)


def _printable(value: object) -> object:
    if not isinstance(value, str):
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _quarantine_binary(df: pd.DataFrame, name: str, quarantine: Quarantine) -> pd.DataFrame:
    """Quarantine values holding control characters or bytes that are not UTF-8 (kept as surrogates)."""
    keep = pd.Series(True, index=df.index)
    pattern = re.compile(f"{_CONTROL}|{_UNDECODABLE.pattern}")
    for col in df.columns:
        if col == "_row":
            continue
        values = df[col].astype(object)
        hit = values.map(lambda v: isinstance(v, str) and pattern.search(v) is not None).astype(bool) & keep
        if not hit.any():
            continue
        undecodable = values[hit].map(lambda v: _UNDECODABLE.search(v) is not None).astype(bool)
        shown = df.loc[hit].copy()
        for c in shown.columns:  # the quarantine file is UTF-8: show each bad byte as U+FFFD
            if c != "_row":
                shown[c] = shown[c].astype(object).map(_printable)
        kind = pd.Series("control characters", index=shown.index).mask(undecodable, "bytes not valid UTF-8")
        quarantine.add_from(name, shown, pd.Series(True, index=shown.index),
                            "binary data (" + kind + f") in column '{col}'", stage="load", column=col)
        keep &= ~hit
    # The bad values would break Arrow and the UTF-8 outputs: those rows go, with their reason.
    return df if keep.all() else df.loc[keep].reset_index(drop=True)


def _quarantine_future_dates(df: pd.DataFrame, name: str, quarantine: Quarantine, as_of: pd.Timestamp) -> pd.DataFrame:
    """Dates after the run date are typing errors (2099 for 2019), and would move events and endpoints."""
    keep = pd.Series(True, index=df.index)
    for f in load_schema(name).fields:
        if f.type != "date":
            continue
        late = (df[f.name] > as_of).fillna(False).astype(bool) & keep
        if late.any():
            quarantine.add_from(name, df, late, f"date in the future in column '{f.name}' (after the run date)",
                                stage="load", column=f.name)
            keep &= ~late
    return df if keep.all() else df.loc[keep].reset_index(drop=True)


def _quarantined_patient_ids(quarantine: Quarantine) -> list[str]:
    q = quarantine.frame()
    return q.loc[q["table"] == "patients", "patient_id"].tolist()


def _check_annotations(df: pd.DataFrame, quarantine: Quarantine) -> pd.DataFrame:
    no_date = (df["progressed"] == 1) & df["progression_date"].isna()
    quarantine.add_from("annotations", df, no_date, "progressed = 1 but progression_date is blank",
                        stage="load", column="progression_date")
    return df.loc[~no_date].reset_index(drop=True)
