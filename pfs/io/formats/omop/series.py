"""Series descriptions of IMAGE_OCCURRENCE rows, where the OHDSI imaging extension keeps them.

The extension stores DICOM attributes (Series Description, tag 0008,103E, among them) as
OBSERVATION rows tied to the image occurrence: through IMAGE_FEATURE (image_occurrence_id ->
image_feature_event_id = observation_id) or through CDM 5.4's observation_event_id. Which
observation is the description is in ``omop_mapping.json`` (``series_description``); an image
occurrence with exactly one tied text observation takes that one.
"""

from __future__ import annotations

import pandas as pd

from pfs.io.formats.omop.rules import OmopRules
from pfs.io.formats.omop.source import OmopSource, canonical_ids
from pfs.io.formats.omop.vocabulary import Vocabulary

_OBSERVATION_COLUMNS = ["observation_id", "person_id", "observation_concept_id", "observation_source_value",
                        "value_as_string", "observation_event_id"]


def _links(source: OmopSource, wanted: set[str]) -> dict[str, str]:
    """observation_id -> image_occurrence_id from IMAGE_FEATURE (absent in most exports)."""
    links: dict[str, str] = {}
    if not source.has("image_feature"):
        return links
    for chunk in source.chunks("image_feature", ["image_occurrence_id", "image_feature_event_id"]):
        occ, event = canonical_ids(chunk["image_occurrence_id"]), canonical_ids(chunk["image_feature_event_id"])
        sel = occ.isin(wanted) & (event != "")
        links.update(zip(event[sel], occ[sel], strict=True))
    return links


def series_descriptions(
    source: OmopSource, vocab: Vocabulary, rules: OmopRules, images: pd.DataFrame
) -> tuple[pd.Series, int]:
    """The description of each image occurrence ('' when none is tied to it), and how many were found."""
    out = pd.Series("", index=images.index)
    if images.empty or not source.has("observation"):
        return out, 0
    occurrence = canonical_ids(images["image_occurrence_id"])
    wanted = set(occurrence) - {""}
    persons = set(images["person_id"])
    links = _links(source, wanted)
    obs = source.read("observation", _OBSERVATION_COLUMNS,
                      keep=lambda c: canonical_ids(c["person_id"]).isin(persons))
    if obs.empty:
        return out, 0
    event = canonical_ids(obs["observation_event_id"])
    target = canonical_ids(obs["observation_id"]).map(links).fillna("")
    target = target.where(target != "", event.where(event.isin(wanted), ""))
    value = obs["value_as_string"].fillna("").astype(str).str.strip()
    tied = (target != "") & (value != "")
    concept = canonical_ids(obs["observation_concept_id"])
    info = vocab.lookup(set(concept[tied]) - {"", "0"})
    names = concept.map(info["concept_name"].to_dict() if not info.empty else {}).fillna("")
    cs = rules.series_description
    labelled = cs.source_mask(obs["observation_source_value"]) | cs.source_mask(names) | concept.isin(cs.concept_ids)
    found: dict[str, str] = {}
    for t, v in zip(target[tied & labelled], value[tied & labelled], strict=True):
        found.setdefault(t, v)
    # An occurrence with one tied text observation and none labelled: that text is its description.
    textual = tied & ~labelled & pd.to_numeric(value, errors="coerce").isna()
    single = target[textual].value_counts()
    for t, v in zip(target[textual], value[textual], strict=True):
        if single.get(t) == 1:
            found.setdefault(t, v)
    out = occurrence.map(found).fillna("")
    return out, int((out != "").sum())
