"""``pfs plot``: Kaplan-Meier curves, a swimmer plot, the lag distribution and a Bland-Altman plot.

Each plot function takes the tables it needs and ``ax=None`` and returns the axes (lifelines' habit), so
the notebook and the HTML report draw the same figures. matplotlib is imported inside the functions, and
figures made here are plain ``matplotlib.figure.Figure`` objects saved through the Agg canvas: ``import pfs``
never pays for matplotlib, no display is needed, and the caller's pyplot backend is never switched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pfs.evaluate.survival import fit_curves, methods_in
from pfs.extractors import SOURCES
from pfs.vocab import DAYS_PER_MONTH

#: One colour per method, the same in every figure.
COLOURS = {
    **{name: spec.colour for name, spec in SOURCES.items()},
    "reconciled": "#e7298a",
    "manual": "#222222",
}
#: Report labels drawn on the swimmer plot: (marker, colour, legend text).
LABEL_MARKERS = {
    "progression": ("v", "#c0392b", "report: progression"),
    "stable": ("o", "#7f8c8d", "report: stable"),
    "improved": ("^", "#27ae60", "report: improved"),
    "treatment_effect": ("D", "#8e44ad", "report: treatment effect"),
    "indeterminate": ("s", "#f39c12", "report: indeterminate"),
}


def _figure(figsize: tuple[float, float]) -> Any:
    """A figure outside pyplot: saved through the Agg canvas, no GUI, and the caller's backend left alone."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _axes(ax: Any, figsize: tuple[float, float]) -> Any:
    if ax is not None:
        return ax
    return _figure(figsize).subplots()


def _not_available(ax: Any, what: str) -> Any:
    ax.text(
        0.5,
        0.5,
        f"{what}: not available",
        ha="center",
        va="center",
        transform=ax.transAxes,
        fontsize=11,
        color="#555555",
    )
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def km_plot(endpoints: pd.DataFrame, manual: pd.DataFrame | None = None, ax: Any = None,
            curves: dict[str, Any] | None = None) -> Any:
    """Kaplan-Meier PFS per method (months since index), the manual curve dashed black, one at-risk table.

    ``curves`` are the fits of :func:`pfs.evaluate.survival.fit_curves` when the caller has them (the
    report tabulates the same fits); they are in days, so the axis is ticked every 6 months of days.
    """
    from lifelines.plotting import add_at_risk_counts
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    ax = _axes(ax, (9, 6))
    curves = fit_curves(endpoints, manual) if curves is None else curves
    if not curves:
        return _not_available(ax, "Kaplan-Meier curves (no endpoints)")
    for method, kmf in curves.items():
        kmf.plot_survival_function(
            ax=ax,
            ci_show=False,
            color=COLOURS.get(method),
            linewidth=2.5 if method in ("manual", "reconciled") else 1.6,
            linestyle="--" if method == "manual" else "-",
        )
    ax.xaxis.set_major_locator(MultipleLocator(6 * DAYS_PER_MONTH))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda days, _: f"{days / DAYS_PER_MONTH:.0f}"))
    ax.set_xlabel("months since the index date")
    ax.set_ylabel("progression-free survival")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.set_title("Kaplan-Meier PFS per method")
    add_at_risk_counts(*curves.values(), ax=ax, fig=ax.figure, rows_to_show=["At risk"])
    return ax


def _dose_segments(daily: pd.DataFrame) -> pd.DataFrame:
    """Dose runs (start, end, dose) with a dose, from steroid_daily's run-length rows."""
    d = daily.loc[daily["dex_eq_mg_per_day"].fillna(0) > 0]
    return pd.DataFrame({"start": d["start_date"], "end": d["end_date"], "dose": d["dex_eq_mg_per_day"]})


def swimmer_plot(
    endpoints: pd.DataFrame,
    *,
    manual: pd.DataFrame | None = None,
    steroid_daily: pd.DataFrame | None = None,
    report_labels: pd.DataFrame | None = None,
    volumes: pd.DataFrame | None = None,
    max_patients: int = 40,
    ax: Any = None,
) -> Any:
    """One lane per patient: follow-up, steroid dose, report labels, tumour volumes, manual, reconciled dates.

    Lanes are sorted by reconciled PFS; beyond ``max_patients`` only the first lanes are drawn (and the title
    says so), because a swimmer plot stops being readable at a glance.
    """
    import matplotlib
    import matplotlib.colors as mcolors
    from matplotlib.lines import Line2D

    base_method = (
        "reconciled" if "reconciled" in set(endpoints["method"]) else (methods_in(endpoints) or [None])[0]
    )
    base = endpoints.loc[endpoints["method"] == base_method].sort_values(["pfs_days", "patient_id"])
    n_total = len(base)
    base = base.head(max_patients).reset_index(drop=True)
    ax = _axes(ax, (11, max(3.0, 0.32 * len(base) + 1.5)))
    if base.empty:
        return _not_available(ax, "swimmer plot (no endpoints)")
    lane = {pid: i for i, pid in enumerate(base["patient_id"])}
    index = base.set_index("patient_id")["index_date"]

    def months(frame: pd.DataFrame, column: str) -> pd.Series:
        return (frame[column] - frame["patient_id"].map(index)).dt.days / DAYS_PER_MONTH

    y = np.arange(len(base))
    # The whole follow-up in a light lane, the progression-free part darker: what came after still shows.
    end = base["pfs_date"]
    for col in ("last_followup_date", "death_date"):
        if col in base:
            end = pd.concat([end, base[col]], axis=1).max(axis=1)
    ax.barh(
        y,
        (end - base["index_date"]).dt.days / DAYS_PER_MONTH,
        height=0.5,
        color="#f1f4f7",
        edgecolor="#c5cfd9",
        zorder=1,
    )
    ax.barh(y, base["pfs_days"] / DAYS_PER_MONTH, height=0.5, color="#cfd9e3", edgecolor="#9aa9b8", zorder=1)
    handles: list[Any] = [
        Line2D([], [], color="#cfd9e3", linewidth=6, label=f"progression-free ({base_method})"),
        Line2D([], [], color="#f1f4f7", linewidth=6, label="later follow-up"),
    ]
    if steroid_daily is not None and not steroid_daily.empty and "dex_eq_mg_per_day" in steroid_daily:
        cmap, norm = matplotlib.colormaps["Oranges"], mcolors.Normalize(vmin=0, vmax=16)
        for pid, grp in steroid_daily.loc[steroid_daily["patient_id"].isin(lane)].groupby("patient_id"):
            seg = _dose_segments(grp)
            if seg.empty:
                continue
            x0 = (seg["start"] - index[pid]).dt.days / DAYS_PER_MONTH
            x1 = ((seg["end"] - index[pid]).dt.days + 1) / DAYS_PER_MONTH
            ax.hlines(
                np.full(len(seg), lane[pid] - 0.33),
                x0,
                x1,
                colors=cmap(norm(seg["dose"].to_numpy())),
                linewidth=4,
                zorder=2,
            )
        handles.append(
            Line2D([], [], color=cmap(norm(8)), linewidth=4, label="steroid dose (dex-eq, darker = more)")
        )
    if report_labels is not None and not report_labels.empty:
        rl = report_labels.loc[report_labels["patient_id"].isin(lane)]
        for label, (marker, colour, text) in LABEL_MARKERS.items():
            sel = rl.loc[rl["label"] == label]
            if sel.empty:
                continue
            ax.scatter(
                months(sel, "report_date"),
                sel["patient_id"].map(lane) + 0.3,
                marker=marker,
                color=colour,
                s=22,
                zorder=3,
            )
            handles.append(Line2D([], [], marker=marker, color=colour, linestyle="", label=text))
    if volumes is not None and not volumes.empty and "et_volume_ml" in volumes:
        vol = volumes.loc[volumes["patient_id"].isin(lane) & volumes["et_volume_ml"].notna()]
        if not vol.empty:
            ax.scatter(
                months(vol, "study_date"),
                vol["patient_id"].map(lane),
                s=8 + 6 * vol["et_volume_ml"].clip(0, 30),
                facecolors="none",
                edgecolors="#1f77b4",
                linewidths=1,
                zorder=3,
            )
            handles.append(
                Line2D(
                    [],
                    [],
                    marker="o",
                    markerfacecolor="none",
                    color="#1f77b4",
                    linestyle="",
                    label="MRI: enhancing volume (size ∝ mL)",
                )
            )
    died = base.loc[(base["pfs_event"] == 1) & (base["progressed"] == 0)]
    if not died.empty:
        ax.scatter(
            died["pfs_days"] / DAYS_PER_MONTH,
            died["patient_id"].map(lane),
            marker="|",
            s=120,
            color="black",
            zorder=4,
        )
        handles.append(
            Line2D(
                [],
                [],
                marker="|",
                color="black",
                linestyle="",
                markersize=10,
                label="death without progression",
            )
        )
    prog = base.loc[base["progressed"] == 1]
    if not prog.empty:
        ax.scatter(
            months(prog, "progression_date"),
            prog["patient_id"].map(lane),
            marker="X",
            s=70,
            color=COLOURS.get(base_method, "red"),
            edgecolors="white",
            zorder=5,
        )
        handles.append(
            Line2D(
                [],
                [],
                marker="X",
                color=COLOURS.get(base_method, "red"),
                linestyle="",
                markersize=8,
                label=f"{base_method} progression",
            )
        )
    mp = None if manual is None else manual.loc[(manual["progressed"] == 1) & manual["patient_id"].isin(lane)]
    if mp is not None and not mp.empty:
        ax.scatter(
            months(mp, "progression_date"),
            mp["patient_id"].map(lane),
            marker="*",
            s=110,
            color="black",
            zorder=6,
        )
        handles.append(
            Line2D([], [], marker="*", color="black", linestyle="", markersize=10, label="manual progression")
        )
    ax.set_yticks(y)
    ax.set_yticklabels(base["patient_id"], fontsize=7)
    ax.set_ylim(-0.8, len(base) - 0.2)
    ax.invert_yaxis()
    ax.set_xlabel("months since the index date")
    ax.set_xlim(left=0)
    ax.grid(axis="x", alpha=0.3)
    shown = "" if n_total <= max_patients else f" (first {max_patients} of {n_total} patients)"
    ax.set_title(f"Patient courses{shown}")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return ax


def lags(endpoints: pd.DataFrame, manual: pd.DataFrame) -> pd.DataFrame:
    """patient_id, method, lag_days, mean_days: method minus manual progression date, both progressed."""
    m = endpoints.merge(
        manual[["patient_id", "progressed", "progression_date", "index_date"]],
        on="patient_id",
        suffixes=("", "_manual"),
    )
    m = m.loc[(m["progressed"] == 1) & (m["progressed_manual"] == 1)].copy()
    m["lag_days"] = (m["progression_date"] - m["progression_date_manual"]).dt.days
    since = (m["progression_date"] - m["index_date"]).dt.days
    since_manual = (m["progression_date_manual"] - m["index_date_manual"]).dt.days
    m["mean_days"] = (since + since_manual) / 2
    return m[["patient_id", "method", "lag_days", "mean_days"]]


def lag_plot(endpoints: pd.DataFrame, manual: pd.DataFrame | None, ax: Any = None) -> Any:
    """Lag of each method's progression date against the manual date: box plot and every patient as a dot."""
    ax = _axes(ax, (8, 5))
    if manual is None or manual.empty:
        return _not_available(ax, "lag distribution (no annotations)")
    lag = lags(endpoints, manual)
    methods = [m for m in methods_in(endpoints) if (lag["method"] == m).any()]
    if not methods:
        return _not_available(
            ax, "lag distribution (no patient progressed per both a method and the reference)"
        )
    ax.axhspan(-30, 30, color="#2ecc71", alpha=0.10, label="±30 days")
    ax.axhspan(-60, 60, color="#2ecc71", alpha=0.06, label="±60 days")
    ax.axhline(0, color="black", linewidth=0.8)
    data = [lag.loc[lag["method"] == m, "lag_days"].to_numpy() for m in methods]
    low = min(-90.0, *(float(v.min()) for v in data if len(v)))
    high = max(90.0, *(float(v.max()) for v in data if len(v)))
    # The tails a median hides: dates more than 60 days off, shaded and counted per method.
    ax.axhspan(low - 30, -60, color="#e74c3c", alpha=0.07, label="> 60 days early / late")
    ax.axhspan(60, high + 30, color="#e74c3c", alpha=0.07)
    ax.boxplot(data, positions=range(len(methods)), widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)  # jitter only; seeded so the figure is the same every run
    n_ref = int((manual["progressed"] == 1).sum()) if "progressed" in manual else 0
    for i, (m, values) in enumerate(zip(methods, data, strict=True)):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=14, alpha=0.7, color=COLOURS.get(m))
        for count, y, va, what in ((int((values < -60).sum()), low - 25, "bottom", "early"),
                                   (int((values > 60).sum()), high + 25, "top", "late")):
            share = f" ({count / n_ref:.0%})" if n_ref else ""
            ax.text(i, y, f"{count} {what}{share}", ha="center", va=va, fontsize=7, color="#c0392b")
    ax.set_ylim(low - 30, high + 30)
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels([f"{m}\n(n={len(v)})" for m, v in zip(methods, data, strict=True)])
    ax.set_ylabel("method date − manual date (days)\nnegative = earlier than the guideline")
    if n_ref:
        ax.set_xlabel(f"counts > 60 days early / late; shares of the {n_ref} reference progressors")
    ax.set_title("Lag of the progression date against the manual reference")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return ax


def bland_altman_plot(
    endpoints: pd.DataFrame, manual: pd.DataFrame | None, method: str = "reconciled", ax: Any = None
) -> Any:
    """Bland-Altman of progression dates (days since index): difference against mean, bias and 95 % limits."""
    ax = _axes(ax, (6, 5))
    if manual is None or manual.empty:
        return _not_available(ax, "Bland-Altman plot (no annotations)")
    lag = lags(endpoints.loc[endpoints["method"] == method], manual)
    if lag.empty:
        return _not_available(ax, f"Bland-Altman plot for {method} (no paired progression dates)")
    bias = lag["lag_days"].mean()
    sd = lag["lag_days"].std(ddof=1) if len(lag) > 1 else 0.0
    ax.scatter(lag["mean_days"], lag["lag_days"], s=18, color=COLOURS.get(method), alpha=0.8)
    ax.axhline(bias, color="black", linewidth=1.2, label=f"bias {bias:+.0f} d")
    for limit in (bias - 1.96 * sd, bias + 1.96 * sd):
        ax.axhline(limit, color="black", linestyle="--", linewidth=0.9)
    ax.plot([], [], color="black", linestyle="--", label=f"95 % limits ±{1.96 * sd:.0f} d")
    ax.axhline(0, color="#999999", linewidth=0.6)
    ax.set_xlabel("mean of the two dates (days since index)")
    ax.set_ylabel(f"{method} − manual (days)")
    ax.set_title(f"Bland-Altman: {method} (n={len(lag)})")
    ax.legend(fontsize=8, loc="best", framealpha=0.8)
    ax.grid(alpha=0.3)
    return ax


def figures(outputs: Any, manual: pd.DataFrame | None, max_patients: int = 40,
            curves: dict[str, Any] | None = None) -> dict[str, Any]:
    """name -> matplotlib Figure for every plot the outputs allow (the report embeds the same figures)."""
    ep = outputs.endpoints
    figs: dict[str, Any] = {}
    fig = _figure((9, 6.5))
    ax = fig.subplots()
    km_plot(ep, manual, ax=ax, curves=curves)
    fig.tight_layout()
    figs["km"] = fig
    n = min(max_patients, ep["patient_id"].nunique())
    fig = _figure((12, max(3.0, 0.3 * n + 1.5)))
    ax = fig.subplots()
    swimmer_plot(
        ep,
        manual=manual,
        steroid_daily=outputs.get("steroid_daily"),
        report_labels=outputs.get("report_labels"),
        volumes=outputs.get("volumes"),
        max_patients=max_patients,
        ax=ax,
    )
    fig.tight_layout()
    figs["swimmer"] = fig
    if manual is not None and not manual.empty:
        fig = _figure((8, 5))
        ax = fig.subplots()
        lag_plot(ep, manual, ax=ax)
        fig.tight_layout()
        figs["lag"] = fig
        methods = methods_in(ep)
        fig = _figure((4.5 * len(methods), 4.2))
        axes = fig.subplots(1, len(methods), squeeze=False, sharey=True)
        for m, a in zip(methods, axes[0], strict=True):
            bland_altman_plot(ep, manual, method=m, ax=a)
        fig.tight_layout()
        figs["bland_altman"] = fig
    return figs


def plot(out_dir: Path | str, annotations: Path | str | None = None) -> list[Path]:
    """Write every figure as PNG and SVG under OUT/plots; returns the paths written.

    Without annotations only the Kaplan-Meier and swimmer plots can be drawn (the lag and Bland-Altman
    plots need the manual dates).
    """
    from pfs.report.outputs import load_outputs, manual_reference

    outputs = load_outputs(out_dir)
    manual = manual_reference(outputs, annotations)
    folder = Path(out_dir) / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    import matplotlib

    for name, fig in figures(outputs, manual).items():
        for ext, meta in (("png", {"Software": None}), ("svg", {"Date": None})):
            path = folder / f"{name}.{ext}"
            # A fixed salt makes the SVG element ids, hence the files, the same on every run.
            with matplotlib.rc_context({"svg.hashsalt": "pfs"}):
                fig.savefig(path, dpi=150, metadata=meta, bbox_inches="tight")
            written.append(path)
    return written
