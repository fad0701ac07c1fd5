"""Read one table file in partitions: a bounded amount of it in memory, whatever its size.

A file is read twice, both times as a stream. The *probe* pass hashes it and finds its encoding
(and whether it holds bytes no text should), its header and its quote parity. The *read* pass then
hands out batches of string columns with each row's 1-based data-row number in ``_row``: from
pyarrow's streaming CSV reader when nothing speaks against it, else from the csv module, which says
exactly which records are malformed so they can be quarantined. pyarrow may still give up part-way
(:class:`ArrowGaveUp`); the caller then reads the file again with the csv module. Parquet files are
read row group by row group.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from pfs.exceptions import ExportError
from pfs.io.limits import open_gzip_limited
from pfs.io.mapping import TableMapping
from pfs.io.quarantine import Quarantine

_DELIMITERS = (",", ";", "\t", "|")
#: A valid multi-byte UTF-8 sequence: a file that has them is UTF-8 even if a few bytes are not.
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
#: Bytes any text file may hold; deleting them leaves only control bytes (a fast test of a chunk).
_TEXT_BYTES = bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100)) + b"\t\n\r\x0b\x0c"
#: The codec name the probe gives a UTF-8 file holding some bytes that are not UTF-8.
UTF8_LOSSY = "utf-8 (surrogateescape)"
#: A single CSV field larger than this is a corrupt file, not a report (Python's csv default is 128 kB).
MAX_FIELD_BYTES = 16 * 1024 * 1024
#: Bytes per read from disk in the probe pass.
_CHUNK = 8 * 1024 * 1024
#: Default size of one batch of rows (bytes of input text).
DEFAULT_BATCH_BYTES = 32 * 1024 * 1024


class ArrowGaveUp(Exception):
    """pyarrow met a record it cannot parse (wrong field count, a field larger than a block) part-way
    through a file: the caller drops what it took from this file and reads it again with
    ``probe.arrow_ok = False`` (the csv module, which quarantines exactly the bad records)."""


@dataclass
class Probe:
    """What the first pass learnt about a table file."""

    sha256: str
    codec: str
    binary: bool
    header: list[str]
    delimiter: str
    odd_quotes: bool
    arrow_ok: bool


def _open(path: Path) -> IO[bytes]:
    """The file's content as a binary stream (gzip decompressed, within the bomb limit)."""
    if path.suffix == ".gz":
        return open_gzip_limited(path)
    try:
        return open(path, "rb")
    except OSError as err:
        raise ExportError(f"{path}: cannot read file: {err.strerror}") from err


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(chunk)
    except OSError as err:
        raise ExportError(f"{path}: cannot read file: {err.strerror}") from err
    return digest.hexdigest()


def probe(path: Path, tm: TableMapping, notes: list[str]) -> Probe:
    """Hash, encoding, header and delimiter of a table file, and whether pyarrow may read it."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            columns = list(pq.ParquetFile(path).schema_arrow.names)
        except Exception as err:  # pyarrow raises many types for corrupt files
            raise ExportError(f"{path}: cannot read Parquet file: {err}") from err
        return Probe(_file_sha256(path), "parquet", True, columns, "", False, False)

    encoding = tm.encoding or "utf-8"
    try:
        decoder = codecs.getincrementaldecoder(encoding)()
    except LookupError as err:
        raise ExportError(f"{path}: cannot decode as {tm.encoding}: {err}") from err
    decodes, first_bad_line = True, 0
    lines = quotes = 0
    control = multibyte = nonblank = False
    head = b""
    tail = b""
    # The hash is of the file as stored: a gzip file is hashed on its own, a plain one as it is read.
    gz = path.suffix == ".gz"
    digest = _file_sha256(path) if gz else None
    hasher = hashlib.sha256()
    with _open(path) as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            if not gz:
                hasher.update(chunk)
            if len(head) < 1 << 20 and b"\n" not in head:
                head += chunk[: 1 << 20]
            if decodes:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as err:
                    decodes = False
                    first_bad_line = lines + chunk[: max(err.start, 0)].count(b"\n") + 1
            quotes += chunk.count(b'"')
            lines += chunk.count(b"\n")
            control = control or len(chunk.translate(None, _TEXT_BYTES)) > 0
            if not multibyte:
                # Valid UTF-8 with a byte above 0x7f is a multi-byte sequence; past the first
                # undecodable byte, look for well-formed sequences among the foreign bytes.
                multibyte = (not chunk.isascii()) if decodes else _UTF8_MULTIBYTE.search(tail + chunk) is not None
            nonblank = nonblank or bool(chunk.strip())
            tail = chunk[-3:]
        if decodes:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                decodes, first_bad_line = False, lines + 1
    if not nonblank:
        raise ExportError(f"{path}: the file is empty (no header row)")
    digest = digest or hasher.hexdigest()

    if tm.encoding:
        if not decodes:
            raise ExportError(f"{path}: cannot decode as {tm.encoding} (first bad byte on line {first_bad_line})")
        codec = tm.encoding
    elif decodes:
        codec = "utf-8-sig"
    elif multibyte:
        # A UTF-8 file with a few foreign bytes (binary garbage pasted into a field): keep the file
        # UTF-8 rather than re-reading every other patient's text as Latin-1.
        notes.append(f"{path.name}: bytes that are not UTF-8 (first on line {first_bad_line}); those values quarantined")
        codec = UTF8_LOSSY
    else:
        # Excel on Windows writes cp1252/Latin-1; decoding as Latin-1 never fails, so say we did it.
        notes.append(f"{path.name}: not valid UTF-8 (first bad byte on line {first_bad_line}); read as Latin-1")
        codec = "latin-1"

    # Decode before splitting: in UTF-16 a newline is two bytes.
    text = codecs.getincrementaldecoder(_python_codec(codec))(errors=_errors(codec)).decode(head)
    line = text.split("\n", 1)[0].lstrip("\ufeff").rstrip("\r")
    delim = _sniff_delimiter(line, path, tm, notes)
    header = next(csv.reader([line], delimiter=delim), [])
    # pyarrow reads well-formed UTF-8 (or transcoded) files; an odd number of quotes means the file ends
    # inside a quoted field, which pyarrow accepts, and duplicate names must reach the column check.
    arrow_ok = codec != UTF8_LOSSY and quotes % 2 == 0 and bool(header) and len(set(header)) == len(header)
    return Probe(digest, codec, codec == UTF8_LOSSY or control, header, delim, quotes % 2 == 1, arrow_ok)


def _python_codec(codec: str) -> str:
    return "utf-8-sig" if codec == UTF8_LOSSY else codec


def _errors(codec: str) -> str:
    return "surrogateescape" if codec == UTF8_LOSSY else "strict"


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


# --- pyarrow: the fast path for well-formed files ---------------------------------------------------


def _arrow_reader(stream: IO[bytes], codec: str, header: list[str], delim: str, block_bytes: int):  # noqa: ANN202
    import pyarrow as pa
    from pyarrow import csv as pa_csv

    encoding = "utf8" if codec == "utf-8-sig" else codec
    return pa_csv.open_csv(
        stream,
        read_options=pa_csv.ReadOptions(block_size=block_bytes, encoding=encoding),
        parse_options=pa_csv.ParseOptions(delimiter=delim, newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(column_types={c: pa.string() for c in header},
                                              strings_can_be_null=False, quoted_strings_can_be_null=False),
    )


def _block(block_bytes: int) -> int:
    return max(int(block_bytes), 1 << 12)


def _batches_arrow(path: Path, p: Probe, block_bytes: int) -> Iterator[pd.DataFrame]:
    import pyarrow as pa

    start = 1
    with _open(path) as fh:
        try:
            reader = _arrow_reader(fh, p.codec, p.header, p.delimiter, _block(block_bytes))
            if reader.schema.names != p.header:
                raise ArrowGaveUp(f"{path.name}: header read differently")
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                df = pa.Table.from_batches([batch]).to_pandas(types_mapper=pd.ArrowDtype)
                df["_row"] = np.arange(start, start + len(df), dtype="int64")
                start += len(df)
                yield df
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
            raise ArrowGaveUp(f"{path.name}: {err}") from err


# --- the csv module: malformed files, record by record -------------------------------------------------


def _batches_records(path: Path, p: Probe, table: str, quarantine: Quarantine,
                     block_bytes: int) -> Iterator[pd.DataFrame]:
    """Records in batches; records with the wrong number of fields are quarantined, not guessed."""
    csv.field_size_limit(MAX_FIELD_BYTES)
    with _open(path) as raw:
        text = io.TextIOWrapper(raw, encoding=_python_codec(p.codec), errors=_errors(p.codec), newline="")
        reader = csv.reader(text, delimiter=p.delimiter)
        try:
            header = next(reader)
        except StopIteration as err:
            raise ExportError(f"{path}: the file is empty (no header row)") from err
        except UnicodeDecodeError as err:
            raise ExportError(f"{path}: cannot decode as {p.codec}: {err}") from err
        rows: list[list[str]] = []
        numbers: list[int] = []
        size = n = 0
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
            if size >= block_bytes:
                # Yield only once the next record exists: the last record must stay here (see below).
                yield _frame(rows, numbers, header)
                rows, numbers, size = [], [], 0
            rows.append(rec)
            numbers.append(n)
            size += sum(len(v) for v in rec)
    # An odd number of quote characters: the file ends inside a quoted field (cut in the middle
    # of a report), and the csv module would hand back the cut record as if it were whole.
    if rows and numbers[-1] == n and p.odd_quotes:
        rows.pop()
        quarantine.add(table, [numbers.pop()], "unreadable CSV record: the file ends inside a quoted field "
                       f"(truncated file?) ({path.name})", stage="load")
    yield _frame(rows, numbers, header)


def _frame(rows: list[list[str]], numbers: list[int], header: list[str]) -> pd.DataFrame:
    # Duplicate header names are kept as they are: the column check names them.
    df = pd.DataFrame(rows if rows else np.empty((0, len(header)), dtype=object), dtype=object)
    df.columns = header
    df["_row"] = np.asarray(numbers, dtype="int64")
    return df


# --- Parquet ------------------------------------------------------------------------------------------


def _batches_parquet(path: Path, block_bytes: int) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        rows = max(1, block_bytes // 256)
        start = 1
        for batch in pf.iter_batches(batch_size=rows):
            df = batch.to_pandas()
            out = pd.DataFrame(index=df.index)
            for col in df.columns:
                s = df[col]
                if pd.api.types.is_datetime64_any_dtype(s):
                    out[col] = s.dt.strftime("%Y-%m-%d").fillna("")
                else:
                    out[col] = s.map(lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))
            out["_row"] = np.arange(start, start + len(out), dtype="int64")
            start += len(out)
            yield out.reset_index(drop=True)
    except Exception as err:  # pyarrow raises many types for corrupt files
        raise ExportError(f"{path}: cannot read Parquet file: {err}") from err


def batches(path: Path, p: Probe, table: str, quarantine: Quarantine,
            block_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[pd.DataFrame]:
    """The file's rows as string DataFrames of about ``block_bytes`` of input each, plus ``_row``.

    Malformed CSV records go to ``quarantine`` (they still have a row number). Column names are
    as in the file. At least one (possibly empty) batch is yielded.
    """
    if p.codec == "parquet":
        source = _batches_parquet(path, block_bytes)
    elif p.arrow_ok:
        source = _batches_arrow(path, p, block_bytes)
    else:
        source = _batches_records(path, p, table, quarantine, block_bytes)
    empty = True
    for df in source:
        empty = False
        yield df
    if empty:
        yield _frame([], [], p.header)
