"""``pfs extract``: load an export, run the chosen extractors, reconcile, write the outputs.

Each extractor runs on its own; one that fails is recorded in the manifest and the others still
finish. Outputs are written atomically, and the manifest accounts for every input row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pfs import __version__
from pfs.cache import PatientCache
from pfs.exceptions import ConfigError, StrictModeError
from pfs.execution import Runner, make_runner
from pfs.extractors import EXTRACTORS, empty_events, load_extractor
from pfs.io.export import Export, load_export
from pfs.io.mapping import Mapping
from pfs.io.output import write_json, write_table
from pfs.io.schema import INPUT_TABLES, conform
from pfs.reconcile import build_endpoints, follow_up_dates, reconcile_events
from pfs.settings import Config, load_config
from pfs.sources import SOURCE_TABLES, run_source

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


def _dated_records(export: Export) -> list[pd.Series]:
    recs = []
    for name, col in (("medications", "order_date"), ("reports", "report_date"), ("imaging", "study_date")):
        t = export.table(name)
        if not t.empty:
            recs.append(t.set_index("patient_id")[col].dropna())
    return recs


def endpoints_for(export: Export, events: pd.DataFrame, config: Config,
                  sources: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-source and reconciled endpoints; returns (endpoints, reconciled events)."""
    patients = export.table("patients")
    settings = config.section("endpoints")
    fu = follow_up_dates(patients, _dated_records(export))
    frames = []
    for source in sources:
        ev = events.loc[events["source"] == source]
        frames.append(build_endpoints(patients, ev, source, index_date=settings["index_date"], last_followup=fu))
    reconciled = reconcile_events(events, patients, config.section("reconcile"), index_date=settings["index_date"])
    frames.append(build_endpoints(patients, reconciled, "reconciled", index_date=settings["index_date"],
                                  last_followup=fu))
    return conform(pd.concat(frames, ignore_index=True), "endpoints"), reconciled


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
        convert_options: keyword arguments for :func:`pfs.io.convert.convert`.
        workers: processes for a local Dask cluster (0 = all cores; default: config ``pipeline.workers``,
            1 = everything in this process).
        scheduler: address of an existing dask.distributed scheduler (its workers must see the export).
        cache_dir: per-patient result cache; a rerun reuses it and an interrupted run resumes from it.
        on_progress: optional callable ``(label, done, total)`` fed as patients/studies finish.
    """
    cfg = config if isinstance(config, Config) else load_config(config)
    pipe = cfg.section("pipeline")
    sources = list(sources) if sources else list(pipe["sources"])
    unknown = [s for s in sources if s not in EXTRACTORS]
    if unknown:
        raise ConfigError(f"unknown source {unknown[0]!r} (known: {', '.join(EXTRACTORS)})")
    strict = pipe["strict"] if strict is None else strict
    say = progress or (lambda msg: None)

    conversion = None
    if fmt != "native":
        from pfs.io.convert import convert

        if out is None:
            raise ConfigError(f"--format {fmt} needs an output directory to hold the converted native tables")
        say(f"converting the {fmt} export")
        conversion = convert(export_dir, Path(out) / "native", fmt, **(convert_options or {}))
        export_dir = conversion.out
    say("loading export")
    as_of = _run_date(pipe["as_of"])
    export = load_export(export_dir, mapping, as_of=as_of)
    if conversion is not None:
        export.quarantine.add_frame(conversion.quarantine)
    _check_strict(strict, export.quarantine.frame(), export.files)

    events_frames, tables, source_status = [], {}, {}
    cache = PatientCache(cache_dir)
    runner: Runner | None = None
    try:
        for source in sources:
            needs = SOURCE_TABLES[source]
            if not export.has(needs):
                # A source with no input at all would otherwise report "0 % progression", which is not a finding.
                source_status[source] = {"status": f"skipped: no {needs} table in the export", "events": 0}
                continue
            if load_extractor(source) is None:
                source_status[source] = {"status": "not built in this version", "events": 0}
                log.warning("source %s is not built in this version of pfs; skipped", source)
                continue
            if runner is None:
                runner = make_runner(pipe["workers"] if workers is None else workers, scheduler or pipe["scheduler"]
                                     or None)
            say(f"running {source} extractor")
            run = run_source(source, export, cfg, runner=runner, cache=cache, progress=on_progress)
            result = run.result
            if run.failed and len(run.failed) == run.patients:
                first = next(iter(run.failed.values()))
                log.error("the %s extractor failed on every patient", source)
                source_status[source] = {"status": f"failed: {first}", "events": 0}
                continue
            if not result.quarantine.empty:
                export.quarantine.add_frame(result.quarantine)
                _check_strict(strict, export.quarantine.frame(), export.files)
            events_frames.append(result.events)
            tables.update(result.tables)
            status = "ran" if not run.failed else f"ran ({len(run.failed)} patient(s) failed, rows quarantined)"
            source_status[source] = {"status": status, "events": int(len(result.events)), "counts": result.counts}
            log.info("%s: %d patients, %d from the cache", source, run.patients, run.reused)
    finally:
        if runner is not None:
            runner.close()
    cache_stats = {"reused": cache.hits, "stored": cache.stored}

    events = conform(pd.concat(events_frames, ignore_index=True), "events") if events_frames else empty_events()
    events = events.sort_values(["patient_id", "event_date", "source", "ref_id"], kind="stable").reset_index(drop=True)
    ran = [s for s in sources if source_status[s]["status"] == "ran"]
    say("building endpoints")
    endpoints, reconciled = endpoints_for(export, events, cfg, ran)
    tables["reconciled_events"] = reconciled
    quarantine = export.quarantine.frame()
    manifest = build_manifest(export, cfg, sources, source_status, quarantine)
    manifest["as_of"] = as_of.date().isoformat()
    if conversion is not None:
        manifest["conversion"] = {"format": fmt, "counts": conversion.counts}
    result = RunResult(events=events, endpoints=endpoints, quarantine=quarantine, tables=tables,
                       manifest=manifest, cache=cache_stats)
    if out is not None:
        say("writing outputs")
        result.out = write_outputs(result, Path(out))
    return result


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
    out.mkdir(parents=True, exist_ok=True)
    # An earlier run's manifest would make a half-rewritten folder look finished.
    (out / "manifest.json").unlink(missing_ok=True)
    write_table(result.events, out / "events.csv")
    write_table(result.endpoints, out / "endpoints.csv")
    write_table(result.quarantine, out / "quarantine.csv")
    for name, frame in sorted(result.tables.items()):
        write_table(frame, out / f"{name}.csv")
    result.manifest["outputs"] = sorted(
        ["events.csv", "endpoints.csv", "quarantine.csv", "manifest.json"] + [f"{n}.csv" for n in result.tables]
    )
    # The manifest goes last: its presence says the run finished.
    write_json(result.manifest, out / "manifest.json")
    return out
