"""What pfs needs from the OMOP vocabulary tables, read in filtered chunks."""

from __future__ import annotations

import pandas as pd

from pfs.io.formats.codes import CodeSet
from pfs.io.formats.omop.rules import OmopRules
from pfs.io.formats.omop.source import OmopSource, canonical_ids
from pfs.io.quarantine import Quarantine


class Vocabulary:
    """What pfs needs from CONCEPT / CONCEPT_ANCESTOR / CONCEPT_RELATIONSHIP, read in filtered chunks."""

    def __init__(self, source: OmopSource, rules: OmopRules, quarantine: Quarantine) -> None:
        self.source = source
        self.rules = rules
        self.quarantine = quarantine
        self.present = source.has("concept")
        self.sets: dict[str, set[str]] = {k: set() for k in ("gbm", "resection", "radiotherapy", "radiology")}
        self.routes: dict[str, str] = dict(rules.routes)
        if self.present:
            self._select()
        for key, cs in self._code_sets().items():
            self.sets[key] |= set(cs.concept_ids)
        if source.has("concept_ancestor"):
            self._descendants()

    def _code_sets(self) -> dict[str, CodeSet]:
        r = self.rules
        return {
            "gbm": r.gbm,
            "resection": r.resection,
            "radiotherapy": r.radiotherapy,
            "radiology": r.radiology,
        }

    def _select(self) -> None:
        cols = ["concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_code"]
        for chunk in self.source.chunks("concept", cols, self.quarantine):
            chunk["concept_id"] = canonical_ids(chunk["concept_id"])
            for key, cs in self._code_sets().items():
                self.sets[key].update(chunk.loc[cs.concept_mask(chunk), "concept_id"])
            route = chunk["domain_id"].str.strip().str.lower() == "route"
            self.routes.update(
                zip(chunk.loc[route, "concept_id"], chunk.loc[route, "concept_name"], strict=True)
            )

    def _descendants(self) -> None:
        wanted = set().union(*self.sets.values())
        if not wanted:
            return
        for chunk in self.source.chunks("concept_ancestor", ["ancestor_concept_id", "descendant_concept_id"]):
            anc, desc = canonical_ids(chunk["ancestor_concept_id"]), canonical_ids(chunk["descendant_concept_id"])
            hit = anc.isin(wanted)
            if not hit.any():
                continue
            for ids in self.sets.values():
                sel = hit & anc.isin(ids)
                ids.update(desc[sel])

    def lookup(self, ids: set[str]) -> pd.DataFrame:
        """concept_id -> concept_name, concept_class_id, vocabulary_id, concept_code for ``ids`` (one filtered pass)."""
        cols = ["concept_id", "concept_name", "concept_class_id", "vocabulary_id", "concept_code"]
        if not self.present or not ids:
            return pd.DataFrame(columns=cols).set_index("concept_id")
        frame = self.source.read("concept", cols, keep=lambda c: canonical_ids(c["concept_id"]).isin(ids))
        frame["concept_id"] = canonical_ids(frame["concept_id"])
        return frame.drop_duplicates("concept_id").set_index("concept_id")[cols[1:]]

    def ingredients(self, drug_ids: set[str]) -> dict[str, list[str]]:
        """drug concept id -> ingredient names, through CONCEPT_ANCESTOR, else CONCEPT_RELATIONSHIP."""
        pairs: list[tuple[str, str]] = []
        if self.source.has("concept_ancestor"):
            for chunk in self.source.chunks(
                "concept_ancestor", ["ancestor_concept_id", "descendant_concept_id"]
            ):
                desc = canonical_ids(chunk["descendant_concept_id"])
                sel = desc.isin(drug_ids)
                pairs += list(zip(desc[sel], canonical_ids(chunk.loc[sel, "ancestor_concept_id"]), strict=True))
        if not pairs and self.source.has("concept_relationship"):
            for chunk in self.source.chunks(
                "concept_relationship", ["concept_id_1", "concept_id_2", "relationship_id"]
            ):
                c1 = canonical_ids(chunk["concept_id_1"])
                sel = c1.isin(drug_ids) & chunk["relationship_id"].str.strip().isin(
                    self.rules.ingredient_relationships
                )
                pairs += list(zip(c1[sel], canonical_ids(chunk.loc[sel, "concept_id_2"]), strict=True))
        out: dict[str, list[str]] = {}
        if pairs:
            info = self.lookup({a for _, a in pairs})
            for drug, anc in pairs:
                if (
                    anc in info.index
                    and str(info.at[anc, "concept_class_id"]).strip().lower() == "ingredient"
                ):
                    name = str(info.at[anc, "concept_name"]).strip()
                    if name and name not in out.setdefault(drug, []):
                        out[drug].append(name)
        for drug in drug_ids:
            if drug in self.rules.ingredients and drug not in out:
                out[drug] = [self.rules.ingredients[drug]]
        return out
