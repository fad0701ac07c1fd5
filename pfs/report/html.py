"""``pfs report``: one self-contained HTML file a clinician can open offline and forward.

Figures are inline base64 PNG, the style sheet is inline, nothing is fetched from anywhere, and every piece
of text that comes from the data (evidence sentences, patient ids, quarantine values, the manifest) goes
through :func:`html.escape`: a report sentence containing ``<script>`` is shown, never run.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from pfs.evaluate.compare import comparison_table
from pfs.evaluate.survival import fit_curves, km_summary, methods_in
from pfs.report.outputs import Outputs, Reference, load_outputs, read_reference
from pfs.report.plots import figures
from pfs.version import __version__

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.na{color:#777;font-style:italic}
details{margin:.3em 0;border:1px solid #e3e3e3;border-radius:4px;padding:.3em .6em}
summary{cursor:pointer;font-weight:600}img{max-width:100%;height:auto;border:1px solid #eee}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.8em;max-height:30em}
ul.chain{margin:.2em 0 .2em 1.2em;padding:0}.rejected{color:#8a6d3b}.accepted{color:#1e7b34}
"""


def esc(value: Any) -> str:
    """Any value as escaped HTML text; dates as ISO, missing values blank."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, pd.Timestamp):
        return html.escape(value.strftime("%Y-%m-%d"))
    if isinstance(value, float):
        return (
            "not reached"
            if math.isinf(value)
            else html.escape(f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}")
        )
    return html.escape(str(value))


def _na(what: str) -> str:
    return f'<p class="na">{esc(what)}: not available</p>'


def table_html(frame: pd.DataFrame | None, columns: list[str] | None = None, empty: str = "none") -> str:
    """A plain HTML table; every header and cell is escaped."""
    if frame is None:
        return _na(empty)
    cols = [c for c in (columns or list(frame.columns)) if c in frame.columns]
    if frame.empty:
        return f'<p class="na">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    body = []
    for _, row in frame[cols].iterrows():
        cells = "".join(
            f'<td class="num">{esc(v)}</td>'
            if isinstance(v, (int, float)) and not isinstance(v, bool)
            else f"<td>{esc(v)}</td>"
            for v in row.tolist()
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _png(fig: Any, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{data}"></figure>'


def _cohort(outputs: Outputs, curves: dict[str, Any]) -> str:
    ep = outputs.endpoints
    parts = [f"<p>{esc(ep['patient_id'].nunique())} patients; methods: {esc(', '.join(methods_in(ep)))}.</p>"]
    rows = []
    for method in methods_in(ep):
        sub = ep.loc[ep["method"] == method]
        km = km_summary(curves.get(method))
        rows.append(
            {
                "method": method,
                "patients": len(sub),
                "progressed": int(sub["progressed"].sum()),
                "progression rate": f"{sub['progressed'].mean():.0%}",
                "PFS events": int(sub["pfs_event"].sum()),
                "median PFS (months)": km["km_median_months"],
            }
        )
    parts.append(table_html(pd.DataFrame(rows), empty="no endpoints"))
    events = outputs.get("events")
    if events is None:
        parts.append(_na("events per source"))
    elif events.empty:
        parts.append('<p class="na">No progression events were emitted.</p>')
    else:
        counts = (
            events.groupby(["source", "kind"])
            .agg(events=("patient_id", "size"), patients=("patient_id", "nunique"))
            .reset_index()
        )
        parts.append("<h3>Events per source</h3>" + table_html(counts))
    sources = (outputs.manifest or {}).get("sources")
    if sources:
        frame = pd.DataFrame(
            [
                {"source": k, "status": v.get("status", ""), "events": v.get("events", "")}
                for k, v in sources.items()
            ]
        )
        parts.append("<h3>Sources in this run</h3>" + table_html(frame))
    return "".join(parts)


def _comparison(outputs: Outputs, reference: Reference | None, curves: dict[str, Any]) -> str:
    if reference is None:
        return _na("comparison with manual annotations (no --annotations given)")
    if reference.manual is None:
        return _na("comparison (no usable annotation rows)")
    quarantine = reference.quarantine
    table = comparison_table(outputs.endpoints, reference.annotations, manual=reference.manual, curves=curves)

    def pct(x: float) -> str:
        return "" if pd.isna(x) else f"{x:.0%}"

    def num(x: float, fmt: str) -> str:
        return "" if pd.isna(x) else "not reached" if math.isinf(x) else format(x, fmt)

    shown = pd.DataFrame(
        {
            "method": table["method"],
            "n": table["n"],
            "progression found": table["progression_rate"].map(pct),
            "mean lag (months)": table["lag_mean_months"].map(lambda x: num(x, "+.1f")),
            "median lag (days)": table["lag_median_days"].map(lambda x: num(x, "+.0f")),
            "mean |lag| (days)": table["lag_mean_abs_days"].map(lambda x: num(x, ".0f")),
            # shares of the reference progressors: the tails a median lag hides
            "progressors within ±15 d": table["ref_within_15d"].map(pct),
            "progressors within ±30 d": table["ref_within_30d"].map(pct),
            "progressors within ±60 d": table["ref_within_60d"].map(pct),
            "> 60 d early": table["ref_early_60d"].map(pct),
            "> 60 d late": table["ref_late_60d"].map(pct),
            "sensitivity": table["sensitivity"].map(pct),
            "specificity": table["specificity"].map(pct),
            "PPV": table["ppv"].map(pct),
            "Cohen's κ": table["kappa"].map(lambda x: num(x, ".2f")),
            "median PFS (months)": table["km_median_months"].map(lambda x: num(x, ".1f")),
            "log-rank p vs manual": table["logrank_p"].map(lambda x: num(x, ".3g")),
            "C-index": table["c_index"].map(lambda x: num(x, ".2f")),
        }
    )
    note = (
        "" if quarantine.empty else f"<p>{esc(len(quarantine))} annotation row(s) set aside as invalid.</p>"
    )
    return (
        "<p>Lag = method date − manual date (negative = earlier than the guideline date), among patients "
        "both call progressed.</p>" + table_html(shown) + note
    )


def _chain(evidence: str) -> str:
    items = [e for e in str(evidence).split(" | ") if e]
    return '<ul class="chain">' + "".join(f"<li>{esc(e)}</li>" for e in items) + "</ul>"


def _patient(pid: str, outputs: Outputs, manual: pd.DataFrame | None) -> str:
    ep = outputs.endpoints.loc[outputs.endpoints["patient_id"] == pid]
    rec = ep.loc[ep["method"] == "reconciled"]
    head = esc(pid)
    if not rec.empty:
        r = rec.iloc[0]
        head += " — reconciled: " + (
            f"progression {esc(r['progression_date'])}" if r["progressed"] == 1 else "no progression"
        )
    if manual is not None:
        m = manual.loc[manual["patient_id"] == pid]
        if not m.empty:
            head += " · manual: " + (
                f"progression {esc(m.iloc[0]['progression_date'])}"
                if m.iloc[0]["progressed"] == 1
                else "no progression"
            )
    parts = [
        f"<details><summary>{head}</summary>",
        table_html(
            ep,
            [
                "method",
                "index_date",
                "progressed",
                "progression_date",
                "pfs_event",
                "pfs_date",
                "pfs_days",
                "note",
            ],
        ),
    ]
    recon = outputs.get("reconciled_events")
    if recon is not None:
        rows = recon.loc[recon["patient_id"] == pid]
        if not rows.empty:
            items = "".join(
                f'<li><span class="{esc(r.get("status", ""))}">{esc(r.get("status", ""))}</span> '
                f"{esc(r['event_date'])}: {esc(r.get('rule', ''))} {esc(r.get('note', ''))}"
                f"{_chain(r['evidence'])}</li>"
                for _, r in rows.iterrows()
            )
            parts.append(f"<h4>Reconciliation</h4><ul>{items}</ul>")
    for name, title, cols in (
        ("events", "Events", ["event_date", "source", "kind", "ref_id", "evidence", "value", "confidence"]),
        ("report_labels", "Report labels", None),
        ("volumes", "Tumour volumes", None),
        ("steroid_courses", "Steroid courses", None),
    ):
        frame = outputs.get(name)
        if frame is None:
            parts.append(f"<h4>{esc(title)}</h4>" + _na(title))
            continue
        sub = frame.loc[frame["patient_id"] == pid] if "patient_id" in frame else frame.iloc[0:0]
        dates = [c for c in sub.columns if pd.api.types.is_datetime64_any_dtype(sub[c])]
        sub = sub.sort_values(dates[0], kind="stable") if dates else sub
        use = cols or [c for c in sub.columns if c != "patient_id"]
        parts.append(f"<h4>{esc(title)}</h4>" + table_html(sub, use, empty=f"no {title.lower()}"))
    parts.append("</details>")
    return "".join(parts)


def _quarantine(outputs: Outputs) -> str:
    q = outputs.get("quarantine")
    if q is None:
        return _na("quarantine")
    if q.empty:
        return "<p>No input row was quarantined.</p>"
    summary = (
        q.groupby(["table", "stage", "reason"], dropna=False)
        .agg(rows=("row", "nunique"), first_row=("row", "min"))
        .reset_index()
    )
    return f"<p>{esc(len(q))} quarantine line(s); see quarantine.csv for each row.</p>" + table_html(summary)


def report(
    out_dir: Path | str, annotations: Path | str | None = None, output: Path | str | None = None
) -> Path:
    """Write the HTML report of ``out_dir`` (default OUT/report.html); returns its path."""
    from pfs.io.output import write_bytes

    outputs = load_outputs(out_dir)
    reference = read_reference(outputs, annotations)
    manual = None if reference is None else reference.manual
    curves = fit_curves(outputs.endpoints, manual)  # the figures draw the fits the tables report
    figs = figures(outputs, manual, curves=curves)
    titles = {
        "km": "Kaplan-Meier PFS per method",
        "swimmer": "Patient courses",
        "lag": "Lag distribution",
        "bland_altman": "Bland-Altman plots of progression dates",
    }
    fig_html = "".join(
        f"<h3>{esc(titles.get(k, k))}</h3>{_png(f, titles.get(k, k))}" for k, f in figs.items()
    )
    if manual is None:
        fig_html += _na("lag and Bland-Altman plots (they need --annotations)")
    patients = sorted(outputs.endpoints["patient_id"].unique())
    manifest = outputs.manifest
    body = [
        "<h1>pfs report: progression-free survival from EHR sources</h1>",
        f"<p>Output directory {esc(outputs.root.name)}; pfs {esc(__version__)}"
        + (f"; config hash {esc(manifest.get('config_hash', ''))}" if manifest else "")
        + ".</p>",
        "<h2>Cohort</h2>",
        _cohort(outputs, curves),
        "<h2>Comparison with the manual annotations</h2>",
        _comparison(outputs, reference, curves),
        "<h2>Figures</h2>",
        fig_html,
        "<h2>Patients</h2><p>Each event with its evidence (sentence, dose change, volume change) and how the "
        "reconciler used it.</p>",
        "".join(_patient(pid, outputs, manual) for pid in patients),
        "<h2>Quarantine</h2>",
        _quarantine(outputs),
        "<h2>Manifest</h2>",
        f"<pre>{esc(json.dumps(manifest, indent=2, sort_keys=True, default=str))}</pre>"
        if manifest is not None
        else _na("manifest"),
    ]
    doc = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>pfs report</title><style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )
    path = Path(output) if output is not None else Path(out_dir) / "report.html"
    write_bytes(doc.encode("utf-8"), path)
    return path
