"""The next-line therapy source on a hand-built export: what is a new line and what is first line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pfs.exceptions import ConfigError
from pfs.extractors.treatment import extract
from pfs.io.export import load_export
from pfs.settings import load_config

# Surgery 2020-01-10, RT 2020-02-10 .. 2020-03-20 (first line ends there).
PATIENTS = [
    {"patient_id": "A", "diagnosis_date": "2020-01-01", "surgery_date": "2020-01-10", "rt_start_date": "2020-02-10",
     "rt_end_date": "2020-03-20"},
    {"patient_id": "B", "diagnosis_date": "2020-01-01", "surgery_date": "2020-01-10", "rt_start_date": "2020-02-10",
     "rt_end_date": "2020-03-20"},
    {"patient_id": "C", "diagnosis_date": "2020-01-01", "surgery_date": "2020-01-10", "rt_start_date": "2020-02-10",
     "rt_end_date": "2020-03-20"},
]


def _stupp(pid: str, start: int) -> list[dict]:
    """Concurrent temozolomide (no end date) and six adjuvant cycles 28-33 days apart."""
    rows = [{"patient_id": pid, "medication_id": f"{pid}T0", "order_date": "2020-02-10", "end_date": "",
             "drug_name": "temozolomide (TEMODAR) 140 MG capsule"}]
    day = pd.Timestamp("2020-04-20")
    for k in range(6):
        rows.append({"patient_id": pid, "medication_id": f"{pid}T{k + 1}", "order_date": day.date().isoformat(),
                     "end_date": (day + pd.Timedelta(days=4)).date().isoformat(), "drug_name": "Temodar 300 mg"})
        day += pd.Timedelta(days=28 + (5 if k == 2 else 0))
    return rows[start:]


def write_export(root: Path, meds: list[dict], procedures: list[dict] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(PATIENTS).to_csv(root / "patients.csv", index=False)
    cols = ["patient_id", "medication_id", "order_date", "end_date", "drug_name"]
    pd.DataFrame(meds, columns=cols).to_csv(root / "medications.csv", index=False)
    if procedures is not None:
        pd.DataFrame(procedures, columns=["patient_id", "procedure_id", "procedure_date", "name", "code"]).to_csv(
            root / "procedures.csv", index=False)
    return root


def run(root: Path, **overrides: object) -> pd.DataFrame:
    cfg = load_config({"treatment": overrides} if overrides else None)
    return extract(load_export(root), cfg).events


def test_first_line_temozolomide_and_drugs_during_chemoradiation_are_no_new_line(tmp_path: Path) -> None:
    meds = _stupp("A", 0) + [
        {"patient_id": "A", "medication_id": "A-bev0", "order_date": "2020-03-01", "end_date": "",
         "drug_name": "bevacizumab (AVASTIN) 400 mg/16 mL infusion"},  # a first-line trial arm
        {"patient_id": "A", "medication_id": "A-dex", "order_date": "2020-09-01", "end_date": "",
         "drug_name": "dexamethasone 4 mg tablet"},
    ]
    assert run(write_export(tmp_path, meds)).empty


def test_bevacizumab_with_irinotecan_is_one_line_dated_to_its_first_order(tmp_path: Path) -> None:
    meds = _stupp("A", 0)
    for k, day in enumerate(["2020-11-02", "2020-11-16", "2020-11-30"]):
        meds.append({"patient_id": "A", "medication_id": f"A-bev{k}", "order_date": day, "end_date": day,
                     "drug_name": "Avastin IV"})
    meds.append({"patient_id": "A", "medication_id": "A-iri", "order_date": "2020-11-02", "end_date": "2020-11-02",
                 "drug_name": "irinotecan (CAMPTOSAR) 20 mg/mL infusion"})
    ev = run(write_export(tmp_path, meds))
    assert len(ev) == 1
    e = ev.iloc[0]
    assert e["event_date"] == pd.Timestamp("2020-11-02") and e["kind"] == "next_line_bevacizumab"
    assert e["ref_id"] == "A-bev0" and "irinotecan" in e["evidence"] and e["source"] == "treatment"


def test_a_later_different_drug_and_a_restart_after_a_pause_are_new_lines(tmp_path: Path) -> None:
    meds = [{"patient_id": "B", "medication_id": "B1", "order_date": "2020-09-01", "end_date": "",
             "drug_name": "CCNU (lomustine) capsule"},
            {"patient_id": "B", "medication_id": "B2", "order_date": "2020-10-13", "end_date": "",
             "drug_name": "lomustine 40 mg capsule"},
            {"patient_id": "B", "medication_id": "B3", "order_date": "2020-12-20", "end_date": "",
             "drug_name": "regorafenib (STIVARGA) 40 mg tablet"},
            {"patient_id": "B", "medication_id": "B4", "order_date": "2021-09-01", "end_date": "",
             "drug_name": "regorafenib 40 mg"}]
    ev = run(write_export(tmp_path, meds))
    assert ev["ref_id"].tolist() == ["B1", "B3", "B4"]
    assert ev["kind"].tolist() == ["next_line_therapy"] * 3


def test_temozolomide_rechallenge_after_a_break_is_a_new_line(tmp_path: Path) -> None:
    meds = _stupp("C", 0) + [
        {"patient_id": "C", "medication_id": "C-re1", "order_date": "2021-06-01", "end_date": "2021-06-21",
         "drug_name": "temozolomide 100 mg capsule"},
        {"patient_id": "C", "medication_id": "C-re2", "order_date": "2021-06-29", "end_date": "",
         "drug_name": "temozolomide 100 mg capsule"},
    ]
    root = write_export(tmp_path, meds)
    ev = run(root)
    assert ev["ref_id"].tolist() == ["C-re1"] and ev["kind"].tolist() == ["temozolomide_rechallenge"]
    # The break is a setting: with a year's break allowed, the same orders are still first line.
    assert run(root, rechallenge_gap_days=365).empty


def test_a_delayed_adjuvant_cycle_is_not_a_rechallenge(tmp_path: Path) -> None:
    meds = _stupp("C", 0)
    meds[4]["order_date"] = (pd.Timestamp(meds[4]["order_date"]) + pd.Timedelta(days=30)).date().isoformat()
    assert run(write_export(tmp_path, meds)).empty


def test_re_resection_and_re_irradiation_from_the_procedures_table(tmp_path: Path) -> None:
    procs = [
        {"patient_id": "A", "procedure_id": "P1", "procedure_date": "2020-01-10",
         "name": "Craniotomy for excision of brain tumor", "code": "CPT:61510"},  # the first surgery
        {"patient_id": "A", "procedure_id": "P2", "procedure_date": "2020-02-10", "name": "IMRT delivery",
         "code": "77385"},  # the first RT course
        {"patient_id": "A", "procedure_id": "P3", "procedure_date": "2020-10-05", "name": "Re-resection",
         "code": ""},
        {"patient_id": "B", "procedure_id": "P4", "procedure_date": "2021-01-05", "name": "",
         "code": "http://www.ama-assn.org/go/cpt|77372"},
        {"patient_id": "B", "procedure_id": "P5", "procedure_date": "2021-02-05", "name": "appendectomy",
         "code": "44950"},
    ]
    ev = run(write_export(tmp_path, [], procs))
    assert ev[["patient_id", "ref_id", "kind"]].values.tolist() == [["A", "P3", "re_resection"],
                                                                   ["B", "P4", "re_irradiation"]]


def test_without_a_procedures_table_the_medications_alone_are_read(tmp_path: Path) -> None:
    root = write_export(tmp_path, [{"patient_id": "A", "medication_id": "A1", "order_date": "2020-10-01",
                                    "end_date": "", "drug_name": "investigational study drug ONC201"}])
    ev = run(root)
    assert ev["ref_id"].tolist() == ["A1"] and "trial_drug" in ev.iloc[0]["evidence"]


def test_bad_settings_are_clear_errors(tmp_path: Path) -> None:
    root = write_export(tmp_path, [])
    with pytest.raises(ConfigError, match="treatment.rechallenge_gap_days"):
        run(root, rechallenge_gap_days=-1)


def test_pipeline_reads_the_optional_procedures_table_and_its_changes_reach_the_cache_key(tmp_path: Path) -> None:
    from pfs.pipeline import run_extract

    meds = [{"patient_id": "A", "medication_id": "A1", "order_date": "2020-10-01", "end_date": "",
             "drug_name": "lomustine 40 mg capsule"}]
    procs = [{"patient_id": "B", "procedure_id": "P1", "procedure_date": "2020-11-05", "name": "Gamma Knife SRS",
              "code": ""}]
    root = write_export(tmp_path / "export", meds, procs)
    cache = tmp_path / "cache"
    first = run_extract(root, tmp_path / "out1", sources=["treatment"], cache_dir=cache)
    assert first.events[["patient_id", "ref_id"]].values.tolist() == [["A", "A1"], ["B", "P1"]]
    assert first.manifest["tables"]["procedures"]["rows_used"] == 1
    # A changed procedure recomputes that patient only: the cache key covers both input tables.
    pd.DataFrame([procs[0] | {"procedure_date": "2020-12-05"}]).to_csv(root / "procedures.csv", index=False)
    again = run_extract(root, tmp_path / "out2", sources=["treatment"], cache_dir=cache)
    assert again.cache == {"reused": 2, "stored": 1}
    assert again.events.loc[again.events["patient_id"] == "B", "event_date"].tolist() == [pd.Timestamp("2020-12-05")]
