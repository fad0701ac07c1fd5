"""pfs compare on a hand-computed cohort, and its survival statistics against published results."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from pfs.evaluate.compare import (
    COMPARISON_COLUMNS,
    c_index,
    compare,
    lag_metrics,
    logrank,
    manual_endpoints,
    status_metrics,
)
from pfs.evaluate.survival import km_median
from pfs.exceptions import ExportError, PfsError, QuarantineWarning
from pfs.io.output import write_table
from pfs.io.schema import load_schema

D = pd.Timestamp
INDEX = D("2020-01-01")

# Manual reference: P1-P3 and P6 progressed, P4 censored, P5 died without progression on 2020-11-01.
MANUAL = pd.DataFrame(
    {
        "patient_id": ["P1", "P2", "P3", "P4", "P5", "P6"],
        "progressed": [1, 1, 1, 0, 0, 1],
        "progression_date": ["2020-07-01", "2020-05-01", "2020-10-01", "", "", "2020-03-01"],
        "censor_date": ["", "", "", "2021-01-01", "2020-12-01", ""],
    }
)
# nlp: P1 30 days early, P2 61 days late, P3 missed, P4 false alarm, P5 right, P6 same day.
NLP = {"P1": "2020-06-01", "P2": "2020-07-01", "P3": None, "P4": "2020-09-01", "P5": None, "P6": "2020-03-01"}
DEATH = {"P5": D("2020-11-01")}
FOLLOWUP = D("2021-01-01")


def endpoints_for(method: str, dates: dict[str, str | None]) -> pd.DataFrame:
    rows = []
    for pid, date in dates.items():
        prog = D(date) if date else pd.NaT
        death = DEATH.get(pid, pd.NaT)
        pfs_date = prog if date else (death if pd.notna(death) else FOLLOWUP)
        rows.append(
            {
                "patient_id": pid,
                "method": method,
                "index_date": INDEX,
                "progressed": int(bool(date)),
                "progression_date": prog,
                "pfs_event": int(bool(date) or pd.notna(death)),
                "pfs_date": pfs_date,
                "pfs_days": (pfs_date - INDEX).days,
                "note": "",
                "death_date": death,
                "last_followup_date": FOLLOWUP,
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture()
def out_dir(tmp_path: Path) -> Path:
    manual_dates = {
        p: (d or None) for p, d in zip(MANUAL["patient_id"], MANUAL["progression_date"], strict=True)
    }
    ep = pd.concat([endpoints_for("nlp", NLP), endpoints_for("reconciled", manual_dates)], ignore_index=True)
    write_table(ep, tmp_path / "endpoints.csv")
    write_table(MANUAL, tmp_path / "annotations.csv")
    return tmp_path


def test_status_metrics_hand_computed() -> None:
    # TP = P1, P2, P6; FN = P3; FP = P4; TN = P5.
    pred = pd.Series([1, 1, 0, 1, 0, 1])
    ref = pd.Series([1, 1, 1, 0, 0, 1])
    m = status_metrics(pred, ref)
    assert m["sensitivity"] == 0.75 and m["specificity"] == 0.5 and m["ppv"] == 0.75 and m["npv"] == 0.5
    # po = 4/6, pe = (4*4 + 2*2)/36 = 20/36, kappa = (24/36 - 20/36) / (16/36) = 0.25
    assert m["kappa"] == pytest.approx(0.25)


def test_kappa_agrees_with_scikit_learn_when_installed() -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    pred = pd.Series([1, 0, 1, 1, 0, 0, 1, 0, 1, 1])
    ref = pd.Series([1, 0, 0, 1, 0, 1, 1, 0, 1, 0])
    assert status_metrics(pred, ref)["kappa"] == pytest.approx(sklearn_metrics.cohen_kappa_score(pred, ref))


def test_status_metrics_undefined_cells_are_nan_not_errors() -> None:
    m = status_metrics(pd.Series([1, 1]), pd.Series([1, 1]))
    assert m["sensitivity"] == 1.0 and math.isnan(m["specificity"]) and math.isnan(m["kappa"])


def test_lag_metrics_hand_computed() -> None:
    m = lag_metrics(pd.Series([-30, 61, 0]))
    assert m["n_lag"] == 3 and m["lag_mean_days"] == pytest.approx(31 / 3) and m["lag_median_days"] == 0
    assert m["lag_q25_days"] == -15 and m["lag_q75_days"] == 30.5
    assert m["pct_earlier"] == pytest.approx(1 / 3) and m["pct_later"] == pytest.approx(1 / 3)
    assert m["pct_within_30d"] == pytest.approx(2 / 3) and m["pct_within_60d"] == pytest.approx(2 / 3)
    assert m["lag_mean_months"] == pytest.approx(31 / 3 / (365.25 / 12))


def test_km_median_and_logrank_reproduce_the_published_leukaemia_trial() -> None:
    """Freireich 6-MP trial (lifelines load_leukemia, Kleinbaum & Klein ch. 2): medians 23 vs 8 weeks,
    log-rank chi-square 16.79 (p = 0.0000417)."""
    from lifelines.datasets import load_leukemia

    df = load_leukemia()
    mp, placebo = df.loc[df["Rx"] == 0], df.loc[df["Rx"] == 1]
    assert km_median(mp["t"], mp["status"])["km_median_days"] == 23
    km = km_median(placebo["t"], placebo["status"])
    assert km["km_median_days"] == 8 and km["km_median_lower_days"] <= 8 <= km["km_median_upper_days"]
    stat, p = logrank(mp["t"], mp["status"], placebo["t"], placebo["status"])
    assert stat == pytest.approx(16.79, abs=0.01) and p == pytest.approx(4.17e-5, rel=0.01)


def test_logrank_reproduces_the_lifelines_waltons_example() -> None:
    """lifelines docs: miR-137 vs control, log-rank test statistic 122.25."""
    from lifelines.datasets import load_waltons

    df = load_waltons()
    a, b = df.loc[df["group"] == "miR-137"], df.loc[df["group"] == "control"]
    stat, p = logrank(a["T"], a["E"], b["T"], b["E"])
    assert stat == pytest.approx(122.25, abs=0.01) and p < 0.005


def test_c_index_perfect_and_reversed() -> None:
    t = pd.Series([10, 20, 30, 40])
    e = pd.Series([1, 1, 1, 1])
    assert c_index(t, t, e) == 1.0 and c_index(t, -t, e) == 0.0


def test_manual_endpoints_use_the_same_index_death_and_censoring() -> None:
    ep = endpoints_for("nlp", NLP)
    ann = MANUAL.assign(
        progression_date=pd.to_datetime(MANUAL["progression_date"]),
        censor_date=pd.to_datetime(MANUAL["censor_date"]),
    )
    man = manual_endpoints(ep, ann).set_index("patient_id")
    assert man.loc["P5", "pfs_event"] == 1 and man.loc["P5", "pfs_date"] == D("2020-11-01")
    assert man.loc["P5", "progressed"] == 0
    assert man.loc["P4", "pfs_event"] == 0 and man.loc["P4", "pfs_days"] == 366  # 2020 is a leap year
    assert man.loc["P2", "pfs_days"] == (D("2020-05-01") - INDEX).days
    # Older outputs without death_date: death is read from a method row that ended in death.
    old = manual_endpoints(ep.drop(columns=["death_date", "last_followup_date"]), ann).set_index("patient_id")
    assert old.loc["P5", "pfs_date"] == D("2020-11-01") and old.loc["P5", "pfs_event"] == 1


def test_compare_writes_csv_and_markdown(out_dir: Path) -> None:
    table = compare(out_dir, out_dir / "annotations.csv").set_index("method")
    assert list(table.index) == ["nlp", "reconciled", "manual"]
    nlp = table.loc["nlp"]
    assert nlp["n"] == 6 and nlp["n_progressed"] == 4 and nlp["progression_rate"] == pytest.approx(4 / 6)
    assert nlp["sensitivity"] == 0.75 and nlp["kappa"] == pytest.approx(0.25) and nlp["n_lag"] == 3
    assert nlp["lag_mean_days"] == pytest.approx(31 / 3)
    rec = table.loc["reconciled"]
    assert rec["kappa"] == 1.0 and rec["lag_mean_days"] == 0 and rec["c_index"] == 1.0
    assert rec["logrank_statistic"] == pytest.approx(0.0) and rec["logrank_p"] == pytest.approx(1.0)
    assert table.loc["manual", "progression_rate"] == pytest.approx(4 / 6)
    written = pd.read_csv(out_dir / "comparison.csv")
    assert list(written.columns) == COMPARISON_COLUMNS == load_schema("comparison").columns
    md = (out_dir / "comparison.md").read_text(encoding="utf-8")
    # The reference study's shape: progression found and mean lag in months per method.
    assert "| nlp | 6 | 67 % | +0.3 |" in md and "| manual | 6 | 67 % | reference |" in md


def test_bad_annotation_rows_are_quarantined_and_the_rest_compared(out_dir: Path) -> None:
    bad = pd.concat(
        [
            MANUAL,
            pd.DataFrame(
                {
                    "patient_id": ["P1", "P9", "P7"],
                    "progressed": ["1", "1", "yes"],
                    "progression_date": ["2020-01-09", "2020-02-02", ""],
                    "censor_date": ["", "", ""],
                }
            ),
        ],
        ignore_index=True,
    )
    write_table(bad, out_dir / "bad.csv")
    with pytest.warns(QuarantineWarning, match="3 annotation row"):
        table = compare(out_dir, out_dir / "bad.csv")
    assert table.set_index("method").loc["nlp", "n"] == 6
    q = pd.read_csv(out_dir / "annotations_quarantine.csv")
    assert q["row"].tolist() == [7, 8, 9]
    assert q["reason"].str.contains("duplicate patient_id").iloc[0]
    assert "not in endpoints.csv" in q["reason"].iloc[1] and "not a number" in q["reason"].iloc[2]


def test_missing_inputs_are_clear_errors(out_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="annotations file not found"):
        compare(out_dir, out_dir / "nope.csv")
    (out_dir / "cols.csv").write_text("patient_id,progression_date\nP1,2020-01-01\n")
    with pytest.raises(ExportError, match="required column 'progressed' missing"):
        compare(out_dir, out_dir / "cols.csv")
    empty = tmp_path / "empty_out"
    empty.mkdir()
    with pytest.raises(ExportError, match="run `pfs extract"):
        compare(empty, out_dir / "annotations.csv")
    (out_dir / "none.csv").write_text("patient_id,progressed,progression_date,censor_date\nZZ,0,,\n")
    with pytest.warns(QuarantineWarning), pytest.raises(PfsError, match="no usable annotation rows"):
        compare(out_dir, out_dir / "none.csv")


def test_terminal_summary_is_compact_and_formatted(out_dir: Path) -> None:
    from pfs.evaluate.compare import summary

    s = summary(compare(out_dir, out_dir / "annotations.csv")).set_index("method")
    assert s.loc["nlp", "progression"] == "67%" and s.loc["nlp", "mean lag (mo)"] == "+0.3"
    assert s.loc["manual", "mean lag (mo)"] == "ref" and s.loc["nlp", "kappa"] == "0.25"


def test_reference_progressor_shares_count_misses_in_the_denominator_and_show_both_tails() -> None:
    from pfs.evaluate.compare import reference_date_metrics

    # 10 reference progressors; the method dates 8 of them: lags -200, -61, -60, -20, 0, 15, 16, 90 days.
    lags = pd.Series([-200, -61, -60, -20, 0, 15, 16, 90])
    m = reference_date_metrics(lags, 10)
    assert m["n_reference_progressed"] == 10
    assert m["ref_within_15d"] == pytest.approx(2 / 10)  # 0 and 15
    assert m["ref_within_30d"] == pytest.approx(4 / 10)
    assert m["ref_within_60d"] == pytest.approx(5 / 10)  # -60 is within, -61 is not
    assert m["ref_early_60d"] == pytest.approx(2 / 10) and m["ref_late_60d"] == pytest.approx(1 / 10)
    assert m["lag_mean_abs_days"] == pytest.approx((200 + 61 + 60 + 20 + 0 + 15 + 16 + 90) / 8)
    empty = reference_date_metrics(pd.Series(dtype=float), 0)
    assert math.isnan(empty["ref_within_30d"]) and math.isnan(empty["lag_mean_abs_days"])
