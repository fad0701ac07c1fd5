"""Writing outputs so that an interrupted run never leaves a table that looks complete."""

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


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write a CSV (dates as ISO 8601) atomically; the same frame always gives the same bytes."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%d")
    data = out.to_csv(index=False, lineterminator="\n").encode("utf-8")
    _atomic_write_bytes(Path(path), data)
    return Path(path)


def write_json(obj: Any, path: Path) -> Path:
    data = (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")
    _atomic_write_bytes(Path(path), data)
    return Path(path)


def write_bytes(data: bytes, path: Path) -> Path:
    _atomic_write_bytes(Path(path), data)
    return Path(path)
