"""Stage an export on disk in buckets of patients, so that a run holds one bucket in memory.

``pfs extract`` reads each big table (medications, reports, imaging) once, in batches
(:mod:`pfs.io.scan`), validates each batch, and appends its rows to the file of the bucket their
patient belongs to. Buckets are consecutive runs of the sorted patient ids, so processing them in
order gives outputs in patient order, and one bucket's tables are all a run needs in memory at a
time. The patients and annotations tables (one row per patient) stay in memory.
"""

from __future__ import annotations

import pickle
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pfs.io.export import Export, group_rows, read_export
from pfs.io.mapping import Mapping
from pfs.io.quarantine import Quarantine
from pfs.io.scan import DEFAULT_BATCH_BYTES
from pfs.io.schema import INPUT_TABLES


@dataclass
class _BucketWriter:
    """The sink :func:`read_export` feeds: cuts each clean batch by bucket and appends the pieces."""

    directory: Path
    bucket_patients: int
    buckets: list[list[str]] = field(default_factory=list)
    templates: dict[str, pd.DataFrame] = field(default_factory=dict)
    rows: dict[str, np.ndarray] = field(default_factory=dict)
    #: the MRI study ids of each bucket (for a progress bar whose total is known from the start)
    studies: list[set[str]] = field(default_factory=list)
    _where: dict[str, int] = field(default_factory=dict)

    def begin(self, patients: pd.DataFrame) -> None:
        pids = sorted(patients["patient_id"].astype(str).tolist())
        size = max(1, int(self.bucket_patients))
        self.buckets = [pids[i:i + size] for i in range(0, len(pids), size)]
        self._where = {pid: i for i, group in enumerate(self.buckets) for pid in group}
        self.studies = [set() for _ in self.buckets]

    def add(self, name: str, batch: pd.DataFrame) -> None:
        if name not in self.templates:
            self.templates[name] = batch.iloc[:0].copy()
            self.rows[name] = np.zeros(len(self.buckets), dtype="int64")
            (self.directory / name).mkdir(parents=True, exist_ok=True)
        if batch.empty:
            return
        for i, positions in enumerate(group_rows(batch["patient_id"], self._where, len(self.buckets))):
            if not len(positions):
                continue
            piece = batch.iloc[positions]  # file order within the bucket
            with open(self._path(name, i), "ab") as fh:
                pickle.dump(piece, fh, protocol=pickle.HIGHEST_PROTOCOL)
            self.rows[name][i] += len(piece)
            if name == "imaging":
                self.studies[i].update(piece["study_id"].astype(str))

    def discard(self, name: str) -> None:
        shutil.rmtree(self.directory / name, ignore_errors=True)
        self.templates.pop(name, None)
        self.rows.pop(name, None)
        if name == "imaging":
            self.studies = [set() for _ in self.buckets]

    def _path(self, name: str, bucket: int) -> Path:
        return self.directory / name / f"{bucket:06d}.pkl"

    def load(self, name: str, bucket: int) -> pd.DataFrame:
        path = self._path(name, bucket)
        if not path.exists():
            return self.templates[name].copy()
        parts = []
        with open(path, "rb") as fh:
            while True:
                try:
                    parts.append(pickle.load(fh))
                except EOFError:
                    break
        return (parts[0] if len(parts) == 1 else pd.concat(parts)).reset_index(drop=True)


@dataclass
class StagedExport:
    """An export read once and cut into buckets of patients on disk.

    ``base`` holds what is per cohort (patients, annotations, the load quarantine, rows read,
    file hashes, notes); :meth:`bucket` gives the full :class:`Export` of one bucket of patients.
    """

    base: Export
    _writer: _BucketWriter
    _tmp: tempfile.TemporaryDirectory | None = None

    def __len__(self) -> int:
        return len(self._writer.buckets)

    def has(self, name: str) -> bool:
        return name in self.base.files

    @property
    def patient_ids(self) -> list[str]:
        return [pid for group in self._writer.buckets for pid in group]

    def patients_in(self, bucket: int) -> list[str]:
        return list(self._writer.buckets[bucket])

    def rows_in(self, name: str, bucket: int) -> int:
        counts = self._writer.rows.get(name)
        return 0 if counts is None else int(counts[bucket])

    def studies_in(self, bucket: int) -> int:
        """MRI studies of the bucket's patients (distinct study ids)."""
        return len(self._writer.studies[bucket])

    def bucket(self, i: int) -> Export:
        """The export restricted to bucket ``i``: every table's rows of its patients, in file order."""
        members = set(self._writer.buckets[i])
        tables = {}
        for name, frame in self.base.tables.items():
            tables[name] = frame.loc[frame["patient_id"].astype(str).isin(members)].reset_index(drop=True)
        for name in self._writer.templates:
            tables[name] = self._writer.load(name, i)
        return Export(root=self.base.root, tables=tables, files=dict(self.base.files), rows_read={},
                      quarantine=Quarantine(), notes=[], file_hashes={})

    def close(self) -> None:
        """Delete the staged rows."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        elif self._writer.directory.exists():
            shutil.rmtree(self._writer.directory, ignore_errors=True)

    def __enter__(self) -> StagedExport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stage_export(root: Path | str, mapping: Mapping | Path | str | None = None, *,
                 tables: tuple[str, ...] = INPUT_TABLES, as_of: pd.Timestamp | None = None,
                 directory: Path | str | None = None, bucket_patients: int = 2000,
                 block_bytes: int = DEFAULT_BATCH_BYTES) -> StagedExport:
    """Read and validate the export at ``root`` in batches, staging its rows by bucket of patients.

    Args:
        directory: where the staged rows go (a fresh temporary folder inside it; default: the
            system's temporary folder). They take about the size of the input tables.
        bucket_patients: patients per bucket (what one step of the run holds in memory).
        block_bytes: input bytes per batch read.
    """
    if directory is not None:
        Path(directory).mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory(prefix="pfs-staging-", dir=directory)
    writer = _BucketWriter(Path(tmp.name), bucket_patients)
    try:
        base = read_export(root, mapping, tables, as_of, block_bytes=block_bytes, sink=writer)
    except BaseException:
        tmp.cleanup()
        raise
    return StagedExport(base=base, _writer=writer, _tmp=tmp)


__all__ = ["StagedExport", "stage_export"]
