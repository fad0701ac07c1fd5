"""The OMOP conversion: persons, diagnosis, treatment and follow-up dates, then the native tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pfs.exceptions import ExportError
from pfs.io.formats.common import ConvertResult, set_aside, set_aside_rows, treatment_dates, write_native
from pfs.io.formats.omop.dates import deaths, diagnoses, follow_up
from pfs.io.formats.omop.medications import read_medications
from pfs.io.formats.omop.notes import read_imaging, read_reports
from pfs.io.formats.omop.procedures import read_procedures
from pfs.io.formats.omop.rules import OmopRules, load_rules
from pfs.io.formats.omop.source import DEFAULT_MAX_UNZIPPED_BYTES, OmopSource, canonical_ids
from pfs.io.formats.omop.vocabulary import Vocabulary
from pfs.io.quarantine import Quarantine

OPTIONAL_TABLES = (
    "observation_period",
    "visit_occurrence",
    "condition_occurrence",
    "procedure_occurrence",
    "drug_exposure",
    "note",
    "death",
    "concept",
    "concept_ancestor",
    "concept_relationship",
    "drug_strength",
    "image_occurrence",
)


def convert_omop(
    src: Path,
    out: Path,
    *,
    require_gbm: bool = True,
    patient_id: str = "person_id",
    max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
) -> ConvertResult:
    """Convert the OMOP export at ``src`` (directory or .zip) into the native layout at ``out``.

    Args:
        src: a directory or a zip file holding the CDM tables (CSV, CSV.gz or Parquet; any case).
        out: the native export directory to write.
        require_gbm: skip (and count) persons without a GBM diagnosis; False keeps everyone, with
            the diagnosis date falling back to the start of observation (or the first record).
        patient_id: 'person_id' (default) or 'person_source_value' (the source system's pseudonym;
            may be an MRN in some exports, so it is not the default).
        max_unzipped_bytes: refuse a zip that inflates past this (zip-bomb guard).
    """
    if patient_id not in ("person_id", "person_source_value"):
        raise ExportError(f"patient_id must be 'person_id' or 'person_source_value', not {patient_id!r}")
    rules = load_rules()
    source = OmopSource(Path(src), max_unzipped_bytes)
    try:
        return _convert(source, Path(out), rules, require_gbm=require_gbm, id_column=patient_id)
    finally:
        source.close()


def _convert(
    source: OmopSource, out: Path, rules: OmopRules, *, require_gbm: bool, id_column: str
) -> ConvertResult:
    quarantine = Quarantine()
    counts: dict[str, Any] = {
        "format": "omop",
        "source": str(source.path),
        "require_gbm": require_gbm,
        "tables_found": sorted(source.files),
        "tables_missing": [t for t in OPTIONAL_TABLES if not source.has(t)],
    }
    if not source.has("person"):
        raise ExportError(
            f"{source.path}: required OMOP table 'person' not found (person.csv or person.parquet)"
        )
    persons = source.read("person", ["person_id", "person_source_value"], quarantine)
    persons["person_id"] = canonical_ids(persons["person_id"])
    blank = persons["person_id"] == ""
    set_aside_rows(quarantine, source.label("person"), persons.loc[blank], "missing person_id", column="person_id")
    dup = ~blank & persons["person_id"].duplicated()
    set_aside_rows(quarantine, source.label("person"), persons.loc[dup], "duplicate person_id", column="person_id")
    persons = persons.loc[~blank & ~dup].reset_index(drop=True)
    known = set(persons["person_id"])
    counts["persons_seen"] = len(known)

    vocab = Vocabulary(source, rules, quarantine)
    counts["vocabulary"] = "present" if vocab.present else "absent (source values only)"

    dx = diagnoses(source, rules, vocab, quarantine, known)
    counts["gbm_patients"] = len(dx)
    counts["skipped_no_gbm"] = len(known) - len(dx) if require_gbm else 0
    keep_ids = set(dx) if require_gbm else known
    keep = persons.loc[persons["person_id"].isin(keep_ids)].copy()
    procs, procedure_rows = read_procedures(source, rules, vocab, quarantine, known, keep_ids, counts)
    death = deaths(source, quarantine, known)
    follow, obs_start = follow_up(source, quarantine, known, keep_ids)

    meds = read_medications(source, rules, vocab, quarantine, known, keep_ids, counts)
    reports = read_reports(source, vocab, rules, quarantine, known, keep_ids, counts)
    imaging = read_imaging(source, vocab, rules, out, quarantine, known, keep_ids, counts)

    # Patients
    rows = []
    first_record = _first_records([(meds, "order_date"), (reports, "report_date"), (imaging, "study_date")])
    fallback = 0
    for pid, source_value, row in zip(
        keep["person_id"], keep["person_source_value"], keep["_row"], strict=True
    ):
        diagnosis = dx.get(pid) or obs_start.get(pid) or first_record.get(pid, "")
        if pid not in dx:
            fallback += 1
        if not diagnosis:
            set_aside(
                quarantine,
                source.label("person"),
                row,
                "no GBM diagnosis date and no dated record to stand in",
                patient_id=pid,
            )
            continue
        p = procs.loc[procs["person_id"] == pid] if not procs.empty else procs
        surgery, rt_start, rt_end = treatment_dates(
            p, diagnosis, rules.resection_window_days, rules.rt_gap_days
        )
        rows.append(
            {
                "patient_id": (str(source_value).strip() or pid)
                if id_column == "person_source_value"
                else pid,
                "person_id": pid,
                "diagnosis_date": diagnosis,
                "surgery_date": surgery,
                "rt_start_date": rt_start,
                "rt_end_date": rt_end,
                "last_followup_date": follow.get(pid, ""),
                "death_date": death.get(pid, ""),
            }
        )
    counts["diagnosis_date_fallback"] = fallback
    patients = pd.DataFrame(
        rows,
        columns=[
            "patient_id",
            "person_id",
            "diagnosis_date",
            "surgery_date",
            "rt_start_date",
            "rt_end_date",
            "last_followup_date",
            "death_date",
        ],
    )
    dup = patients["patient_id"].duplicated(keep=False)
    if dup.any() and id_column == "person_source_value":
        raise ExportError(
            f"{source.path}: person_source_value is not unique "
            f"(e.g. {patients.loc[dup, 'patient_id'].iloc[0]!r}); convert with patient_id='person_id'"
        )
    to_patient = dict(zip(patients["person_id"], patients["patient_id"], strict=True))
    tables = {"patients": patients.drop(columns="person_id")}
    for name, frame in (
        ("medications", meds), ("reports", reports), ("imaging", imaging), ("procedures", procedure_rows)
    ):
        frame = frame.loc[frame["person_id"].isin(to_patient)].copy()
        frame["patient_id"] = frame["person_id"].map(to_patient)
        tables[name] = frame.drop(columns="person_id")
    counts["patients"] = len(patients)
    return write_native(out, tables, quarantine, counts)


def _first_records(frames: list[tuple[pd.DataFrame, str]]) -> dict[str, str]:
    first: dict[str, str] = {}
    for frame, col in frames:
        if frame.empty:
            continue
        with_date = frame.loc[frame[col] != ""]
        for pid, d in with_date.groupby("person_id")[col].min().items():
            first[pid] = min(d, first.get(pid, d))
    return first
