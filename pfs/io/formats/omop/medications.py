"""DRUG_EXPOSURE -> the native medications table."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pfs.io.formats.common import number_text, set_aside, set_aside_rows
from pfs.io.formats.omop.rules import OmopRules
from pfs.io.formats.omop.source import OmopSource, canonical_ids, dated, person_filter
from pfs.io.formats.omop.vocabulary import Vocabulary
from pfs.io.quarantine import Quarantine


def read_medications(
    source: OmopSource,
    rules: OmopRules,
    vocab: Vocabulary,
    quarantine: Quarantine,
    known: set[str],
    keep_ids: set[str],
    counts: dict[str, Any],
) -> pd.DataFrame:
    cols = [
        "drug_exposure_id",
        "person_id",
        "drug_concept_id",
        "drug_exposure_start_date",
        "drug_exposure_start_datetime",
        "drug_exposure_end_date",
        "verbatim_end_date",
        "quantity",
        "days_supply",
        "sig",
        "route_concept_id",
        "route_source_value",
        "drug_source_value",
        "dose_unit_source_value",
    ]
    out_cols = [
        "person_id",
        "medication_id",
        "order_date",
        "end_date",
        "drug_name",
        "dose",
        "dose_unit",
        "frequency",
        "route",
        "sig",
    ]
    if not source.has("drug_exposure"):
        return pd.DataFrame(columns=out_cols)
    label = source.label("drug_exposure")
    pfilter = person_filter(quarantine, label, known)
    d = source.read("drug_exposure", cols, quarantine, keep=lambda c: pfilter(c) & c["person_id"].isin(keep_ids))
    counts["drug_exposure_rows_kept_persons"] = int(len(d))
    d["drug_exposure_start_date"] = d["drug_exposure_start_date"].where(
        d["drug_exposure_start_date"].str.strip() != "", d["drug_exposure_start_datetime"]
    )
    d = dated(d, "drug_exposure_start_date", quarantine, label, required=True)
    d = dated(d, "drug_exposure_end_date", quarantine, label, required=False)
    d = dated(d, "verbatim_end_date", quarantine, label, required=False)
    bad_id = d["drug_exposure_id"].str.strip() == ""
    set_aside_rows(quarantine, label, d.loc[bad_id], "missing drug_exposure_id", column="drug_exposure_id")
    d = d.loc[~bad_id]

    drug_ids = set(canonical_ids(d["drug_concept_id"])) - {"", "0"}
    route_ids = set(canonical_ids(d["route_concept_id"])) - {"", "0"}
    info = vocab.lookup(drug_ids | route_ids)
    names = info["concept_name"].to_dict() if not info.empty else {}
    ingredients = vocab.ingredients(drug_ids) if drug_ids else {}
    cid = canonical_ids(d["drug_concept_id"])
    concept_name = cid.map(names).fillna("")
    source_value = d["drug_source_value"].str.strip()
    drug_name = concept_name.where(concept_name != "", source_value)
    unknown = (cid != "") & (cid != "0") & (concept_name == "")
    counts["drug_concepts_not_in_vocabulary"] = int(cid[unknown].nunique()) if vocab.present else 0
    no_name = drug_name == ""
    for r, pid, c in zip(d.loc[no_name, "_row"], d.loc[no_name, "person_id"], cid[no_name], strict=True):
        why = (
            f"unknown drug_concept_id {c} and no drug_source_value"
            if c not in ("", "0")
            else "no drug_concept_id and no drug_source_value"
        )
        set_aside(quarantine, label, r, why, patient_id=pid, column="drug_concept_id", value=c)
    ing = cid.map(lambda c: ingredients.get(c, []))
    with_ing = [
        n if not i or any(x.lower() in n.lower() for x in i) else f"{' / '.join(i)} ({n})"
        for n, i in zip(drug_name, ing, strict=True)
    ]
    drug_name = pd.Series(with_ing, index=d.index)
    counts["drug_names_from_concept"] = int(((concept_name != "") & ~no_name).sum())
    counts["drug_names_from_source_value"] = int(((concept_name == "") & ~no_name).sum())

    # End date: the source's own (verbatim) end when the ETL fills it, else the CDM end date.
    uses_verbatim = bool((d["verbatim_end_date"] != "").any())
    end = d["verbatim_end_date"] if uses_verbatim else d["drug_exposure_end_date"]
    # Dose: quantity is the dose when a dose unit is given or no days' supply says it is a dispensed count.
    qty = d["quantity"].map(number_text)
    unit = d["dose_unit_source_value"].str.strip()
    supply = pd.to_numeric(d["days_supply"], errors="coerce")
    qty_is_dose = (qty != "") & (qty != "0") & ((unit != "") | supply.isna() | (supply == 0))
    dose = qty.where(qty_is_dose, "")
    route = d["route_source_value"].str.strip()
    rid = canonical_ids(d["route_concept_id"])
    route_name = rid.map(lambda r: names.get(r) or vocab.routes.get(r, "")).fillna("")
    route = route.where(route != "", route_name)
    meds = pd.DataFrame(
        {
            "person_id": d["person_id"],
            "medication_id": d["drug_exposure_id"].str.strip(),
            "order_date": d["drug_exposure_start_date"],
            "end_date": end,
            "drug_name": drug_name,
            "dose": dose,
            "dose_unit": unit,
            "frequency": "",
            "route": route,
            "sig": d["sig"],
            "_row": d["_row"],
        }
    ).loc[~no_name]
    dup = meds["medication_id"].duplicated()
    set_aside_rows(
        quarantine,
        label, meds.loc[dup], "duplicate drug_exposure_id", column="medication_id", patient_column="person_id"
    )
    return meds.loc[~dup, out_cols].reset_index(drop=True)
