"""Radiology DiagnosticReport and DocumentReference -> the native reports table."""

from __future__ import annotations

import base64
import binascii
import html
import re
from typing import Any

from pfs.io.formats.common import iso_date, set_aside
from pfs.io.formats.fhir.reader import Where
from pfs.io.formats.fhir.resources import as_list, concept_text, get_path
from pfs.io.formats.fhir.state import State

_TAG = re.compile(r"<[^>]+>")


def _is_radiology(st: State, res: dict[str, Any]) -> bool:
    r = st.rules
    return (
        r.matches(r.radiology, res.get("category"))
        or r.matches(r.radiology, res.get("code"))
        or r.matches(r.radiology, res.get("type"))
    )


def _attachment_text(st: State, where: Where, att: dict[str, Any], pid: str, rid: str) -> str | None:
    """Decoded text of an inline attachment; None (quarantined) when it is not text."""
    ctype = str(att.get("contentType", "")).lower()
    mime = ctype.split(";")[0].strip()
    if mime and mime not in st.rules.text_types:
        set_aside(
            st.quarantine,
            where.file,
            where.row,
            f"attachment is {mime}, not text",
            patient_id=pid,
            column="attachment",
            value=rid,
        )
        return None
    data = att.get("data")
    if not data:
        if att.get("url"):
            st.bump("attachments_by_url_not_fetched")
        return None
    try:
        raw = base64.b64decode(str(data), validate=True)
    except (binascii.Error, ValueError):
        set_aside(
            st.quarantine,
            where.file,
            where.row,
            "attachment data is not valid base64",
            patient_id=pid,
            column="attachment",
            value=rid,
        )
        return None
    m = re.search(r"charset=([\w\-]+)", ctype)
    try:
        text = raw.decode(m.group(1) if m else "utf-8")
    except (UnicodeDecodeError, LookupError):
        text = None
    if text is None or "\x00" in text:
        set_aside(
            st.quarantine,
            where.file,
            where.row,
            "base64 attachment does not decode to text",
            patient_id=pid,
            column="attachment",
            value=rid,
        )
        return None
    if mime in ("text/html", "application/xhtml+xml"):
        text = html.unescape(_TAG.sub(" ", text))
    return text


def report(st: State, where: Where, res: dict[str, Any], pid: str, rid: str) -> None:
    if not _is_radiology(st, res):
        return
    rtype = res["resourceType"]
    if rtype == "DiagnosticReport":
        date = (
            iso_date(res.get("effectiveDateTime"))
            or iso_date(get_path(res, "effectivePeriod", "start"))
            or iso_date(res.get("issued"))
        )
        atts = [a for a in as_list(res.get("presentedForm")) if isinstance(a, dict)]
        procedure = concept_text(res.get("code"))
    else:
        date = iso_date(get_path(res, "context", "period", "start")) or iso_date(res.get("date"))
        atts = [
            a for a in (get_path(c, "attachment") for c in as_list(res.get("content"))) if isinstance(a, dict)
        ]
        procedure = concept_text(res.get("type")) or str(res.get("description") or "").strip()
    texts = [t for t in (_attachment_text(st, where, a, pid, rid) for a in atts) if t and t.strip()]
    text = texts[0] if texts else str(res.get("conclusion") or "").strip()
    if not rid or not date or not text.strip():
        missing = "id" if not rid else "date" if not date else "text (no text attachment or conclusion)"
        why = f"radiology {rtype} without {missing}"
        set_aside(st.quarantine, where.file, where.row, why, patient_id=pid, value=rid)
        return
    st.seen(pid, date)
    st.reports.append(
        {"patient_id": pid, "report_id": rid, "report_date": date, "procedure": procedure, "text": text}
    )
    st.bump(f"{rtype}_radiology")
