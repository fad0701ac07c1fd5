"""Procedure -> first-line surgery/radiotherapy rows and the native procedures table.

Every performed, dated Procedure of a kept patient goes to ``procedures.csv`` (where the next-line
therapy source looks for re-resections and re-irradiation), named as the EHR wrote it and coded
``{system}|{code}`` from its first coding; the ones in the resection and radiotherapy code sets
also date first-line treatment. Procedures that were not performed (status in
``procedure_statuses_not_performed``) are counted and skipped; one without a date is quarantined.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pfs.io.formats.common import iso_date, set_aside
from pfs.io.formats.fhir.reader import Where
from pfs.io.formats.fhir.resources import as_list, code_of, concept_text, get_path
from pfs.io.formats.fhir.state import State

NATIVE_COLUMNS = ["patient_id", "procedure_id", "procedure_date", "name", "code"]


def _status(res: dict[str, Any]) -> str:
    value = res.get("status")
    return (value if isinstance(value, str) else code_of(value)).strip().lower()


def _dates(res: dict[str, Any]) -> tuple[str, str]:
    """(start, end): R4 performed[x], else R5 occurrence[x]."""
    for prefix in ("performed", "occurrence"):
        start = iso_date(res.get(f"{prefix}DateTime")) or iso_date(get_path(res, f"{prefix}Period", "start"))
        if start:
            return start, iso_date(get_path(res, f"{prefix}Period", "end"))
    return "", ""


def _code(cc: Any) -> str:
    """'{system}|{code}' of the first coding with a code; the bare code when it has no system."""
    codings = as_list(cc.get("coding")) if isinstance(cc, dict) else []
    for coding in codings:
        if isinstance(coding, dict) and str(coding.get("code") or "").strip():
            system = str(coding.get("system") or "").strip()
            code = str(coding["code"]).strip()
            return f"{system}|{code}" if system else code
    return ""


def procedure(st: State, where: Where, res: dict[str, Any], pid: str, rid: str) -> None:
    """Map one Procedure of kept patient ``pid``."""
    if _status(res) in st.rules.not_performed:
        st.bump("procedures_not_performed_skipped")
        return
    start, end = _dates(res)
    if not start:
        set_aside(
            st.quarantine,
            where.file,
            where.row,
            "Procedure without a performed (or occurrence) date",
            patient_id=pid,
            column="performedDateTime",
            value=rid,
        )
        return
    kind = (
        "radiotherapy"
        if st.rules.matches(st.rules.radiotherapy, res.get("code"))
        else "resection"
        if st.rules.matches(st.rules.resection, res.get("code"))
        else ""
    )
    if kind:
        st.procedures.append({"patient_id": pid, "kind": kind, "date": start, "end": end})
    if not rid:
        set_aside(
            st.quarantine, where.file, where.row, "Procedure without an id (left out of procedures.csv)",
            patient_id=pid, column="id",
        )
        return
    st.procedure_rows.append(
        {
            "patient_id": pid,
            "procedure_id": rid,
            "procedure_date": start,
            "name": concept_text(res.get("code")),
            "code": _code(res.get("code")),
            "_where": where,
        }
    )


def procedures_table(st: State, kept: set[str]) -> pd.DataFrame:
    """The native procedures rows of kept patients; a repeated Procedure id is quarantined."""
    frame = pd.DataFrame(st.procedure_rows, columns=[*NATIVE_COLUMNS, "_where"])
    frame = frame.loc[frame["patient_id"].isin(kept)]
    dup = frame["procedure_id"].duplicated()
    for w, pid, rid in zip(frame.loc[dup, "_where"], frame.loc[dup, "patient_id"], frame.loc[dup, "procedure_id"],
                           strict=True):
        set_aside(st.quarantine, w.file, w.row, "duplicate Procedure id (left out of procedures.csv)",
                  patient_id=pid, column="id", value=rid)
    return frame.loc[~dup, NATIVE_COLUMNS].reset_index(drop=True)
