"""The per-patient result cache that makes runs resumable.

Each patient's result from each source is stored under a key made of the content of that patient's
input rows, the configuration and the pfs version. A rerun reuses what it finds; a run killed in the
middle resumes where it stopped, and because results are always assembled from the same
per-patient pieces the outputs are byte-identical to those of an uninterrupted run.

The cache holds derived patient data (events, evidence sentences): keep it where the outputs are.
Entries are pickles written by pfs itself; never point ``--cache-dir`` at files from elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pfs.version import __version__

#: Bumped when the layout of a cached entry changes, so older entries are simply not found.
CACHE_FORMAT = 2


def _row_hashes(frame: pd.DataFrame) -> pd.DataFrame:
    """patient_id, _row and a 64-bit hash of every column of each row."""
    cols = sorted(c for c in frame.columns)
    h = pd.util.hash_pandas_object(frame[cols], index=False, categorize=True).to_numpy()
    return pd.DataFrame({"patient_id": frame["patient_id"].to_numpy(), "_row": frame["_row"].to_numpy(), "h": h})


def _file_stamps(frame: pd.DataFrame, root: Path, columns: list[str]) -> pd.Series:
    """Size and modification time of the files a row points to (images are too big to hash each run)."""
    stamps = []
    for rec in frame[columns].itertuples(index=False):
        parts = []
        for value in rec:
            if isinstance(value, str) and value:
                try:
                    st = (root / value).stat()
                    parts.append(f"{st.st_size}:{st.st_mtime_ns}")
                except OSError:
                    parts.append("missing")
            else:
                parts.append("")
        stamps.append("|".join(parts))
    return pd.Series(stamps, index=frame.index, dtype=object)


def patient_keys(tables: dict[str, pd.DataFrame], context: str, *, root: Path | None = None,
                 path_columns: dict[str, list[str]] | None = None) -> dict[str, str]:
    """One cache key per patient of ``tables['patients']`` from all its rows in ``tables``.

    ``context`` names what else the result depends on (source, config hash); pfs's version and the
    cache format are always part of the key. Files named in ``path_columns`` count by size and
    modification time.
    """
    patients = sorted(tables["patients"]["patient_id"].astype(str))
    digests = {pid: hashlib.sha256(f"{__version__}|{CACHE_FORMAT}|{context}|{pid}".encode()) for pid in patients}
    for name in sorted(tables):
        frame = tables[name]
        if frame.empty:
            continue
        if path_columns and name in path_columns and root is not None:
            frame = frame.assign(_files=_file_stamps(frame, root, path_columns[name]))
        hashed = _row_hashes(frame).sort_values(["patient_id", "_row"], kind="stable")
        pids = hashed["patient_id"].astype(str).to_numpy()
        values = hashed["h"].to_numpy()
        rows = hashed["_row"].to_numpy(dtype=np.int64)
        starts = np.flatnonzero(np.r_[True, pids[1:] != pids[:-1]])
        ends = np.r_[starts[1:], len(pids)]
        for s, e in zip(starts, ends, strict=True):
            d = digests.get(pids[s])
            if d is None:
                continue
            d.update(name.encode())
            d.update(rows[s:e].tobytes())
            d.update(values[s:e].tobytes())
    return {pid: d.hexdigest() for pid, d in digests.items()}


class PatientCache:
    """Per-patient entries under ``root`` (``None`` disables caching)."""

    def __init__(self, root: Path | str | None) -> None:
        self.root = Path(root) if root is not None else None
        self.hits = 0
        self.stored = 0

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.pkl"

    def get(self, key: str) -> Any | None:
        if self.root is None:
            return None
        path = self._path(key)
        try:
            with path.open("rb") as fh:
                value = pickle.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, ValueError):
            return None  # an unreadable entry is recomputed, never trusted
        self.hits += 1
        return value

    def put(self, key: str, value: Any) -> None:
        """Write atomically: an entry is either complete or absent, even after kill -9."""
        if self.root is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.stored += 1
