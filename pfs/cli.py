"""The ``pfs`` command line: a thin door onto the library.

Exit codes: 0 success; 1 a bug (traceback shown); 2 usage or other user error; 3 export cannot be
read; 4 invalid config/mapping/rule file; 5 ``--strict`` and a row was quarantined; 6 finished
but a source failed (see manifest.json); 7 a file could not be written or read (disk full,
permission denied). Heavy libraries are imported inside the commands so that
``pfs --help`` stays instant.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from pfs.version import __version__
from pfs.exceptions import PfsError
from pfs.extractors import SOURCES

app = typer.Typer(
    name="pfs",
    help="Progression-free survival for glioblastoma from EHR exports: steroids, radiology reports, MRI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_SOURCE_FAILED = 6
EXIT_STORAGE = 7
DEFAULT_DEMO_DIR = Path.home() / ".cache" / "pfs" / "demo"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pfs {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details (never patient text).")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="pfs: %(levelname)s: %(message)s", stream=sys.stderr, force=True)


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _split_sources(sources: str | None) -> list[str] | None:
    return [s.strip() for s in sources.split(",") if s.strip()] if sources else None


@app.command()
def extract(
    export_dir: Annotated[Path, typer.Argument(help="Export directory in the native layout.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("pfs-out"),
    sources: Annotated[str | None, typer.Option(help=f"Comma-separated: {','.join(SOURCES)} (default: all).")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML config overriding the defaults.")] = None,
    mapping: Annotated[Path | None, typer.Option(help="TOML mapping of your file/column names and date formats.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on the first quarantined row.")] = False,
    save_masks: Annotated[bool, typer.Option("--save-masks", help="Write each tumour mask and a QC PNG.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="native, omop or fhir (converted into OUT/native first).")] = "native",
    patient_id: Annotated[str | None, typer.Option(help="OMOP only: person_id or person_source_value as patient_id.")] = None,
    image_map: Annotated[Path | None, typer.Option(help="FHIR only: CSV series_uid,path for ImagingStudy series.")] = None,
    workers: Annotated[int, typer.Option(envvar="PFS_WORKERS", help="Local Dask worker processes; 0 = all cores, 1 = no Dask.")] = 0,
    scheduler: Annotated[str | None, typer.Option(envvar="PFS_SCHEDULER", help="Address of an existing dask.distributed scheduler.")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Per-patient result cache (default OUT/cache); reruns and resumed runs reuse it.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Compute every patient afresh and keep no cache.")] = False,
) -> None:
    """Derive progression events and PFS endpoints from an export."""
    from pfs.pipeline import run_extract
    from pfs.settings import load_config

    cfg = load_config(config)
    if save_masks:
        cfg = cfg.with_overrides({"imaging": {"save_masks": True, "masks_dir": str(out / "masks")}})
    console = _console()
    with _progress_bars(console) as (say, count):
        result = run_extract(export_dir, out, sources=_split_sources(sources), config=cfg, mapping=mapping,
                             strict=strict or None, progress=say, on_progress=count,
                             fmt=fmt, convert_options=_convert_options(fmt, patient_id, image_map),
                             workers=workers, scheduler=scheduler,
                             cache_dir=None if no_cache else (cache_dir or out / "cache"))
    _print_run_summary(result, console)
    if result.cache.get("reused"):
        console.print(f"  {result.cache['reused']} patient result(s) reused from the cache")
    failed = [s for s, v in result.manifest["sources"].items() if v["status"].startswith("failed")]
    if failed:
        raise typer.Exit(EXIT_SOURCE_FAILED)


@contextmanager
def _progress_bars(console):
    """A status line plus one progress bar per source (patients) and for MRI studies."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bars:
        stage = bars.add_task("pfs extract", total=None)
        tasks: dict[str, int] = {}

        def say(message: str) -> None:
            bars.update(stage, description=f"pfs extract: {message}")

        def count(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bars.add_task(label, total=total)
            bars.update(tasks[label], completed=done, total=total)

        yield say, count


def _convert_options(fmt: str, patient_id: str | None, image_map: Path | None) -> dict:
    opts: dict = {}
    if patient_id is not None:
        if fmt != "omop":
            raise PfsError("--patient-id applies to --format omop only")
        opts["patient_id"] = patient_id
    if image_map is not None:
        if fmt != "fhir":
            raise PfsError("--image-map applies to --format fhir only")
        opts["image_map"] = image_map
    return opts


@app.command()
def convert(
    src: Annotated[Path, typer.Argument(help="OMOP CDM folder/zip or FHIR export folder.")],
    fmt: Annotated[str, typer.Option("--format", help="omop or fhir.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the native tables.")],
    all_persons: Annotated[bool, typer.Option("--all-persons", help="Keep persons without a GBM diagnosis.")] = False,
    patient_id: Annotated[str | None, typer.Option(help="OMOP only: person_id or person_source_value.")] = None,
    image_map: Annotated[Path | None, typer.Option(help="FHIR only: CSV series_uid,path.")] = None,
) -> None:
    """Write an OMOP or FHIR export in the native layout, to inspect what pfs will read."""
    from pfs.io.formats import convert as run_convert

    result = run_convert(src, out, fmt, require_gbm=not all_persons, **_convert_options(fmt, patient_id, image_map))
    console = _console()
    for key, value in result.counts.items():
        console.print(f"{key}: {value}")
    console.print(f"native export: {result.out} ({len(result.quarantine)} conversion quarantine row(s))")


def _print_run_summary(result, console) -> None:
    from rich.table import Table

    table = Table(title=f"pfs extract -> {result.out}")
    for col in ("table", "rows read", "used", "quarantined"):
        table.add_column(col, justify="right" if col != "table" else "left")
    for name, c in result.manifest["tables"].items():
        table.add_row(name, str(c["rows_read"]), str(c["rows_used"]), str(c["rows_quarantined"]))
    console.print(table)
    for source, status in result.manifest["sources"].items():
        console.print(f"  {source}: {status['status']} ({status['events']} events)")
    ep = result.endpoints
    if not ep.empty:
        summary = ep.groupby("method")["progressed"].agg(["count", "mean"])
        for method, row in summary.iterrows():
            console.print(f"  {method}: {int(row['count'])} patients, progression in {row['mean']:.0%}")
    if len(result.quarantine):
        console.print(f"  {len(result.quarantine)} quarantine row(s): see {result.out}/quarantine.csv")


@app.command()
def validate(
    export_dir: Annotated[Path, typer.Argument(help="Export directory in the native layout.")],
    mapping: Annotated[Path | None, typer.Option(help="TOML mapping of your names and date formats.")] = None,
) -> None:
    """Check an export (tables, columns, types, ids, paths) without extracting anything."""
    from pfs.io.export import load_export

    export = load_export(export_dir, mapping)
    q = export.quarantine.frame()
    console = _console()
    for name, n in export.rows_read.items():
        nq = q.loc[q["table"] == name, "row"].nunique()
        console.print(f"{name}: {n} rows read, {n - nq} valid, {nq} would be quarantined")
    for note in export.notes:
        console.print(f"note: {note}")
    if not q.empty:
        from pfs.exceptions import StrictModeError

        for (table, reason), grp in q.groupby(["table", "reason"]):
            console.print(f"  {table}: {len(grp)} x {reason} (first at row {grp['row'].min()})")
        # What `pfs extract --strict` would stop on: its exit code.
        raise typer.Exit(StrictModeError.exit_code)


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Directory for the synthetic export and its truth.")],
    patients: Annotated[int, typer.Option(min=1, help="Number of patients.")] = 20,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 0,
    no_images: Annotated[bool, typer.Option("--no-images", help="Skip the MRI volumes (fast).")] = False,
    faults: Annotated[bool, typer.Option("--faults", help="Add deliberately broken input rows and files.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="Also write the cohort as omop or fhir (OUT/omop, OUT/fhir).")] = "native",
) -> None:
    """Write a realistic synthetic GBM cohort in the native layout, with its ground truth."""
    from pfs.synth import synthesize

    if fmt not in ("native", "omop", "fhir"):
        raise PfsError(f"--format must be native, omop or fhir, not {fmt!r}")
    console = _console()
    with console.status("pfs synth") as status:
        result = synthesize(out, patients=patients, seed=seed, images=not no_images, faults=faults,
                            progress=lambda m: status.update(f"pfs synth: {m}"))
        if fmt != "native":
            from pfs.synth import formats

            status.update(f"pfs synth: writing {fmt}")
            writer = formats.native_to_omop if fmt == "omop" else formats.native_to_fhir
            console.print(f"{fmt} export: {writer(result.export, Path(out) / fmt)}")
    console.print(f"export: {result.export}\nannotations: {result.annotations}\ntruth: {result.truth}")


@app.command()
def demo(
    cache_dir: Annotated[Path, typer.Option(help="Where the demo cohort and outputs are kept.")] = DEFAULT_DEMO_DIR,
    patients: Annotated[int, typer.Option(min=2, help="Cohort size.")] = 12,
    images: Annotated[bool, typer.Option("--images/--no-images", help="Include MRI volumes.")] = True,
) -> None:
    """Build (or reuse) a small synthetic cohort and run the whole pipeline on it."""
    from pfs.demo import run_demo

    console = _console()
    summary = run_demo(cache_dir, patients=patients, images=images, console=console)
    for line in summary:
        console.print(line)


@app.command()
def compare(
    out: Annotated[Path, typer.Argument(help="Output directory of `pfs extract`.")],
    annotations: Annotated[Path, typer.Option(help="Manual annotations CSV (patient_id, progressed, ...).")],
) -> None:
    """Compare every source and the reconciled endpoint with manual annotations."""
    from pfs.evaluate.compare import compare as run_compare
    from pfs.evaluate.compare import summary

    table = run_compare(out, annotations)
    console = _console()
    from pfs.report.terminal import rich_table

    console.print(rich_table(summary(table), title="pfs compare"))
    console.print(f"full table: {out / 'comparison.md'} and {out / 'comparison.csv'}")


@app.command()
def plot(
    out: Annotated[Path, typer.Argument(help="Output directory of `pfs extract`.")],
    annotations: Annotated[Path | None, typer.Option(help="Manual annotations CSV.")] = None,
) -> None:
    """Kaplan-Meier, swimmer, lag and Bland-Altman plots (PNG and SVG) under OUT/plots."""
    from pfs.report.plots import plot as run_plot

    for path in run_plot(out, annotations):
        typer.echo(str(path))


@app.command()
def report(
    out: Annotated[Path, typer.Argument(help="Output directory of `pfs extract`.")],
    annotations: Annotated[Path | None, typer.Option(help="Manual annotations CSV.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="HTML file to write.")] = None,
) -> None:
    """One self-contained HTML report: cohort, comparison, figures, per-patient evidence."""
    from pfs.report.html import report as run_report

    typer.echo(str(run_report(out, annotations, output)))


@app.command()
def review(
    out: Annotated[Path, typer.Argument(help="Output directory of `pfs extract`.")],
    annotations: Annotated[Path | None, typer.Option(help="An earlier annotations CSV, shown beside each patient.")] = None,
    reviewer: Annotated[str | None, typer.Option(help="Your name in the review log (default: your login).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on; any other than 127.0.0.1 needs a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    db: Annotated[Path | None, typer.Option("--db", help="Review database (default OUT/review.sqlite).")] = None,
    token: Annotated[str | None, typer.Option(envvar="PFS_REVIEW_TOKEN", help="Access token (default: generated when --host is not local).")] = None,
    export: Annotated[Path | None, typer.Option("--export", help="Write the reviewed annotations CSV (and review_log.csv beside it) and exit.")] = None,
    agreement: Annotated[bool, typer.Option("--agreement", help="Print the reviewers' agreement and the patients to adjudicate, and exit.")] = False,
) -> None:
    """Review each patient's progression date in a local web page; export the decisions as annotations."""
    import pfs.review as rv

    if export is not None:
        target, log_path, n = rv.export_annotations(out, export, db, reviewer)
        typer.echo(f"{n} patient(s) -> {target}\naudit log -> {log_path}")
    elif agreement:
        from pfs.review.agreement import agreement_lines
        from pfs.review.run import review_settings

        days = review_settings()["date_agreement_days"]
        for line in agreement_lines(rv.agreement(out, db, days), days):
            typer.echo(line)
    else:
        rv.serve(out, host=host, port=port, db_path=db, reviewer=reviewer, annotations=annotations, token=token,
                 say=typer.echo)


@app.command()
def sources() -> None:
    """List the progression sources: what each reads and writes."""
    from pfs.extractors import SOURCES

    for spec in SOURCES.values():
        typer.echo(f"{spec.name}: {spec.label} (reads {spec.input_table}; writes {', '.join(spec.output_tables)})")


def main() -> None:
    """Console entry point: user errors become one line and an exit code, bugs keep their traceback.

    typer runs in standalone mode, so its own usage errors (unknown command or option, missing
    argument) print its usage screen and exit 2 whatever click it vendors; only pfs's errors are
    translated here.
    """
    try:
        app()
    except PfsError as err:
        typer.echo(f"pfs: error: {err}", err=True)
        sys.exit(err.exit_code)
    except OSError as err:
        # The disk or the file system said no (full disk, permissions): the user's to fix, not a bug.
        where = f"{err.filename}: " if err.filename else ""
        typer.echo(f"pfs: error: {where}{err.strerror or err}", err=True)
        sys.exit(EXIT_STORAGE)


if __name__ == "__main__":
    main()
