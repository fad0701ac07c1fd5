"""Reading OMOP tables from a directory or a zip, in filtered chunks, with bad rows quarantined."""

from __future__ import annotations

import csv
import io
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

import pandas as pd

from pfs.exceptions import ExportError
from pfs.io.formats.common import iso_dates, set_aside, set_aside_rows
from pfs.io.quarantine import Quarantine

#: Uncompressed bytes pfs will read out of one zip archive (a guard against zip bombs).
DEFAULT_MAX_UNZIPPED_BYTES = 8 * 1024**3


CHUNK_ROWS = 200_000


_EXTENSIONS = (".csv.gz", ".csv", ".tsv", ".txt", ".parquet")


_BAD_LINE = re.compile(r"Skipping line (\d+): (.*)")


class _CountingReader(io.RawIOBase):
    """Wraps a zip member and stops once more than ``budget`` bytes came out (declared sizes can lie)."""

    def __init__(self, raw: IO[bytes], budget: list[int], name: str) -> None:
        self._raw = raw
        self._budget = budget
        self._name = name

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._raw.read(len(b))
        n = len(data)
        self._budget[0] -= n
        if self._budget[0] < 0:
            raise ExportError(
                f"{self._name}: the zip holds more data than pfs reads from one archive "
                f"(limit {DEFAULT_MAX_UNZIPPED_BYTES} bytes unless raised); unzip it yourself "
                "if it is genuine"
            )
        b[:n] = data
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class OmopSource:
    """The tables of an OMOP export, found by case-insensitive name in a directory or a zip file."""

    def __init__(self, path: Path, max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        self._budget = [int(max_unzipped_bytes)]
        self.files: dict[str, str] = {}
        if self.path.is_file() and zipfile.is_zipfile(self.path):
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as err:
                raise ExportError(f"{self.path}: cannot open zip file: {err}") from err
            names = [i.filename for i in self._zip.infolist() if not i.is_dir()]
            declared = sum(i.file_size for i in self._zip.infolist())
            if declared > max_unzipped_bytes:
                raise ExportError(
                    f"{self.path}: the zip declares {declared} uncompressed bytes, over the "
                    f"{max_unzipped_bytes}-byte limit; unzip it and convert the directory"
                )
        elif self.path.is_dir():
            names = [p.relative_to(self.path).as_posix() for p in sorted(self.path.rglob("*")) if p.is_file()]
        else:
            raise ExportError(f"{self.path}: not a directory or a zip file of OMOP tables")
        for name in names:
            pure = PurePosixPath(name)
            if "__MACOSX" in pure.parts or pure.name.startswith("."):
                continue
            low = pure.name.lower()
            ext = next((e for e in _EXTENSIONS if low.endswith(e)), None)
            if ext is None:
                continue
            table = low[: -len(ext)]
            if table in self.files and self.files[table] != name:
                raise ExportError(
                    f"{self.path}: table '{table}' exists as {self.files[table]} and {name}; keep one"
                )
            self.files[table] = name

    def has(self, table: str) -> bool:
        return table in self.files

    def label(self, table: str) -> str:
        return PurePosixPath(self.files[table]).name

    def _open(self, table: str) -> IO[bytes]:
        name = self.files[table]
        try:
            if self._zip is not None:
                raw = self._zip.open(name)
                stream: IO[bytes] = io.BufferedReader(
                    _CountingReader(raw, self._budget, f"{self.path}:{name}")
                )
            else:
                stream = open(self.path / name, "rb")  # noqa: SIM115 - closed by the caller
        except (OSError, zipfile.BadZipFile, RuntimeError) as err:
            raise ExportError(f"{self.path}: cannot read {name}: {err}") from err
        if name.lower().endswith(".gz"):
            import gzip

            stream = gzip.open(stream)  # type: ignore[assignment]
        return stream

    def columns(self, table: str) -> list[str]:
        """Lower-cased column names of ``table``."""
        if self.files[table].lower().endswith(".parquet"):
            import pyarrow.parquet as pq

            with self._open(table) as fh:
                return [c.lower() for c in pq.ParquetFile(io.BytesIO(fh.read())).schema_arrow.names]
        header, _ = self._header(table)
        return header

    def _header(self, table: str) -> tuple[list[str], str]:
        with self._open(table) as fh:
            first = fh.readline(1 << 20).decode("utf-8-sig", errors="replace").rstrip("\r\n")
        if not first.strip():
            raise ExportError(f"{self.path}: {self.files[table]} is empty (no header row)")
        delim = max((",", "\t", "|", ";"), key=first.count)
        header = next(csv.reader([first], delimiter=delim))
        return [h.strip().strip('"').lower() for h in header], delim

    def chunks(
        self,
        table: str,
        usecols: list[str] | None = None,
        quarantine: Quarantine | None = None,
        chunksize: int = CHUNK_ROWS,
    ) -> Iterator[pd.DataFrame]:
        """Yield ``table`` in chunks: lower-case columns, strings ('' for blank), 1-based ``_row``.

        Columns of ``usecols`` that the file lacks come back blank (optional CDM columns are often
        left out); malformed CSV lines are quarantined when a ``quarantine`` is given.
        """
        name = self.files[table]
        if name.lower().endswith(".parquet"):
            yield from self._parquet_chunks(table, usecols, chunksize)
            return
        header, delim = self._header(table)
        wanted = set(usecols) if usecols else None
        start = 0
        with self._open(table) as fh, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="")
            try:
                reader = pd.read_csv(
                    text,
                    sep=delim,
                    dtype=str,
                    keep_default_na=False,
                    na_filter=False,
                    chunksize=chunksize,
                    usecols=(lambda c: c.strip().strip('"').lower() in wanted) if wanted else None,
                    quoting=csv.QUOTE_NONE if delim == "\t" else csv.QUOTE_MINIMAL,
                    on_bad_lines="warn",
                    engine="c",
                )
                for chunk in reader:
                    chunk.columns = [str(c).strip().strip('"').lower() for c in chunk.columns]
                    chunk["_row"] = range(start + 1, start + len(chunk) + 1)
                    start += len(chunk)
                    yield _with_columns(chunk, usecols)
            except pd.errors.EmptyDataError:
                return
            except (pd.errors.ParserError, UnicodeError, OSError, zipfile.BadZipFile) as err:
                raise ExportError(f"{self.path}: cannot parse {name}: {err}") from err
            if quarantine is not None:
                for w in caught:
                    for m in _BAD_LINE.finditer(str(w.message)):
                        line = int(m.group(1)) - 1
                        set_aside(quarantine, self.label(table), line, f"malformed CSV line: {m.group(2)}")

    def _parquet_chunks(
        self, table: str, usecols: list[str] | None, chunksize: int
    ) -> Iterator[pd.DataFrame]:
        import pyarrow.parquet as pq

        name = self.files[table]
        try:
            if self._zip is not None:
                with self._open(table) as fh:
                    pf = pq.ParquetFile(io.BytesIO(fh.read()))
            else:
                pf = pq.ParquetFile(self.path / name)
            actual = {c.lower(): c for c in pf.schema_arrow.names}
            cols = [actual[c] for c in usecols if c in actual] if usecols else None
            start = 0
            for batch in pf.iter_batches(batch_size=chunksize, columns=cols):
                chunk = batch.to_pandas()
                chunk.columns = [str(c).lower() for c in chunk.columns]
                for c in chunk.columns:
                    s = chunk[c]
                    if pd.api.types.is_datetime64_any_dtype(s):
                        chunk[c] = s.dt.strftime("%Y-%m-%d").fillna("")
                    else:
                        chunk[c] = s.map(
                            lambda v: (
                                ""
                                if v is None or (isinstance(v, float) and pd.isna(v))
                                else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
                            )
                        )
                chunk["_row"] = range(start + 1, start + len(chunk) + 1)
                start += len(chunk)
                yield _with_columns(chunk, usecols)
        except ExportError:
            raise
        except Exception as err:  # pyarrow raises many types for corrupt files
            raise ExportError(f"{self.path}: cannot read Parquet table {name}: {err}") from err

    def read(
        self,
        table: str,
        usecols: list[str] | None = None,
        quarantine: Quarantine | None = None,
        keep: Callable[[pd.DataFrame], pd.Series] | None = None,
    ) -> pd.DataFrame:
        """The whole (filtered) table: ``keep(chunk)`` selects the rows worth holding."""
        parts = []
        for chunk in self.chunks(table, usecols, quarantine):
            parts.append(chunk.loc[keep(chunk)] if keep is not None else chunk)
        if not parts:
            return _with_columns(pd.DataFrame({"_row": pd.Series(dtype="int64")}), usecols)
        return pd.concat(parts, ignore_index=True)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _with_columns(frame: pd.DataFrame, usecols: list[str] | None) -> pd.DataFrame:
    for c in usecols or []:
        if c not in frame:
            frame[c] = ""
    for c in frame.columns:
        if c != "_row" and frame[c].dtype != object:
            frame[c] = frame[c].astype(str)
    return frame


def canonical_ids(values: pd.Series) -> pd.Series:
    """Concept/person ids as canonical strings ('19073183.0' and ' 19073183' -> '19073183')."""
    s = values.fillna("").astype(str).str.strip()
    return s.str.replace(r"\.0+$", "", regex=True)


def person_filter(quarantine: Quarantine, label: str, known: set[str]) -> Callable[[pd.DataFrame], pd.Series]:
    """Chunk filter: quarantine rows of unknown persons, keep rows of known ones."""

    def keep(chunk: pd.DataFrame) -> pd.Series:
        chunk["person_id"] = canonical_ids(chunk["person_id"])
        unknown = ~chunk["person_id"].isin(known)
        set_aside_rows(quarantine, label, chunk.loc[unknown], "person_id not in the person table", column="person_id")
        return ~unknown

    return keep


def dated(
    frame: pd.DataFrame, column: str, quarantine: Quarantine, label: str, *, required: bool
) -> pd.DataFrame:
    """Normalise ``column`` to ISO dates; quarantine unparseable ones (and blank ones when required)."""
    raw = frame[column].fillna("").astype(str).str.strip()
    frame[column] = iso_dates(raw)
    bad = (raw != "") & (frame[column] == "")
    if required:
        bad |= raw == ""
    set_aside_rows(
        quarantine,
        label,
        frame.loc[bad].assign(**{column: raw[bad]}),
        f"unparseable or missing date in {column}",
        column=column,
    )
    return frame.loc[~bad] if required else frame
