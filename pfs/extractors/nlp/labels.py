"""The report-level decision: one :class:`~pfs.vocab.ReportLabel` per report, with the finding that decided it.

Finding-centric: the NLP's targets are findings (tumour findings, interpretive assessments of the tumour,
and non-tumour findings); change (new, increased, decreased, stable), certainty, negation, history,
attribution to benign causes and "cannot be assessed" are ConText modifiers of one finding. A finding is
read with its own modifiers (:func:`reading`): "increased" beside the ventricles is spent on the ventricles
and never reaches the tumour; a recurrence described as smaller is an improvement, not a progression.

How a radiologist's words become a label (BT-RADS, Weinberg et al. 2018; RANO, Wen et al. 2010):

0. A report that never shows a brain tumour (no tumour, glioma or resection-cavity finding that is
   asserted, historical included) makes no tumour assessment: ``no_assessment``, whatever changed.
1. A BT-RADS score written in an assessed section decides (4 and 3c: progression, 3b: indeterminate,
   3a: treatment effect, 2: stable, 1a/1b: improved, 0: no assessment), unless an addendum after it
   makes a new assessment.
2. Otherwise the addendum outranks the impression, which outranks the findings (and unsectioned text).
   History, technique and comparison sections never count.
3. Negated, historical and hypothetical mentions do not count; a negated progression ("no evidence of
   recurrence") is a statement of stability. A weak hedge ("may represent", "versus", "cannot exclude")
   leaves a mention *possible*; a firm one ("concerning for", "likely", "favour") keeps it.
4. Within a sentence, tumour (progression, new lesion) and treatment effect are weighed by their
   certainty: the firmer wins, a tie is an unresolved tumour-vs-treatment question (indeterminate).
5. A tumour status that "cannot be assessed / determined" is ``no_assessment`` (never stable); a new or
   growing lesion that the radiologist explains as nonspecific or benign (vascular, artefact, blood
   products) makes no call.
6. Interpretive sentences (progression, treatment effect, indeterminate) outrank descriptive ones
   (new lesion, increased, stable, decreased, "no new lesion"); then a firm call outranks a possible
   one; among equals the order is progression > indeterminate > treatment effect > improved > stable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from pfs.exceptions import RuleFileError
from pfs.extractors.nlp.findings import (
    DEFINITE,
    POSSIBLE,
    PROBABLE,
    UNATTACHED_CHANGES,
    explained_otherwise,
    has_tumour_context,
    reading,
    set_aside,
    strength,
)
from pfs.extractors.nlp.pipeline import Mention, ReportFacts
from pfs.vocab import ReportLabel

#: BT-RADS score -> label (clinical-rules.md, BT-RADS table).
BT_RADS_LABELS: dict[str, ReportLabel] = {
    "0": ReportLabel.NO_ASSESSMENT,
    "1a": ReportLabel.IMPROVED,
    "1b": ReportLabel.IMPROVED,
    "2": ReportLabel.STABLE,
    "3a": ReportLabel.TREATMENT_EFFECT,
    "3b": ReportLabel.INDETERMINATE,
    "3c": ReportLabel.PROGRESSION,
    "4": ReportLabel.PROGRESSION,
}
_BT_RADS = re.compile(
    r"\bBT[\s-]?RADS(?:\s*(?:score|category|cat\.?|classification))?\s*(?:[:=#-]|is|of)?\s*"
    r"([0-4])\s*-?\s*([abc])?(?![0-9a-z])",
    re.IGNORECASE,
)
_PRIORITY = [ReportLabel.PROGRESSION, ReportLabel.INDETERMINATE, ReportLabel.TREATMENT_EFFECT,
             ReportLabel.IMPROVED, ReportLabel.STABLE, ReportLabel.NO_ASSESSMENT]
_TIERS = (("addendum",), ("impression",), ("findings", ""))


@dataclass(frozen=True)
class Decision:
    """The label of one report and the evidence for it (offsets into the report text)."""

    label: ReportLabel
    rule: str
    bt_rads: str = ""
    evidence_start: int = -1
    evidence_end: int = -1
    section: str = ""
    #: 3 definite, 2 probable, 1 possible: how firmly the deciding sentence said it.
    certainty: int = 0
    #: The deciding finding (offsets into the report text, its target rule) and its modifiers
    #: as (category, start, end, rule literal).
    finding_start: int = -1
    finding_end: int = -1
    finding_rule: str = ""
    modifiers: tuple[tuple[str, int, int, str], ...] = ()


@dataclass(frozen=True)
class _SentenceCall:
    label: ReportLabel
    rule: str
    interpretive: bool
    certainty: int
    start: int
    end: int
    section: str
    finding: Mention | None = None


def find_bt_rads(text: str) -> list[tuple[str, int, int]]:
    """Every written BT-RADS score as (score, start, end); score like '3b' or '2'."""
    out = []
    for m in _BT_RADS.finditer(text):
        digit, letter = m.group(1), (m.group(2) or "").lower()
        score = digit + letter if digit in "13" and letter else digit
        if digit in "13" and not letter:
            score = digit + ("b" if digit == "3" else "a")
        if score in BT_RADS_LABELS:
            out.append((score, m.start(), m.end()))
    return out


@cache
def _procedure_patterns() -> tuple[tuple[re.Pattern, ...], ...]:
    data = json.loads(resources.files("pfs.rules").joinpath("nlp", "procedures.json").read_text(encoding="utf-8"))
    unknown = set(data) - {"_source", "modality", "region", "exclude", "region_in_text"}
    if unknown:
        raise RuleFileError(f"pfs/rules/nlp/procedures.json: unknown keys {sorted(unknown)}")
    try:
        return tuple(tuple(re.compile(p, re.IGNORECASE) for p in data[k])
                     for k in ("modality", "region", "exclude", "region_in_text"))
    except re.error as err:
        raise RuleFileError(f"pfs/rules/nlp/procedures.json: bad pattern: {err}") from err


def is_brain_mri(procedure: str | None, text: str) -> bool:
    """Whether a report is a brain MRI, by its procedure name or, when that is blank or vague, its text."""
    modality, region, exclude, anatomy = _procedure_patterns()
    head = " ".join(text[:300].splitlines()[:4])
    name = (procedure or "").strip() or head
    if not any(p.search(name) for p in modality) or any(p.search(name) for p in exclude):
        return False
    if any(p.search(name) for p in region):
        return True
    # An MR procedure that names no region ("MRI", "MR IMAGING", "OUTSIDE READ"): the text decides.
    return (any(p.search(head) for p in region) and not any(p.search(head) for p in exclude)) or any(
        p.search(text) for p in anatomy)


def _sentence_call(mentions: list[Mention], tier_has_worsening: bool
                   ) -> tuple[ReportLabel, str, bool, int, Mention | None] | None:
    affirmed: dict[str, int] = {}
    negated: dict[str, Mention] = {}
    literal: dict[str, str] = {}
    who: dict[str, Mention] = {}
    for m in mentions:
        concept = reading(m)
        if concept is None or set_aside(m, mentions) or (concept in ("NEW_LESION", "WORSENING")
                                                          and explained_otherwise(m, mentions)):
            continue
        s = strength(m)
        if s < 0 and "UNASSESSABLE" in m.modifiers:
            s = DEFINITE  # "without contrast the tumour cannot be assessed": the negation is not of the tumour
        if s == 0:
            continue
        if s < 0:
            negated.setdefault(concept, m)
            continue
        if s > affirmed.get(concept, 0):
            affirmed[concept] = s
            literal[concept] = m.literal
            who[concept] = m
    call = _weigh(affirmed, negated, literal, tier_has_worsening)
    if call is None:
        return None
    label, rule, interpretive, certainty, concept = call
    return label, rule, interpretive, certainty, who.get(concept) or negated.get(concept)


def _weigh(affirmed: dict[str, int], negated: dict[str, Mention], literal: dict[str, str],
           tier_has_worsening: bool) -> tuple[ReportLabel, str, bool, int, str] | None:
    get = affirmed.get
    worsening = get("WORSENING", 0)
    # Only an explicit word for tumour (progression, recurrence) is weighed against treatment effect;
    # a new or enlarging lesion is what both explain, so it is an observation like "increased".
    tumour = get("PROGRESSION", 0)
    new_lesion = get("NEW_LESION", 0)
    treat = get("TREATMENT_EFFECT", 0)
    if get("POSTTREATMENT", 0) and (worsening or new_lesion or tumour or tier_has_worsening
                                    or get("POSTTREATMENT", 0) == PROBABLE):
        treat = max(treat, get("POSTTREATMENT", 0))
    if get("INDETERMINATE", 0):
        return (ReportLabel.INDETERMINATE, f"indeterminate_term({literal['INDETERMINATE']})", True,
                get("INDETERMINATE"),
                "INDETERMINATE")
    if tumour and treat:
        if tumour > treat:
            return ReportLabel.PROGRESSION, "tumour_favoured_over_treatment", True, tumour, "PROGRESSION"
        if treat > tumour:
            return (ReportLabel.TREATMENT_EFFECT, "treatment_favoured_over_tumour", True, treat,
                    ("TREATMENT_EFFECT" if "TREATMENT_EFFECT" in literal else "POSTTREATMENT"))
        return ReportLabel.INDETERMINATE, "tumour_versus_treatment", True, tumour, "PROGRESSION"
    if tumour:
        if tumour == POSSIBLE:
            return (ReportLabel.INDETERMINATE, f"possible_progression({literal['PROGRESSION']})", True, tumour,
                    "PROGRESSION")
        return ReportLabel.PROGRESSION, f"progression_term({literal['PROGRESSION']})", True, tumour, "PROGRESSION"
    if treat:
        if treat == POSSIBLE and (worsening or new_lesion):
            return (ReportLabel.INDETERMINATE, "worse_possibly_treatment", True, treat,
                    ("TREATMENT_EFFECT" if "TREATMENT_EFFECT" in literal else "POSTTREATMENT"))
        key = "TREATMENT_EFFECT" if "TREATMENT_EFFECT" in literal else "POSTTREATMENT"
        return ReportLabel.TREATMENT_EFFECT, f"treatment_effect({literal[key]})", True, treat, key
    if new_lesion:
        if new_lesion == POSSIBLE:
            return (ReportLabel.INDETERMINATE, f"possible_new_lesion({literal['NEW_LESION']})", False, new_lesion,
                    "NEW_LESION")
        return ReportLabel.PROGRESSION, f"new_lesion({literal['NEW_LESION']})", False, new_lesion, "NEW_LESION"
    if worsening:
        if worsening == POSSIBLE:
            return (ReportLabel.INDETERMINATE, f"possible_worsening({literal['WORSENING']})", False, worsening,
                    "WORSENING")
        return ReportLabel.PROGRESSION, f"worsening({literal['WORSENING']})", False, worsening, "WORSENING"
    if get("IMPROVED", 0):
        return ReportLabel.IMPROVED, f"improved({literal['IMPROVED']})", False, get("IMPROVED"), "IMPROVED"
    if get("STABLE", 0):
        return ReportLabel.STABLE, f"stable({literal['STABLE']})", False, get("STABLE"), "STABLE"
    if negated.keys() & {"PROGRESSION", "NEW_LESION", "WORSENING"}:
        first = next(c for c in ("PROGRESSION", "NEW_LESION", "WORSENING") if c in negated)
        return ReportLabel.STABLE, "negated_progression", False, DEFINITE, first
    if get("NONDIAGNOSTIC", 0):
        return ReportLabel.NO_ASSESSMENT, "nondiagnostic", True, DEFINITE, "NONDIAGNOSTIC"
    return None


def _tier_calls(mentions: list[Mention], unattached: list[Mention]) -> list[_SentenceCall]:
    by_sentence: dict[tuple[int, int], list[Mention]] = {}
    for m in mentions:
        by_sentence.setdefault((m.sent_start, m.sent_end), []).append(m)
    # "No interval change." / "Decreased." with no finding in the sentence speaks of the tumour, and so does
    # "the resection cavity is unchanged" (the cavity is where the tumour is, so change words skip it); an
    # unattached "worse" or "new" does not ("he has been getting worse" is a clinical narrative).
    for m in unattached:
        others = by_sentence.get((m.sent_start, m.sent_end), [])
        if m.modifiers[0] in UNATTACHED_CHANGES and all(x.category == "CAVITY" for x in others):
            by_sentence.setdefault((m.sent_start, m.sent_end, "u"), []).append(m)  # type: ignore[index]
    tier_has_worsening = any(reading(m) in ("WORSENING", "NEW_LESION") and strength(m) > 0
                             for ms in by_sentence.values() for m in ms)
    calls = []
    for key, ms in by_sentence.items():
        call = _sentence_call(ms, tier_has_worsening)
        if call is not None:
            calls.append(_SentenceCall(call[0], call[1], call[2], call[3], key[0], key[1], ms[0].section, call[4]))
    return calls


def _best(calls: list[_SentenceCall]) -> _SentenceCall:
    pool = [c for c in calls if c.interpretive] or calls
    # A firm call outranks a mere possibility raised beside it ("likely pseudoprogression. Progression
    # cannot be entirely excluded." is BT-RADS 3a, not 3b).
    return min(pool, key=lambda c: (c.certainty < PROBABLE, _PRIORITY.index(c.label), -c.certainty, c.start))


def _section_at(facts: ReportFacts, offset: int) -> str:
    """The section holding character ``offset`` (sections are in text order)."""
    section = ""
    for cat, start in facts.sections:
        if start <= offset:
            section = cat
    return section


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def decide(text: str, facts: ReportFacts, assessed_sections: tuple[str, ...] = ("addendum", "impression",
                                                                                 "findings", "")) -> Decision:
    """The label of one brain-MRI report from its NLP facts and its text (for BT-RADS)."""
    scores = find_bt_rads(text)
    tiers = [tuple(s for s in tier if s in assessed_sections) for tier in _TIERS]
    addendum_start = min((start for cat, start in facts.sections if cat == "addendum"), default=None)
    chosen: _SentenceCall | None = None
    for tier in tiers:
        if not tier:
            continue
        calls = _tier_calls([m for m in facts.mentions if m.section in tier],
                            [m for m in facts.unattached if m.section in tier])
        if calls:
            chosen = _best(calls)
            break
    scores = [s for s in scores if _section_at(facts, s[1]) in assessed_sections]
    if scores:
        score, s_start, s_end = scores[-1]
        addendum_overrules = (chosen is not None and chosen.section == "addendum" and addendum_start is not None
                              and s_start < addendum_start)
        if not addendum_overrules:
            line_start = text.rfind("\n", 0, s_start) + 1
            line_end = text.find("\n", s_end)
            start, end = _trim(text, line_start, len(text) if line_end < 0 else line_end)
            section = _section_at(facts, s_start)
            return Decision(BT_RADS_LABELS[score], f"bt_rads({score})", score, start, end, section, DEFINITE)
    bt = scores[-1][0] if scores else ""
    if not has_tumour_context(facts, assessed_sections):
        return Decision(ReportLabel.NO_ASSESSMENT, "no_brain_tumour_mentioned", bt)
    if chosen is None:
        return Decision(ReportLabel.NO_ASSESSMENT, "no_assessment_found", bt)
    start, end = _trim(text, chosen.start, chosen.end)
    f = chosen.finding
    if f is None:
        return Decision(chosen.label, chosen.rule, bt, start, end, chosen.section, chosen.certainty)
    rule = f.literal if f.category == "UNATTACHED" else f"{f.category}:{f.literal}"
    return (Decision(chosen.label, chosen.rule, bt, start, end, chosen.section, chosen.certainty,
                    f.start, f.end, rule, f.modifier_spans))
