"""Writing outputs so that an interrupted run never leaves a table that looks complete, and reading them
back (for ``compare``, ``plot``, ``report``) typed by their schemas."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _csv_bytes(frame: pd.DataFrame, header: bool = True) -> bytes:
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%d")
    return out.to_csv(index=False, header=header, lineterminator="\n").encode("utf-8")


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write a CSV (dates as ISO 8601) atomically; the same frame always gives the same bytes."""
    _atomic_write_bytes(Path(path), _csv_bytes(frame))
    return Path(path)


class TableAppender:
    """Writes a CSV piece by piece: the same bytes as :func:`write_table` on the pieces joined.

    The file appears under its name only on :meth:`finish`, so an interrupted run leaves no table
    that looks complete.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self._tmp = Path(tmp)
        self._fh = os.fdopen(fd, "wb")
        self._columns: list[str] | None = None

    def append(self, frame: pd.DataFrame) -> None:
        if self._columns is None:
            self._columns = list(frame.columns)
            self._fh.write(_csv_bytes(frame))
            return
        if list(frame.columns) != self._columns:
            new = [c for c in frame.columns if c not in self._columns]
            if new:
                raise ValueError(f"{self.path.name}: a later piece has columns the first had not: {new}")
            frame = frame.reindex(columns=self._columns)
        if len(frame):
            self._fh.write(_csv_bytes(frame, header=False))

    def finish(self) -> Path:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self._tmp.unlink(missing_ok=True)


def write_json(obj: Any, path: Path) -> Path:
    data = (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")
    _atomic_write_bytes(Path(path), data)
    return Path(path)


def write_bytes(data: bytes, path: Path) -> Path:
    _atomic_write_bytes(Path(path), data)
    return Path(path)


def read_output(path: Path, name: str) -> pd.DataFrame | None:
    """An output table typed by its schema (pfs/schemas/NAME.json); None when absent or unreadable.

    String columns stay strings (ids such as 007 keep their zeros) with blanks as "", date columns
    become datetimes; columns the schema does not name are read as pandas infers them.
    """
    from pfs.io.schema import load_schema

    if not path.exists():
        return None
    fields = {f.name: f.type for f in load_schema(name).fields}
    try:
        frame = pd.read_csv(path, dtype={c: str for c, t in fields.items() if t == "string"},
                            keep_default_na=False, na_values=[""])
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return None
    for col in frame.columns:
        if fields.get(col) == "date":
            frame[col] = pd.to_datetime(frame[col], errors="coerce")
        elif frame[col].dtype == object:
            frame[col] = frame[col].fillna("")
    return frame


def read_endpoints(out_dir: Path | str) -> pd.DataFrame:
    """OUT/endpoints.csv typed by its schema; a clear error when ``pfs extract`` has not been run."""
    from pfs.exceptions import ExportError
    from pfs.io.schema import load_schema

    path = Path(out_dir) / "endpoints.csv"
    if not path.exists():
        raise ExportError(f"{path}: not found; run `pfs extract EXPORT --out {out_dir}` first")
    endpoints = read_output(path, "endpoints")
    if endpoints is None:
        raise ExportError(f"{path}: not a readable CSV table; was it written by `pfs extract`?")
    needed = [*load_schema("endpoints").required_columns, "progression_date"]  # blank when not progressed
    missing = [c for c in needed if c not in endpoints.columns]
    if missing:
        raise ExportError(f"{path}: column {missing[0]!r} missing; was it written by `pfs extract`?")
    if "note" not in endpoints:
        endpoints["note"] = ""
    return endpoints
