"""``pfs synth --faults``: deliberately broken inputs of each kind the loader must survive.

Faults are appended to (or written beside) a clean export, and each is listed in
``truth/faults.csv`` (table, row, fault, stage expected to catch it) so tests can check that
every one lands in the quarantine and nothing else changes.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pandas as pd

#: fault name -> (table, stage expected to quarantine it)
FAULTS: dict[str, tuple[str, str]] = {
    "patient_bad_date": ("patients", "load"),
    "patient_duplicate_id": ("patients", "load"),
    "medication_unknown_patient": ("medications", "load"),
    "medication_negative_dose": ("medications", "load"),
    "medication_excel_date": ("medications", "load"),
    "medication_duplicate_id": ("medications", "load"),
    "medication_absurd_dose": ("medications", "steroid"),
    "medication_unparseable_sig": ("medications", "steroid"),
    "report_empty_text": ("reports", "load"),
    "report_unknown_patient": ("reports", "load"),
    "report_duplicate_id": ("reports", "load"),
    "imaging_path_escape": ("imaging", "load"),
    "imaging_missing_file": ("imaging", "load"),
    "imaging_corrupt_nifti": ("imaging", "imaging"),
    "imaging_zero_byte": ("imaging", "imaging"),
    "medication_truncated_row": ("medications", "load"),
}


def _append(path: Path, rows: list[dict], header: list[str]) -> list[int]:
    """Append rows; return their 1-based data-row numbers."""
    n_before = len(pd.read_csv(path, dtype=str, keep_default_na=False))
    with path.open("a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, lineterminator="\n")
        for row in rows:
            writer.writerow(row)
    return list(range(n_before + 1, n_before + 1 + len(rows)))


def apply(export: Path, seed: int) -> pd.DataFrame:
    """Inject one fault of each kind into ``export``; returns and writes the fault list."""
    rng = np.random.default_rng([seed, 99])
    export = Path(export)
    log: list[dict] = []
    patients = pd.read_csv(export / "patients.csv", dtype=str, keep_default_na=False)
    pid = patients["patient_id"].iloc[int(rng.integers(0, len(patients)))]
    header = list(patients.columns)
    bad = dict(patients.iloc[0]) | {"patient_id": "PX-BADDATE", "diagnosis_date": "31/31/2019"}
    dup = dict(patients.iloc[0])
    rows = _append(export / "patients.csv", [bad, dup], header)
    log += [{"table": "patients", "row": rows[0], "fault": "patient_bad_date"},
            {"table": "patients", "row": rows[1], "fault": "patient_duplicate_id"}]

    meds_path = export / "medications.csv"
    meds = pd.read_csv(meds_path, dtype=str, keep_default_na=False)
    header = list(meds.columns)
    base = {c: "" for c in header} | {"patient_id": pid, "order_date": patients.loc[
        patients["patient_id"] == pid, "diagnosis_date"].iloc[0], "drug_name": "dexamethasone 4 mg tablet",
        "dose": "4", "dose_unit": "mg", "frequency": "BID", "route": "PO", "sig": "4 mg PO BID"}
    faulty = [
        base | {"medication_id": "MX-UNKNOWN", "patient_id": "P-NOT-IN-COHORT"},
        base | {"medication_id": "MX-NEG", "dose": "-4"},
        base | {"medication_id": "MX-EXCEL", "order_date": "43831"},
        base | {"medication_id": meds["medication_id"].iloc[0]},
        base | {"medication_id": "MX-ABSURD", "dose": "400", "frequency": "QID", "sig": "400 mg PO QID"},
        base | {"medication_id": "MX-SIG", "dose": "", "dose_unit": "", "frequency": "",
                "sig": "as directed per neurosurgery"},
    ]
    names = ["medication_unknown_patient", "medication_negative_dose", "medication_excel_date",
             "medication_duplicate_id", "medication_absurd_dose", "medication_unparseable_sig"]
    rows = _append(meds_path, faulty, header)
    log += [{"table": "medications", "row": r, "fault": f} for r, f in zip(rows, names, strict=True)]
    # A truncated last line, as when an export job is killed mid-write.
    with meds_path.open("a", encoding="utf-8") as fh:
        fh.write(f"{pid},MX-TRUNC,2020-01-0")
    log.append({"table": "medications", "row": rows[-1] + 1, "fault": "medication_truncated_row"})

    reps_path = export / "reports.csv"
    reps = pd.read_csv(reps_path, dtype=str, keep_default_na=False)
    header = list(reps.columns)
    rbase = dict(reps.iloc[0])
    faulty = [rbase | {"report_id": "RX-EMPTY", "text": "   "},
              rbase | {"report_id": "RX-UNKNOWN", "patient_id": "P-NOT-IN-COHORT"},
              rbase]
    rows = _append(reps_path, faulty, header)
    log += [{"table": "reports", "row": r, "fault": f}
            for r, f in zip(rows, ["report_empty_text", "report_unknown_patient", "report_duplicate_id"], strict=True)]

    img_path = export / "imaging.csv"
    if img_path.exists():
        img = pd.read_csv(img_path, dtype=str, keep_default_na=False)
        header = list(img.columns)
        ibase = dict(img.iloc[0])
        bad_dir = export / "images" / "faults"
        bad_dir.mkdir(parents=True, exist_ok=True)
        good = (export / ibase["path"]).read_bytes()
        (bad_dir / "corrupt.nii.gz").write_bytes(gzip.compress(gzip.decompress(good)[:2000], mtime=0))
        (bad_dir / "empty.nii.gz").write_bytes(b"")
        faulty = [
            ibase | {"study_id": "SX-ESCAPE", "path": "../../etc/passwd"},
            ibase | {"study_id": "SX-MISSING", "path": "images/does/not/exist.nii.gz"},
            ibase | {"study_id": "SX-CORRUPT", "sequence": "T1C", "path": "images/faults/corrupt.nii.gz"},
            ibase | {"study_id": "SX-EMPTY", "sequence": "T1C", "path": "images/faults/empty.nii.gz"},
        ]
        rows = _append(img_path, faulty, header)
        names = ["imaging_path_escape", "imaging_missing_file", "imaging_corrupt_nifti", "imaging_zero_byte"]
        log += [{"table": "imaging", "row": r, "fault": f} for r, f in zip(rows, names, strict=True)]

    out = pd.DataFrame(log)
    out["stage"] = out["fault"].map(lambda f: FAULTS[f][1])
    truth = export.parent / "truth"
    truth.mkdir(exist_ok=True)
    out.to_csv(truth / "faults.csv", index=False, lineterminator="\n")
    return out
