"""An output directory as `pfs extract` writes it, built from a small hand-made cohort with the real
reconciler and endpoint builder, for the plot and report tests."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pfs.io.output import write_table
from pfs.reconcile import build_endpoints, reconcile_events
from pfs.settings import load_config

D = pd.Timestamp
EVIL = "<script>alert('x')</script> & \"quoted\""


def cohort() -> dict[str, pd.DataFrame]:
    ids = [f"P{i}" for i in range(1, 9)]
    surgery = [D("2020-01-10") + pd.Timedelta(days=15 * i) for i in range(8)]
    patients = pd.DataFrame(
        {
            "patient_id": ids,
            "diagnosis_date": [s - pd.Timedelta(days=7) for s in surgery],
            "surgery_date": surgery,
            "rt_start_date": [s + pd.Timedelta(days=28) for s in surgery],
            "rt_end_date": [s + pd.Timedelta(days=70) for s in surgery],
            "last_followup_date": [s + pd.Timedelta(days=500) for s in surgery],
            "death_date": [pd.NaT] * 6 + [surgery[6] + pd.Timedelta(days=300), pd.NaT],
        }
    )
    rows = []
    for i, (pid, s) in enumerate(zip(ids, surgery, strict=True)):
        if i < 5:
            prog = s + pd.Timedelta(days=200 + 20 * i)
            rows.append(
                (pid, "imaging", prog, "volumetric_progression", f"S{i}", "ET 3.1 -> 6.8 mL (+119 %)", 119.0)
            )
            rows.append(
                (
                    pid,
                    "nlp",
                    prog + pd.Timedelta(days=i),
                    "report_progression",
                    f"R{i}",
                    EVIL if i == 0 else "Increased enhancement, progression.",
                    None,
                )
            )
            rows.append(
                (
                    pid,
                    "steroid",
                    prog - pd.Timedelta(days=10),
                    "dose_rise",
                    f"M{i}",
                    "dexamethasone 4 mg BID (8 mg/day dex-eq)",
                    8.0,
                )
            )
        elif i == 5:
            rows.append(
                (pid, "steroid", s + pd.Timedelta(days=150), "new_course", "M5", "prednisone burst", 2.0)
            )
    events = pd.DataFrame(
        rows, columns=["patient_id", "source", "event_date", "kind", "ref_id", "evidence", "value"]
    )
    events["confidence"] = 1.0
    reconciled = reconcile_events(events, patients, load_config().section("reconcile"), index_date="surgery")
    endpoints = pd.concat(
        [
            build_endpoints(patients, events.loc[events["source"] == s], s)
            for s in ("steroid", "nlp", "imaging")
        ]
        + [build_endpoints(patients, reconciled, "reconciled")],
        ignore_index=True,
    )
    daily = [  # steroid_daily's run-length rows: 40 days of 8 mg from day 180
        {"patient_id": pid, "start_date": s + pd.Timedelta(days=180), "end_date": s + pd.Timedelta(days=219),
         "days": 40, "dex_eq_mg_per_day": 8.0, "counted_dex_eq_mg_per_day": 8.0, "active_orders": 1}
        for pid, s in zip(ids[:5], surgery[:5], strict=True)
    ]
    labels = pd.DataFrame(
        [
            {
                "patient_id": pid,
                "report_id": f"R{i}",
                "report_date": s + pd.Timedelta(days=d),
                "label": lab,
                "evidence": EVIL if i == 0 else "stable",
            }
            for i, (pid, s) in enumerate(zip(ids, surgery, strict=True))
            for d, lab in ((100, "stable"), (200 + 20 * i, "progression" if i < 5 else "improved"))
        ]
    )
    volumes = pd.DataFrame(
        [
            {
                "patient_id": pid,
                "study_id": f"S{i}-{d}",
                "study_date": s + pd.Timedelta(days=d),
                "et_volume_ml": v,
            }
            for i, (pid, s) in enumerate(zip(ids, surgery, strict=True))
            for d, v in ((90, 2.0), (200, 6.0))
        ]
    )
    quarantine = pd.DataFrame(
        {
            "table": ["medications", "medications"],
            "row": [3, 7],
            "patient_id": ["P1", ""],
            "column": ["dose", "order_date"],
            "value": ["-4", EVIL],
            "reason": ["value below minimum 0", "unparseable date"],
            "stage": ["load", "load"],
        }
    )
    annotations = pd.DataFrame(
        {
            "patient_id": ids,
            "progressed": [1, 1, 1, 1, 0, 0, 0, 1],
            "progression_date": [
                str((s + pd.Timedelta(days=210)).date()) if p else ""
                for s, p in zip(surgery, [1, 1, 1, 1, 0, 0, 0, 1], strict=True)
            ],
            "censor_date": [
                "",
                "",
                "",
                "",
                str((surgery[4] + pd.Timedelta(days=500)).date()),
                str((surgery[5] + pd.Timedelta(days=500)).date()),
                "",
                "",
            ],
        }
    )
    return {
        "events": events,
        "reconciled_events": reconciled,
        "endpoints": endpoints,
        "steroid_daily": pd.DataFrame(daily),
        "report_labels": labels,
        "volumes": volumes,
        "quarantine": quarantine,
        "annotations": annotations,
    }


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    tables = cohort()
    for name, frame in tables.items():
        if name != "annotations":
            write_table(frame, out / f"{name}.csv")
    write_table(tables["annotations"], tmp_path / "annotations.csv")
    (out / "manifest.json").write_text(
        json.dumps({"pfs_version": "0.1.0", "config_hash": "abc", "note": EVIL})
    )
    return out


@pytest.fixture
def minimal_out(tmp_path: Path) -> Path:
    """Only what every run writes: events, endpoints, manifest (no source tables, no quarantine)."""
    out = tmp_path / "minimal"
    tables = cohort()
    write_table(tables["endpoints"], out / "endpoints.csv")
    write_table(tables["events"].iloc[0:0], out / "events.csv")
    (out / "manifest.json").write_text("{}")
    return out
