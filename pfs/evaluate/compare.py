"""``pfs compare``: every method's endpoints against the manual reference annotations.

Per method (steroid, nlp, imaging, reconciled) and for the manual reference itself: progression rate;
sensitivity, specificity, PPV, NPV and Cohen's kappa of the progression status; the lag of the progression
date (method minus manual, negative = earlier than the guideline date); Kaplan-Meier median PFS with its
95 % CI, the log-rank test against the manual curve and the concordance index (lifelines).

The manual PFS is built on the same footing as the methods' (see :func:`manual_endpoints`): the same index
date, death as a PFS event, censoring at the annotated censor date.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pfs.exceptions import ExportError, PfsError, QuarantineWarning
from pfs.io.output import read_endpoints
from pfs.evaluate.survival import fit_curves, km_summary, methods_in
from pfs.vocab import DAYS_PER_MONTH

COMPARISON_COLUMNS = [
    "method",
    "n",
    "n_progressed",
    "progression_rate",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "kappa",
    "n_lag",
    "lag_mean_days",
    "lag_mean_months",
    "lag_median_days",
    "lag_q25_days",
    "lag_q75_days",
    "pct_earlier",
    "pct_later",
    "pct_within_30d",
    "pct_within_60d",
    "n_reference_progressed",
    "ref_within_15d",
    "ref_within_30d",
    "ref_within_60d",
    "ref_early_60d",
    "ref_late_60d",
    "lag_mean_abs_days",
    "km_median_days",
    "km_median_lower_days",
    "km_median_upper_days",
    "km_median_months",
    "logrank_statistic",
    "logrank_p",
    "c_index",
]


# --- loading ------------------------------------------------------------------------------------------------


def load_annotations(
    path: Path | str, known_patients: list[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and validate an annotations CSV (native layout); returns (clean rows, quarantine rows).

    Rows failing the schema (pfs/schemas/annotations.json), progressed = 1 without a date, a date on a
    patient annotated as not progressed, or a patient unknown to the endpoints are quarantined with their
    1-based row number; a missing file or column is an :class:`ExportError` naming it.
    """
    from pfs.io.export import read_table
    from pfs.io.mapping import TableMapping
    from pfs.io.quarantine import Quarantine
    from pfs.io.schema import coerce_and_validate, load_schema

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: annotations file not found")
    quarantine, notes = Quarantine(), []
    raw, _, _, _ = read_table(path, "annotations", TableMapping(), quarantine, notes)
    schema = load_schema("annotations")
    missing = [c for c in schema.required_columns if c not in raw.columns]
    if missing:
        raise ExportError(
            f"{path}: required column {missing[0]!r} missing (found: "
            f"{', '.join(c for c in raw.columns if c != '_row')})"
        )
    for col in schema.columns:
        if col not in raw:
            raw[col] = ""
    ann = coerce_and_validate(raw[schema.columns + ["_row"]], schema, quarantine, table="annotations")
    checks = [
        (
            (ann["progressed"] == 1) & ann["progression_date"].isna(),
            "progressed = 1 but progression_date is blank",
            "progression_date",
        ),
        (
            (ann["progressed"] == 0) & ann["progression_date"].notna(),
            "progressed = 0 but a progression_date is given",
            "progression_date",
        ),
    ]
    if known_patients is not None:
        checks.append(
            (~ann["patient_id"].isin(set(known_patients)), "patient_id not in endpoints.csv", "patient_id")
        )
    bad = pd.Series(False, index=ann.index)
    for mask, reason, column in checks:
        quarantine.add_from("annotations", ann, mask & ~bad, reason, stage="compare", column=column)
        bad |= mask
    q = quarantine.frame()
    q["stage"] = "compare"
    # Show the value as written in the file, not as parsed ("NaT", a timestamp).
    written = raw.set_index("_row")
    q["value"] = [
        str(written.at[r, c])[:200] if c in written.columns and r in written.index else v
        for r, c, v in zip(q["row"], q["column"], q["value"], strict=True)
    ]
    return ann.loc[~bad].drop(columns="_row").reset_index(drop=True), q


# --- the manual reference on the methods' footing -----------------------------------------------------------


def manual_endpoints(endpoints: pd.DataFrame, annotations: pd.DataFrame) -> pd.DataFrame:
    """The manual PFS per patient, built by the methods' own rule (:func:`pfs.reconcile.endpoints.pfs_endpoints`).

    Same index date as the methods; death (``death_date`` in endpoints.csv, or in older outputs a method
    row that ended with death and no progression) is a PFS event; a non-progressed patient is censored at
    the annotated ``censor_date``, else at the last follow-up of endpoints.csv.
    """
    from pfs.reconcile.endpoints import pfs_endpoints

    base = (
        endpoints.sort_values(["patient_id", "method"]).drop_duplicates("patient_id").set_index("patient_id")
    )
    if "death_date" in endpoints:
        death = base["death_date"]
    else:
        died = endpoints.loc[(endpoints["progressed"] == 0) & (endpoints["pfs_event"] == 1)]
        death = died.groupby("patient_id")["pfs_date"].min().reindex(base.index)
    followup = (
        base["last_followup_date"]
        if "last_followup_date" in base
        else endpoints.groupby("patient_id")["pfs_date"].max().reindex(base.index)
    )
    ann = annotations.set_index("patient_id")
    ann = ann.loc[ann.index.isin(base.index)]
    index = pd.DataFrame({"index_date": base["index_date"].reindex(ann.index), "index_note": ""}, index=ann.index)
    progressed = ann.loc[ann["progressed"] == 1, ["progression_date"]]
    progression = progressed.rename(columns={"progression_date": "event_date"}).rename_axis("patient_id").reset_index()
    censor = ann["censor_date"].where(ann["censor_date"].notna(), followup.reindex(ann.index))
    return pfs_endpoints(index, progression, death.reindex(ann.index), censor, "manual",
                         last_followup=followup.reindex(ann.index))


# --- statistics ---------------------------------------------------------------------------------------------


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def status_metrics(predicted: pd.Series, reference: pd.Series) -> dict[str, float]:
    """Sensitivity, specificity, PPV, NPV and Cohen's kappa of a 0/1 progression status vs the reference."""
    p, r = predicted.astype(int).to_numpy(), reference.astype(int).to_numpy()
    tp, tn = int(((p == 1) & (r == 1)).sum()), int(((p == 0) & (r == 0)).sum())
    fp, fn = int(((p == 1) & (r == 0)).sum()), int(((p == 0) & (r == 1)).sum())
    n = tp + tn + fp + fn
    po = _ratio(tp + tn, n)
    pe = _ratio((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp), n * n)
    # Kappa is undefined when chance agreement is perfect (both raters constant and equal).
    kappa = (po - pe) / (1 - pe) if n and pe < 1 else math.nan
    return {
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "kappa": kappa,
    }


def lag_metrics(lag_days: pd.Series) -> dict[str, float]:
    """Summary of method-minus-manual progression dates in days (negative = earlier than the reference)."""
    lag = pd.to_numeric(lag_days, errors="coerce").dropna().astype(float)
    if lag.empty:
        return {
            "n_lag": 0,
            **{
                k: math.nan
                for k in (
                    "lag_mean_days",
                    "lag_mean_months",
                    "lag_median_days",
                    "lag_q25_days",
                    "lag_q75_days",
                    "pct_earlier",
                    "pct_later",
                    "pct_within_30d",
                    "pct_within_60d",
                )
            },
        }
    return {
        "n_lag": int(len(lag)),
        "lag_mean_days": float(lag.mean()),
        "lag_mean_months": float(lag.mean() / DAYS_PER_MONTH),
        "lag_median_days": float(lag.median()),
        "lag_q25_days": float(lag.quantile(0.25)),
        "lag_q75_days": float(lag.quantile(0.75)),
        "pct_earlier": float((lag < 0).mean()),
        "pct_later": float((lag > 0).mean()),
        "pct_within_30d": float((lag.abs() <= 30).mean()),
        "pct_within_60d": float((lag.abs() <= 60).mean()),
    }


#: The field scores a progression date as the share of reference progressors dated within ±15 and ±30
#: days; more than 60 days early or late are the tails a median lag hides.
TAIL_DAYS = 60


def reference_date_metrics(lag_days: pd.Series, n_reference: int) -> dict[str, float]:
    """Shares of the reference progressors (``n_reference``) by the lag of this method's date.

    ``lag_days`` holds method minus manual date for the reference progressors the method also calls
    progressed; a progressor it misses counts in the denominator only (neither within nor early nor late).
    """
    lag = pd.to_numeric(lag_days, errors="coerce").dropna().astype(float)
    def share(mask: pd.Series) -> float:
        return _ratio(int(mask.sum()), n_reference)

    return {
        "n_reference_progressed": int(n_reference),
        "ref_within_15d": share(lag.abs() <= 15),
        "ref_within_30d": share(lag.abs() <= 30),
        "ref_within_60d": share(lag.abs() <= TAIL_DAYS),
        "ref_early_60d": share(lag < -TAIL_DAYS),
        "ref_late_60d": share(lag > TAIL_DAYS),
        "lag_mean_abs_days": float(lag.abs().mean()) if len(lag) else math.nan,
    }


def logrank(
    durations_a: pd.Series, events_a: pd.Series, durations_b: pd.Series, events_b: pd.Series
) -> tuple[float, float]:
    """Log-rank chi-square statistic and p-value (lifelines)."""
    from lifelines.statistics import logrank_test

    if len(durations_a) == 0 or len(durations_b) == 0:
        return math.nan, math.nan
    res = logrank_test(
        durations_a.astype(float), durations_b.astype(float), events_a.astype(int), events_b.astype(int)
    )
    return float(res.test_statistic), float(res.p_value)


def c_index(reference_days: pd.Series, predicted_days: pd.Series, reference_events: pd.Series) -> float:
    """Harrell's concordance of a method's PFS time with the manual PFS time (manual censoring respected)."""
    from lifelines.utils import concordance_index

    try:
        return float(
            concordance_index(
                reference_days.astype(float), predicted_days.astype(float), reference_events.astype(int)
            )
        )
    except ZeroDivisionError:  # no admissible pairs (e.g. one patient, or no events)
        return math.nan


def method_row(method: str, ep: pd.DataFrame, manual: pd.DataFrame, curve: Any = None) -> dict[str, object]:
    """All metrics of one method, on the patients both the method and the reference have.

    ``curve`` is the method's Kaplan-Meier fit on those patients (see :func:`fit_curves`).
    """
    m = ep.merge(manual, on="patient_id", suffixes=("", "_manual"))
    row: dict[str, object] = {
        "method": method,
        "n": int(len(m)),
        "n_progressed": int(m["progressed"].sum()),
        "progression_rate": _ratio(int(m["progressed"].sum()), len(m)),
    }
    if method == "manual":
        row.update({k: math.nan for k in ("sensitivity", "specificity", "ppv", "npv", "kappa")})
        row.update(lag_metrics(pd.Series(dtype=float)))
        # the reference against itself: no lag to score
        row.update({k: math.nan for k in reference_date_metrics(pd.Series(dtype=float), 0)})
        row["n_reference_progressed"] = int(m["progressed_manual"].sum())
        row.update(km_summary(curve))
        row.update({"logrank_statistic": math.nan, "logrank_p": math.nan, "c_index": math.nan})
        return row
    row.update(status_metrics(m["progressed"], m["progressed_manual"]))
    both = (m["progressed"] == 1) & (m["progressed_manual"] == 1)
    lags = (m.loc[both, "progression_date"] - m.loc[both, "progression_date_manual"]).dt.days
    row.update(lag_metrics(lags))
    row.update(reference_date_metrics(lags, int((m["progressed_manual"] == 1).sum())))
    row.update(km_summary(curve))
    stat, p = logrank(m["pfs_days"], m["pfs_event"], m["pfs_days_manual"], m["pfs_event_manual"])
    row.update(
        {
            "logrank_statistic": stat,
            "logrank_p": p,
            "c_index": c_index(m["pfs_days_manual"], m["pfs_days"], m["pfs_event_manual"]),
        }
    )
    return row


def comparison_table(endpoints: pd.DataFrame, annotations: pd.DataFrame, *, manual: pd.DataFrame | None = None,
                     curves: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per method present in ``endpoints`` (reference-study order) plus the manual reference.

    ``manual`` and ``curves`` may be passed when the caller has them already (the HTML report draws
    the same curves it tabulates).
    """
    manual = manual_endpoints(endpoints, annotations) if manual is None else manual
    curves = fit_curves(endpoints, manual) if curves is None else curves
    rows = [method_row(m, endpoints.loc[endpoints["method"] == m], manual, curves.get(m))
            for m in methods_in(endpoints)]
    rows.append(method_row("manual", manual, manual, curves.get("manual")))
    out = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    out["n"] = out["n"].astype("int64")
    out["n_progressed"] = out["n_progressed"].astype("int64")
    out["n_lag"] = out["n_lag"].astype("int64")
    out["n_reference_progressed"] = out["n_reference_progressed"].astype("int64")
    return out


# --- writing ------------------------------------------------------------------------------------------------


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """A compact, formatted view of the comparison for a terminal (what ``pfs compare`` prints)."""

    def pct(x: float) -> str:
        return "–" if pd.isna(x) else f"{100 * x:.0f}%"

    return pd.DataFrame(
        {
            "method": table["method"],
            "n": table["n"],
            "progression": table["progression_rate"].map(pct),
            "mean lag (mo)": table.apply(
                lambda r: "ref" if r["method"] == "manual" else _signed(r["lag_mean_months"]), axis=1
            ),
            "ref ±30 d": table["ref_within_30d"].map(pct),
            ">60 d early": table["ref_early_60d"].map(pct),
            "sens": table["sensitivity"].map(pct),
            "spec": table["specificity"].map(pct),
            "PPV": table["ppv"].map(pct),
            "kappa": table["kappa"].map(lambda x: _num(x, 2)),
            "median PFS (mo)": table["km_median_months"].map(lambda x: _num(x, 1)),
            "log-rank p": table["logrank_p"].map(lambda x: "–" if pd.isna(x) else f"{x:.3g}"),
            "C-index": table["c_index"].map(lambda x: _num(x, 2)),
        }
    )


def _pct(x: float) -> str:
    return "–" if pd.isna(x) else f"{100 * x:.0f} %"


def _num(x: float, digits: int = 1) -> str:
    if pd.isna(x):
        return "–"
    if math.isinf(x):
        return "not reached"
    return f"{x:.{digits}f}"


def _signed(x: float) -> str:
    return "–" if pd.isna(x) else f"{x:+.1f}"


def to_markdown(table: pd.DataFrame, notes: list[str] | None = None) -> str:
    """comparison.md: the reference study's table shape first, then the full metrics."""
    lines = [
        "# Comparison with the manual annotations",
        "",
        "Progression found and timing against the manual guideline date (as in Chappidi et al., "
        "PLOS Digit Health 2025). Lag = method date − manual date, among patients both call progressed; "
        "negative = earlier than the guideline date.",
        "",
        "| method | n | progression found | mean lag (months) | median PFS (months) |",
        "|---|---:|---:|---:|---:|",
    ]
    for _, r in table.iterrows():
        lag = "reference" if r["method"] == "manual" else _signed(r["lag_mean_months"])
        lines.append(
            f"| {r['method']} | {r['n']} | {_pct(r['progression_rate'])} | {lag} | "
            f"{_num(r['km_median_months'])} |"
        )
    lines += [
        "",
        "## Progression status",
        "",
        "| method | sensitivity | specificity | PPV | NPV | Cohen's κ |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for _, r in table.loc[table["method"] != "manual"].iterrows():
        lines.append(
            f"| {r['method']} | {_pct(r['sensitivity'])} | {_pct(r['specificity'])} | {_pct(r['ppv'])} | "
            f"{_pct(r['npv'])} | {_num(r['kappa'], 2)} |"
        )
    lines += [
        "",
        "## Lag of the progression date (days)",
        "",
        "| method | n | median | mean | IQR | earlier | later | within ±30 d | within ±60 d |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for _, r in table.loc[table["method"] != "manual"].iterrows():
        iqr = "–" if pd.isna(r["lag_q25_days"]) else f"{r['lag_q25_days']:+.0f} to {r['lag_q75_days']:+.0f}"
        lines.append(
            f"| {r['method']} | {r['n_lag']} | {_signed(r['lag_median_days'])} | "
            f"{_signed(r['lag_mean_days'])} | {iqr} | {_pct(r['pct_earlier'])} | {_pct(r['pct_later'])} | "
            f"{_pct(r['pct_within_30d'])} | {_pct(r['pct_within_60d'])} |"
        )
    lines += [
        "",
        "## Dates of the reference progressors",
        "",
        "Share of the patients the manual reference calls progressed (a progressor the method misses counts "
        "as not dated), by |method date − manual date|; the tails are what a median lag hides.",
        "",
        "| method | reference progressors | within ±15 d | within ±30 d | within ±60 d | > 60 d early | "
        "> 60 d late | mean absolute lag (d) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for _, r in table.loc[table["method"] != "manual"].iterrows():
        lines.append(
            f"| {r['method']} | {r['n_reference_progressed']} | {_pct(r['ref_within_15d'])} | "
            f"{_pct(r['ref_within_30d'])} | {_pct(r['ref_within_60d'])} | {_pct(r['ref_early_60d'])} | "
            f"{_pct(r['ref_late_60d'])} | {_num(r['lag_mean_abs_days'], 0)} |"
        )
    lines += [
        "",
        "## Survival (Kaplan-Meier, lifelines)",
        "",
        "| method | median PFS, days (95 % CI) | log-rank χ² vs manual | p | C-index |",
        "|---|---:|---:|---:|---:|",
    ]
    for _, r in table.iterrows():
        ci = (
            f"{_num(r['km_median_days'], 0)} ({_num(r['km_median_lower_days'], 0)}–"
            f"{_num(r['km_median_upper_days'], 0)})"
        )
        p = "–" if pd.isna(r["logrank_p"]) else f"{r['logrank_p']:.3g}"
        lines.append(
            f"| {r['method']} | {ci} | {_num(r['logrank_statistic'], 2)} | {p} | {_num(r['c_index'], 2)} |"
        )
    lines += [
        "",
        "The log-rank test treats the two curves as independent samples although they describe the "
        "same patients; read its p-value as a measure of distance between the curves, not as a paired test.",
    ]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def compare(out_dir: Path | str, annotations: Path | str) -> pd.DataFrame:
    """Compare OUT/endpoints.csv with the annotations; write comparison.csv and comparison.md in OUT.

    Bad annotation rows are written to OUT/annotations_quarantine.csv (with a :class:`QuarantineWarning`)
    and the other patients are compared.
    """
    from pfs.io.output import write_bytes, write_table

    out = Path(out_dir)
    endpoints = read_endpoints(out)
    ann, quarantine = load_annotations(annotations, sorted(endpoints["patient_id"].unique()))
    notes = []
    if not quarantine.empty:
        write_table(quarantine, out / "annotations_quarantine.csv")
        msg = f"{len(quarantine)} annotation row(s) set aside: see {out / 'annotations_quarantine.csv'}"
        warnings.warn(msg, QuarantineWarning, stacklevel=2)
        notes.append(f"{len(quarantine)} annotation row(s) set aside (annotations_quarantine.csv)")
    if ann.empty:
        raise PfsError(f"{annotations}: no usable annotation rows (see {out / 'annotations_quarantine.csv'})")
    missing = sorted(set(endpoints["patient_id"]) - set(ann["patient_id"]))
    if missing:
        notes.append(f"{len(missing)} patient(s) of endpoints.csv have no annotation and are not compared")
    table = comparison_table(endpoints, ann)
    write_table(table, out / "comparison.csv")
    write_bytes(to_markdown(table, notes).encode("utf-8"), out / "comparison.md")
    return table
