"""PROCEDURE_OCCURRENCE -> first-line surgery/radiotherapy rows and the native procedures table.

One read serves both: the first resection and RT course date the patient (``patients.csv``), and
every dated procedure goes to ``procedures.csv``, where the next-line therapy source looks for
re-resections and re-irradiation. A procedure is named by its standard concept (else its source
concept, else the source value as written) and coded ``{vocabulary_id}:{concept_code}`` (e.g.
``CPT4:61510``), so its code survives the export's concept ids.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pfs.io.formats.common import set_aside_rows
from pfs.io.formats.omop.rules import OmopRules
from pfs.io.formats.omop.source import OmopSource, canonical_ids, dated, person_filter
from pfs.io.formats.omop.vocabulary import Vocabulary
from pfs.io.quarantine import Quarantine

TREATMENT_COLUMNS = ["person_id", "kind", "date", "end"]
NATIVE_COLUMNS = ["person_id", "procedure_id", "procedure_date", "name", "code"]
_READ = [
    "procedure_occurrence_id",
    "person_id",
    "procedure_concept_id",
    "procedure_source_concept_id",
    "procedure_source_value",
    "procedure_date",
    "procedure_datetime",
    "procedure_end_date",
]


def read_procedures(
    source: OmopSource,
    rules: OmopRules,
    vocab: Vocabulary,
    quarantine: Quarantine,
    known: set[str],
    keep_ids: set[str],
    counts: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(resection/RT rows of TREATMENT_COLUMNS for first-line dates, native rows of NATIVE_COLUMNS)."""
    if not source.has("procedure_occurrence"):
        return pd.DataFrame(columns=TREATMENT_COLUMNS), pd.DataFrame(columns=NATIVE_COLUMNS)
    label = source.label("procedure_occurrence")
    pfilter = person_filter(quarantine, label, known)
    frame = source.read(
        "procedure_occurrence", _READ, quarantine, keep=lambda c: pfilter(c) & c["person_id"].isin(keep_ids)
    )
    frame["procedure_date"] = frame["procedure_date"].where(
        frame["procedure_date"].str.strip() != "", frame["procedure_datetime"]
    )
    frame = dated(frame, "procedure_date", quarantine, label, required=True)
    frame = dated(frame, "procedure_end_date", quarantine, label, required=False)
    cid = canonical_ids(frame["procedure_concept_id"])
    sid = canonical_ids(frame["procedure_source_concept_id"])
    return _first_line_rows(frame, cid, sid, rules, vocab), _native_rows(
        frame, cid, sid, vocab, quarantine, label, counts
    )


def _first_line_rows(
    frame: pd.DataFrame, cid: pd.Series, sid: pd.Series, rules: OmopRules, vocab: Vocabulary
) -> pd.DataFrame:
    """Rows of the resection and radiotherapy code sets, from which treatment_dates takes first line."""
    kinds = pd.Series("", index=frame.index)
    for kind, cs in (("radiotherapy", rules.radiotherapy), ("resection", rules.resection)):
        hit = cid.isin(vocab.sets[kind]) | sid.isin(vocab.sets[kind]) | cs.source_mask(frame["procedure_source_value"])
        kinds = kinds.mask(hit & (kinds == ""), kind)
    picked = frame.assign(kind=kinds).loc[kinds != ""]
    return picked.rename(columns={"procedure_date": "date", "procedure_end_date": "end"})[TREATMENT_COLUMNS]


def _native_rows(
    frame: pd.DataFrame,
    cid: pd.Series,
    sid: pd.Series,
    vocab: Vocabulary,
    quarantine: Quarantine,
    label: str,
    counts: dict[str, Any],
) -> pd.DataFrame:
    """Every dated procedure with an id, named and coded through the export's CONCEPT table."""
    info = vocab.lookup((set(cid) | set(sid)) - {"", "0"})
    names = info["concept_name"].fillna("").astype(str).str.strip().to_dict() if not info.empty else {}
    codes = (
        (info["vocabulary_id"].fillna("").astype(str).str.strip() + ":"
         + info["concept_code"].fillna("").astype(str).str.strip()).to_dict()
        if not info.empty
        else {}
    )
    codes = {k: v for k, v in codes.items() if not v.startswith(":") and not v.endswith(":")}
    source_value = frame["procedure_source_value"].fillna("").astype(str).str.strip()

    def first_of(table: dict[str, str]) -> pd.Series:
        by_standard = cid.map(table).fillna("")
        return by_standard.where(by_standard != "", sid.map(table).fillna(""))

    concept_name = first_of(names)
    concept_code = first_of(codes)
    out = pd.DataFrame(
        {
            "person_id": frame["person_id"],
            "procedure_id": canonical_ids(frame["procedure_occurrence_id"]),
            "procedure_date": frame["procedure_date"],
            "name": concept_name.where(concept_name != "", source_value),
            "code": concept_code.where(concept_code != "", source_value),
            "_row": frame["_row"],
        }
    )
    counts["procedure_names_from_concept"] = int((concept_name != "").sum())
    counts["procedure_names_from_source_value"] = int(((concept_name == "") & (source_value != "")).sum())
    blank = out["procedure_id"] == ""
    set_aside_rows(
        quarantine, label, out.loc[blank], "missing procedure_occurrence_id (left out of procedures.csv)",
        column="procedure_id",
    )
    dup = ~blank & out["procedure_id"].duplicated()
    set_aside_rows(
        quarantine, label, out.loc[dup], "duplicate procedure_occurrence_id (left out of procedures.csv)",
        column="procedure_id",
    )
    return out.loc[~blank & ~dup, NATIVE_COLUMNS].reset_index(drop=True)
