"""How one finding reads: its change, certainty and attribution from its own ConText modifiers.

A finding (target) is read with the modifiers attached to it (:func:`reading`); a report shows a brain
tumour or not (:func:`has_tumour_context`). :mod:`.labels` weighs the readings of a sentence and chooses
the report's label.
"""

from __future__ import annotations

from pfs.extractors.nlp.pipeline import Mention, ReportFacts

#: Modifier categories that take a mention out of the count.
_IGNORING = frozenset({"HISTORICAL", "HYPOTHETICAL", "FAMILY"})
_NEGATING = frozenset({"NEGATED_EXISTENCE", "UNLIKELY"})
DEFINITE, PROBABLE, POSSIBLE = 3, 2, 1
#: Target categories that are findings of the tumour (read by their change modifiers).
_TUMOUR_FINDINGS = frozenset({"TUMOUR", "LESION", "CAVITY", "UNATTACHED"})
#: A finding "previously seen" that has changed since is described now, not as history.
_CURRENT_CHANGE = frozenset({"INCREASED", "DECREASED", "STABLE"})
#: Changes that speak of the tumour without a finding in their sentence.
UNATTACHED_CHANGES = frozenset({"STABLE", "DECREASED"})
#: Change modifiers by precedence when one finding carries several ("stable ... new" -> new).
_CHANGE_ORDER = ("NEW", "INCREASED", "DECREASED", "STABLE")
_CHANGE_READING = {"NEW": "NEW_LESION", "INCREASED": "WORSENING", "DECREASED": "IMPROVED", "STABLE": "STABLE"}
#: Assessments that are about the tumour unless their sentence is about a non-tumour finding only. Treatment
#: effect is not among them: radiation necrosis also follows radiotherapy of head-and-neck cancer or an AVM.
_GENERIC_ASSESSMENTS = frozenset({"PROGRESSION", "RESPONSE"})
#: How far after "progression" / "response" its object is looked for ("progression of small-vessel disease").
_OBJECT_CHARS = 60
_HEDGES = frozenset({"PROBABLE_EXISTENCE", "POSSIBLE_EXISTENCE"})
#: Tumour words that presuppose a treated tumour even when negated or hedged ("no recurrent tumour").
_PRESUPPOSING = frozenset({"PROGRESSION", "CAVITY", "TREATMENT_EFFECT"})
_NOT_SAID = frozenset({"HYPOTHETICAL", "FAMILY"})
#: Modifiers that keep a finding from showing that the person has a tumour ("rule out tumour", "no mass").
_NOT_CONTEXT = frozenset({"NEGATED_EXISTENCE", "HYPOTHETICAL", "FAMILY", "UNLIKELY", "POSSIBLE_EXISTENCE"})



def strength(m: Mention) -> int:
    """0 = does not count, -1 = negated, else certainty."""
    mods = set(m.modifiers)
    described_now = "HISTORICAL" in mods and mods & _CURRENT_CHANGE and not (mods - {"HISTORICAL"}) & _NOT_SAID
    if mods & _IGNORING and not described_now:
        return 0
    if mods & _NEGATING:
        return -1
    if "POSSIBLE_EXISTENCE" in mods:
        return POSSIBLE
    if "PROBABLE_EXISTENCE" in mods:
        return PROBABLE
    return DEFINITE


def _change(m: Mention) -> str:
    """The finding's current change; a change word right after a history word ("previously increased") is past."""
    past = [(start, end) for cat, start, end, _ in m.modifier_spans if cat == "HISTORICAL"]
    # past: "previously increased X"; "the increased X seen on the prior study" (attribute + history after)
    mods = {cat for cat, start, _, _ in m.modifier_spans
            if not any(0 <= start - end <= 2 or (start < m.start and h_start >= m.end) for h_start, end in past)
            } if m.modifier_spans else set(m.modifiers)
    if {"INCREASED", "DECREASED"} <= mods:
        # opposite changes: the predicate after the finding is the current one ("the increased enhancement
        # seen before has partially resolved"), the attribute before it names what it was
        after = {cat for cat, start, _, _ in m.modifier_spans if cat in ("INCREASED", "DECREASED") and start >= m.end}
        if len(after) == 1:
            mods -= {"INCREASED", "DECREASED"} - after
    for change in _CHANGE_ORDER:
        if change in mods:
            return change
    return m.change


def reading(m: Mention) -> str | None:
    """What one finding says about the tumour, from its own modifiers: a concept category or None.

    Concepts: PROGRESSION, NEW_LESION, WORSENING, IMPROVED, STABLE, TREATMENT_EFFECT, POSTTREATMENT,
    INDETERMINATE, NONDIAGNOSTIC. Non-tumour findings say nothing about the tumour.
    """
    mods = set(m.modifiers)
    cat = m.category
    if cat in ("NON_TUMOUR", "NEUTRAL"):
        return None
    if "UNASSESSABLE" in mods:
        return "NONDIAGNOSTIC"
    change = _change(m)
    if cat in _TUMOUR_FINDINGS:
        if change in ("NEW", "INCREASED") and "BENIGN" in mods:
            return None
        if change:
            return _CHANGE_READING[change]
        # "no residual tumour", "no evidence of tumour": a statement that there is no tumour to progress
        return "PROGRESSION" if cat == "TUMOUR" and mods & _NEGATING else None
    if cat == "RESPONSE":
        return _CHANGE_READING.get(change, "IMPROVED") if change in ("NEW", "INCREASED") else "IMPROVED"
    if cat in ("PROGRESSION", "TREATMENT_EFFECT", "POSTTREATMENT") and change == "DECREASED":
        return "IMPROVED"
    if cat in ("PROGRESSION", "POSTTREATMENT") and change == "STABLE":
        return "STABLE"
    return cat


def set_aside(m: Mention, sentence: list[Mention]) -> bool:
    """A generic assessment ("progression", "response") in a sentence about non-tumour findings only.

    "Progression of small-vessel disease", "good response of the abscess": the word is spent on the
    non-tumour finding beside it, as a change word is.
    """
    if m.tumour_context or m.category not in _GENERIC_ASSESSMENTS:
        return False
    following = [x for x in sentence if m.end <= x.start <= m.end + _OBJECT_CHARS]
    if following:
        return min(following, key=lambda x: x.start).category == "NON_TUMOUR"
    preceding = [x for x in sentence if m.start - _OBJECT_CHARS <= x.end <= m.start]
    if preceding:  # "her weakness progressed"
        return max(preceding, key=lambda x: x.end).category == "NON_TUMOUR"
    kinds = {x.category for x in sentence}
    return "NON_TUMOUR" in kinds and not kinds & _TUMOUR_FINDINGS and not any(x.tumour_context for x in sentence)


def explained_otherwise(m: Mention, sentence: list[Mention]) -> bool:
    """A lesion the sentence attributes to a non-tumour cause ("new T2 signal, suggesting transependymal flow").

    The attribution is a hedge (consistent with, suggesting, likely, may represent) on a non-tumour
    finding of the same sentence, with no tumour word given as the explanation.
    """
    if m.category != "LESION":
        return False
    hedged = _HEDGES
    non_tumour = any(x.category == "NON_TUMOUR" and set(x.modifiers) & hedged for x in sentence)
    tumour = any((x.tumour_context or x.category in ("PROGRESSION", "TREATMENT_EFFECT")) and set(x.modifiers) & hedged
                 for x in sentence)
    return non_tumour and not tumour


def has_tumour_context(facts: ReportFacts, assessed_sections: tuple[str, ...]) -> bool:
    """Whether the report shows that the person has a brain tumour.

    Shown outright by a tumour, glioma or resection-cavity finding (history included) that is asserted, or
    by a word that presupposes a treated tumour even when negated or hedged ("no recurrent tumour",
    "tumour progression cannot be excluded", "pseudoprogression"). A terse follow-up report names no
    tumour ("Interval decrease of the enhancing component.", "Stable post-treatment changes."): there an
    asserted enhancing lesion, treated site or tumour assessment in an assessed section counts, unless the
    report names another disease (demyelination, abscess, infarct, PML, a head-and-neck cancer ...).
    Generic words alone ("progression of her disease", "new T2 lesions", "radiation necrosis") never count.
    """
    # In a report about a lung, breast ... cancer, "tumour" may be that cancer: only brain words count.
    other_cancer = any(m.extracranial_cancer and not set(m.modifiers) & _NOT_CONTEXT for m in facts.mentions)
    for m in facts.mentions:
        mods = set(m.modifiers)
        if other_cancer and m.generic_tumour:
            continue
        if m.tumour_context and (not mods & _NOT_CONTEXT or (m.category in _PRESUPPOSING and not mods & _NOT_SAID)):
            return True
    if any(m.diagnosis and not set(m.modifiers) & _NOT_CONTEXT for m in facts.mentions):
        return False
    return any(m.section in assessed_sections and strength(m) > 0
               and ((m.category == "LESION" and m.enhancing) or m.category == "POSTTREATMENT" or m.treated_site)
               for m in facts.mentions)
