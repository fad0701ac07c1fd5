"""Synthetic radiology reports rendered from the true course, as several radiologists would write them.

Each brain MRI of the course gets one report; unrelated studies (chest CT, chest radiographs,
CT abdomen, spine MRI, venous duplex, head CT) are interleaved, as in a real radiology feed where
brain MRIs are a minority of a GBM patient's reports. The wording follows the scan's true label
through a reader-error model: most reports say what an ideal reader would, some under- or
over-call, and errors cluster where real readers struggle (pseudoprogression, the first scans of
a progression, growth still below the RANO threshold). Phrase material lives in
``pfs/rules/synth_report_phrases.json``; this module only decides what to say and how to lay it out.

Parameters and what they reflect:

==============================  ======  ===================================================================
parameter                       value   reflects
==============================  ======  ===================================================================
UNRELATED_PER_MRI               1.8     reference study: 2080 reports for 743 brain MRIs ((2080-743)/743)
BASE_ERROR                      0.04    routine stable/improved scans: readers rarely disagree (kappa ~0.8)
CONFUSING_ERROR                 0.22    pseudoprogression, indeterminate growth, the first progression scan
                                        (Rowe 2018: 43 % of early enlargements are not tumour; BT-RADS 3a-3c)
GROWING_ERROR                   0.15    tumour already regrowing but still below the RANO threshold: some
                                        readers call progression early (the reference study's NLP early calls)
SECOND_PROGRESSION_ERROR        0.10    the confirming scan is usually called, sometimes still hedged
LATE_PROGRESSION_ERROR          0.01    established, growing recurrence is rarely missed
CHANGING_ADDENDUM               0.03    addenda that revise the impression (perfusion, tumour board)
NEUTRAL_ADDENDUM                0.05    addenda that do not (communication, typo fixes)
SIGNED_NEXT_DAY                 0.12    report signed the day after the scan
GENERIC_PROCEDURE               0.07    brain MRI ordered under a blank or generic procedure name
MAX_RENDERED_ML                 180     measurements are clamped to what fits in a hemisphere
EXTENT_FACTOR                   1.4     a ring-enhancing lesion's extent includes its necrotic core
==============================  ======  ===================================================================

Every reader also has a personal ``error_factor`` and ``hedge`` (preference for "indeterminate")
in the phrase file, so the cohort holds cautious and decisive readers, with and without BT-RADS.
"""

from __future__ import annotations

import json
import math
import re
import string
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from pfs.exceptions import RuleFileError
from pfs.synth.course import PatientCourse, Scan, patient_rng
from pfs.vocab import ReportLabel

UNRELATED_PER_MRI = 1.8
BASE_ERROR = 0.04
CONFUSING_ERROR = 0.22
GROWING_ERROR = 0.15
SECOND_PROGRESSION_ERROR = 0.10
LATE_PROGRESSION_ERROR = 0.01
CHANGING_ADDENDUM = 0.03
NEUTRAL_ADDENDUM = 0.05
SIGNED_NEXT_DAY = 0.12
GENERIC_PROCEDURE = 0.07
MAX_RENDERED_ML = 180.0
EXTENT_FACTOR = 1.4
#: Random stream of :func:`pfs.synth.course.patient_rng` reserved for reports.
STREAM = 20
#: Within this many days of the end of RT, readers reach for "treatment effect" (RANO's 12 weeks, plus slack).
EARLY_POST_RT_DAYS = 180

_L = ReportLabel
#: Which wrong label a reader writes, given the true one (weights; adjusted per scan in :func:`_confusion`).
CONFUSIONS: dict[ReportLabel, dict[ReportLabel, float]] = {
    _L.PROGRESSION: {_L.INDETERMINATE: 0.5, _L.TREATMENT_EFFECT: 0.3, _L.STABLE: 0.2},
    _L.STABLE: {_L.INDETERMINATE: 0.45, _L.PROGRESSION: 0.2, _L.IMPROVED: 0.25, _L.TREATMENT_EFFECT: 0.1},
    _L.IMPROVED: {_L.STABLE: 0.75, _L.INDETERMINATE: 0.15, _L.TREATMENT_EFFECT: 0.1},
    _L.TREATMENT_EFFECT: {_L.PROGRESSION: 0.4, _L.INDETERMINATE: 0.45, _L.STABLE: 0.15},
    _L.INDETERMINATE: {_L.PROGRESSION: 0.35, _L.TREATMENT_EFFECT: 0.3, _L.STABLE: 0.35},
}

REPORT_COLUMNS = ["patient_id", "report_id", "report_date", "procedure", "text"]
TRUTH_COLUMNS = ["report_id", "patient_id", "report_date", "study_id", "true_label", "written_label",
                 "bt_rads"]

_PHRASE_FILE = "synth_report_phrases.json"
_FIELDS = frozenset({
    "side", "Side", "contra", "lobe", "location", "margin", "distant_location", "size", "size3", "prior_size",
    "distant_size", "volume", "prior_volume", "prior_date", "preop_date", "surgery_date", "rt_end_date",
    "report_date", "doctor", "clinician", "agent", "months_post_rt", "mls", "age", "sex", "sequences",
    "prog_date",
})
_TOP_KEYS = frozenset({
    "_source", "radiologists", "procedures", "patient", "history", "technique", "comparison", "findings",
    "impression", "bt_rads", "addendum", "signature", "abbreviations", "typos", "unrelated",
})
_RADIOLOGIST_KEYS = frozenset({
    "name", "weight", "sections", "header_case", "numbered", "subheadings", "bt_rads", "date_format", "unit",
    "measure_rate", "volume_rate", "abbrev_rate", "typo_rate", "error_factor", "hedge", "addendum_top",
})
_UNRELATED_KEYS = frozenset({
    "weight", "modality", "procedures", "indications", "technique", "normal", "variants"})
_DATE_FORMATS = ("us", "us_short", "iso", "long", "day_month")
_DIRECTIONS = ("increased", "slightly_increased", "unchanged", "decreased", "minimal", "resolved")
_ASSESSED = (_L.PROGRESSION, _L.STABLE, _L.IMPROVED, _L.TREATMENT_EFFECT, _L.INDETERMINATE)


@dataclass(frozen=True)
class Radiologist:
    """One reader's habits: layout, measurements, abbreviations, typos, BT-RADS, and how often they err."""

    index: int
    name: str
    weight: float
    sections: bool
    header_case: str
    numbered: bool
    subheadings: bool
    bt_rads: str | None
    date_format: str
    unit: str
    measure_rate: float
    volume_rate: float
    abbrev_rate: float
    typo_rate: float
    error_factor: float
    hedge: float
    addendum_top: bool

    def day(self, d: date) -> str:
        """A date as this reader types it."""
        if self.date_format == "us":
            return f"{d:%m/%d/%Y}"
        if self.date_format == "us_short":
            return f"{d.month}/{d.day}/{d:%y}"
        if self.date_format == "long":
            return f"{d:%B} {d.day}, {d.year}"
        if self.date_format == "day_month":
            return f"{d:%d %b %Y}"
        return d.isoformat()

    def header(self, word: str) -> str:
        return f"{word.upper()}:" if self.header_case == "upper" else f"{word.title()}:"


# --------------------------------------------------------------------------------------------- phrase file

def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    if isinstance(node, dict):
        return [s for key, item in node.items() if key != "_source" for s in _strings(item)]
    return []


def _expect_keys(where: str, node: Any, keys: frozenset[str] | set[str], *, exact: bool = True) -> None:
    if not isinstance(node, dict):
        raise RuleFileError(f"{_PHRASE_FILE}: {where} must be an object, not {type(node).__name__}")
    unknown = set(node) - set(keys)
    missing = set(keys) - set(node)
    if unknown:
        raise RuleFileError(f"{_PHRASE_FILE}: unknown key(s) {sorted(unknown)} in {where}; "
                            f"allowed: {sorted(keys)}")
    if exact and missing:
        raise RuleFileError(f"{_PHRASE_FILE}: missing key(s) {sorted(missing)} in {where}")


def validate_phrases(data: Any) -> None:
    """Reject a phrase file with unknown or missing keys, bad reader profiles or unknown placeholders.

    Raises:
        RuleFileError: naming the first problem found.
    """
    _expect_keys("the top level", data, _TOP_KEYS)
    if not data["radiologists"]:
        raise RuleFileError(f"{_PHRASE_FILE}: 'radiologists' must list at least one reader")
    for i, rad in enumerate(data["radiologists"]):
        _expect_keys(f"radiologists[{i}]", rad, _RADIOLOGIST_KEYS)
        if rad["date_format"] not in _DATE_FORMATS:
            raise RuleFileError(f"{_PHRASE_FILE}: radiologists[{i}].date_format is {rad['date_format']!r}; "
                                f"use one of {list(_DATE_FORMATS)}")
        if rad["unit"] not in ("cm", "mm") or rad["header_case"] not in ("upper", "title"):
            raise RuleFileError(f"{_PHRASE_FILE}: radiologists[{i}] needs unit cm|mm "
                                "and header_case upper|title")
        for key in ("measure_rate", "volume_rate", "abbrev_rate", "typo_rate"):
            if not 0.0 <= float(rad[key]) <= 1.0:
                raise RuleFileError(f"{_PHRASE_FILE}: radiologists[{i}].{key} must be in [0, 1], "
                                    f"not {rad[key]}")
        if rad["bt_rads"] is not None and "{score}" not in rad["bt_rads"]:
            raise RuleFileError(f"{_PHRASE_FILE}: radiologists[{i}].bt_rads must contain '{{score}}'")
    _expect_keys("procedures", data["procedures"], {"brain_mri", "generic", "headings"})
    _expect_keys("history", data["history"], {"postop", "post_rt", "follow_up", "after_progression"})
    _expect_keys("comparison", data["comparison"], {"postop", "follow_up"})
    findings = data["findings"]
    _expect_keys("findings", findings, {
        "postop_cavity", "postop_residual", "postop_no_residual", "postop_dwi", "postop_flair", "enhancement",
        "enhancement_nosize", "volume", "flair", "mass_effect", "distant", "treatment_pattern", "routine",
        "incidental", "history_mentions"})
    for key in ("enhancement", "enhancement_nosize"):
        _expect_keys(f"findings.{key}", findings[key], set(_DIRECTIONS))
    _expect_keys("findings.flair", findings["flair"], {"increased", "unchanged", "decreased"})
    _expect_keys("findings.distant", findings["distant"], {"new", "known", "subtle"})
    for i, item in enumerate(findings["incidental"]):
        _expect_keys(f"findings.incidental[{i}]", item, {"finding", "impression"})
    impression = data["impression"]
    _expect_keys("impression", impression, {
        *(label.value for label in _ASSESSED), "no_assessment", "postop_residual", "postop_no_residual",
        "no_new_lesion", "recommend", "surveillance", "conclusion_lead"})
    _expect_keys("impression.progression", impression["progression"],
                 {"local", "distant", "continued", "continued_distant", "hedged"})
    _expect_keys("bt_rads", data["bt_rads"], {
        "progression", "progression_hedged", "stable", "improved", "improved_medication", "treatment_effect",
        "indeterminate", "no_assessment"})
    _expect_keys("addendum", data["addendum"], {"headers", "neutral", "change", "change_lead"})
    _expect_keys("addendum.change", data["addendum"]["change"], {label.value for label in _ASSESSED})
    for i, pair in enumerate(data["abbreviations"]):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, str) and s for s in pair)):
            raise RuleFileError(f"{_PHRASE_FILE}: abbreviations[{i}] must be a [long, short] pair, "
                                f"not {pair!r}")
    for kind, spec in data["unrelated"].items():
        _expect_keys(f"unrelated.{kind}", spec, _UNRELATED_KEYS)
        for j, variant in enumerate(spec["variants"]):
            _expect_keys(f"unrelated.{kind}.variants[{j}]", variant, {"findings", "impression"})
    templates = {k: v for k, v in data.items() if k not in ("radiologists", "typos", "abbreviations")}
    for text in _strings(templates):
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
        except ValueError as err:
            raise RuleFileError(f"{_PHRASE_FILE}: malformed placeholder in {text[:60]!r}") from err
        unknown = names - _FIELDS
        if unknown:
            raise RuleFileError(f"{_PHRASE_FILE}: unknown placeholder(s) {sorted(unknown)} in {text[:60]!r}; "
                                f"allowed: {sorted(_FIELDS)}")


@cache
def load_phrases() -> dict[str, Any]:
    """The shipped phrase file, validated once per process (it never changes while running)."""
    text = resources.files("pfs.rules").joinpath(_PHRASE_FILE).read_text(encoding="utf-8")
    data = json.loads(text)
    validate_phrases(data)
    return data


def radiologists(phrases: dict[str, Any]) -> list[Radiologist]:
    return [Radiologist(index=i, **{**r, "weight": float(r["weight"])})
            for i, r in enumerate(phrases["radiologists"])]


# ------------------------------------------------------------------------------------------------ helpers

def _pick(rng: np.random.Generator, items: list[Any] | tuple[Any, ...]) -> Any:
    return items[int(rng.integers(len(items)))]


def _weighted(rng: np.random.Generator, weights: dict[Any, float]) -> Any:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _decap(text: str) -> str:
    """Lower-case a sentence start after "Overall, " unless it is an acronym (GBM, FLAIR)."""
    return text[:1].lower() + text[1:] if len(text) > 1 and text[1].islower() else text


@dataclass(frozen=True)
class _Shape:
    r1: float
    r2: float

    def dims_cm(self, volume_ml: float, rng: np.random.Generator) -> tuple[float, float, float]:
        """Ellipsoid diameters whose volume is the lesion's extent; a reader's calliper jitter of ~5 %."""
        v = max(min(volume_ml, MAX_RENDERED_ML), 0.004) * EXTENT_FACTOR
        a = (6.0 * v / (math.pi * self.r1 * self.r2)) ** (1.0 / 3.0)
        jitter = 1.0 + 0.05 * float(np.clip(rng.normal(), -2.0, 2.0))
        return max(a * jitter, 0.2), max(a * self.r1 * jitter, 0.2), max(a * self.r2 * jitter, 0.2)


def _size_text(dims: tuple[float, float, float], unit: str, three: bool = False) -> str:
    values = dims if three else dims[:2]
    if unit == "mm":
        return " x ".join(str(max(2, round(x * 10))) for x in values) + " mm"
    return " x ".join(f"{x:.1f}" for x in values) + " cm"


def _direction(vol: float, prev: float) -> str:
    if vol < 0.3 and prev < 0.3:
        return "minimal"
    if vol < 0.3:
        return "resolved"
    if vol > prev * 1.2 and vol - prev > 0.2:
        return "slightly_increased" if vol < prev * 1.4 else "increased"
    if vol < prev * 0.8 and prev - vol > 0.2:
        return "decreased"
    return "unchanged"


def _described_direction(truth: str, label: ReportLabel) -> str:
    """What the reader says the enhancement did: the measured direction, bent towards their conclusion."""
    if label == _L.STABLE:
        return "minimal" if truth == "minimal" else "unchanged"
    if label == _L.IMPROVED:
        if truth in ("decreased", "resolved", "minimal"):
            return truth
        return "decreased"
    if label in (_L.PROGRESSION, _L.INDETERMINATE, _L.TREATMENT_EFFECT):
        return truth if truth in ("increased", "slightly_increased") else "slightly_increased"
    return truth


def _apply_abbreviations(text: str, pairs: list[list[str]], rate: float, rng: np.random.Generator) -> str:
    if rate <= 0:
        return text
    for long, short in pairs:
        pattern = re.compile(r"\b" + re.escape(long) + r"\b")
        text = pattern.sub(lambda m, s=short: s if rng.random() < rate else m.group(0), text)
    return text


def _apply_typos(text: str, typos: dict[str, list[str]], rate: float, rng: np.random.Generator) -> str:
    if rng.random() >= rate:
        return text
    n = 1 if rng.random() < 0.7 else 2
    for _ in range(n):
        present = [w for w in sorted(typos) if re.search(r"\b" + w + r"\b", text)]
        if not present:
            break
        word = _pick(rng, present)
        hits = list(re.finditer(r"\b" + word + r"\b", text))
        hit = _pick(rng, hits)
        text = text[:hit.start()] + _pick(rng, typos[word]) + text[hit.end():]
    return text


@dataclass(frozen=True)
class _Patient:
    """What stays fixed across one patient's reports: the tumour's site and shape, age, sex, drugs."""

    side: str
    contra: str
    lobe: str
    margin: str
    distant_location: str
    age: int
    sex: str
    shape: _Shape
    adjuvant: str
    salvage: str
    clinician: str
    reader: int


def _patient(rng: np.random.Generator, phrases: dict[str, Any], n_readers: int) -> _Patient:
    p = phrases["patient"]
    side = _pick(rng, ["left", "right"])
    contra = "right" if side == "left" else "left"
    return _Patient(
        side=side,
        contra=contra,
        lobe=_pick(rng, p["lobes"]),
        margin=_pick(rng, p["margins"]),
        distant_location=_pick(rng, p["distant_locations"]).format(side=side, contra=contra),
        age=int(rng.integers(38, 82)),
        sex=_pick(rng, ["man", "woman", "male", "female"]),
        shape=_Shape(float(rng.uniform(0.6, 0.95)), float(rng.uniform(0.55, 1.0))),
        adjuvant=_pick(rng, p["adjuvant"]),
        salvage=_pick(rng, p["salvage"]),
        clinician=_pick(rng, p["clinicians"]),
        reader=int(rng.integers(n_readers)),
    )


# ---------------------------------------------------------------------------------------- reader errors

def _error_probability(course: PatientCourse, k: int, first_prog: int | None, rad: Radiologist) -> float:
    scan = course.scans[k]
    if scan.phase == "postop":
        return 0.0
    growing = course.true_progression_date is not None and scan.date > course.true_progression_date
    if scan.pseudo or scan.label == _L.INDETERMINATE or (first_prog is not None and k == first_prog):
        p = CONFUSING_ERROR
    elif growing and scan.label != _L.PROGRESSION:
        p = GROWING_ERROR
    elif first_prog is not None and k == first_prog + 1:
        p = SECOND_PROGRESSION_ERROR
    elif first_prog is not None and k > first_prog + 1:
        p = LATE_PROGRESSION_ERROR
    else:
        p = BASE_ERROR
    return min(0.9, p * rad.error_factor)


def _confusion(true: ReportLabel, scan: Scan, prev_local: float, course: PatientCourse,
               rad: Radiologist) -> dict[ReportLabel, float]:
    weights = dict(CONFUSIONS[true])
    early = (scan.date - course.rt_end_date).days <= EARLY_POST_RT_DAYS
    if _L.TREATMENT_EFFECT in weights and not early:
        weights[_L.TREATMENT_EFFECT] *= 0.25
    local = scan.et_volume_ml - scan.distant_lesion_ml
    if true == _L.PROGRESSION and scan.distant_lesion_ml >= 0.5:
        return {}  # a clear separate enhancing lesion is not missed
    if true == _L.PROGRESSION and local > max(prev_local, 0.3) * 1.6:
        weights.pop(_L.STABLE, None)  # obvious growth is not read as stable
    if _L.INDETERMINATE in weights:
        weights[_L.INDETERMINATE] *= rad.hedge
    return weights


# ------------------------------------------------------------------------------------------ layout

def _layout(rad: Radiologist, rng: np.random.Generator, *, heading: str | None, history: str, technique: str,
            comparison: str, findings: list[tuple[str, str]], impression: list[str], bt_line: str | None,
            lead: str) -> str:
    """Lay one report out in this reader's style: sectioned, or one dictated paragraph."""
    if rad.sections:
        blocks = [heading] if heading else []
        history_header = ("CLINICAL HISTORY", "INDICATION", "HISTORY", "CLINICAL INDICATION")[rad.index % 4]
        blocks.append(f"{rad.header(history_header)} {history}")
        blocks.append(f"{rad.header('technique')} {technique}")
        blocks.append(f"{rad.header('comparison')} {comparison}")
        if rad.subheadings:
            groups: dict[str, list[str]] = {}
            for group, sentence in findings:
                groups.setdefault(group, []).append(sentence)
            body = "\n".join(f"{group}: {' '.join(s)}" if group else " ".join(s)
                             for group, s in groups.items())
        else:
            body = " ".join(sentence for _, sentence in findings)
        blocks.append(f"{rad.header('findings')}\n{body}")
        if rad.numbered:
            items = "\n".join(f"{i}. {item}" for i, item in enumerate(impression, 1))
        else:
            items = " ".join(impression)
        impression_block = f"{rad.header('impression')}\n{items}"
        if bt_line:
            impression_block += f"\n{bt_line}"
        blocks.append(impression_block)
        return "\n\n".join(blocks)
    # One dictated paragraph: no headers; the conclusion closes the paragraph.
    parts = [f"{heading}." if heading else "", history, f"Comparison: {comparison}", technique,
             " ".join(sentence for _, sentence in findings)]
    conclusion = " ".join(impression)
    conclusion = lead + (_decap(conclusion) if lead.endswith(", ") else conclusion)
    if bt_line:
        conclusion += f" {bt_line}"
    parts.append(conclusion)
    text = " ".join(p for p in parts if p)
    return text.replace(".. ", ". ")


def _finish(text: str, rad: Radiologist, rng: np.random.Generator, phrases: dict[str, Any],
            addendum: str | None, signature: str) -> str:
    text = _apply_abbreviations(text, phrases["abbreviations"], rad.abbrev_rate, rng)
    text = _apply_typos(text, phrases["typos"], rad.typo_rate, rng)
    if addendum:
        text = f"{addendum}\n\n{text}" if rad.addendum_top else f"{text}\n\n{addendum}"
    return f"{text}\n\n{signature}"


# ------------------------------------------------------------------------------------------- brain MRI

@dataclass(frozen=True)
class _Written:
    text: str
    procedure: str
    written: ReportLabel
    bt_rads: str


def _bt_score(label: ReportLabel, hedged: bool, rng: np.random.Generator, phrases: dict[str, Any]) -> str:
    table = phrases["bt_rads"]
    if label == _L.PROGRESSION:
        return table["progression_hedged" if hedged else "progression"]
    if label == _L.IMPROVED and rng.random() < 0.15:
        return table["improved_medication"]
    return table[label.value]


def _brain_report(course: PatientCourse, k: int, pat: _Patient, rad: Radiologist, written: ReportLabel,
                  draft: ReportLabel, report_day: date, prog_written_on: date | None, change_addendum: bool,
                  rng: np.random.Generator, phrases: dict[str, Any]) -> _Written:
    scan = course.scans[k]
    f, imp = phrases["findings"], phrases["impression"]
    prev = course.scans[k - 1] if k > 0 else None
    local = max(scan.et_volume_ml - scan.distant_lesion_ml, 0.0)
    prev_local = max(prev.et_volume_ml - prev.distant_lesion_ml, 0.0) if prev else local
    dims = pat.shape.dims_cm(local, rng)
    prior_dims = pat.shape.dims_cm(prev_local, rng)
    months = max(1, round((scan.date - course.rt_end_date).days / 30.4))
    ctx: dict[str, Any] = {
        "side": pat.side, "Side": _cap(pat.side), "contra": pat.contra, "lobe": pat.lobe,
        "location": f"{pat.side} {pat.lobe}", "margin": pat.margin, "distant_location": pat.distant_location,
        "size": _size_text(dims, rad.unit), "size3": _size_text(dims, rad.unit, three=True),
        "prior_size": _size_text(prior_dims, rad.unit),
        "distant_size": _size_text(pat.shape.dims_cm(scan.distant_lesion_ml, rng), rad.unit),
        "volume": f"{min(local, MAX_RENDERED_ML):.1f}",
        "prior_volume": f"{min(prev_local, MAX_RENDERED_ML):.1f}",
        "prior_date": rad.day(prev.date) if prev else rad.day(course.diagnosis_date),
        "preop_date": rad.day(course.diagnosis_date), "surgery_date": rad.day(course.surgery_date),
        "rt_end_date": rad.day(course.rt_end_date), "report_date": rad.day(report_day), "doctor": rad.name,
        "clinician": pat.clinician,
        "agent": pat.salvage if prog_written_on else pat.adjuvant,
        "months_post_rt": f"{months} month{'s' if months > 1 else ''}",
        "mls": max(2, min(15, round((scan.flair_volume_ml - 40.0) / 12.0))),
        "age": pat.age + (scan.date - course.diagnosis_date).days // 365, "sex": pat.sex,
        "sequences": ("sagittal T1, axial T1 pre-contrast, " if scan.has_t1 else "sagittal T1, ")
                     + "axial T2, FLAIR, DWI, SWI and post-contrast 3D T1",
        "prog_date": rad.day(prog_written_on) if prog_written_on else "",
    }

    def say(template: str) -> str:
        return template.format_map(ctx)

    def choose(items: list[str]) -> str:
        return say(_pick(rng, items))

    procedure = _pick(rng, phrases["procedures"]["brain_mri"])
    heading = None
    if rng.random() < GENERIC_PROCEDURE:
        procedure = _pick(rng, phrases["procedures"]["generic"])
        heading = _pick(rng, phrases["procedures"]["headings"])  # only the text says it is the brain
    elif rng.random() < 0.3 or not rad.sections:  # dictation opens by naming the exam
        heading = _pick(rng, phrases["procedures"]["headings"])

    findings: list[tuple[str, str]] = []
    impression: list[str] = []
    incidentals = [phrases["findings"]["incidental"][i] for i in
                   rng.choice(len(f["incidental"]), size=int(rng.choice([0, 1, 1, 2])), replace=False)]
    measures = rng.random() < rad.measure_rate
    hedged = False
    if scan.phase == "postop":
        history = choose(phrases["history"]["postop"])
        comparison = choose(phrases["comparison"]["postop"])
        findings.append(("Postoperative", choose(f["postop_cavity"])))
        residual = local >= 0.3
        findings.append(("Enhancement", choose(f["postop_residual" if residual else "postop_no_residual"])))
        findings.append(("Diffusion", choose(f["postop_dwi"])))
        findings.append(("FLAIR", choose(f["postop_flair"])))
        impression.append(choose(imp["no_assessment"]))
        impression.append(choose(imp["postop_residual"] if residual else imp["postop_no_residual"]))
    else:
        if prog_written_on:
            history = choose(phrases["history"]["after_progression"])
        else:
            history = choose(phrases["history"][scan.phase])
        comparison = choose(phrases["comparison"]["follow_up"])
        if rng.random() < 0.3:
            findings.append(("Other", choose(f["history_mentions"])))
        direction = _direction(local, prev_local)
        # A new distant lesion carries the progression; the cavity is described as it is.
        if not (draft == _L.PROGRESSION and scan.distant_lesion_ml > 0.05):
            direction = _described_direction(direction, draft)
        bank = f["enhancement"] if measures else f["enhancement_nosize"]
        findings.append(("Enhancement", choose(bank[direction])))
        if measures and rng.random() < rad.volume_rate and direction not in ("minimal", "resolved"):
            findings.append(("Enhancement", choose(f["volume"])))
        if scan.distant_lesion_ml > 0:
            prev_distant = prev.distant_lesion_ml if prev else 0.0
            if draft != _L.PROGRESSION and scan.distant_lesion_ml < 0.5:
                findings.append(("Enhancement", choose(f["distant"]["subtle"])))
            else:
                known = "new" if prev_distant == 0 else "known"
                findings.append(("Enhancement", choose(f["distant"][known])))
        if draft == _L.TREATMENT_EFFECT:
            findings.append(("Enhancement", choose(f["treatment_pattern"])))
        ratio = scan.flair_volume_ml / max(prev.flair_volume_ml if prev else scan.flair_volume_ml, 1e-6)
        flair = "increased" if ratio > 1.15 else ("decreased" if ratio < 0.87 else "unchanged")
        findings.append(("FLAIR", choose(f["flair"][flair])))
        # Impression: the conclusion this reader reached (before any addendum revises it).
        if draft == _L.PROGRESSION:
            if scan.distant_lesion_ml > 0.05:
                key = "continued_distant" if prog_written_on else "distant"
            elif prog_written_on:
                key = "continued"
            else:
                hedged = rng.random() < 0.4
                key = "hedged" if hedged else "local"
            impression.append(choose(imp["progression"][key]))
        else:
            impression.append(choose(imp[draft.value]))
        if scan.distant_lesion_ml == 0 and rng.random() < 0.6:
            impression.append(choose(imp["no_new_lesion"]))
        if draft in (_L.INDETERMINATE, _L.TREATMENT_EFFECT) and rng.random() < 0.7:
            impression.append(choose(imp["recommend"]))
        elif draft in (_L.STABLE, _L.IMPROVED) and rng.random() < 0.25:
            impression.append(choose(imp["surveillance"]))
    mass = "present" if scan.flair_volume_ml > 64 else "absent"
    findings.append(("Other", choose(f["mass_effect"][mass])))
    routine = f["routine"]
    for i in sorted(rng.choice(len(routine), size=int(rng.integers(3, 7)), replace=False)):
        findings.append(("Other", say(routine[int(i)])))
    for item in incidentals:
        findings.append(("Other", say(item["finding"])))
        if rng.random() < 0.6:
            impression.append(say(item["impression"]))

    score = draft_score = ""
    bt_line = None
    if rad.bt_rads and rng.random() < 0.9:
        draft_score = _bt_score(draft, hedged, rng, phrases)
        score = draft_score if draft == written else _bt_score(written, False, rng, phrases)
        if rad.bt_rads.startswith("("):
            impression[0] = f"{impression[0]} {rad.bt_rads.format(score=draft_score)}"
        else:
            bt_line = rad.bt_rads.format(score=draft_score)
    text = _layout(rad, rng, heading=heading, history=history, technique=choose(phrases["technique"]),
                   comparison=comparison, findings=findings, impression=impression, bt_line=bt_line,
                   lead=_pick(rng, imp["conclusion_lead"]))
    addendum = None
    add = phrases["addendum"]
    if change_addendum:
        lead = _pick(rng, add["change_lead"])
        body = " ".join(p for p in [lead, choose(add["change"][written.value])] if p)
        if score:
            body += " " + rad.bt_rads.format(score=score).strip("()")  # type: ignore[union-attr]
        addendum = f"{say(_pick(rng, add['headers']))}\n{body}"
    elif scan.phase != "postop" and rng.random() < NEUTRAL_ADDENDUM:
        addendum = f"{say(_pick(rng, add['headers']))}\n{choose(add['neutral'])}"
    text = _finish(text, rad, rng, phrases, addendum, choose(phrases["signature"]))
    return _Written(text=text, procedure=procedure, written=written, bt_rads=score)


# -------------------------------------------------------------------------------------------- unrelated

def _unrelated_report(kind: str, spec: dict[str, Any], course: PatientCourse, pat: _Patient, rad: Radiologist,
                      day: date, rng: np.random.Generator, phrases: dict[str, Any]) -> tuple[str, str]:
    side = _pick(rng, ["left", "right"])
    ctx: dict[str, Any] = {
        "side": side, "Side": _cap(side), "contra": pat.contra, "lobe": pat.lobe,
        "location": f"{pat.side} {pat.lobe}",
        "prior_date": rad.day(day - timedelta(days=int(rng.integers(20, 200)))),
        "report_date": rad.day(day), "doctor": rad.name, "clinician": pat.clinician, "age": pat.age,
        "sex": pat.sex, "mls": int(rng.integers(3, 8)),
        "agent": pat.adjuvant,
    }
    if kind == "head_ct":
        ctx["side"], ctx["Side"] = pat.side, _cap(pat.side)  # a head CT sees the operated side

    def choose(items: list[str]) -> str:
        return _pick(rng, items).format_map(ctx)

    variants = spec["variants"]
    variant = variants[0] if rng.random() < 0.45 else _pick(rng, variants)
    normal = [s.format_map(ctx) for s in spec["normal"]]
    keep = [s for s in normal if rng.random() < 0.9] or normal[:1]
    findings = [("", variant["findings"].format_map(ctx))] if variant["findings"] else []
    findings += [("", s) for s in keep]
    impression = [s.format_map(ctx) for s in variant["impression"]]
    procedure = _pick(rng, spec["procedures"])
    cites_prior = "{prior_date}" in variant["findings"] + " ".join(variant["impression"])
    comparison = ctx["prior_date"] + "." if cites_prior or rng.random() < 0.6 else "None."
    heading = procedure if rad.sections else f"{spec['modality']} ({procedure})"
    text = _layout(rad, rng, heading=heading, history=choose(spec["indications"]),
                   technique=choose(spec["technique"]), comparison=comparison, findings=findings,
                   impression=impression, bt_line=None,
                   lead=_pick(rng, phrases["impression"]["conclusion_lead"]))
    text = _finish(text, rad, rng, phrases, None, choose(phrases["signature"]))
    return procedure, text


# -------------------------------------------------------------------------------------------- the cohort

def _patient_reports(course: PatientCourse, seed: int, phrases: dict[str, Any],
                     readers: list[Radiologist]) -> list[dict[str, Any]]:
    rng = patient_rng(seed, course.index, STREAM)
    pat = _patient(rng, phrases, len(readers))
    reader_weights = {r.index: r.weight for r in readers}
    first_prog = next((k for k, s in enumerate(course.scans) if s.label == _L.PROGRESSION), None)
    rows: list[dict[str, Any]] = []
    prog_written_on: date | None = None
    for k, scan in enumerate(course.scans):
        rad = readers[pat.reader] if rng.random() < 0.55 else readers[_weighted(rng, reader_weights)]
        true = ReportLabel(scan.label)
        written = true
        if true in CONFUSIONS and rng.random() < _error_probability(course, k, first_prog, rad):
            prev = course.scans[k - 1] if k else scan
            weights = _confusion(true, scan, prev.et_volume_ml - prev.distant_lesion_ml, course, rad)
            written = _weighted(rng, weights) if weights else true
        draft = written
        if written in _ASSESSED and rng.random() < CHANGING_ADDENDUM:
            weights = _confusion(written, scan, scan.et_volume_ml, course, rad)
            draft = _weighted(rng, weights) if weights else written
        change = draft != written
        day = scan.date + timedelta(days=1 if rng.random() < SIGNED_NEXT_DAY else 0)
        out = _brain_report(course, k, pat, rad, written, draft, day, prog_written_on, change, rng, phrases)
        if written == _L.PROGRESSION and prog_written_on is None:
            prog_written_on = scan.date
        rows.append({"patient_id": course.patient_id, "report_date": day, "order": (scan.date, 0, k),
                     "procedure": out.procedure, "text": out.text, "study_id": scan.study_id,
                     "true_label": true.value, "written_label": out.written.value, "bt_rads": out.bt_rads})
    kinds = phrases["unrelated"]
    kind_weights = {kind: float(spec["weight"]) for kind, spec in kinds.items()}
    start = course.diagnosis_date - timedelta(days=14)
    end = course.death_date or course.last_followup_date
    span = max((end - start).days, 1)
    for j in range(int(rng.poisson(UNRELATED_PER_MRI * len(course.scans)))):
        kind = _weighted(rng, kind_weights)
        if kind == "head_ct" and rng.random() < 0.35:
            day = course.surgery_date + timedelta(days=int(rng.integers(0, 2)))  # the post-operative CT
        else:
            day = start + timedelta(days=int(rng.integers(span + 1)))
        rad = readers[_weighted(rng, reader_weights)]
        procedure, text = _unrelated_report(kind, kinds[kind], course, pat, rad, day, rng, phrases)
        rows.append({"patient_id": course.patient_id, "report_date": day, "order": (day, 1, j),
                     "procedure": procedure, "text": text, "study_id": "",
                     "true_label": _L.NOT_APPLICABLE.value, "written_label": _L.NOT_APPLICABLE.value,
                     "bt_rads": ""})
    return rows


def generate(courses: list[PatientCourse], seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Render every patient's reports; the same (courses, seed) always gives identical frames.

    Returns:
        ``(reports, truth)``: rows in the native ``reports`` layout (dates as ISO strings), and per
        report the study it describes (blank for non-brain-MRI), the label an ideal reader would give
        (``true_label``), the label this reader wrote after any addendum (``written_label``) and the
        BT-RADS score written (blank when none).
    """
    phrases = load_phrases()
    readers = radiologists(phrases)
    rows = [row for course in courses for row in _patient_reports(course, seed, phrases, readers)]
    rows.sort(key=lambda r: (r["patient_id"], r["report_date"], r["order"]))
    for i, row in enumerate(rows, 1):
        row["report_id"] = f"R{i:06d}"
        row["report_date"] = row["report_date"].isoformat()
    frame = pd.DataFrame(rows, columns=[*REPORT_COLUMNS, *TRUTH_COLUMNS[3:]])
    reports = frame[REPORT_COLUMNS].reset_index(drop=True)
    truth = frame[TRUTH_COLUMNS].reset_index(drop=True)
    return reports, truth
