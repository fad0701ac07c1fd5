"""The FHIR conversion: two passes over the files, then the native tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pfs.io.formats.common import ConvertResult, iso_date, set_aside, treatment_dates, write_native
from pfs.io.formats.fhir.imaging import imaging_study, imaging_table
from pfs.io.formats.fhir.medications import MED_TYPES, medication, medications_table
from pfs.io.formats.fhir.procedures import procedure, procedures_table
from pfs.io.formats.fhir.reader import Where, files_of, iter_resources
from pfs.io.formats.fhir.reports import report
from pfs.io.formats.fhir.resources import code_of, concept_text, entered_in_error, get_path, ref_id
from pfs.io.formats.fhir.rules import load_rules
from pfs.io.formats.fhir.state import State
from pfs.io.quarantine import Quarantine


def convert_fhir(
    src: Path, out: Path, *, require_gbm: bool = True, image_map: Path | None = None
) -> ConvertResult:
    """Convert the FHIR R4 export at ``src`` (directory or file) into the native layout at ``out``.

    Args:
        src: a bulk-export directory (``*.ndjson``, ``*.ndjson.gz``), Bundle ``*.json`` files, or one file.
        out: the native export directory to write.
        require_gbm: skip (and count) patients without a GBM Condition; False keeps everyone, with
            the diagnosis date falling back to their first dated record.
        image_map: CSV with columns series_uid,path mapping ImagingStudy series to local NIfTI files
            or DICOM folders (paths relative to the CSV); default ``imaging_map.csv`` in ``src``.
    """
    src, out = Path(src), Path(out)
    rules = load_rules()
    quarantine = Quarantine()
    st = State(rules=rules, quarantine=quarantine)
    files = files_of(src)
    for path in files:
        for where, res in iter_resources(path, quarantine, first_pass=True):
            _first(st, where, res)
    for pid, (where, rid) in st.diagnosis_where.items():
        if pid not in st.patients:
            set_aside(
                quarantine,
                where.file,
                where.row,
                f"Condition refers to Patient {pid!r}, which is not in the export",
                patient_id=pid,
                column="subject",
                value=rid,
            )
    keep = (set(st.diagnosis) if require_gbm else set(st.patients)) & set(st.patients)
    for path in files:
        for where, res in iter_resources(path, quarantine, first_pass=False):
            _second(st, where, res, keep)
    for where, rtype, rid, pid in st.pending_missing:
        if pid not in st.patients:
            set_aside(
                quarantine,
                where.file,
                where.row,
                f"{rtype} refers to Patient {pid!r}, which is not in the export",
                patient_id=pid,
                column="subject",
                value=rid,
            )
    base = src if src.is_dir() else src.parent
    imaging = imaging_table(st, base, out, image_map)
    counts: dict[str, Any] = {
        "format": "fhir",
        "source": str(src),
        "require_gbm": require_gbm,
        "files": len(files),
        "persons_seen": len(st.patients),
        "gbm_patients": len(set(st.diagnosis) & set(st.patients)),
        "skipped_no_gbm": len(st.patients) - len(keep) if require_gbm else 0,
        **dict(sorted(st.counts.items())),
    }
    patients = _patients(st, keep, counts)
    kept = set(patients["patient_id"])
    tables = {
        "patients": patients,
        "medications": medications_table(st, kept),
        "reports": pd.DataFrame(
            st.reports, columns=["patient_id", "report_id", "report_date", "procedure", "text"]
        ),
        "imaging": imaging,
        "procedures": procedures_table(st, kept),
    }
    for name in ("reports", "imaging"):
        tables[name] = tables[name].loc[tables[name]["patient_id"].isin(kept)]
    counts["patients"] = len(patients)
    return write_native(out, tables, quarantine, counts)


def _subject(st: State, where: Where, res: dict[str, Any], keep: set[str]) -> str | None:
    """The kept patient a resource belongs to; None (quarantined when unknown) otherwise."""
    pid = ref_id(res.get("subject") or res.get("patient"))
    rid = str(res.get("id", ""))
    if not pid:
        set_aside(
            st.quarantine,
            where.file, where.row, f"{res['resourceType']} without a subject", column="subject", value=rid
        )
        return None
    if pid not in st.patients:
        # A Patient may sit in a file read later in this pass only for pass-2 types; check at the end.
        st.pending_missing.append((where, res["resourceType"], rid, pid))
        return None
    return pid if pid in keep else None


def _first(st: State, where: Where, res: dict[str, Any]) -> None:
    rtype = res["resourceType"]
    rid = str(res.get("id", "")).strip()
    if rtype == "Patient":
        if not rid:
            set_aside(st.quarantine, where.file, where.row, "Patient without an id")
            return
        if rid in st.patients:
            set_aside(st.quarantine, where.file, where.row, "duplicate Patient id", patient_id=rid, value=rid)
            return
        death = iso_date(res.get("deceasedDateTime"))
        if res.get("deceasedBoolean") is True and not death:
            st.bump("deceased_without_date")
        st.patients[rid] = {"death_date": death, "where": where}
        return
    # Condition
    if entered_in_error(res, "verificationStatus") or code_of(res.get("verificationStatus")) == "refuted":
        st.bump("conditions_refuted_or_in_error")
        return
    if not st.rules.matches(st.rules.gbm, res.get("code")):
        return
    pid = ref_id(res.get("subject"))
    date = (
        iso_date(res.get("onsetDateTime"))
        or iso_date(get_path(res, "onsetPeriod", "start"))
        or iso_date(res.get("recordedDate"))
    )
    if not date:
        set_aside(
            st.quarantine,
            where.file,
            where.row,
            "GBM Condition without an onset or recorded date",
            patient_id=pid,
            column="onsetDateTime",
            value=rid,
        )
        return
    if pid and (pid not in st.diagnosis or date < st.diagnosis[pid]):
        st.diagnosis[pid] = date
        st.diagnosis_where[pid] = (where, rid)


def _second(st: State, where: Where, res: dict[str, Any], keep: set[str]) -> None:
    rtype = res["resourceType"]
    if rtype == "Medication":
        rid = str(res.get("id", "")).strip()
        if rid:
            st.med_names[rid] = concept_text(res.get("code"))
        return
    if rtype not in (
        "Procedure",
        "Encounter",
        *MED_TYPES,
        "DiagnosticReport",
        "DocumentReference",
        "ImagingStudy",
    ):
        return
    if entered_in_error(res):
        st.bump("entered_in_error_skipped")
        return
    pid = _subject(st, where, res, keep)
    if pid is None:
        return
    rid = str(res.get("id", "")).strip()
    if rtype == "Encounter":
        end = iso_date(get_path(res, "period", "end")) or iso_date(get_path(res, "period", "start"))
        if end and end > st.followup.get(pid, ""):
            st.followup[pid] = end
        st.seen(pid, iso_date(get_path(res, "period", "start")) or end)
        return
    if rtype == "Procedure":
        procedure(st, where, res, pid, rid)
        return
    if rtype in MED_TYPES:
        medication(st, where, res, pid, rid)
        return
    if rtype == "ImagingStudy":
        imaging_study(st, where, res, pid, rid)
        return
    report(st, where, res, pid, rid)


def _patients(st: State, keep: set[str], counts: dict[str, Any]) -> pd.DataFrame:
    procs = pd.DataFrame(st.procedures, columns=["patient_id", "kind", "date", "end"])
    rows = []
    fallback = 0
    for pid in sorted(keep):
        info = st.patients[pid]
        diagnosis = st.diagnosis.get(pid) or st.first_record.get(pid, "")
        if pid not in st.diagnosis:
            fallback += 1
        if not diagnosis:
            w = info["where"]
            set_aside(
                st.quarantine,
                w.file,
                w.row,
                "no GBM diagnosis date and no dated record to stand in",
                patient_id=pid,
                value=pid,
            )
            continue
        surgery, rt_start, rt_end = treatment_dates(
            procs.loc[procs["patient_id"] == pid], diagnosis, st.rules.window_days, st.rules.gap_days
        )
        rows.append(
            {
                "patient_id": pid,
                "diagnosis_date": diagnosis,
                "surgery_date": surgery,
                "rt_start_date": rt_start,
                "rt_end_date": rt_end,
                "last_followup_date": st.followup.get(pid, ""),
                "death_date": info["death_date"],
            }
        )
    counts["diagnosis_date_fallback"] = fallback
    return pd.DataFrame(
        rows,
        columns=[
            "patient_id",
            "diagnosis_date",
            "surgery_date",
            "rt_start_date",
            "rt_end_date",
            "last_followup_date",
            "death_date",
        ],
    )
