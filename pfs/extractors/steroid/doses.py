"""Dose, unit, frequency and sig parsing for corticosteroid orders.

EHR orders say the same thing in many ways ("4 mg PO BID", "Take 1 tablet (4 mg total) by mouth
2 (two) times daily", dose 0.5 unit mL of a 1 mg/mL solution, "8 mg x3 days then 4 mg x3 days then
stop"). Each distinct combination of (drug name, dose, unit, frequency, sig) is parsed once; what
cannot be read is returned with a reason for the quarantine, never guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from pfs.exceptions import RuleFileError
from pfs.extractors.steroid.drugs import SteroidRules, normalise_one

FREQUENCY_FILE = "steroid_frequencies.json"
_FREQ_KEYS = {"description", "sources", "once", "prn", "every_hours", "times_per_day", "fixed"}
_NUM = r"(\d+(?:\.\d+)?|\.\d+)"
_WORD_NUMBERS = {
    "one": 1.0,
    "two": 2.0,
    "three": 3.0,
    "four": 4.0,
    "five": 5.0,
    "six": 6.0,
    "half": 0.5,
    "1/2": 0.5,
    "½": 0.5,
    "one half": 0.5,
    "1 1/2": 1.5,
    "one and a half": 1.5,
}
_UNIT_MG = {
    "mg": 1.0,
    "milligram": 1.0,
    "milligrams": 1.0,
    "mgs": 1.0,
    "g": 1000.0,
    "gm": 1000.0,
    "gram": 1000.0,
    "grams": 1000.0,
    "mcg": 0.001,
    "ug": 0.001,
    "µg": 0.001,
    "microgram": 0.001,
    "micrograms": 0.001,
}
_UNIT_TABLET = {
    "tab",
    "tabs",
    "tablet",
    "tablets",
    "cap",
    "caps",
    "capsule",
    "capsules",
    "each",
    "ea",
    "pill",
    "pills",
}
_UNIT_ML = {"ml", "mls", "milliliter", "milliliters", "millilitre", "cc"}
_UNIT_CONC = {"mg/ml", "mg/ ml", "mg /ml", "mg per ml"}
_MASS = r"(mg|milligrams?|mcg|micrograms?|ug|µg|g|gm|grams?)"
_STRENGTH = re.compile(_NUM + r"\s?" + _MASS + r"(?!\s?/|[a-z])")
_CONCENTRATION = re.compile(_NUM + r"\s?mg\s?/\s?" + r"(\d+(?:\.\d+)?)?\s?ml\b")
_TOTAL = re.compile(_NUM + r"\s?" + _MASS + r"\s(?:total|in total)\b")
_TAKE_UNITS = re.compile(
    r"(?:take|give|takes|administer|use)?\s?(one and a half|1 1/2|one half|half|1/2|½|one|two|three|"
    r"four|five|six|"
    + r"\d+(?:\.\d+)?)\s?(?:(?:one|two|three|four|half)\s)?(?:tablets?|tabs?|capsules?|caps?|pills?)\b"
)
_VOLUME = re.compile(_NUM + r"\s?(?:ml|mls|milliliters?|cc)\b")
_DURATION = re.compile(r"(?:\bx|\bfor|×|\btimes)\s?" + r"(\d+|one|two|three|four|five|six)\s?(days?|d|weeks?|wks?|w)\b")
_STOP = re.compile(r"\b(?:stop|off|discontinue|dc|d/c|done|end)\b")

#: Why an order's dose cannot be read: the quarantine reasons of this parser, written once. ``{unit}``
#: is the order's dose unit, quoted.
DOSE_PROBLEMS = {
    "sig_tablets_without_strength": "tablet count in the sig but no strength in the drug name",
    "sig_volume_without_concentration": "volume in the sig but no mg/mL concentration",
    "no_dose": "no dose in the dose column or the sig",
    "zero_dose": "dose is zero",
    "units_without_strength": "dose in {unit} but no mg strength in the drug name",
    "ml_without_concentration": "dose in mL but no mg/mL concentration in the drug name or sig",
    "concentration_without_volume": "dose unit mg/mL without a volume in the sig",
    "no_unit_and_no_sig_mg": "dose without a unit, and no mg amount in the sig",
    "unknown_unit": "unknown dose unit {unit}",
    "no_frequency": "no frequency in the frequency column or the sig",
}


@dataclass(frozen=True)
class FrequencyRules:
    once: tuple[re.Pattern[str], ...]
    prn: tuple[re.Pattern[str], ...]
    every_hours: tuple[re.Pattern[str], ...]
    times_per_day: tuple[re.Pattern[str], ...]
    fixed: tuple[tuple[re.Pattern[str], float], ...]


def parse_frequency_rules(data: dict[str, Any]) -> FrequencyRules:
    """Validate and compile the frequency vocabulary (shape of ``pfs/rules/steroid_frequencies.json``)."""
    unknown = set(data) - _FREQ_KEYS
    if unknown:
        raise RuleFileError(f"{FREQUENCY_FILE}: unknown key(s) {sorted(unknown)} (allowed: {sorted(_FREQ_KEYS)})")

    def comp(p: str) -> re.Pattern[str]:
        try:
            return re.compile(p)
        except re.error as err:
            raise RuleFileError(f"{FREQUENCY_FILE}: bad pattern {p!r}: {err}") from err

    fixed = []
    for item in data.get("fixed", []):
        bad = set(item) - {"pattern", "per_day"}
        if bad:
            raise RuleFileError(f"{FREQUENCY_FILE}: unknown key(s) {sorted(bad)} in a 'fixed' entry")
        if not isinstance(item.get("per_day"), (int, float)) or item["per_day"] <= 0:
            raise RuleFileError(f"{FREQUENCY_FILE}: per_day must be a positive number, not {item.get('per_day')!r}")
        fixed.append((comp(item["pattern"]), float(item["per_day"])))
    return FrequencyRules(
        once=tuple(comp(p) for p in data.get("once", [])),
        prn=tuple(comp(p) for p in data.get("prn", [])),
        every_hours=tuple(comp(p) for p in data.get("every_hours", [])),
        times_per_day=tuple(comp(p) for p in data.get("times_per_day", [])),
        fixed=tuple(fixed),
    )


@cache
def load_frequency_rules() -> FrequencyRules:
    text = resources.files("pfs.rules").joinpath(FREQUENCY_FILE).read_text(encoding="utf-8")
    try:
        return parse_frequency_rules(json.loads(text))
    except json.JSONDecodeError as err:
        raise RuleFileError(f"{FREQUENCY_FILE}: not valid JSON: {err}") from err


@dataclass(frozen=True)
class Frequency:
    """Administrations per day; ``once`` for a single dose, ``prn`` for as-needed orders."""

    per_day: float
    once: bool = False
    prn: bool = False


@lru_cache(maxsize=1 << 16)
def parse_frequency(text: str, rules: FrequencyRules | None = None) -> Frequency | None:
    """Administrations per day from a frequency or sig text; None when the text does not say.

    A bare 'PRN' without an interval counts as once a day (flagged ``prn``): the order allows it,
    and the extractor treats such orders as weak evidence anyway.
    """
    rules = rules or load_frequency_rules()
    t = normalise_one(text)
    if not t:
        return None
    prn = any(p.search(t) for p in rules.prn)
    for p in rules.every_hours:
        m = p.search(t)
        if m and 0 < int(m.group(1)) <= 48:
            return Frequency(24.0 / int(m.group(1)), prn=prn)
    for p in rules.times_per_day:
        m = p.search(t)
        if m and int(m.group(1)) > 0:
            return Frequency(float(m.group(1)), prn=prn)
    for p, per_day in rules.fixed:
        if p.search(t):
            return Frequency(per_day, prn=prn)
    if any(p.search(t) for p in rules.once):
        return Frequency(1.0, once=True, prn=prn)
    if prn:
        return Frequency(1.0, prn=True)
    return None


def _number(text: str) -> float:
    return _WORD_NUMBERS[text] if text in _WORD_NUMBERS else float(text)


@lru_cache(maxsize=1 << 14)
def strength_mg(drug_name: str) -> float | None:
    """Tablet strength in mg written in a product name ('dexAMETHasone 4 MG tablet' -> 4)."""
    t = normalise_one(drug_name)
    if _CONCENTRATION.search(t):
        return None
    m = _STRENGTH.search(t)
    return float(m.group(1)) * _UNIT_MG[m.group(2)] if m else None


@lru_cache(maxsize=1 << 14)
def concentration_mg_per_ml(text: str) -> float | None:
    """mg per mL from '1 mg/mL', '0.5 mg/5 mL', '10 MG/ML'."""
    m = _CONCENTRATION.search(normalise_one(text))
    if not m:
        return None
    per = float(m.group(2)) if m.group(2) else 1.0
    return float(m.group(1)) / per if per > 0 else None


@lru_cache(maxsize=1 << 16)
def duration_days(text: str) -> float | None:
    """An explicit duration in a sig ('x 5 days', 'for 2 weeks')."""
    m = _DURATION.search(normalise_one(text))
    if not m:
        return None
    n = _number(m.group(1))
    return n * 7 if m.group(2).startswith("w") else n


def _dose_forms(t: str) -> tuple[float, float, float, float]:
    """The dose as a normalised text writes it: (mg 'total', tablet count, mL, mg), NaN for a form it lacks.

    A volume inside a concentration ('1 mg/5 mL') is not a volume to take.
    """
    total = _TOTAL.search(t)
    tabs = _TAKE_UNITS.search(t)
    vol = _VOLUME.search(t)
    conc = _CONCENTRATION.search(t)
    if vol and conc and conc.start() <= vol.start() <= conc.end():
        vol = None
    mass = _STRENGTH.search(t)
    return (
        float(total.group(1)) * _UNIT_MG[total.group(2)] if total else np.nan,
        _number(tabs.group(1)) if tabs else np.nan,
        float(vol.group(1)) if vol else np.nan,
        float(mass.group(1)) * _UNIT_MG[mass.group(2)] if mass else np.nan,
    )


def _sig_dose(
    total: np.ndarray, tabs: np.ndarray, strength: np.ndarray, vol: np.ndarray, conc: np.ndarray, mass: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(mg per administration, reason or None) per row from the dose forms of :func:`_dose_forms`.

    The first form present wins: a written total, tablets x strength, mL x concentration, a plain mg amount.
    """
    mg = np.select(
        [~np.isnan(total), ~np.isnan(tabs), ~np.isnan(vol), ~np.isnan(mass)],
        [total, tabs * strength, vol * conc, mass],
        np.nan,
    )
    why = np.select(
        [
            ~np.isnan(total),
            ~np.isnan(tabs) & np.isnan(strength),
            ~np.isnan(tabs),
            ~np.isnan(vol) & np.isnan(conc),
            ~np.isnan(vol),
            ~np.isnan(mass),
        ],
        [
            None,
            DOSE_PROBLEMS["sig_tablets_without_strength"],
            None,
            DOSE_PROBLEMS["sig_volume_without_concentration"],
            None,
            None,
        ],
        DOSE_PROBLEMS["no_dose"],
    ).astype(object)
    return mg, why


@lru_cache(maxsize=1 << 16)
def dose_from_text(text: str, drug_name: str) -> tuple[float | None, str | None]:
    """mg per administration written in one text (a sig or a taper step); (None, reason) when absent.

    The same reading as :func:`parse_orders` gives a sig, on one text.
    """
    total, tabs, vol, mass = ([x] for x in _dose_forms(normalise_one(text)))
    strength = [strength_mg(drug_name) or np.nan]
    conc = [concentration_mg_per_ml(drug_name) or concentration_mg_per_ml(text) or np.nan]
    mg, why = _sig_dose(*(np.asarray(a, dtype="float64") for a in (total, tabs, strength, vol, conc, mass)))
    return (None, str(why[0])) if why[0] is not None else (float(mg[0]), None)


def parse_taper(
    sig: str, drug_name: str, default_per_day: Frequency | None, rules: FrequencyRules | None = None
) -> list[tuple[float, float]] | None:
    """Steps of a written taper as (days, mg/day of drug); None when the sig is not a taper.

    'dexamethasone 4 mg BID x 3 days, then 2 mg BID x 3 days, then 2 mg daily x 3 days, then stop'
    gives [(3, 8), (3, 4), (3, 2)]. A last step without a duration gets NaN days (it runs to the
    order's end). A step without a dose or a frequency makes the whole sig unreadable as a taper.
    """
    steps = _parse_taper(sig, drug_name, default_per_day, rules)
    return None if steps is None else list(steps)


@lru_cache(maxsize=1 << 16)
def _parse_taper(
    sig: str, drug_name: str, default_per_day: Frequency | None, rules: FrequencyRules | None
) -> tuple[tuple[float, float], ...] | None:
    """Cached worker of :func:`parse_taper` (sigs repeat across orders)."""
    parts = [p.strip() for p in re.split(r"\bthen\b|;|\bfollowed by\b", str(sig).lower()) if p.strip()]
    if len(parts) < 2:
        return None
    steps: list[tuple[float, float]] = []
    last_freq = default_per_day
    for i, part in enumerate(parts):
        if _STOP.search(normalise_one(part)) and not _STRENGTH.search(normalise_one(part)):
            break
        mg, _ = dose_from_text(part, drug_name)
        freq = parse_frequency(part, rules) or last_freq
        if mg is None or freq is None:
            return None
        last_freq = freq
        days = duration_days(part)
        if days is None and i < len(parts) - 1 and not _STOP.search(normalise_one(parts[i + 1])):
            return None
        steps.append((float("nan") if days is None else days, mg * (1.0 if freq.once else freq.per_day)))
    return tuple(steps) if len(steps) >= 2 else None


#: Columns of :func:`parse_orders`'s result.
PARSED_COLUMNS = [
    "split_dose",
    "mg_per_admin",
    "per_day",
    "drug_mg_per_day",
    "once",
    "prn",
    "duration_days",
    "schedule",
    "dose_pack",
    "antiemetic",
    "taper",
    "problem",
    "problem_column",
]
_TAPER_WORDS = re.compile(r"\bthen\b|;|\bfollowed by\b", re.IGNORECASE)


def _per_distinct(values: pd.Series, func: Callable[[str], tuple], columns: list[str]) -> pd.DataFrame:
    """``func`` on each distinct string of ``values``, broadcast back to the rows as a frame."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    table = pd.DataFrame([func(u) for u in uniques], columns=columns)
    out = table.iloc[codes].reset_index(drop=True)
    out.index = values.index
    return out


def _freq_tuple(text: str, rules: FrequencyRules) -> tuple[float, bool, bool]:
    f = parse_frequency(text, rules) if text else None
    return (np.nan, False, False) if f is None else (f.per_day, f.once, f.prn)


def _sig_tuple(sig: str, rules: FrequencyRules, antiemetic: re.Pattern[str]) -> tuple:
    """What a sig says on its own: frequency, duration, antiemetic use, the dose in each form it may take."""
    per_day, once, prn = _freq_tuple(sig, rules)
    t = normalise_one(sig)
    total_mg, tablets, volume_ml, mass_mg = _dose_forms(t)
    return (
        per_day,
        once,
        prn,
        duration_days(sig) if sig else None,
        bool(antiemetic.search(t)),
        total_mg,
        tablets,
        volume_ml,
        concentration_mg_per_ml(sig) or np.nan,
        mass_mg,
        bool(_TAPER_WORDS.search(sig)),
        _split_dose(t, rules),
    )


def _split_dose(t: str, rules: FrequencyRules) -> float:
    """mg/day of a sig with two doses at two times ('4 mg every morning and 2 mg at bedtime'), else NaN."""
    parts = t.split(" and ")
    if len(parts) != 2:
        return np.nan
    total = 0.0
    for part in parts:
        mass = _STRENGTH.search(part)
        freq = parse_frequency(part, rules)
        if mass is None or freq is None or freq.once:
            return np.nan
        total += float(mass.group(1)) * _UNIT_MG[mass.group(2)] * freq.per_day
    return total


def _pack_bits(text: str, rules: SteroidRules) -> int:
    """Bit i set when dose pack i of the rule file is named in ``text``."""
    t = normalise_one(text)
    return sum(1 << i for i, pack in enumerate(rules.dose_packs) if pack.pattern.search(t))


def _unit_tuple(unit: str) -> tuple[str, float]:
    u = normalise_one(unit)
    if u in _UNIT_MG:
        return "mass", _UNIT_MG[u]
    if u in _UNIT_TABLET:
        return "tablet", np.nan
    if u in _UNIT_ML:
        return "ml", np.nan
    if u.replace(" ", "") in {c.replace(" ", "") for c in _UNIT_CONC}:
        return "conc", np.nan
    return ("blank" if u == "" else "unknown"), np.nan


def parse_orders(
    meds: pd.DataFrame, drug: pd.Series, rules: SteroidRules, freq_rules: FrequencyRules | None = None
) -> pd.DataFrame:
    """Parse every row of ``meds`` (steroid rows; ``drug`` = ingredient per row) into :data:`PARSED_COLUMNS`.

    Each column's text is read once per distinct value (frequency column, sig, drug name, unit) and
    the pieces are combined row-wise with array operations: the cost follows the vocabulary of the
    export, not its row count. Precedence, per row: a dose pack named in the drug name or sig; a
    written taper; otherwise dose x unit (tablets x the strength in the drug name, mL x the mg/mL
    concentration, mg/mL x the volume in the sig), or the dose written in the sig when the dose
    column is blank; frequency from the frequency column, else from the sig.
    """
    freq_rules = freq_rules or load_frequency_rules()
    idx = meds.index
    if meds.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PARSED_COLUMNS}, index=idx)
    name = meds["drug_name"].fillna("").astype(str)
    sig = meds["sig"].fillna("").astype(str)
    dose = meds["dose"].astype("float64").to_numpy()
    F = _per_distinct(
        meds["frequency"].fillna("").astype(str),
        lambda t: _freq_tuple(t, freq_rules),
        ["per_day", "once", "prn"],
    )
    S = _per_distinct(
        sig,
        lambda t: (*_sig_tuple(t, freq_rules, rules.antiemetic_pattern), _pack_bits(t, rules)),
        [
            "per_day",
            "once",
            "prn",
            "duration",
            "antiemetic",
            "total_mg",
            "tablets",
            "volume_ml",
            "conc",
            "mass_mg",
            "taper_words",
            "split_mg_day",
            "pack_bits",
        ],
    )
    N = _per_distinct(
        name,
        lambda t: (strength_mg(t) or np.nan, concentration_mg_per_ml(t) or np.nan, _pack_bits(t, rules)),
        ["strength", "conc", "pack_bits"],
    )
    U = _per_distinct(meds["dose_unit"].fillna("").astype(str), _unit_tuple, ["kind", "factor"])

    # Frequency: the column when it says something, else the sig.
    use_col = F["per_day"].notna().to_numpy()
    per_day = np.where(use_col, F["per_day"], S["per_day"]).astype("float64")
    once = np.where(use_col, F["once"], S["once"]).astype(bool)
    prn = np.where(use_col, F["prn"], S["prn"]).astype(bool)

    # Dose per administration, in mg of the drug.
    strength, conc = N["strength"].to_numpy(dtype="float64"), N["conc"].to_numpy(dtype="float64")
    conc = np.where(np.isnan(conc), S["conc"].to_numpy(dtype="float64"), conc)
    total, tabs = S["total_mg"].to_numpy(dtype="float64"), S["tablets"].to_numpy(dtype="float64")
    vol, mass = S["volume_ml"].to_numpy(dtype="float64"), S["mass_mg"].to_numpy(dtype="float64")
    # ... as the sig writes it (used when the dose column is blank, or its unit is blank)
    sig_mg, sig_why = _sig_dose(total, tabs, strength, vol, conc, mass)
    kind = U["kind"].to_numpy()
    has = ~np.isnan(dose)
    unit_text = meds["dose_unit"].fillna("").astype(str)
    quoted = unit_text.map({u: repr(u) for u in unit_text.unique()}).to_numpy(dtype=object)

    def with_unit(key: str) -> np.ndarray:
        before, after = DOSE_PROBLEMS[key].split("{unit}")
        return before + quoted + after

    mg = np.select(
        [~has, kind == "mass", kind == "tablet", kind == "ml", kind == "conc", kind == "blank"],
        [
            sig_mg,
            dose * U["factor"].to_numpy(dtype="float64"),
            dose * strength,
            dose * conc,
            dose * vol,
            sig_mg,
        ],
        np.nan,
    )
    why = np.select(
        [
            ~has,
            has & (dose == 0),
            kind == "mass",
            (kind == "tablet") & np.isnan(strength),
            kind == "tablet",
            (kind == "ml") & np.isnan(conc),
            kind == "ml",
            (kind == "conc") & np.isnan(vol),
            kind == "conc",
            (kind == "blank") & np.isnan(sig_mg),
            kind == "blank",
        ],
        [
            sig_why,
            DOSE_PROBLEMS["zero_dose"],
            None,
            with_unit("units_without_strength"),
            None,
            DOSE_PROBLEMS["ml_without_concentration"],
            None,
            DOSE_PROBLEMS["concentration_without_volume"],
            None,
            DOSE_PROBLEMS["no_unit_and_no_sig_mg"],
            None,
        ],
        None,
    ).astype(object)
    unknown = has & (kind == "unknown")
    why = np.where(unknown, with_unit("unknown_unit"), why)
    why_col = np.where(~has, "sig", np.where(has & (dose == 0), "dose", "dose_unit")).astype(object)
    ok_dose = pd.isna(why)
    mg = np.where(ok_dose, mg, np.nan)

    out = pd.DataFrame(
        {
            "mg_per_admin": mg,
            "per_day": per_day,
            "drug_mg_per_day": np.where(once, mg, mg * per_day),
            "once": once,
            "prn": prn,
            "duration_days": np.where(once, 1.0, S["duration"].to_numpy(dtype="float64")),
            "schedule": None,
            "dose_pack": False,
            "antiemetic": S["antiemetic"].to_numpy(dtype=bool),
            "taper": False,
            "problem": why,
            "problem_column": np.where(ok_dose, None, why_col),
        },
        index=idx,
    ).astype({"schedule": object, "problem": object, "problem_column": object})
    no_freq = ok_dose & np.isnan(per_day)
    out.loc[no_freq, "problem"] = DOSE_PROBLEMS["no_frequency"]
    out.loc[no_freq, "problem_column"] = "frequency"
    out.loc[no_freq, ["drug_mg_per_day"]] = np.nan
    # A sig with two doses at two times overrides the dose column, which can hold only one of them.
    split = S["split_mg_day"].to_numpy(dtype="float64")
    is_split = ~np.isnan(split)
    out["split_dose"] = is_split
    if is_split.any():
        out.loc[is_split, "drug_mg_per_day"] = split[is_split]
        out.loc[is_split, ["mg_per_admin", "per_day"]] = np.nan
        out.loc[is_split, ["problem", "problem_column"]] = None

    # Written tapers: parsed per distinct (sig, drug name, frequency column) among sigs with 'then' or ';'.
    tw = S["taper_words"].to_numpy(dtype=bool)
    if tw.any():
        sub = pd.DataFrame({"sig": sig[tw], "name": name[tw], "f": meds["frequency"].fillna("").astype(str)[tw]})
        tp = _per_distinct(
            sub["sig"] + "\x1f" + sub["name"] + "\x1f" + sub["f"],
            lambda k: _taper_summary(_taper_of_key(k, freq_rules)),
            ["steps", "first_mg", "days"],
        )
        ok = tp["steps"].notna().to_numpy()
        if ok.any():
            rows = tp.index[ok]
            out.loc[rows, "schedule"] = tp["steps"][ok]
            out.loc[rows, ["taper", "split_dose"]] = [True, False]
            out.loc[rows, "drug_mg_per_day"] = tp["first_mg"].to_numpy(dtype="float64")[ok]
            out.loc[rows, ["mg_per_admin", "per_day"]] = np.nan
            out.loc[rows, "duration_days"] = tp["days"].to_numpy(dtype="float64")[ok]
            out.loc[rows, ["problem", "problem_column"]] = None

    # Dose packs named in the drug name or the sig, for their own drug only.
    drug_arr = drug.fillna("").to_numpy()
    for i, pack in enumerate(rules.dose_packs):
        candidates = drug_arr == pack.drug
        if not candidates.any():
            continue
        bits = S["pack_bits"].to_numpy(dtype="int64") | N["pack_bits"].to_numpy(dtype="int64")
        hit = candidates & ((bits >> i) & 1).astype(bool) & ~out["dose_pack"].to_numpy(dtype=bool)
        if not hit.any():
            continue
        sched = tuple((1.0, mg_) for mg_ in pack.mg_per_day)
        rows = out.index[hit]
        out.loc[rows, "schedule"] = pd.Series([sched] * len(rows), index=rows, dtype=object)
        out.loc[rows, ["dose_pack", "taper", "once", "split_dose"]] = [True, False, False, False]
        out.loc[rows, ["mg_per_admin", "drug_mg_per_day"]] = sched[0][1]
        out.loc[rows, "per_day"] = 1.0
        out.loc[rows, "duration_days"] = float(len(sched))
        out.loc[rows, ["problem", "problem_column"]] = None
    for col in ("once", "prn", "dose_pack", "antiemetic", "taper", "split_dose"):
        out[col] = out[col].astype(bool)
    for col in ("mg_per_admin", "per_day", "drug_mg_per_day", "duration_days"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    return out


def _taper_summary(steps: tuple[tuple[float, float], ...] | None) -> tuple:
    """(steps, mg/day of the first step, total days or NaN when the last step is open)."""
    if steps is None:
        return None, np.nan, np.nan
    days = [d for d, _ in steps]
    return steps, steps[0][1], float(sum(days)) if all(np.isfinite(days)) else np.nan


def _taper_of_key(key: str, rules: FrequencyRules) -> tuple[tuple[float, float], ...] | None:
    sig, name, freq = key.split("\x1f")
    return _parse_taper(sig, name, parse_frequency(freq, rules) if freq else parse_frequency(sig, rules), rules)


def parse_one(
    drug: str,
    drug_name: str,
    dose: float,
    unit: str,
    frequency: str,
    sig: str,
    rules: SteroidRules,
    freq_rules: FrequencyRules | None = None,
) -> dict[str, Any]:
    """:func:`parse_orders` for a single order (handy in tests and at the REPL)."""
    meds = pd.DataFrame(
        {
            "drug_name": [drug_name],
            "dose": [dose],
            "dose_unit": [unit],
            "frequency": [frequency],
            "sig": [sig],
        }
    )
    row = parse_orders(meds, pd.Series([drug]), rules, freq_rules).iloc[0].to_dict()
    return {k: (None if not isinstance(v, tuple) and pd.isna(v) else v) for k, v in row.items()}
