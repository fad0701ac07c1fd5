"""Run one progression source over a cohort patient by patient: batches, a runner, the cache.

Every extractor treats patients independently, so a source's result for the cohort is the union of
its results per patient. This module cuts the cohort into work units (batches of patients for the
text sources; one task per MRI study for imaging, assembled per batch of patients), runs them on a
:mod:`pfs.execution` runner, stores each patient's piece in the :mod:`pfs.cache`, and assembles the
pieces in patient order. A batch that crashes is retried patient by patient; a patient that still
crashes has its rows quarantined with the error, and every other patient goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pfs.cache import PatientCache, patient_keys
from pfs.exceptions import PfsError
from pfs.execution import InProcessRunner, Runner
from pfs.extractors import ExtractorResult, WorkUnit, empty_events, load_extractor, source_spec
from pfs.io.export import Export
from pfs.io.quarantine import COLUMNS as QUARANTINE_COLUMNS
from pfs.io.schema import conform, load_schema
from pfs.settings import Config

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass
class Rows:
    """Some rows of one table as column arrays (numpy, or pandas extension arrays).

    A cohort of 10,000 patients is cut into tens of thousands of pieces; column arrays are several
    times cheaper than DataFrames to cut, to pickle into the cache and to join again.
    """

    columns: dict[str, Any]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


def _cutter(frame: pd.DataFrame) -> Callable[[Any], Rows]:
    """A function from row positions to :class:`Rows` of ``frame``."""
    arrays = {c: frame[c].to_numpy() if isinstance(frame[c].dtype, np.dtype) else frame[c].array
              for c in frame.columns}
    return lambda idx: Rows({c: a[idx] if isinstance(a, np.ndarray) else a.take(idx) for c, a in arrays.items()})


def _join(parts: list[Rows]) -> pd.DataFrame:
    """The rows of ``parts`` as one DataFrame, in order (empty parts still give the columns)."""
    if not parts:
        return pd.DataFrame()
    full = [p for p in parts if len(p)] or parts[:1]
    data = {}
    for col in full[0].columns:
        arrays = [p.columns[col] for p in full]
        if all(isinstance(a, np.ndarray) for a in arrays):
            data[col] = np.concatenate(arrays)
        elif all(type(a) is type(arrays[0]) and a.dtype == arrays[0].dtype for a in arrays):
            data[col] = type(arrays[0])._concat_same_type(arrays)
        else:  # mixed kinds across batches (an all-missing column typed differently): let pandas unify
            data[col] = pd.concat([pd.Series(a) for a in arrays], ignore_index=True)
    return pd.DataFrame(data)


@dataclass
class PatientPiece:
    """One patient's result from one source (what the cache stores)."""

    events: Rows
    tables: dict[str, Rows]
    quarantine: Rows
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class SourceRun:
    """A source's assembled result plus how it was obtained."""

    result: ExtractorResult
    patients: int
    reused: int
    failed: dict[str, str]


# --- splitting and assembling ------------------------------------------------------------------


def _split(result: ExtractorResult, pids: list[str]) -> dict[str, PatientPiece]:
    """Cut a batch result into per-patient pieces, each with its own counts.

    One grouping pass per table (row positions per patient), then the column arrays are indexed per
    patient; patients without rows share one empty piece.
    """
    if result.patient_counts is None and len(pids) > 1:
        raise TypeError("an extractor run on several patients must return patient_counts")
    no_rows = np.array([], dtype="int64")

    def by_patient(frame: pd.DataFrame | None) -> tuple[dict[str, Rows], Rows]:
        if frame is None:
            frame = pd.DataFrame({c: pd.Series(dtype="int64" if c == "row" else "object") for c in QUARANTINE_COLUMNS})
        cut = _cutter(frame)
        if frame.empty:
            return {}, cut(no_rows)
        positions = frame.groupby(frame["patient_id"].astype(str), sort=False).indices
        return {pid: cut(idx) for pid, idx in positions.items()}, cut(no_rows)

    events, no_events = by_patient(result.events)
    quarantine, no_quarantine = by_patient(result.quarantine)
    tables = {name: by_patient(frame) for name, frame in result.tables.items()}
    if result.patient_counts is None:
        counts: dict[str, dict[str, int]] = {pid: dict(result.counts) for pid in pids}
    else:
        counts = {str(pid): {str(k): int(v) for k, v in row.items()}
                  for pid, row in result.patient_counts.to_dict("index").items()}
    return {
        pid: PatientPiece(
            events=events.get(pid, no_events),
            tables={name: parts.get(pid, empty) for name, (parts, empty) in tables.items()},
            quarantine=quarantine.get(pid, no_quarantine),
            counts=counts.get(pid, {}),
        )
        for pid in pids
    }


def add_counts(total: dict[str, int], counts: dict[str, Any]) -> dict[str, int]:
    """Add the numeric ``counts`` into ``total`` (counts of parts of a cohort add up)."""
    for key, value in counts.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value
    return total


def _sum_counts(pieces: Iterable[PatientPiece]) -> dict[str, int]:
    total: dict[str, int] = {}
    for piece in pieces:
        add_counts(total, piece.counts)
    return total


def _concat(parts: list[Rows], schema: str | None) -> pd.DataFrame:
    out = _join(parts)
    if out.empty and not len(out.columns) and schema:
        out = pd.DataFrame(columns=load_schema(schema).columns)
    return conform(out, schema) if schema else out


def assemble(pieces: list[PatientPiece]) -> ExtractorResult:
    """The cohort result from per-patient pieces, in the order given (patient order)."""
    names = sorted({name for p in pieces for name in p.tables})
    tables = {name: _concat([p.tables[name] for p in pieces if name in p.tables], _schema_or_none(name))
              for name in names}
    quarantine = _concat([p.quarantine for p in pieces], None)
    if quarantine.empty:
        quarantine = pd.DataFrame({c: pd.Series(dtype="int64" if c == "row" else "object")
                                   for c in QUARANTINE_COLUMNS})
    events = _concat([p.events for p in pieces], "events") if pieces else empty_events()
    return ExtractorResult(events=events, tables=tables, quarantine=quarantine[QUARANTINE_COLUMNS],
                           counts=_sum_counts(pieces))


def _schema_or_none(name: str) -> str | None:
    try:
        load_schema(name)
    except PfsError:
        return None
    return name


# --- work units -------------------------------------------------------------------------------


def _extract_batch(task: tuple[str, Export, Config]) -> dict[str, PatientPiece]:
    """Task body (runs on a worker): one source on a sub-export of a few patients, cut per patient.

    Cutting on the worker keeps the main process free to receive, cache and assemble.
    """
    source, export, cfg = task
    return _split(load_extractor(source).extract(export, cfg), export.patient_ids)


def _failure_rows(export: Export, source: str, pid: str, err: BaseException) -> pd.DataFrame:
    """Quarantine every input row of a patient the source crashed on."""
    table = source_spec(source).input_table
    rows = export.table(table)
    rows = rows.loc[rows["patient_id"].astype(str) == pid]
    reason = f"the {source} extractor failed on this patient ({type(err).__name__}: {str(err)[:200]})"
    return pd.DataFrame({"table": table, "row": rows["_row"].astype("int64").to_numpy(), "patient_id": pid,
                         "column": "", "value": "", "reason": reason, "stage": source}, columns=QUARANTINE_COLUMNS)


def _batches(pids: list[str], export: Export, table: str, target_rows: int, max_patients: int) -> list[list[str]]:
    """Consecutive patients grouped to about ``target_rows`` input rows (and at most ``max_patients``)."""
    sizes = export.table(table)["patient_id"].astype(str).value_counts()
    out: list[list[str]] = []
    current: list[str] = []
    rows = 0
    for pid in pids:
        n = int(sizes.get(pid, 0))
        if current and (rows + n > target_rows or len(current) >= max_patients):
            out.append(current)
            current, rows = [], 0
        current.append(pid)
        rows += n
    if current:
        out.append(current)
    return out


def run_source(source: str, export: Export, cfg: Config, *, runner: Runner | None = None,
               cache: PatientCache | None = None, progress: Progress | None = None) -> SourceRun:
    """Run ``source`` on every patient of ``export``, reusing cached patients; see the module docstring."""
    runner = runner or InProcessRunner()
    cache = cache or PatientCache(None)
    report = progress or (lambda label, done, total: None)
    pipe = cfg.section("pipeline")
    spec = source_spec(source)
    table = spec.input_table
    pids = export.patient_ids
    files = {table: list(spec.file_columns)} if spec.file_columns else None
    keyed = {"patients": export.table("patients"), **{name: export.table(name) for name in spec.input_tables}}
    keys = patient_keys(keyed, f"{source}|{cfg.hash}", root=export.root, path_columns=files)
    pieces: dict[str, PatientPiece] = {}
    for pid in pids:
        hit = cache.get(keys[pid])
        if isinstance(hit, PatientPiece):
            pieces[pid] = hit
    reused = len(pieces)
    todo = [pid for pid in pids if pid not in pieces]
    failed: dict[str, str] = {}
    report(source, reused, len(pids))

    def keep(split: dict[str, PatientPiece], *, store: bool = True) -> None:
        for pid, piece in split.items():
            pieces[pid] = piece
            if store:  # a crash is not a result: the next run tries that patient again
                cache.put(keys[pid], piece)
        report(source, len(pieces), len(pids))

    if spec.unit == WorkUnit.STUDIES:
        # Batches run here, one after the other; their studies are the runner's tasks.
        batch_list = _batches(todo, export, table, target_rows=10**9, max_patients=int(pipe["imaging_batch_patients"]))
        rows = export.table(table)
        n_studies = int(rows.loc[rows["patient_id"].astype(str).isin(set(todo)), "study_id"].nunique())
        run_batch = _study_batch_runner(source, runner, cfg, lambda n: report("MRI studies", n, n_studies))
        batch_map, body = InProcessRunner().map, run_batch
    else:
        # At least four batches per worker, so that no worker idles while another finishes a big batch.
        rows = int(export.table(table)["patient_id"].astype(str).isin(set(todo)).sum())
        target = min(int(pipe["batch_rows"]), max(1, -(-rows // (4 * runner.workers))))
        batch_list = _batches(todo, export, table, target_rows=target, max_patients=int(pipe["batch_patients"]))
        batch_map, body = runner.map, _extract_batch

    def attempt(groups: list[list[str]]) -> Iterator[tuple[list[str], dict[str, PatientPiece] | BaseException]]:
        tasks = ((source, sub, cfg) for sub in export.partition(groups))
        for i, outcome in batch_map(body, tasks):
            if isinstance(outcome, PfsError):  # the user's mistake (config, input): stop the run
                raise outcome
            yield groups[i], outcome

    retry: list[str] = []
    for group, outcome in attempt(batch_list):
        if isinstance(outcome, BaseException):
            log.warning("%s batch of %d patients failed (%s); retrying patient by patient",
                        source, len(group), type(outcome).__name__)
            retry.extend(group)
        else:
            keep(outcome)
    for group, outcome in attempt([[pid] for pid in retry]):
        if isinstance(outcome, BaseException):
            failed[group[0]] = f"{type(outcome).__name__}: {outcome}"
            keep(_split(_failed_result(export, source, group[0], outcome), group), store=False)
        else:
            keep(outcome)
    result = assemble([pieces[pid] for pid in pids])
    return SourceRun(result=result, patients=len(pids), reused=reused, failed=failed)


def _failed_result(export: Export, source: str, pid: str, err: BaseException) -> ExtractorResult:
    return ExtractorResult(events=empty_events(), tables={}, quarantine=_failure_rows(export, source, pid, err),
                           counts={"patients_failed": 1})


def _study_batch_runner(source: str, runner: Runner, cfg: Config, studies_done: Callable[[int], None],
                        ) -> Callable[[tuple[str, Export, Config]], dict[str, PatientPiece]]:
    """A study-cut source for a batch of patients: its studies run as separate tasks (the module's
    ``process_study``), the per-patient step (volumetric RANO) here."""
    imaging = load_extractor(source)
    done = [0]

    def run_studies(jobs: list[Any], section: dict[str, Any]) -> list[Any]:
        outcomes: list[Any] = [None] * len(jobs)
        for i, outcome in runner.map(imaging.process_study, [(job, section) for job in jobs]):
            if isinstance(outcome, PfsError):
                raise outcome
            if isinstance(outcome, BaseException):
                outcome = imaging.crashed_study(jobs[i], outcome)
            outcomes[i] = outcome
            done[0] += 1
            studies_done(done[0])
        return outcomes

    def run(task: tuple[str, Export, Config]) -> dict[str, PatientPiece]:
        _, sub, _ = task
        return _split(imaging.extract(sub, cfg, run_studies=run_studies), sub.patient_ids)

    return run
