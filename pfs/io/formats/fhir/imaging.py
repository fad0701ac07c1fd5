"""ImagingStudy series -> the native imaging table, through the series-uid -> file map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pfs.exceptions import ExportError
from pfs.io.formats.common import iso_date, place_file, safe_relative, set_aside
from pfs.io.formats.fhir.reader import Where
from pfs.io.formats.fhir.resources import as_list
from pfs.io.formats.fhir.state import State


def imaging_study(st: State, where: Where, res: dict[str, Any], pid: str, rid: str) -> None:
    study_date = iso_date(res.get("started"))
    for s in as_list(res.get("series")):
        if not isinstance(s, dict):
            continue
        date = iso_date(s.get("started")) or study_date
        st.series.append(
            {
                "patient_id": pid,
                "study_id": rid,
                "study_date": date,
                "sequence": str(s.get("description") or "").strip(),
                "uid": str(s.get("uid") or "").strip(),
                "file": where.file,
                "row": where.row,
            }
        )


def imaging_table(st: State, base: Path, out: Path, image_map: Path | None) -> pd.DataFrame:
    cols = ["patient_id", "study_id", "study_date", "sequence", "path", "mask_path"]
    if not st.series:
        return pd.DataFrame(columns=cols)
    map_path = Path(image_map) if image_map else base / st.rules.image_map_file
    mapping: dict[str, str] = {}
    if map_path.is_file():
        frame = pd.read_csv(map_path, dtype=str, keep_default_na=False)
        frame.columns = [c.strip().lower() for c in frame.columns]
        if not {"series_uid", "path"} <= set(frame.columns):
            raise ExportError(
                f"{map_path}: the image map needs columns series_uid,path (found {list(frame.columns)})"
            )
        mapping = dict(zip(frame["series_uid"].str.strip(), frame["path"].str.strip(), strict=True))
    rows = []
    for s in st.series:
        rel = mapping.get(s["uid"])
        why = (
            "series has no local file in the image map"
            if rel is None
            else "series without a date"
            if not s["study_date"]
            else None
        )
        rel_safe = safe_relative(rel) if rel else None
        if why is None and rel_safe is None:
            why = "image map path is absolute or escapes its directory"
        if why is None and not (map_path.parent / rel_safe).exists():
            why = "image file not found"
        if why:
            set_aside(
                st.quarantine,
                s["file"],
                s["row"],
                why,
                patient_id=s["patient_id"],
                column="series.uid",
                value=f"{s['study_id']}/{s['uid']}",
            )
            continue
        place_file(map_path.parent / rel_safe, out / rel_safe)
        rows.append(
            {
                "patient_id": s["patient_id"],
                "study_id": s["study_id"],
                "study_date": s["study_date"],
                "sequence": s["sequence"],
                "path": rel_safe,
                "mask_path": "",
            }
        )
    return pd.DataFrame(rows, columns=cols)
