"""The fault table: each fault class of issue 9, the cases that inject it, and what pfs must do.

A case injects ONE fault into a copy of the clean export and states the contract: the exit code,
fragments of the message (CLI output, or the manifest notes when the run succeeds), the exact
quarantine rows (table, row, column, reason fragment), and which patients' outputs may differ from
the clean run (``touched``). Rows are 1-based data-row numbers of the input file; an injected row
is named by a label (``"new"``, ``"row"``) that the injector resolves against the clean export.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from robustness_export import write_dicom_series, write_nifti

#: The fault classes named in issue 9, in its order.
FAULT_CLASSES = (
    "truncated CSV line",
    "wrong delimiter",
    "Latin-1 encoding",
    "UTF-8 with BOM",
    "Excel-mangled dates",
    "duplicated rows and ids",
    "unknown patient ids",
    "dates in the future or before birth",
    "negative and absurd doses",
    "empty and gigantic report texts",
    "binary garbage in text",
    "missing/corrupt/truncated/zero-byte NIfTI",
    "DICOM folder with mixed series or missing slices",
    "mask of the wrong shape",
    "path escaping the export directory",
    "missing optional table",
    "missing required column",
)

#: Patients whose rows the faults touch (chosen for having rows in each table).
MED_PATIENT = "P0004"
REPORT_PATIENT = "P0006"
PATIENT_FAULT = "P0007"


@dataclass(frozen=True)
class Q:
    """One expected quarantine row; ``row`` is a number or a label returned by the injector."""

    table: str
    row: int | str
    column: str
    reason: str
    stage: str = "load"


@dataclass(frozen=True)
class AllRowsOf:
    """Every row of ``patient`` in ``table`` is quarantined with ``reason`` (column patient_id)."""

    table: str
    patient: str
    reason: str


Injector = Callable[[Path], dict[str, int]]


@dataclass(frozen=True)
class FaultCase:
    name: str
    fault_class: str
    inject: Injector
    exit_code: int = 0
    message: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    quarantine: tuple[Q | AllRowsOf, ...] = ()
    touched: tuple[str, ...] = ()
    #: (table, column, value) rows left out of the comparison with the clean run (a source not run).
    not_compared: tuple[tuple[str, str, str], ...] = ()
    xfail: str | None = None
    id_extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Editing CSV files of the export
# ----------------------------------------------------------------------------------------------

def read(export: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(export / f"{table}.csv", dtype=str, keep_default_na=False)


def write(export: Path, table: str, frame: pd.DataFrame, **kw) -> None:
    frame.to_csv(export / f"{table}.csv", index=False, lineterminator="\n", **kw)


def append(export: Path, table: str, rows: list[dict]) -> list[int]:
    frame = read(export, table)
    n = len(frame)
    write(export, table, pd.concat([frame, pd.DataFrame(rows)], ignore_index=True).fillna(""))
    return list(range(n + 1, n + 1 + len(rows)))


def first_row(export: Path, table: str, patient: str, **where: str) -> tuple[int, dict]:
    frame = read(export, table)
    sel = frame["patient_id"] == patient
    for col, value in where.items():
        sel &= frame[col] == value
    i = int(np.flatnonzero(sel.to_numpy())[0])
    return i + 1, frame.iloc[i].to_dict()


def set_cell(export: Path, table: str, row: int, column: str, value: str) -> None:
    frame = read(export, table)
    frame.loc[row - 1, column] = value
    write(export, table, frame)


def new_med(export: Path, **kw: str) -> dict:
    _, base = first_row(export, "medications", MED_PATIENT)
    return base | {"medication_id": "MX-NEW"} | kw


def new_report(export: Path, **kw: str) -> dict:
    _, base = first_row(export, "reports", REPORT_PATIENT)
    brain = read(export, "reports")
    proc = brain.loc[brain["procedure"].str.contains("MRI", case=False), "procedure"].iloc[0]
    return base | {"report_id": "RX-NEW", "procedure": proc} | kw


def imaging_row(export: Path, study: str) -> tuple[int, dict]:
    frame = read(export, "imaging")
    i = int(np.flatnonzero((frame["study_id"] == study).to_numpy())[0])
    return i + 1, frame.iloc[i].to_dict()


# ----------------------------------------------------------------------------------------------
# Injectors (each returns the labelled rows it created or changed)
# ----------------------------------------------------------------------------------------------

def truncated_last_line(export: Path) -> dict[str, int]:
    n = len(read(export, "medications"))
    with (export / "medications.csv").open("a", encoding="utf-8") as fh:
        # The export job was killed mid-write, after the dose: unit, frequency, route and sig are lost.
        fh.write(f"{MED_PATIENT},MX-TRUNC,2016-09-01,,dexamethasone 4 mg tablet,4")
    return {"new": n + 1}


def cut_and_joined_line(export: Path) -> dict[str, int]:
    """A line cut mid-way and glued to the next one (the newline lost): one record, too many fields."""
    path = export / "medications.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    row, _ = first_row(export, "medications", MED_PATIENT)
    i = row  # line index of data row ``row`` (line 0 is the header); the synthetic file has no multi-line fields
    cut = ",".join(lines[i].split(",")[:5])
    lines[i : i + 2] = [cut + lines[i + 1]]
    path.write_text("\n".join(lines), encoding="utf-8")
    return {"row": row}


def truncated_quoted_text(export: Path) -> dict[str, int]:
    n = len(read(export, "reports"))
    row = new_report(export)
    with (export / "reports.csv").open("a", encoding="utf-8") as fh:
        fh.write(f'{row["patient_id"]},RX-TRUNC,{row["report_date"]},{row["procedure"]},"FINDINGS: Increased\n'
                 "enhancement along the resection cav")
    return {"new": n + 1}


def delimiter(table: str, sep: str) -> Injector:
    def inject(export: Path) -> dict[str, int]:
        write(export, table, read(export, table), sep=sep)
        return {}
    return inject


def reencode(table: str, encoding: str) -> Injector:
    def inject(export: Path) -> dict[str, int]:
        path = export / f"{table}.csv"
        path.write_bytes(path.read_text(encoding="utf-8").encode(encoding))
        return {}
    return inject


def _changer(table: str, patient: str) -> Callable[[str, str], Injector]:
    """Injectors that overwrite one cell of ``patient``'s first row of ``table``."""
    def change(column: str, value: str) -> Injector:
        def inject(export: Path) -> dict[str, int]:
            row, _ = first_row(export, table, patient)
            set_cell(export, table, row, column, value)
            return {"row": row}
        return inject
    return change


def _appender(table: str, make_row: Callable[..., dict]) -> Callable[..., Injector]:
    """Injectors that append one row built by ``make_row(export, **fields)`` to ``table``."""
    def add(**kw: str) -> Injector:
        def inject(export: Path) -> dict[str, int]:
            return {"new": append(export, table, [make_row(export, **kw)])[0]}
        return inject
    return add


change_med = _changer("medications", MED_PATIENT)
change_patient = _changer("patients", PATIENT_FAULT)
append_med = _appender("medications", new_med)
append_report = _appender("reports", new_report)


def duplicate_med_row(export: Path) -> dict[str, int]:
    row, rec = first_row(export, "medications", MED_PATIENT)
    return {"first": row, "new": append(export, "medications", [rec])[0]}


def duplicate_report_id(export: Path) -> dict[str, int]:
    row, rec = first_row(export, "reports", REPORT_PATIENT)
    return {"first": row, "new": append(export, "reports", [rec | {"text": "IMPRESSION: Progression."}])[0]}


def duplicate_patient(export: Path) -> dict[str, int]:
    row, rec = first_row(export, "patients", PATIENT_FAULT)
    return {"first": row, "new": append(export, "patients", [rec | {"diagnosis_date": "2001-01-01"}])[0]}


def duplicate_imaging_key(export: Path) -> dict[str, int]:
    row, rec = imaging_row(export, "S0001-2")
    return {"first": row, "new": append(export, "imaging", [rec | {"path": rec["path"]}])[0]}


def unknown_imaging_patient(export: Path) -> dict[str, int]:
    _, rec = imaging_row(export, "S0001-2")
    return {"new": append(export, "imaging", [rec | {"patient_id": "P9999", "study_id": "SX-UNKNOWN"}])[0]}


def nifti_fault(study: str, how: str) -> Injector:
    def inject(export: Path) -> dict[str, int]:
        row, rec = imaging_row(export, study)
        path = export / rec["path"]
        if how == "missing":
            path.unlink()
        elif how == "corrupt":
            path.write_bytes(np.random.default_rng(0).bytes(3000))
        elif how == "corrupt_gzip_payload":
            path.write_bytes(gzip.compress(b"\x5c\x01\x00\x00" + b"\x00" * 344 + b"garbage" * 50, mtime=0))
        elif how == "truncated":
            raw = gzip.decompress(path.read_bytes())
            path.write_bytes(gzip.compress(raw[: len(raw) // 2], mtime=0))
        elif how == "truncated_stream":
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
        elif how == "zero_byte":
            path.write_bytes(b"")
        return {"row": row}
    return inject


def dicom_fault(study: str, how: str) -> Injector:
    def inject(export: Path) -> dict[str, int]:
        row, rec = imaging_row(export, study)
        folder = export / rec["path"]
        if how == "mixed":
            write_dicom_series(folder, np.full((20, 20, 16), 90.0), "1.2.826.0.1.3680043.2.1125.9.77",
                               slices=[0, 1, 2, 3])
        elif how == "missing_slice":
            sorted(folder.iterdir())[7].unlink()
        return {"row": row}
    return inject


def wrong_mask(export: Path) -> dict[str, int]:
    row, rec = imaging_row(export, "S0003-2")
    write_nifti(np.ones((10, 10, 8), np.uint8), export / rec["mask_path"])
    return {"row": row}


def escape(kind: str) -> Injector:
    def inject(export: Path) -> dict[str, int]:
        row, rec = imaging_row(export, "S0001-2")
        outside = export.parent / "outside.nii.gz"
        shutil.copyfile(export / rec["path"], outside)
        column = "path"
        if kind == "dotdot":
            value = "../outside.nii.gz"
        elif kind == "dotdot_inside":
            value = "images/P0001/../../../outside.nii.gz"
        elif kind == "absolute":
            value = str(outside)
        elif kind == "symlink":
            link = export / "images" / "P0001" / "link.nii.gz"
            os.symlink(outside, link)
            value = "images/P0001/link.nii.gz"
        elif kind == "symlink_dir":
            os.symlink(export.parent, export / "images" / "up")
            value = "images/up/outside.nii.gz"
        elif kind == "mask":
            column, value = "mask_path", "../outside.nii.gz"
        set_cell(export, "imaging", row, column, value)
        return {"row": row}
    return inject


def remove_table(table: str) -> Injector:
    def inject(export: Path) -> dict[str, int]:
        (export / f"{table}.csv").unlink()
        return {}
    return inject


def drop_column(table: str, column: str) -> Injector:
    def inject(export: Path) -> dict[str, int]:
        write(export, table, read(export, table).drop(columns=column))
        return {}
    return inject


def garbage_text(payload: bytes) -> Injector:
    def inject(export: Path) -> dict[str, int]:
        n = len(read(export, "reports"))
        row = new_report(export)
        line = (f'{row["patient_id"]},RX-BIN,{row["report_date"]},{row["procedure"]},"IMPRESSION: ').encode()
        with (export / "reports.csv").open("ab") as fh:
            fh.write(line + payload + b' progression."\n')
        return {"new": n + 1}
    return inject


# ----------------------------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------------------------

_DATE = "unparseable or implausible date in column '{}'"
_ESCAPE = "path escapes the export directory"
_PATIENT_GONE = "patient was quarantined in the patients table"


def _patient_rows(reason: str) -> tuple[Q | AllRowsOf, ...]:
    return tuple(AllRowsOf(t, PATIENT_FAULT, _PATIENT_GONE) for t in ("medications", "reports"))


CASES: tuple[FaultCase, ...] = (
    # --- truncated CSV line ---
    FaultCase("medications_last_line_cut", "truncated CSV line", truncated_last_line,
              quarantine=(Q("medications", "new", "", "fields, the header has 10 (medications.csv)"),)),
    FaultCase("medications_line_cut_and_joined", "truncated CSV line", cut_and_joined_line,
              quarantine=(Q("medications", "row", "", "fields, the header has 10"),), touched=(MED_PATIENT,)),
    FaultCase("reports_cut_inside_quoted_text", "truncated CSV line", truncated_quoted_text,
              quarantine=(Q("reports", "new", "", "unreadable CSV record"),)),
    # --- wrong delimiter ---
    FaultCase("patients_semicolon", "wrong delimiter", delimiter("patients", ";"),
              notes=("patients.csv: delimiter ';' detected",)),
    FaultCase("medications_tab", "wrong delimiter", delimiter("medications", "\t"),
              notes=("medications.csv: delimiter '\\t' detected",)),
    # --- encodings ---
    FaultCase("reports_latin1", "Latin-1 encoding", reencode("reports", "latin-1"),
              notes=("reports.csv: not valid UTF-8", "read as Latin-1")),
    FaultCase("patients_bom", "UTF-8 with BOM", reencode("patients", "utf-8-sig")),
    # --- Excel dates ---
    FaultCase("order_date_excel_serial", "Excel-mangled dates", change_med("order_date", "43494"),
              quarantine=(Q("medications", "row", "order_date", _DATE.format("order_date")),),
              touched=(MED_PATIENT,)),
    FaultCase("order_date_us_format", "Excel-mangled dates", change_med("order_date", "1/20/2019"),
              quarantine=(Q("medications", "row", "order_date", _DATE.format("order_date")),),
              touched=(MED_PATIENT,)),
    FaultCase("diagnosis_date_excel_serial", "Excel-mangled dates", change_patient("diagnosis_date", "42773"),
              quarantine=(Q("patients", "row", "diagnosis_date", _DATE.format("diagnosis_date")),
                          *_patient_rows(_PATIENT_GONE)),
              touched=(PATIENT_FAULT,)),
    # --- duplicates ---
    FaultCase("medication_row_twice", "duplicated rows and ids", duplicate_med_row,
              quarantine=(Q("medications", "new", "medication_id", "duplicate medication_id (first seen at row"),)),
    FaultCase("report_id_twice", "duplicated rows and ids", duplicate_report_id,
              quarantine=(Q("reports", "new", "report_id", "duplicate report_id (first seen at row"),)),
    FaultCase("patient_id_twice", "duplicated rows and ids", duplicate_patient,
              quarantine=(Q("patients", "new", "patient_id", "duplicate patient_id (first seen at row"),)),
    FaultCase("imaging_study_sequence_twice", "duplicated rows and ids", duplicate_imaging_key,
              quarantine=(Q("imaging", "new", "study_id", "duplicate key (study_id, sequence, path)"),)),
    # --- unknown patients ---
    FaultCase("medication_unknown_patient", "unknown patient ids", append_med(patient_id="P9999"),
              quarantine=(Q("medications", "new", "patient_id", "unknown patient_id (not in the patients table)"),)),
    FaultCase("report_unknown_patient", "unknown patient ids", append_report(patient_id="P9999"),
              quarantine=(Q("reports", "new", "patient_id", "unknown patient_id (not in the patients table)"),)),
    FaultCase("imaging_unknown_patient", "unknown patient ids", unknown_imaging_patient,
              quarantine=(Q("imaging", "new", "patient_id", "unknown patient_id (not in the patients table)"),)),
    # --- implausible dates ---
    FaultCase("order_date_in_2099", "dates in the future or before birth",
              append_med(order_date="2099-01-20", end_date=""),
              quarantine=(Q("medications", "new", "order_date", "date in the future"),)),
    FaultCase("report_date_in_2099", "dates in the future or before birth", append_report(report_date="2099-03-01"),
              quarantine=(Q("reports", "new", "report_date", "date in the future"),)),
    FaultCase("report_date_1850", "dates in the future or before birth", append_report(report_date="1850-03-01"),
              quarantine=(Q("reports", "new", "report_date", _DATE.format("report_date")),)),
    FaultCase("diagnosis_date_year_0021", "dates in the future or before birth",
              change_patient("diagnosis_date", "0021-03-04"),
              quarantine=(Q("patients", "row", "diagnosis_date", _DATE.format("diagnosis_date")),
                          *_patient_rows(_PATIENT_GONE)),
              touched=(PATIENT_FAULT,)),
    # --- doses ---
    FaultCase("negative_dose", "negative and absurd doses", append_med(dose="-4"),
              quarantine=(Q("medications", "new", "dose", "value below minimum 0 in column 'dose'"),)),
    FaultCase("absurd_dose", "negative and absurd doses",
              append_med(drug_name="dexamethasone 4 mg tablet", dose="400", dose_unit="mg", frequency="QID",
                         sig="400 mg PO QID", route="PO"),
              quarantine=(Q("medications", "new", "dose", "is above the plausible maximum of 200", stage="steroid"),)),
    # --- report texts ---
    FaultCase("empty_report_text", "empty and gigantic report texts", append_report(text="   "),
              quarantine=(Q("reports", "new", "text", "missing required value in column 'text'"),)),
    FaultCase("gigantic_report_text", "empty and gigantic report texts",
              append_report(text="FINDINGS: " + "Stable appearance of the resection cavity. " * 6000),
              quarantine=(Q("reports", "new", "text", "longer than nlp.max_report_chars", stage="nlp"),),
              touched=(REPORT_PATIENT,)),
    # --- binary garbage ---
    FaultCase("report_text_nul_bytes", "binary garbage in text", garbage_text(b"\x00\x00PK\x03\x04\x00"),
              quarantine=(Q("reports", "new", "text", "binary data"),)),
    FaultCase("report_text_invalid_utf8", "binary garbage in text", garbage_text(b"\x89PNG\r\n\x1a\n\xff\xfe\xfa"),
              quarantine=(Q("reports", "new", "text", "binary data"),)),
    # --- NIfTI ---
    FaultCase("nifti_missing", "missing/corrupt/truncated/zero-byte NIfTI", nifti_fault("S0001-2", "missing"),
              quarantine=(Q("imaging", "row", "path", "file not found"),), touched=("P0001",)),
    FaultCase("nifti_random_bytes", "missing/corrupt/truncated/zero-byte NIfTI", nifti_fault("S0001-2", "corrupt"),
              quarantine=(Q("imaging", "row", "path", "T1C unusable: cannot read image", stage="imaging"),),
              touched=("P0001",)),
    FaultCase("nifti_truncated_voxels", "missing/corrupt/truncated/zero-byte NIfTI",
              nifti_fault("S0001-2", "truncated"),
              quarantine=(Q("imaging", "row", "path", "T1C unusable", stage="imaging"),), touched=("P0001",)),
    FaultCase("nifti_truncated_gzip", "missing/corrupt/truncated/zero-byte NIfTI",
              nifti_fault("S0001-2", "truncated_stream"),
              quarantine=(Q("imaging", "row", "path", "T1C unusable", stage="imaging"),), touched=("P0001",)),
    FaultCase("nifti_zero_byte", "missing/corrupt/truncated/zero-byte NIfTI", nifti_fault("S0001-2", "zero_byte"),
              quarantine=(Q("imaging", "row", "path", "T1C unusable", stage="imaging"),), touched=("P0001",)),
    # --- DICOM ---
    FaultCase("dicom_mixed_series", "DICOM folder with mixed series or missing slices",
              dicom_fault("S0005-2", "mixed"),
              quarantine=(Q("imaging", "row", "path", "mixes 2 series", stage="imaging"),), touched=("P0005",)),
    FaultCase("dicom_missing_slice", "DICOM folder with mixed series or missing slices",
              dicom_fault("S0005-2", "missing_slice"),
              quarantine=(Q("imaging", "row", "path", "missing slice", stage="imaging"),), touched=("P0005",)),
    # --- masks ---
    FaultCase("mask_wrong_shape", "mask of the wrong shape", wrong_mask,
              quarantine=(Q("imaging", "row", "mask_path", "does not match the T1C shape", stage="imaging"),),
              touched=("P0003",)),
    # --- path escape ---
    FaultCase("path_dotdot", "path escaping the export directory", escape("dotdot"),
              quarantine=(Q("imaging", "row", "path", _ESCAPE),), touched=("P0001",)),
    FaultCase("path_absolute", "path escaping the export directory", escape("absolute"),
              quarantine=(Q("imaging", "row", "path", _ESCAPE),), touched=("P0001",)),
    FaultCase("path_symlink_file", "path escaping the export directory", escape("symlink"),
              quarantine=(Q("imaging", "row", "path", _ESCAPE),), touched=("P0001",)),
    FaultCase("path_symlink_folder", "path escaping the export directory", escape("symlink_dir"),
              quarantine=(Q("imaging", "row", "path", _ESCAPE),), touched=("P0001",)),
    FaultCase("mask_path_dotdot", "path escaping the export directory", escape("mask"),
              quarantine=(Q("imaging", "row", "mask_path", _ESCAPE),), touched=("P0001",)),
    # --- missing optional tables ---
    FaultCase("no_reports_table", "missing optional table", remove_table("reports"),
              notes=("table 'reports' not present",),
              not_compared=(("events", "source", "nlp"), ("endpoints", "method", "nlp"),
                            ("endpoints", "method", "reconciled"), ("reconciled_events", "*", ""),
                            ("report_labels", "*", ""))),
    FaultCase("no_imaging_table", "missing optional table", remove_table("imaging"),
              notes=("table 'imaging' not present",),
              not_compared=(("events", "source", "imaging"), ("endpoints", "method", "imaging"),
                            ("endpoints", "method", "reconciled"), ("reconciled_events", "*", ""),
                            ("volumes", "*", ""))),
    FaultCase("no_medications_table", "missing optional table", remove_table("medications"),
              notes=("table 'medications' not present",),
              # steroid and treatment (next-line therapy) both read medications
              not_compared=(("events", "source", "steroid"), ("endpoints", "method", "steroid"),
                            ("events", "source", "treatment"), ("endpoints", "method", "treatment"),
                            ("endpoints", "method", "reconciled"), ("reconciled_events", "*", ""),
                            ("steroid_daily", "*", ""), ("steroid_courses", "*", ""))),
    # --- missing required column / table ---
    FaultCase("medications_without_order_date", "missing required column", drop_column("medications", "order_date"),
              exit_code=3, message=("medications.csv", "required column 'order_date' missing")),
    FaultCase("reports_without_text", "missing required column", drop_column("reports", "text"),
              exit_code=3, message=("reports.csv", "required column 'text' missing")),
    FaultCase("imaging_without_path", "missing required column", drop_column("imaging", "path"),
              exit_code=3, message=("imaging.csv", "required column 'path' missing")),
    FaultCase("patients_without_diagnosis_date", "missing required column", drop_column("patients", "diagnosis_date"),
              exit_code=3, message=("patients.csv", "required column 'diagnosis_date' missing")),
    FaultCase("no_patients_table", "missing required column", remove_table("patients"),
              exit_code=3, message=("required table 'patients' not found",)),
)
