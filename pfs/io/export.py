"""Load a native export directory: find each table, read it, validate it, quarantine what fails.

Every row read is either returned (typed, with its data-row number in ``_row``) or written to
the quarantine with the file, row, column and reason. Problems that make a whole table unusable
(no patients table, a required column missing) raise :class:`~pfs.exceptions.ExportError`
naming the file and column.

Each file is read in batches (:mod:`pfs.io.scan`) and validated batch by batch; what must hold
across batches (row numbers, unique ids) is carried from one batch to the next, so a table read in
batches gives exactly what it would give read whole. :func:`load_export` gathers the batches in
memory; ``pfs extract`` hands them to :mod:`pfs.io.staging` instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from pfs.exceptions import ExportError
from pfs.io import scan
from pfs.io.mapping import Mapping, TableMapping, load_mapping
from pfs.io.quarantine import Quarantine
from pfs.io.schema import INPUT_TABLES, KeyLedger, coerce_and_validate, empty_frame, load_schema

REQUIRED_TABLES = ("patients",)
#: Tables kept whole in memory even when the others are streamed: one row per patient.
PER_PATIENT_TABLES = ("patients", "annotations")
#: Control characters that no clinical text holds (tab, newlines, vertical tab and form feed are allowed):
#: their presence means binary data (a pasted file, a corrupt record).
_CONTROL = "[\x00-\x08\x0e-\x1f\x7f]"
#: Characters that cannot come from an undecodable byte kept by errors="surrogateescape".
_UNDECODABLE = re.compile("[\udc80-\udcff]")


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
        cuts = {name: (frame, group_rows(frame["patient_id"], where, len(groups)))
                for name, frame in self.tables.items()}
        for i in range(len(groups)):
            tables = {name: frame.iloc[positions[i]].reset_index(drop=True) for name, (frame, positions) in cuts.items()}
            yield Export(root=self.root, tables=tables, files=dict(self.files), rows_read={},
                         quarantine=Quarantine(), notes=[], file_hashes={})


def group_rows(patient_ids: pd.Series, where: dict[str, int], n_groups: int) -> list[np.ndarray]:
    """Row positions of each group of patients (``where``: patient -> group), in row order.

    One stable sort for all groups; rows of patients in no group are left out.
    """
    code = patient_ids.astype(str).map(where).fillna(-1).to_numpy(dtype="int64")
    order = np.argsort(code, kind="stable")
    bounds = np.searchsorted(code[order], np.arange(n_groups + 1), side="left")
    return [order[bounds[i]:bounds[i + 1]] for i in range(n_groups)]


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


def _header_columns(header: list[str], tm: TableMapping) -> list[str]:
    """The file's column names as pfs names them (trimmed, BOM removed, mapping applied)."""
    names = [str(c).strip().lstrip("\ufeff") for c in header]
    return [tm.columns.get(c, c) if tm.columns else c for c in names]


def _check_columns(columns: list[str], name: str, path: Path, notes: list[str]) -> None:
    """A required column missing or a name given twice makes the whole table unusable."""
    schema = load_schema(name)
    missing = [c for c in schema.required_columns if c not in columns]
    if missing:
        raise ExportError(
            f"{path}: required column {', '.join(repr(c) for c in missing)} missing "
            f"(found: {', '.join(columns)}); rename it in the file or in a mapping file"
        )
    seen: set[str] = set()
    for c in columns:
        if c in seen:
            raise ExportError(f"{path}: column {c!r} appears more than once in the header")
        seen.add(c)
    extra = [c for c in columns if c not in schema.columns]
    if extra:
        notes.append(f"{path.name}: ignored columns {', '.join(extra)}")


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


class _TableReader:
    """Reads and validates one table file batch by batch, keeping what must be known across
    batches (row numbers, the keys seen so far for the uniqueness checks).

    Its quarantine rows are its own until the table is read to the end: a table pyarrow gives up
    on part-way is read again from the start (:meth:`read_again_without_arrow`), and the first
    attempt must leave no trace.
    """

    def __init__(self, root: Path, path: Path, name: str, tm: TableMapping, notes: list[str],
                 as_of: pd.Timestamp, block_bytes: int, known: set[str] | None,
                 dropped_patients: set[str]) -> None:
        """``known``: the patients table's ids (None while reading that table); ``dropped_patients``:
        the ids of its quarantined rows."""
        self.root, self.path, self.name, self.tm = root, path, name, tm
        self.as_of, self.block_bytes = as_of, block_bytes
        self.schema = load_schema(name)
        self.probe = scan.probe(path, tm, notes)
        self.columns = _header_columns(self.probe.header, tm)
        _check_columns(self.columns, name, path, notes)
        self.known, self.dropped_patients = known, dropped_patients
        self._start()

    def _start(self) -> None:
        self.quarantine = Quarantine()
        self.seen = KeyLedger()
        self.rows_read = 0

    def read_again_without_arrow(self) -> None:
        """Forget what was read so far; the next pass uses the csv module."""
        self.probe.arrow_ok = False
        self._start()

    def __iter__(self) -> Iterator[pd.DataFrame]:
        """The clean, typed rows, one batch at a time (at least one batch, maybe empty).

        Raises :class:`scan.ArrowGaveUp` when pyarrow meets a malformed record part-way.
        """
        before = len(self.quarantine)
        for raw in scan.batches(self.path, self.probe, self.name, self.quarantine, self.block_bytes):
            # Rows read = clean records + records already quarantined as malformed.
            self.rows_read += len(raw) + (len(self.quarantine) - before)
            raw.columns = self.columns + ["_row"]
            yield self._clean(raw)
            before = len(self.quarantine)

    def _clean(self, df: pd.DataFrame) -> pd.DataFrame:
        name, quarantine = self.name, self.quarantine
        for col in self.schema.columns:
            if col not in df.columns:
                df[col] = ""
        df = df[self.schema.columns + ["_row"]]
        if self.probe.binary:
            df = _quarantine_binary(df, name, quarantine)
        df = coerce_and_validate(df, self.schema, quarantine, table=name, date_format=self.tm.date_format,
                                 seen=self.seen)
        df = _quarantine_future_dates(df, name, quarantine, self.as_of)
        if self.known is not None and "patient_id" in df:
            unknown = ~df["patient_id"].isin(self.known)
            if unknown.any():
                reason = pd.Series("unknown patient_id (not in the patients table)", index=df.index).mask(
                    df["patient_id"].isin(self.dropped_patients), "patient was quarantined in the patients table"
                )
                quarantine.add_from(name, df, unknown, reason, stage="load", column="patient_id")
                df = df.loc[~unknown].reset_index(drop=True)
        if name == "imaging":
            df = _check_paths(df, self.root, name, quarantine)
        if name == "annotations":
            df = _check_annotations(df, quarantine)
        return df


class Sink(Protocol):
    """Receives the clean batches of the streamed tables (see :mod:`pfs.io.staging`)."""

    def begin(self, patients: pd.DataFrame) -> None:
        """Called once with the clean patients table, before any other table's batch."""

    def add(self, name: str, batch: pd.DataFrame) -> None:
        """Called with each clean batch of a table that is not per patient (at least one per table)."""

    def discard(self, name: str) -> None:
        """Forget every batch of ``name`` received so far (the table is about to be read again)."""


def read_export(root: Path | str, mapping: Mapping | Path | str | None = None,
                tables: tuple[str, ...] = INPUT_TABLES, as_of: pd.Timestamp | None = None, *,
                block_bytes: int = scan.DEFAULT_BATCH_BYTES, sink: Sink | None = None) -> Export:
    """Read and validate the native export at ``root``, each file in batches of about ``block_bytes``.

    Without ``sink`` every table is gathered into the returned :class:`Export`. With one, the
    batches of the tables that are not per patient (medications, reports, imaging) go to the sink
    as they are read, and the returned export holds only the patients and annotations: memory then
    holds one batch of a big table at a time.
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
    known: set[str] | None = None  # the patients table's ids, once it is read
    dropped: set[str] = set()
    for name in wanted:
        tm = mapping.for_table(name)
        path = find_table_file(root, name, tm)
        if path is None:
            if name in REQUIRED_TABLES:
                hint = ""
                if (root / "export").is_dir() and (root / "truth").is_dir():  # a `pfs synth` folder
                    hint = f"; this is a synthetic cohort: did you mean {root / 'export'}?"
                raise ExportError(f"{root}: required table '{name}' not found (expected {name}.csv or "
                                  f"{name}.parquet){hint}")
            notes.append(f"table '{name}' not present")
            continue
        reader = _TableReader(root, path, name, tm, notes, as_of, block_bytes, known, dropped)
        streamed = sink is not None and name not in PER_PATIENT_TABLES
        while True:
            try:
                if streamed:
                    for batch in reader:
                        sink.add(name, batch)
                else:
                    parts = list(reader)
                break
            except scan.ArrowGaveUp:
                # A malformed record part-way through: start this table again with the csv module.
                if streamed:
                    sink.discard(name)
                reader.read_again_without_arrow()
        quarantine.extend(reader.quarantine)
        if not streamed:
            out[name] = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
            if name == "patients":
                known, dropped = set(out[name]["patient_id"]), set(_quarantined_patient_ids(quarantine))
                if sink is not None:
                    sink.begin(out[name])
        files[name] = path
        counts[name] = reader.rows_read
        hashes[str(path.relative_to(root))] = reader.probe.sha256
    return Export(root=root, tables=out, files=files, rows_read=counts, quarantine=quarantine, notes=notes,
                  file_hashes=hashes)


def load_export(root: Path | str, mapping: Mapping | Path | str | None = None,
                tables: tuple[str, ...] = INPUT_TABLES, as_of: pd.Timestamp | None = None) -> Export:
    """Read and validate the native export at ``root`` into memory.

    Args:
        root: the export directory.
        mapping: a :class:`Mapping` or the path of a mapping TOML file, for non-native names.
        tables: which tables to read (the patients table is always read).
        as_of: dates after this day are typing errors and quarantined (default: today).
    """
    return read_export(root, mapping, tables, as_of)


def read_table(path: Path, name: str, tm: TableMapping, quarantine: Quarantine,
               notes: list[str]) -> tuple[pd.DataFrame, int, str, bool]:
    """One table file as strings with ``_row`` (malformed records quarantined), unvalidated.

    Returns (frame, rows read, sha256, binary).
    """
    p = scan.probe(path, tm, notes)
    before = len(quarantine)
    try:
        parts = list(scan.batches(path, p, name, quarantine))
    except scan.ArrowGaveUp:
        p.arrow_ok = False  # the pyarrow pass quarantines nothing: nothing to undo
        parts = list(scan.batches(path, p, name, quarantine))
    df = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    df.columns = _header_columns(p.header, tm) + ["_row"]
    return df, len(df) + len(quarantine) - before, p.sha256, p.binary


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
