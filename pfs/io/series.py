"""Which MR series is which: T1, T1C, T2, FLAIR or another kind, from what real exports carry.

Exports name series the way the scanner operator did (DICOM SeriesDescription): Siemens
``t1_mprage_sag_p2_iso_post``, GE ``3D BRAVO +C``, Philips ``T1W_3D_TFE +GD``, or BraTS ``t1ce``.
The classifier reads the description with the patterns of ``pfs/rules/series.json`` (each with its
reason) and, where DICOM headers are at hand, the contrast agent and the inversion, echo and
repetition times. It reads the principle, not a list of names: the weighting (T1 family, T2
family, FLAIR = T2 with CSF nulled by inversion) and, for T1, whether contrast was given.

:func:`choose_series` then picks one series per role and study (the 3D acquisition over a 2D one,
the acquired original over a reformat) and says why; the others are kept and reported, never
quarantined as invalid values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import pandas as pd

from pfs.exceptions import RuleFileError
from pfs.rules import check_keys, read_rule_json

RULE_FILE = "series.json"
#: The roles pfs segments with; every other series is OTHER (or unrecognised, role '').
ROLES = ("T1C", "T1", "FLAIR", "T2")
OTHER = "OTHER"
_RULE_KEYS = {"description", "rewrites", "other", "flair", "t1", "t2", "contrast_given", "contrast_not_given",
              "three_d", "reformat", "headers"}
_PATTERN_KEYS = {"id", "pattern", "reason"}
_SPACES = re.compile(r"[_\-./,:;()\[\]\\|]+")


@dataclass(frozen=True)
class Pattern:
    id: str
    regex: re.Pattern[str]
    reason: str


@dataclass(frozen=True)
class SeriesRules:
    """The compiled ``series.json``."""

    rewrites: tuple[tuple[str, str], ...]
    groups: Mapping[str, tuple[Pattern, ...]]
    headers: Mapping[str, Any]


@dataclass(frozen=True)
class SeriesClass:
    """A series' role (T1, T1C, T2, FLAIR, OTHER, or '' when not recognised) and why."""

    role: str
    reason: str
    three_d: bool = False
    reformat: bool = False
    from_headers: bool = False


@cache
def load_rules() -> SeriesRules:
    """Read and validate the shipped series rules (unknown keys and bad patterns are errors)."""
    data = read_rule_json(RULE_FILE)
    check_keys(data, _RULE_KEYS, "the top level", RULE_FILE)
    groups: dict[str, tuple[Pattern, ...]] = {}
    for key in sorted(_RULE_KEYS - {"description", "rewrites", "headers"}):
        items = []
        for item in data.get(key, []):
            if set(item) != _PATTERN_KEYS or not str(item["reason"]).strip():
                raise RuleFileError(f"rules/{RULE_FILE}: {key} entries need exactly id, pattern, reason; got {item}")
            try:
                regex = re.compile(item["pattern"], re.IGNORECASE)
            except re.error as err:
                raise RuleFileError(f"rules/{RULE_FILE}: {key}.{item['id']}: invalid pattern: {err}") from err
            items.append(Pattern(str(item["id"]), regex, str(item["reason"])))
        groups[key] = tuple(items)
    rewrites = []
    for item in data.get("rewrites", []):
        if set(item) != {"from", "to", "reason"}:
            raise RuleFileError(f"rules/{RULE_FILE}: rewrites entries need exactly from, to, reason; got {item}")
        rewrites.append((str(item["from"]).lower(), str(item["to"])))
    headers = dict(data.get("headers", {}))
    for key in headers:
        if not key.endswith("_reason") and f"{key}_reason" not in headers:
            raise RuleFileError(f"rules/{RULE_FILE}: headers.{key} has no {key}_reason")
    return SeriesRules(rewrites=tuple(rewrites), groups=groups, headers=headers)


def normalise(description: object) -> str:
    """Lower case, separators as spaces, shorthand rewritten: 'T1W_3D_TFE +GD' -> 't1w 3d tfe +gd'."""
    text = "" if description is None or (isinstance(description, float) and pd.isna(description)) else str(description)
    text = text.lower()
    for old, new in load_rules().rewrites:
        text = text.replace(old, new)
    return " ".join(_SPACES.sub(" ", text).split())


def _first(group: str, text: str) -> Pattern | None:
    return next((p for p in load_rules().groups[group] if p.regex.search(text)), None)


def _number(headers: Mapping[str, Any], key: str) -> float | None:
    try:
        value = float(str(headers.get(key, "")).split("\\")[0])
    except ValueError:
        return None
    return value if value == value else None


def _agent(headers: Mapping[str, Any]) -> bool | None:
    """True/False when ContrastBolusAgent says contrast was/was not given; None when it is absent."""
    if "ContrastBolusAgent" not in headers:
        return None
    value = str(headers["ContrastBolusAgent"] or "").strip().lower()
    return value not in {str(v).lower() for v in load_rules().headers["no_agent_values"]}


def _weighting_from_headers(headers: Mapping[str, Any]) -> tuple[str, str] | None:
    """T1/T2/FLAIR from inversion, echo and repetition times (the physics, whatever the name says)."""
    h = load_rules().headers
    ti, te, tr = (_number(headers, k) for k in ("InversionTime", "EchoTime", "RepetitionTime"))
    if ti is not None and ti >= h["flair_min_inversion_ms"] and (te is None or te >= h["t2_min_echo_ms"]):
        return "FLAIR", f"inversion time {ti:g} ms nulls CSF (FLAIR)"
    if te is not None and te <= h["t1_max_echo_ms"] and (
        (tr is not None and tr <= h["t1_max_repetition_ms"])
        or (ti is not None and 0 < ti < h["flair_min_inversion_ms"])
    ):
        return "T1", f"short echo time {te:g} ms with short repetition or inversion time (T1-weighted)"
    if te is not None and tr is not None and te >= h["t2_min_echo_ms"] and tr >= h["t2_min_repetition_ms"]:
        return "T2", f"long echo {te:g} ms and repetition {tr:g} ms times (T2-weighted)"
    return None


def classify(description: object, headers: Mapping[str, Any] | None = None) -> SeriesClass:
    """The role of one series from its description and, when given, its DICOM header values.

    ``headers`` uses DICOM keywords: ContrastBolusAgent, InversionTime, EchoTime, RepetitionTime,
    SequenceName, MRAcquisitionType, ScanningSequence (absent keys are simply not used).
    """
    headers = headers or {}
    text = normalise(description) or normalise(headers.get("SeriesDescription", ""))
    extra = normalise(" ".join(str(headers.get(k, "")) for k in ("SequenceName",)))
    three_d = bool(_first("three_d", text)) or str(headers.get("MRAcquisitionType", "")).strip().upper() == "3D"
    reformat = bool(_first("reformat", text))
    agent = _agent(headers)

    other = _first("other", text)
    if other is not None:
        return SeriesClass(OTHER, f"{other.id}: {other.reason}", three_d, reformat)
    flair = _first("flair", text)
    t1 = _first("t1", text) or _first("t1", extra)
    t2 = _first("t2", text)
    weighting: tuple[str, str] | None = None
    if flair is not None and not (t1 is not None and t2 is None):
        weighting = ("FLAIR", f"{flair.id}: {flair.reason}")
    elif t1 is not None:
        weighting = ("T1", f"{t1.id}: {t1.reason}")
    elif t2 is not None:
        weighting = ("T2", f"{t2.id}: {t2.reason}")
    from_headers = False
    physics = _weighting_from_headers(headers)
    if weighting is None and physics is not None:
        weighting, from_headers = physics, True
    elif weighting is not None and weighting[0] == "T2" and physics is not None and physics[0] == "FLAIR":
        weighting = ("FLAIR", f"named T2 but {physics[1]}")
    if weighting is None:
        why = "description not recognised" if text else "no series description"
        return SeriesClass("", why, three_d, reformat)
    role, why = weighting
    if role != "T1":
        return SeriesClass(role, why, three_d, reformat, from_headers)
    return _contrast(text, why, agent, three_d, reformat, from_headers)


def _contrast(text: str, why: str, agent: bool | None, three_d: bool, reformat: bool,
              from_headers: bool) -> SeriesClass:
    """T1 or T1C: a 'pre'/'without' marker wins over a 'post' one; the header's agent decides when named."""
    pre = _first("contrast_not_given", text)
    post = _first("contrast_given", text)
    if agent is True and pre is None:
        return SeriesClass("T1C", f"{why}; ContrastBolusAgent names an agent", three_d, reformat, from_headers)
    if pre is not None:
        return SeriesClass("T1", f"{why}; {pre.id}: {pre.reason}", three_d, reformat, from_headers)
    if post is not None:
        return SeriesClass("T1C", f"{why}; {post.id}: {post.reason}", three_d, reformat, from_headers)
    return SeriesClass("T1", f"{why}; no contrast marker", three_d, reformat, from_headers)


def _rank(c: SeriesClass) -> tuple[int, int, int]:
    """Preference among candidates for one role (higher first): 3D, acquired (not reformatted), named."""
    return (int(c.three_d), int(not c.reformat), int(not c.from_headers))


def _traits(c: SeriesClass) -> str:
    words = ["3D" if c.three_d else "2D"]
    if c.reformat:
        words.append("reformat")
    if c.from_headers:
        words.append("from headers")
    return ", ".join(words)


def choose_series(series: pd.DataFrame, headers: Mapping[int, Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """Classify the series of one or more studies and choose one per role and study.

    ``series`` has ``study_id``, ``sequence`` (the description) and ``_row``; ``headers`` maps a
    ``_row`` to its DICOM header values. Returns ``series`` with ``role``, ``chosen`` (bool) and
    ``why`` (the rule that classified it, and for a role with several candidates which one was
    chosen and why). Ties go to the first row, so the choice is deterministic.
    """
    headers = headers or {}
    out = series.reset_index(drop=True)  # positions line up with ``classes``
    classes = [classify(d, headers.get(int(r))) for d, r in zip(out["sequence"], out["_row"], strict=True)]
    out["role"] = [c.role for c in classes]
    why = [c.reason for c in classes]
    chosen = [False] * len(out)
    rows = out["_row"].astype(int).tolist()
    names = out["sequence"].astype(str).tolist()
    for (_, role), idx in out.groupby(["study_id", "role"], sort=False).indices.items():
        if role not in ROLES:
            continue
        ranked = sorted(idx, key=lambda i: (tuple(-v for v in _rank(classes[i])), rows[i]))
        best = ranked[0]
        chosen[best] = True
        if len(ranked) > 1:
            b = classes[best]
            for i in ranked[1:]:
                because = (f"{_traits(b)} preferred over {_traits(classes[i])}" if _rank(b) != _rank(classes[i])
                           else "same kind; the first listed is used")
                why[i] += f"; second {role} candidate, not used: {names[best]!r} chosen ({because})"
            why[best] += f"; chosen among {len(ranked)} {role} candidates ({_traits(b)})"
    out["why"] = why
    out["chosen"] = chosen
    return out


#: DICOM tags the classifier reads, by keyword.
DICOM_TAGS = {
    "ContrastBolusAgent": "0018|0010",
    "ScanningSequence": "0018|0020",
    "MRAcquisitionType": "0018|0023",
    "SequenceName": "0018|0024",
    "RepetitionTime": "0018|0080",
    "EchoTime": "0018|0081",
    "InversionTime": "0018|0082",
    "SeriesDescription": "0008|103e",
}


def dicom_headers(folder: Any) -> dict[str, str]:
    """The classifier's DICOM tags from the first readable file of a series folder ({} when none is).

    Only the header is read (no pixel data). A tag the file lacks is left out, so an absent
    ContrastBolusAgent is 'not known', never 'no contrast'.
    """
    from pathlib import Path

    import SimpleITK as sitk

    for path in sorted(p for p in Path(folder).iterdir() if p.is_file())[:3]:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            continue
        keys = set(reader.GetMetaDataKeys())
        return {k: reader.GetMetaData(t).strip() for k, t in DICOM_TAGS.items() if t in keys}
    return {}


def roles(descriptions: pd.Series) -> pd.Series:
    """The role of each description (T1, T1C, T2, FLAIR, OTHER or ''); each distinct one is classified once."""
    text = descriptions.fillna("").astype(str)
    found = {d: classify(d).role for d in text.unique()}
    return text.map(found)
