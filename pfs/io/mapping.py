"""The mapping file: lets users point pfs at their own file and column names without editing the export.

TOML, for example::

    [tables.medications]
    file = "meds_2023.csv"          # instead of medications.csv
    date_format = "%m/%d/%Y"        # instead of ISO 8601
    [tables.medications.columns]
    PAT_MRN_ID = "patient_id"       # their name = pfs name
    ORDER_START = "order_date"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pfs.exceptions import ConfigError
from pfs.io.schema import INPUT_TABLES, load_schema

_TABLE_KEYS = {"file", "date_format", "columns", "delimiter", "encoding"}


@dataclass(frozen=True)
class TableMapping:
    file: str | None = None
    date_format: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    delimiter: str | None = None
    encoding: str | None = None


@dataclass(frozen=True)
class Mapping:
    tables: dict[str, TableMapping] = field(default_factory=dict)

    def for_table(self, name: str) -> TableMapping:
        return self.tables.get(name, TableMapping())


def load_mapping(path: Path | str | None) -> Mapping:
    """Read and check a mapping file; ``None`` means the native layout as is."""
    if path is None:
        return Mapping()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"mapping file not found: {path}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    unknown = set(data) - {"tables"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level keys {sorted(unknown)} (expected [tables.NAME])")
    tables = {}
    for name, spec in data.get("tables", {}).items():
        if name not in INPUT_TABLES:
            raise ConfigError(f"{path}: unknown table {name!r} (known: {', '.join(INPUT_TABLES)})")
        bad = set(spec) - _TABLE_KEYS
        if bad:
            raise ConfigError(f"{path}: [tables.{name}] has unknown keys {sorted(bad)}")
        columns = dict(spec.get("columns", {}))
        known = set(load_schema(name).columns)
        for theirs, ours in columns.items():
            if ours not in known:
                raise ConfigError(
                    f"{path}: [tables.{name}.columns] maps {theirs!r} to {ours!r}, which is not a column of "
                    f"{name} (columns: {', '.join(sorted(known))})"
                )
        tables[name] = TableMapping(
            file=spec.get("file"),
            date_format=spec.get("date_format"),
            columns=columns,
            delimiter=spec.get("delimiter"),
            encoding=spec.get("encoding"),
        )
    return Mapping(tables)
