"""``pfs extract``: load an export, run the chosen extractors, reconcile, write the outputs.

Each extractor runs on its own; one that fails is recorded in the manifest and the others still
finish. Outputs are written atomically, and the manifest accounts for every input row.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pfs.version import __version__
from pfs.cache import PatientCache
from pfs.exceptions import ConfigError, PfsError, StrictModeError
from pfs.execution import LazyRunner, Runner, make_runner
from pfs.extractors import SOURCES, empty_events, source_spec
from pfs.io.export import Export
from pfs.io.mapping import Mapping
from pfs.io.output import TableAppender, write_json, write_table
from pfs.io.staging import StagedExport, stage_export
from pfs.io.schema import INPUT_TABLES, conform
from pfs.reconcile import build_endpoints, follow_up_dates, reconcile_events
from pfs.reconcile.window import single_source
from pfs.reconcile.assessments import from_tables
from pfs.settings import Config, load_config
from pfs.sources import SourceRun, add_counts, run_source

log = logging.getLogger(__name__)



@dataclass
class RunResult:
    """The tables of one ``pfs extract`` run, as DataFrames."""

    events: pd.DataFrame
    endpoints: pd.DataFrame
    quarantine: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    out: Path | None = None
    #: patient results reused from / stored into the cache (not in the manifest: a resumed run's
    #: outputs must be byte-identical to an uninterrupted one's)
    cache: dict[str, int] = field(default_factory=dict)
    #: per-source tables already written to ``out`` bucket by bucket (not held in :attr:`tables`)
    table_files: dict[str, Path] = field(default_factory=dict)


def _dated_records(export: Export) -> list[pd.Series]:
    """The latest dated record per patient in each source's input table (for the last follow-up)."""
    recs = []
    for name, col in dict.fromkeys((spec.input_table, spec.record_date) for spec in SOURCES.values()):
        t = export.table(name)
        if not t.empty:
            recs.append(t.set_index("patient_id")[col].dropna().groupby(level=0).max())
    return recs


def endpoints_for(patients: pd.DataFrame, dated_records: list[pd.Series], events: pd.DataFrame, config: Config,
                  sources: list[str], assessments: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-source and reconciled endpoints; returns (endpoints, reconciled events).

    ``assessments``: what the tumour sources said about every study (pfs.reconcile.assessments).
    """
    settings = config.section("endpoints")
    fu = follow_up_dates(patients, dated_records)
    frames = []
    for source in sources:
        # Each source's own dates, with the one pseudoprogression window applied by the reconciler.
        own = single_source(events.loc[events["source"] == source], patients, config.section("reconcile"), assessments)
        frames.append(build_endpoints(patients, own, source, index_date=settings["index_date"], last_followup=fu))
    reconciled = reconcile_events(events, patients, config.section("reconcile"), index_date=settings["index_date"],
                                  assessments=assessments)
    frames.append(build_endpoints(patients, reconciled, "reconciled", index_date=settings["index_date"],
                                  last_followup=fu))
    return conform(pd.concat(frames, ignore_index=True), "endpoints"), reconciled


class _SourceTotals:
    """One source's results gathered bucket by bucket; its big tables go straight to their files."""

    def __init__(self, out: Path | None) -> None:
        self.out = out
        self.events: list[pd.DataFrame] = []
        self.quarantine: list[pd.DataFrame] = []
        self.tables: dict[str, TableAppender | list[pd.DataFrame]] = {}
        self.counts: dict[str, int] = {}
        self.failed: dict[str, str] = {}
        self.patients = self.reused = 0

    def add(self, run: SourceRun) -> None:
        result = run.result
        self.events.append(result.events)
        if not result.quarantine.empty:
            self.quarantine.append(result.quarantine)
        for name, frame in result.tables.items():
            if name not in self.tables:
                self.tables[name] = [] if self.out is None else TableAppender(self.out / f"{name}.csv")
            self.tables[name].append(frame)
        add_counts(self.counts, result.counts)
        self.failed.update(run.failed)
        self.patients += run.patients
        self.reused += run.reused

    def all_failed(self) -> bool:
        return bool(self.failed) and len(self.failed) == self.patients

    def finish(self, keep: bool) -> dict[str, pd.DataFrame | Path]:
        """The tables (frames, or the files written); ``keep=False`` throws away what is unfinished."""
        done: dict[str, pd.DataFrame | Path] = {}
        for name, sink in self.tables.items():
            if isinstance(sink, TableAppender):
                if keep:
                    done[name] = sink.finish()
                else:
                    sink.discard()
            elif keep:
                done[name] = pd.concat(sink, ignore_index=True) if len(sink) > 1 else sink[0]
        return done

    def discard(self) -> None:
        self.finish(keep=False)


def run_extract(
    export_dir: Path | str,
    out: Path | str | None = None,
    *,
    sources: list[str] | None = None,
    config: Config | Path | str | dict | None = None,
    mapping: Mapping | Path | str | None = None,
    strict: bool | None = None,
    progress: Any = None,
    fmt: str = "native",
    convert_options: dict[str, Any] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    cache_dir: Path | str | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> RunResult:
    """Run the pipeline on a native export; write outputs to ``out`` when given.

    The export is read once, in batches, and staged on disk in buckets of consecutive patients
    (``pipeline.bucket_patients``); the sources then run bucket by bucket, so memory holds one
    bucket's rows whatever the size of the cohort. The per-source tables (steroid courses, report
    labels, volumes) are written as the buckets finish; with ``out=None`` they are kept in
    :attr:`RunResult.tables` instead.

    Args:
        export_dir: the export directory (native layout).
        out: output directory; ``None`` computes without writing.
        sources: extractors to run (default: config ``pipeline.sources``).
        config: a :class:`Config`, a TOML path or a dict of overrides.
        mapping: column/file mapping for non-native names.
        strict: fail on the first quarantined row.
        progress: optional callable ``(message)`` for the CLI's progress display.
        fmt: ``native`` (default), ``omop`` or ``fhir``; other formats are first converted into
            ``OUT/native`` (inspectable, and extracting it again gives the same result).
        convert_options: keyword arguments for :func:`pfs.io.formats.convert`.
        workers: processes for a local Dask cluster (0 = all cores; default: config ``pipeline.workers``,
            1 = everything in this process).
        scheduler: address of an existing dask.distributed scheduler (its workers must see the export).
        cache_dir: per-patient result cache; a rerun reuses it and an interrupted run resumes from it.
        on_progress: optional callable ``(label, done, total)`` fed as patients/studies finish.
    """
    cfg = config if isinstance(config, Config) else load_config(config)
    pipe = cfg.section("pipeline")
    sources = list(sources) if sources else list(pipe["sources"] or SOURCES)
    for source in sources:
        source_spec(source)  # an unknown name is a clear error before any work
    strict = pipe["strict"] if strict is None else strict
    say = progress or (lambda msg: None)
    out = None if out is None else Path(out)
    if out is not None and out.exists() and not out.is_dir():
        raise PfsError(f"{out}: the output folder given exists and is not a folder")

    conversion = None
    if fmt != "native":
        from pfs.io.formats import convert

        if out is None:
            raise ConfigError(f"--format {fmt} needs an output directory to hold the converted native tables")
        say(f"converting the {fmt} export")
        conversion = convert(export_dir, out / "native", fmt, **(convert_options or {}))
        export_dir = conversion.out
    say("loading export")
    as_of = _run_date(pipe["as_of"])
    if out is not None:
        _prepare_out(out)
    runner = make_runner(workers if workers is not None else pipe["workers"], scheduler or pipe["scheduler"] or None)
    if isinstance(runner, LazyRunner) and not _has_cache(cache_dir):
        runner.prestart()  # the workers start while the export is read (a cached rerun may need none)
    try:
        staged = stage_export(export_dir, mapping, as_of=as_of, directory=out,
                              bucket_patients=int(pipe["bucket_patients"]),
                              block_bytes=int(float(pipe["read_batch_mb"]) * 1024 * 1024))
    except BaseException:
        runner.close()
        raise
    with staged:
        export = staged.base
        if conversion is not None:
            export.quarantine.add_frame(conversion.quarantine)
        try:
            _check_strict(strict, export.quarantine.frame(), export.files)
        except BaseException:
            runner.close()
            raise
        source_status: dict[str, dict] = {}
        active: list[str] = []
        for source in sources:
            needs = source_spec(source).input_table
            if not staged.has(needs):
                # A source with no input at all would otherwise report "0 % progression", which is not a finding.
                source_status[source] = {"status": f"skipped: no {needs} table in the export", "events": 0}
            else:
                active.append(source)
        totals = {source: _SourceTotals(out) for source in active}
        try:
            dated_records, cache_stats = _run_buckets(staged, active, totals, cfg, strict, say, on_progress,
                                                      cache_dir, runner)
            events, tables, written = _gather(export, active, totals, source_status)
        except BaseException:
            for t in totals.values():  # no half-written table is left behind
                t.discard()
            raise
        ran = [s for s in sources if source_status[s]["status"] == "ran"]
        say("building endpoints")
        assessments = from_tables({**tables, **written})
        endpoints, reconciled = endpoints_for(export.table("patients"), dated_records, events, cfg, ran, assessments)
        tables["reconciled_events"] = reconciled
        quarantine = export.quarantine.frame()
        manifest = build_manifest(export, cfg, sources, source_status, quarantine)
    manifest["as_of"] = as_of.date().isoformat()
    if conversion is not None:
        manifest["conversion"] = {"format": fmt, "counts": conversion.counts}
    result = RunResult(events=events, endpoints=endpoints, quarantine=quarantine, tables=tables,
                       manifest=manifest, cache=cache_stats, table_files=written)
    if out is not None:
        say("writing outputs")
        result.out = write_outputs(result, out)
    return result


def _gather(export: Export, active: list[str], totals: dict[str, _SourceTotals],
            source_status: dict[str, dict]) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict[str, Path]]:
    """Events, in-memory tables and written tables of the sources; a source that failed on every
    patient is reported as failed and leaves nothing."""
    events_frames: list[pd.DataFrame] = []
    tables: dict[str, pd.DataFrame] = {}
    written: dict[str, Path] = {}
    for source in active:
        t = totals[source]
        if t.all_failed():
            first = next(iter(t.failed.values()))
            log.error("the %s extractor failed on every patient", source)
            source_status[source] = {"status": f"failed: {first}", "events": 0}
            t.discard()
            continue
        for frame in t.quarantine:
            export.quarantine.add_frame(frame)
        events = pd.concat(t.events, ignore_index=True) if t.events else empty_events()
        events_frames.append(events)
        for name, value in t.finish(keep=True).items():
            if isinstance(value, Path):
                written[name] = value
            else:
                tables[name] = value
        status = "ran" if not t.failed else f"ran ({len(t.failed)} patient(s) failed, rows quarantined)"
        source_status[source] = {"status": status, "events": int(len(events)), "counts": t.counts}
        log.info("%s: %d patients, %d from the cache", source, t.patients, t.reused)
    events = conform(pd.concat(events_frames, ignore_index=True), "events") if events_frames else empty_events()
    events = events.sort_values(["patient_id", "event_date", "source", "ref_id"], kind="stable")
    return events.reset_index(drop=True), tables, written


def _run_buckets(staged: StagedExport, active: list[str], totals: dict[str, _SourceTotals], cfg: Config,
                 strict: bool, say: Callable[[str], None], on_progress: Callable[[str, int, int], None] | None,
                 cache_dir: Path | str | None, runner: Runner,
                 ) -> tuple[list[pd.Series], dict[str, int]]:
    """Every active source on every bucket of patients, in patient order; returns the latest dated
    record per patient and table (for the last follow-up) and the cache's counts. Closes ``runner``."""
    cache = PatientCache(cache_dir)
    report = on_progress or (lambda label, done, total: None)
    # Progress counts over the whole cohort: patients per source, and MRI studies (counted at staging).
    patients = np.cumsum([0] + [len(staged.patients_in(i)) for i in range(len(staged))])
    studies = np.cumsum([0] + [staged.studies_in(i) for i in range(len(staged))])
    records: list[pd.Series] = []
    try:
        for i in range(len(staged)):
            sub = staged.bucket(i)
            records.extend(_dated_records(sub))
            for source in active:
                say(f"running {source} extractor" + (f" (patients bucket {i + 1} of {len(staged)})"
                                                      if len(staged) > 1 else ""))
                studies_shown = [False]

                def progress(label: str, done: int, total: int) -> None:
                    if label == "MRI studies":
                        studies_shown[0] = True
                        report(label, int(studies[i]) + done, int(studies[-1]))
                    else:
                        report(label, int(patients[i]) + done, int(patients[-1]))

                run = run_source(source, sub, cfg, runner=runner, cache=cache, progress=progress)
                if studies_shown[0]:  # the bucket's cached studies count as done too
                    report("MRI studies", int(studies[i + 1]), int(studies[-1]))
                totals[source].add(run)
                if strict and not run.result.quarantine.empty:
                    _check_strict(strict, run.result.quarantine, staged.base.files)
            del sub
    finally:
        runner.close()
    return records, {"reused": cache.hits, "stored": cache.stored}


def _has_cache(cache_dir: Path | str | None) -> bool:
    """Whether an earlier run left patient results in ``cache_dir`` (a rerun may need no worker at all)."""
    return cache_dir is not None and Path(cache_dir).is_dir() and any(Path(cache_dir).iterdir())


def _prepare_out(out: Path) -> None:
    """Remove an earlier run's manifest (tables are rewritten from here on, and a manifest would make
    a half-rewritten folder look finished) and the staged rows a killed run left behind."""
    (out / "manifest.json").unlink(missing_ok=True)
    if out.is_dir():
        for old in out.glob("pfs-staging-*"):
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)


def _run_date(text: str) -> pd.Timestamp:
    if not text:
        return pd.Timestamp.today().normalize()
    try:
        return pd.Timestamp(text).normalize()
    except ValueError as err:
        raise ConfigError(f"pipeline.as_of must be a date (YYYY-MM-DD) or empty, not {text!r}") from err


def _check_strict(strict: bool, quarantine: pd.DataFrame, files: dict[str, Path] | None = None) -> None:
    if strict and not quarantine.empty:
        first = quarantine.iloc[0]
        where = files[first["table"]].name if files and first["table"] in files else first["table"]
        raise StrictModeError(
            f"--strict: {where} row {first['row']}"
            + (f", column '{first['column']}'" if first["column"] else "")
            + f": {first['reason']} ({len(quarantine)} quarantined row(s) in all)"
        )


def build_manifest(export: Export, cfg: Config, sources: list[str], source_status: dict,
                   quarantine: pd.DataFrame) -> dict[str, Any]:
    """Version, config and hash, input hashes, and per table rows read = used + quarantined."""
    tables = {}
    for name in INPUT_TABLES:
        if name not in export.rows_read:
            continue
        n_read = export.rows_read[name]
        q = quarantine.loc[quarantine["table"] == name, "row"].nunique()
        tables[name] = {"rows_read": int(n_read), "rows_quarantined": int(q), "rows_used": int(n_read - q)}
    return {
        "pfs_version": __version__,
        "config": cfg.data,
        "config_hash": cfg.hash,
        "export": str(export.root),
        "inputs": dict(sorted(export.file_hashes.items())),
        "tables": tables,
        "sources": {s: source_status[s] for s in sources},
        "notes": export.notes,
        "quarantine_rows": int(len(quarantine)),
    }


def write_outputs(result: RunResult, out: Path) -> Path:
    """The in-memory tables, then the manifest (``run_extract`` removed an earlier one before starting)."""
    out.mkdir(parents=True, exist_ok=True)
    write_table(result.events, out / "events.csv")
    write_table(result.endpoints, out / "endpoints.csv")
    write_table(result.quarantine, out / "quarantine.csv")
    for name, frame in sorted(result.tables.items()):
        write_table(frame, out / f"{name}.csv")
    names = set(result.tables) | set(result.table_files)
    result.manifest["outputs"] = sorted(
        ["events.csv", "endpoints.csv", "quarantine.csv", "manifest.json"] + [f"{n}.csv" for n in names]
    )
    # The manifest goes last: its presence says the run finished.
    write_json(result.manifest, out / "manifest.json")
    return out
