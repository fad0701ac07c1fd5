"""``pfs demo``: the whole pipeline on a small synthetic cohort, with no patient data needed."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from pfs.io.output import write_json

DEMO_SEED = 7


def _cohort_dir(cache_dir: Path, patients: int, images: bool) -> Path:
    return cache_dir / f"cohort-n{patients}-seed{DEMO_SEED}-{'mri' if images else 'nomri'}"


def ensure_cohort(cache_dir: Path, patients: int, images: bool, progress: Any = None) -> Path:
    """Build the demo cohort once; a marker written last means a complete earlier build can be reused."""
    from pfs.synth import synthesize

    root = _cohort_dir(cache_dir, patients, images)
    marker = root / "COMPLETE.json"
    if not marker.exists():
        synthesize(root, patients=patients, seed=DEMO_SEED, images=images, progress=progress)
        write_json({"patients": patients, "seed": DEMO_SEED, "images": images}, marker)
    return root


def run_demo(cache_dir: Path | str, patients: int = 12, images: bool = True, console: Any = None) -> list[Any]:
    """Synthesise (or reuse) a cohort, extract, compare, plot and report; returns lines (or rich tables) to print."""
    from pfs.evaluate.compare import compare, summary
    from pfs.pipeline import run_extract
    from pfs.report.html import report
    from pfs.report.plots import plot
    from pfs.report.terminal import rich_table

    cache_dir = Path(cache_dir)
    say = (lambda m: console.print(f"[dim]{m}[/dim]")) if console is not None else (lambda m: None)
    say(f"synthetic cohort in {cache_dir}")
    root = ensure_cohort(cache_dir, patients, images, progress=say)
    out = root / "out"
    result = run_extract(root / "export", out, progress=say)
    lines = [f"export:      {root / 'export'}", f"outputs:     {out}"]
    for source, status in result.manifest["sources"].items():
        lines.append(f"  {source}: {status['status']} ({status['events']} events)")
    annotations = root / "annotations.csv"
    say("comparing with the synthetic annotations")
    table = compare(out, annotations)
    lines.append(f"comparison:  {out / 'comparison.md'}")
    lines.append(rich_table(summary(table), title="comparison with the annotations"))
    say("plotting")
    plot(out, annotations)
    lines.append(f"plots:       {out / 'plots'}")
    say("writing the HTML report")
    lines.append(f"report:      {report(out, annotations, out / 'report.html')}")
    shown = shlex.quote(str(out))
    lines.append(f"review:      pfs review {shown}")
    lines.append(f"  then:      pfs review {shown} --export reviewed.csv")
    return lines
