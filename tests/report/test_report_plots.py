"""Plots: every figure written as PNG and SVG, the same bytes twice, and graceful when tables are absent."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pfs.report.outputs import load_outputs, manual_reference
from pfs.report.plots import bland_altman_plot, km_plot, lag_plot, lags, plot, swimmer_plot


def test_plot_writes_png_and_svg_of_every_figure(out_dir: Path) -> None:
    paths = plot(out_dir, out_dir.parent / "annotations.csv")
    names = sorted(p.name for p in paths)
    assert names == sorted(
        f"{n}.{e}" for n in ("km", "swimmer", "lag", "bland_altman") for e in ("png", "svg")
    )
    for p in paths:
        assert p.parent == out_dir / "plots" and p.stat().st_size > 5_000
    assert (out_dir / "plots" / "km.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Reproducible files: no creation date in the SVG, element ids from a fixed salt rather than random.
    svg = (out_dir / "plots" / "km.svg").read_text(encoding="utf-8")
    assert "<dc:date>" not in svg and "<svg" in svg


def test_without_annotations_only_km_and_swimmer(minimal_out: Path) -> None:
    names = sorted(p.name for p in plot(minimal_out))
    assert names == ["km.png", "km.svg", "swimmer.png", "swimmer.svg"]


def test_km_plot_has_one_curve_per_method_and_one_at_risk_table(out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    outputs = load_outputs(out_dir)
    manual = manual_reference(outputs, out_dir.parent / "annotations.csv")
    ax = km_plot(outputs.endpoints, manual)
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["steroid", "nlp", "imaging", "reconciled", "manual"]
    # add_at_risk_counts adds twin axes carrying the counts; one call = one table.
    assert len(ax.figure.axes) == 2
    matplotlib.pyplot.close("all")


def test_plot_functions_draw_on_a_given_axes_and_return_it(out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outputs = load_outputs(out_dir)
    manual = manual_reference(outputs, out_dir.parent / "annotations.csv")
    fig, axes = plt.subplots(1, 3)
    assert swimmer_plot(outputs.endpoints, manual=manual, ax=axes[0]) is axes[0]
    assert lag_plot(outputs.endpoints, manual, ax=axes[1]) is axes[1]
    assert bland_altman_plot(outputs.endpoints, manual, "nlp", ax=axes[2]) is axes[2]
    # Without annotations the lag plot says so instead of failing.
    empty = lag_plot(outputs.endpoints, None)
    assert "not available" in empty.texts[0].get_text()
    plt.close("all")


def test_lags_are_method_minus_manual_in_days(out_dir: Path) -> None:
    outputs = load_outputs(out_dir)
    manual = manual_reference(outputs, out_dir.parent / "annotations.csv")
    lag = lags(outputs.endpoints.loc[outputs.endpoints["method"] == "imaging"], manual).set_index(
        "patient_id"
    )
    # Fixture: imaging progression at surgery + 200 + 20 i days, manual at surgery + 210 days.
    assert lag["lag_days"].to_dict() == {"P1": -10, "P2": 10, "P3": 30, "P4": 50}
    assert isinstance(lag, pd.DataFrame) and lag.loc["P1", "mean_days"] == 205


def test_dose_band_draws_the_runs_with_a_dose() -> None:
    from pfs.report.plots import _dose_segments

    runs = pd.DataFrame(
        {
            "start_date": pd.to_datetime(["2020-01-01", "2020-01-10", "2020-02-01"]),
            "end_date": pd.to_datetime(["2020-01-09", "2020-01-31", "2020-02-05"]),
            "dex_eq_mg_per_day": [16.0, 0.0, 4.0],
        }
    )
    seg = _dose_segments(runs)
    assert seg["dose"].tolist() == [16.0, 4.0]  # the steroid-free run is not drawn
    assert seg["start"].dt.day.tolist() == [1, 1] and seg["end"].dt.day.tolist() == [9, 5]
