"""Frictionless Table Schemas for the export and output tables, and a vectorised validator.

The schemas in ``pfs/schemas/`` (also reachable as ``data_schemas/`` at the repository root) are
plain Table Schema JSON so that other tools can read them. Validation here is pandas-vectorised:
a million medication rows must validate in about a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pfs.exceptions import RuleFileError
from pfs.io.quarantine import Quarantine

if TYPE_CHECKING:  # pyarrow is imported on first use: `pfs --help` must stay instant
    import pyarrow as pa

INPUT_TABLES = ("patients", "medications", "reports", "imaging", "procedures", "annotations")
OUTPUT_TABLES = ("events", "endpoints", "quarantine")
_FIELD_KEYS = {"name", "type", "format", "constraints", "description", "title", "pfsPath", "example"}
_CONSTRAINT_KEYS = {"required", "unique", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern"}
_TYPES = {"string", "date", "number", "integer", "boolean"}
_SCHEMA_KEYS = {"name", "title", "description", "fields", "primaryKey", "foreignKeys", "missingValues"}


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool
    unique: bool
    enum: tuple[Any, ...] | None
    minimum: float | None
    maximum: float | None
    is_path: bool


@dataclass(frozen=True)
class TableSchema:
    name: str
    fields: tuple[Field, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[dict, ...]

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def required_columns(self) -> list[str]:
        return [f.name for f in self.fields if f.required]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


def parse_schema(descriptor: dict, origin: str = "<schema>") -> TableSchema:
    """Turn a Table Schema descriptor into a :class:`TableSchema`, rejecting keys pfs does not know."""
    unknown = set(descriptor) - _SCHEMA_KEYS
    if unknown:
        raise RuleFileError(f"{origin}: unknown schema keys {sorted(unknown)}")
    fields = []
    for spec in descriptor.get("fields", []):
        bad = set(spec) - _FIELD_KEYS
        if bad:
            raise RuleFileError(f"{origin}: field {spec.get('name')!r} has unknown keys {sorted(bad)}")
        if spec.get("type", "string") not in _TYPES:
            raise RuleFileError(f"{origin}: field {spec['name']!r} has unsupported type {spec.get('type')!r}")
        cons = spec.get("constraints", {})
        bad = set(cons) - _CONSTRAINT_KEYS
        if bad:
            raise RuleFileError(f"{origin}: field {spec['name']!r} has unknown constraints {sorted(bad)}")
        fields.append(
            Field(
                name=spec["name"],
                type=spec.get("type", "string"),
                required=bool(cons.get("required", False)),
                unique=bool(cons.get("unique", False)),
                enum=tuple(cons["enum"]) if "enum" in cons else None,
                minimum=cons.get("minimum"),
                maximum=cons.get("maximum"),
                is_path=bool(spec.get("pfsPath", False)),
            )
        )
    pk = descriptor.get("primaryKey", [])
    return TableSchema(
        name=descriptor.get("name", origin),
        fields=tuple(fields),
        primary_key=tuple([pk] if isinstance(pk, str) else pk),
        foreign_keys=tuple(descriptor.get("foreignKeys", [])),
    )


@cache
def load_schema(name: str) -> TableSchema:
    """The shipped schema of table ``name`` (input or output)."""
    try:
        text = resources.files("pfs.schemas").joinpath(f"{name}.json").read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise RuleFileError(f"no schema named {name!r} ships with pfs") from err
    return parse_schema(json.loads(text), origin=f"schemas/{name}.json")


_ISO_DATE = r"^\d{4}-\d{2}-\d{2}(?:[T ][0-9:.+\-Z]*)?$"


def _trimmed(values: pd.Series) -> pa.Array:
    """The column as an Arrow string array with surrounding whitespace removed; missing stays null.

    Stripping once per column in Arrow is 10-20x faster than pandas' object ``.str.strip`` and is
    the hot path of loading a million-row export.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values.dtype, pd.ArrowDtype) or str(values.dtype) == "string":
        arr = pa.array(values)  # already Arrow-backed (the CSV fast path): no copy
        if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
            arr = pc.cast(arr, pa.string())
    else:
        obj = values.to_numpy(dtype=object, na_value=None)
        try:
            arr = pa.array(obj, type=pa.string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = pa.array([None if v is None else str(v) for v in obj], type=pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pc.utf8_trim_whitespace(arr)


def _to_pandas_bool(arr: pa.Array, index: pd.Index) -> pd.Series:

    return pd.Series(arr.to_numpy(zero_copy_only=False), index=index, dtype=bool)


def _parse_trimmed_dates(arr: pa.Array, index: pd.Index, date_format: str | None) -> pd.Series:
    """Day-resolution timestamps from trimmed strings; anything unparseable or implausible is NaT.

    Arrow finds and cuts the ISO day (fast); pandas parses it, because Arrow's strptime accepts
    impossible days such as 2021-02-30 and rolls them over.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if date_format:
        text = pd.Series(arr.to_pandas(), index=index, dtype=object)
        parsed = pd.to_datetime(text, format=date_format, errors="coerce")
    else:
        iso = pc.fill_null(pc.match_substring_regex(arr, _ISO_DATE), False)
        day = pc.if_else(iso, pc.utf8_slice_codeunits(arr, 0, 10), pa.scalar(None, pa.string()))
        parsed = pd.to_datetime(pd.Series(day.to_pandas(), index=index, dtype=object), format="%Y-%m-%d",
                                errors="coerce")
    parsed = parsed.astype("datetime64[ns]").dt.normalize()
    # Years outside 1900..2100 are typing errors (0021, 9999 placeholders), not dates.
    bad_year = parsed.notna() & ((parsed.dt.year < 1900) | (parsed.dt.year > 2100))
    return parsed.mask(bad_year)


def parse_dates(values: pd.Series, date_format: str | None = None) -> pd.Series:
    """Parse a string column to day-resolution timestamps; unparseable values become NaT.

    ISO 8601 is the contract (``2021-03-04``; a time part is dropped). A mapping file may give an
    explicit strftime format instead, for exports that cannot be changed.
    """
    return _parse_trimmed_dates(_trimmed(values), values.index, date_format)


_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"


def _parse_trimmed_numbers(arr: pa.Array, index: pd.Index) -> pd.Series:
    """float64 from trimmed strings; anything that is not a plain decimal number is NaN."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ok = pc.fill_null(pc.match_substring_regex(arr, _NUMBER), False)
    num = pc.cast(pc.if_else(ok, arr, pa.scalar(None, pa.string())), pa.float64())
    return pd.Series(num.to_numpy(zero_copy_only=False), index=index, dtype="float64")


class KeyLedger:
    """The keys seen in earlier batches of a table, for uniqueness checks across batches.

    Keeps a 64-bit hash and the first row of each key (16 bytes per row, not the keys themselves:
    a million medication ids cost 16 MB). Two different keys share a hash with probability about
    n²/2⁶⁵ (3e-8 for a million rows); within one batch keys are compared exactly.
    """

    def __init__(self) -> None:
        self._hashes: dict[str, np.ndarray] = {}
        self._rows: dict[str, np.ndarray] = {}

    def first_rows(self, name: str, hashes: np.ndarray) -> np.ndarray:
        """For each hash, the row where an earlier batch first had that key; -1 when none did."""
        known = self._hashes.get(name)
        if known is None or not len(known) or not len(hashes):
            return np.full(len(hashes), -1, dtype="int64")
        pos = np.searchsorted(known, hashes).clip(max=len(known) - 1)
        return np.where(known[pos] == hashes, self._rows[name][pos], -1)

    def add(self, name: str, hashes: np.ndarray, rows: np.ndarray) -> None:
        """Record keys first seen in this batch (callers pass each new key once)."""
        if not len(hashes):
            return
        h = np.concatenate([self._hashes.get(name, np.array([], dtype="uint64")), hashes.astype("uint64")])
        r = np.concatenate([self._rows.get(name, np.array([], dtype="int64")), rows.astype("int64")])
        order = np.argsort(h, kind="stable")
        self._hashes[name], self._rows[name] = h[order], r[order]


def _key_hashes(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """64-bit hashes of the keys (each value as text; no factorising: keys are mostly distinct)."""
    hashes = [pd.util.hash_array((df[c] if df[c].dtype == object else df[c].astype(str)).to_numpy(dtype=object),
                                 categorize=False) for c in columns]
    out = hashes[0]
    for h in hashes[1:]:  # combine column hashes in order (a, b) != (b, a)
        out = (out * np.uint64(0x100000001B3)) ^ h
    return out


def _earlier_duplicates(df: pd.DataFrame, columns: list[str], seen: KeyLedger | None, label: str,
                        repeated: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Rows whose key an earlier batch already had, and that batch's first row of it; the keys new
    in this batch are recorded (their first occurrence here, bad rows included, as within a batch).

    ``repeated`` marks the rows whose key occurred earlier in this batch.
    """
    none = pd.Series(False, index=df.index), pd.Series(-1, index=df.index, dtype="int64")
    if seen is None or df.empty:
        return none
    present = df[columns].notna().all(axis=1).to_numpy()
    if not present.any():
        return none
    h = _key_hashes(df.loc[present], columns)
    first = np.full(len(df), -1, dtype="int64")
    first[present] = seen.first_rows(label, h)
    earlier = first >= 0
    fresh = present & ~earlier & ~repeated.to_numpy()
    all_h = np.zeros(len(df), dtype="uint64")
    all_h[present] = h
    seen.add(label, all_h[fresh], df["_row"].to_numpy()[fresh])
    return pd.Series(earlier, index=df.index), pd.Series(first, index=df.index)


def coerce_and_validate(
    frame: pd.DataFrame,
    schema: TableSchema,
    quarantine: Quarantine,
    *,
    table: str,
    date_format: str | None = None,
    seen: KeyLedger | None = None,
) -> pd.DataFrame:
    """Type every schema column and quarantine the rows that break the schema.

    ``frame`` holds strings (blank = missing) plus ``_row``. Returns the typed frame with the
    offending rows removed; each failure is one quarantine line naming the column and the value.
    Each column is trimmed once, in Arrow; string columns come back as object (NaN = missing).
    ``seen`` carries the keys of earlier batches of the same table, when it is read in batches.
    """
    import pyarrow.compute as pc

    df = frame.copy()
    bad = pd.Series(False, index=df.index)
    for f in schema.fields:
        raw = df[f.name]
        text = _trimmed(raw)
        blank = _to_pandas_bool(pc.fill_null(pc.equal(text, ""), True), df.index)
        if f.required:
            quarantine.add_from(table, df, blank & ~bad, f"missing required value in column '{f.name}'",
                                stage="load", column=f.name)
            bad |= blank
        if f.type == "date":
            parsed = _parse_trimmed_dates(text, df.index, date_format)
            fail = ~blank & parsed.isna()
            expect = date_format or "YYYY-MM-DD"
            quarantine.add_from(table, df, fail & ~bad,
                                f"unparseable or implausible date in column '{f.name}' (expected {expect})",
                                stage="load", column=f.name)
            bad |= fail
            df[f.name] = parsed
        elif f.type in ("number", "integer"):
            num = _parse_trimmed_numbers(text, df.index)
            fail = ~blank & num.isna()
            quarantine.add_from(table, df, fail & ~bad, f"not a number in column '{f.name}'",
                                stage="load", column=f.name)
            bad |= fail
            if f.type == "integer":
                frac = num.notna() & (np.floor(num) != num)
                quarantine.add_from(table, df, frac & ~bad, f"not an integer in column '{f.name}'",
                                    stage="load", column=f.name)
                bad |= frac
            if f.minimum is not None:
                low = num.notna() & (num < f.minimum)
                quarantine.add_from(table, df, low & ~bad, f"value below minimum {f.minimum} in column '{f.name}'",
                                    stage="load", column=f.name)
                bad |= low
            if f.maximum is not None:
                high = num.notna() & (num > f.maximum)
                quarantine.add_from(table, df, high & ~bad, f"value above maximum {f.maximum} in column '{f.name}'",
                                    stage="load", column=f.name)
                bad |= high
            df[f.name] = num.astype("Int64") if f.type == "integer" else num
        else:
            values = pd.Series(text.to_pandas(), index=df.index, dtype=object)
            df[f.name] = values.where(~blank, np.nan)
        if f.enum is not None:
            allowed = set(f.enum)
            out = ~blank & ~df[f.name].isin(allowed)
            quarantine.add_from(table, df, out & ~bad,
                                f"value not allowed in column '{f.name}' (allowed: {', '.join(map(str, f.enum))})",
                                stage="load", column=f.name)
            bad |= out
    for f in schema.fields:
        if not f.unique:
            continue
        repeated = df[f.name].duplicated(keep="first")
        earlier, earlier_row = _earlier_duplicates(df, [f.name], seen, f.name, repeated)
        dup = df[f.name].notna() & (repeated | earlier) & ~bad
        if dup.any():
            first_row = df.drop_duplicates(f.name).set_index(f.name)["_row"]
            first = df.loc[dup, f.name].map(first_row).astype("int64").where(~earlier[dup], earlier_row[dup])
            reasons = ("duplicate " + f.name + " (first seen at row " + first.astype(str) + ")").reindex(df.index)
            quarantine.add_from(table, df, dup, reasons, stage="load", column=f.name)
            bad |= dup
    if len(schema.primary_key) > 1:
        key = list(schema.primary_key)
        repeated = df.duplicated(key, keep="first")
        earlier, _ = _earlier_duplicates(df, key, seen, "|".join(key), repeated)
        dup = (repeated | earlier) & ~bad
        quarantine.add_from(table, df, dup, f"duplicate key ({', '.join(key)})", stage="load", column=key[0])
        bad |= dup
    return df.loc[~bad].reset_index(drop=True)


def empty_frame(name: str) -> pd.DataFrame:
    """An empty frame with the columns and dtypes of schema ``name``."""
    schema = load_schema(name)
    dtypes = {"date": "datetime64[ns]", "number": "float64", "integer": "Int64"}
    return pd.DataFrame({f.name: pd.Series(dtype=dtypes.get(f.type, "object")) for f in schema.fields})


def conform(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Order and type an output frame by its schema; extra columns are kept after the schema's."""
    schema = load_schema(name)
    out = frame.copy()
    for f in schema.fields:
        if f.name not in out:
            out[f.name] = pd.NA
        if f.type == "date":
            out[f.name] = pd.to_datetime(out[f.name]).dt.normalize()
        elif f.type == "integer":
            out[f.name] = pd.to_numeric(out[f.name]).astype("Int64")
        elif f.type == "number":
            out[f.name] = pd.to_numeric(out[f.name]).astype("float64")
    extras = [c for c in out.columns if c not in schema.columns]
    return out[schema.columns + extras]
