"""NOTE -> radiology reports; IMAGE_OCCURRENCE (imaging extension) -> the native imaging table."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from pfs.io.formats.common import place_file, safe_relative, set_aside, set_aside_rows
from pfs.io.formats.omop.rules import OmopRules
from pfs.io.formats.omop.series import series_descriptions
from pfs.io.formats.omop.source import OmopSource, canonical_ids, dated, person_filter
from pfs.io.formats.omop.vocabulary import Vocabulary
from pfs.io.quarantine import Quarantine

#: Columns of IMAGE_OCCURRENCE that may hold the MR sequence (the extension has no standard one).
SEQUENCE_COLUMNS = ("image_series_description", "series_description", "sequence")


def read_reports(
    source: OmopSource,
    vocab: Vocabulary,
    rules: OmopRules,
    quarantine: Quarantine,
    known: set[str],
    keep_ids: set[str],
    counts: dict[str, Any],
) -> pd.DataFrame:
    out_cols = ["person_id", "report_id", "report_date", "procedure", "text"]
    if not source.has("note"):
        return pd.DataFrame(columns=out_cols)
    label = source.label("note")
    cols = [
        "note_id",
        "person_id",
        "note_date",
        "note_datetime",
        "note_type_concept_id",
        "note_class_concept_id",
        "note_title",
        "note_text",
        "note_source_value",
    ]
    rad = vocab.sets["radiology"]
    pfilter = person_filter(quarantine, label, known)

    def keep(chunk: pd.DataFrame) -> pd.Series:
        is_rad = (
            canonical_ids(chunk["note_type_concept_id"]).isin(rad)
            | canonical_ids(chunk["note_class_concept_id"]).isin(rad)
            | rules.radiology.title_mask(chunk["note_title"])
            | rules.radiology.source_mask(chunk["note_source_value"])
        )
        return pfilter(chunk) & chunk["person_id"].isin(keep_ids) & is_rad

    n = source.read("note", cols, quarantine, keep=keep)
    counts["radiology_notes_kept_persons"] = int(len(n))
    n["note_date"] = n["note_date"].where(n["note_date"].str.strip() != "", n["note_datetime"])
    n = dated(n, "note_date", quarantine, label, required=True)
    empty = n["note_text"].str.strip() == ""
    set_aside_rows(quarantine, label, n.loc[empty], "radiology note with empty note_text", column="note_id")
    n = n.loc[~empty]
    missing_id = n["note_id"].str.strip() == ""
    set_aside_rows(quarantine, label, n.loc[missing_id], "missing note_id", column="note_id")
    n = n.loc[~missing_id]
    return pd.DataFrame(
        {
            "person_id": n["person_id"],
            "report_id": n["note_id"].str.strip(),
            "report_date": n["note_date"],
            "procedure": n["note_title"].str.strip(),
            "text": n["note_text"],
        }
    )[out_cols].reset_index(drop=True)


def read_imaging(
    source: OmopSource,
    vocab: Vocabulary,
    rules: OmopRules,
    out: Path,
    quarantine: Quarantine,
    known: set[str],
    keep_ids: set[str],
    counts: dict[str, Any],
) -> pd.DataFrame:
    out_cols = ["person_id", "study_id", "study_date", "sequence", "path", "mask_path"]
    if not source.has("image_occurrence"):
        return pd.DataFrame(columns=out_cols)
    label = source.label("image_occurrence")
    cols = [
        "image_occurrence_id",
        "person_id",
        "image_occurrence_date",
        "image_study_uid",
        "image_series_uid",
        "local_path",
        *SEQUENCE_COLUMNS,
    ]
    pfilter = person_filter(quarantine, label, known)
    im = source.read("image_occurrence", cols, quarantine, keep=lambda c: pfilter(c) & c["person_id"].isin(keep_ids))
    im = dated(im, "image_occurrence_date", quarantine, label, required=True)
    seq = pd.Series("", index=im.index)
    for c in SEQUENCE_COLUMNS:
        seq = seq.where(seq != "", im[c].str.strip())
    described, counts["series_descriptions_from_observation"] = series_descriptions(source, vocab, rules, im)
    seq = seq.where(seq != "", described)
    seq = seq.where(seq != "", im["local_path"].map(_name_from_path))
    base = source.path if source.path.is_dir() else source.path.parent
    rows = []
    for idx, r in im.iterrows():
        rel = safe_relative(r["local_path"]) if r["local_path"].strip() else None
        if rel is None:
            set_aside(
                quarantine,
                label,
                r["_row"],
                "local_path blank, absolute or escaping the export directory",
                patient_id=r["person_id"],
                column="local_path",
                value=r["local_path"],
            )
            continue
        file = base / rel
        if not file.exists():
            set_aside(
                quarantine,
                label,
                r["_row"],
                "image file not found",
                patient_id=r["person_id"],
                column="local_path",
                value=rel,
            )
            continue
        place_file(file, out / rel)
        rows.append(
            {
                "person_id": r["person_id"],
                "study_id": r["image_study_uid"].strip() or r["image_occurrence_id"].strip(),
                "study_date": r["image_occurrence_date"],
                "sequence": seq[idx],
                "path": rel,
                "mask_path": "",
            }
        )
    counts["images_placed"] = len(rows)
    return pd.DataFrame(rows, columns=out_cols)


def _name_from_path(path: str) -> str:
    """The file (or DICOM folder) name without extensions: exports often name a file after its series."""
    name = PurePosixPath(str(path).replace("\\", "/")).name
    for ext in (".nii.gz", ".nii", ".dcm", ".mha", ".nrrd"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name
