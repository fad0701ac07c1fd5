"""Dose, unit, frequency and sig parsing for corticosteroid orders.

EHR orders say the same thing in many ways ("4 mg PO BID", "Take 1 tablet (4 mg total) by mouth
2 (two) times daily", dose 0.5 unit mL of a 1 mg/mL solution, "8 mg x3 days then 4 mg x3 days then
stop"). Each distinct combination of (drug name, dose, unit, frequency, sig) is parsed once; what
cannot be read is returned with a reason for the quarantine, never guessed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from pfs.exceptions import RuleFileError
from pfs.extractors.steroid.drugs import SteroidRules, normalise_one

FREQUENCY_FILE = "steroid_frequencies.json"
_FREQ_KEYS = {"description", "sources", "once", "prn", "every_hours", "times_per_day", "fixed"}
_NUM = r"(\d+(?:\.\d+)?|\.\d+)"
_WORD_NUMBERS = {"one": 1.0, "two": 2.0, "three": 3.0, "four": 4.0, "five": 5.0, "six": 6.0, "half": 0.5,
                 "1/2": 0.5, "½": 0.5, "one half": 0.5, "1 1/2": 1.5, "one and a half": 1.5}
_UNIT_MG = {"mg": 1.0, "milligram": 1.0, "milligrams": 1.0, "mgs": 1.0, "g": 1000.0, "gm": 1000.0, "gram": 1000.0,
            "grams": 1000.0, "mcg": 0.001, "ug": 0.001, "µg": 0.001, "microgram": 0.001, "micrograms": 0.001}
_UNIT_TABLET = {"tab", "tabs", "tablet", "tablets", "cap", "caps", "capsule", "capsules", "each", "ea", "pill",
                "pills"}
_UNIT_ML = {"ml", "mls", "milliliter", "milliliters", "millilitre", "cc"}
_UNIT_CONC = {"mg/ml", "mg/ ml", "mg /ml", "mg per ml"}
_MASS = r"(mg|milligrams?|mcg|micrograms?|ug|µg|g|gm|grams?)"
_STRENGTH = re.compile(_NUM + r"\s?" + _MASS + r"(?!\s?/|[a-z])")
_CONCENTRATION = re.compile(_NUM + r"\s?mg\s?/\s?" + r"(\d+(?:\.\d+)?)?\s?ml\b")
_TOTAL = re.compile(_NUM + r"\s?" + _MASS + r"\s(?:total|in total)\b")
_TAKE_UNITS = re.compile(r"(?:take|give|takes|administer|use)?\s?(one and a half|1 1/2|one half|half|1/2|½|one|two|three|"
                         r"four|five|six|" + r"\d+(?:\.\d+)?)\s?(?:(?:one|two|three|four|half)\s)?(?:tablets?|tabs?|capsules?|caps?|pills?)\b")
_VOLUME = re.compile(_NUM + r"\s?(?:ml|mls|milliliters?|cc)\b")
_DURATION = re.compile(r"(?:\bx|\bfor|×|\btimes)\s?" + r"(\d+|one|two|three|four|five|six)\s?(days?|d|weeks?|wks?|w)\b")
_STOP = re.compile(r"\b(?:stop|off|discontinue|dc|d/c|done|end)\b")


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


def strength_mg(drug_name: str) -> float | None:
    """Tablet strength in mg written in a product name ('dexAMETHasone 4 MG tablet' -> 4)."""
    t = normalise_one(drug_name)
    if _CONCENTRATION.search(t):
        return None
    m = _STRENGTH.search(t)
    return float(m.group(1)) * _UNIT_MG[m.group(2)] if m else None


def concentration_mg_per_ml(text: str) -> float | None:
    """mg per mL from '1 mg/mL', '0.5 mg/5 mL', '10 MG/ML'."""
    m = _CONCENTRATION.search(normalise_one(text))
    if not m:
        return None
    per = float(m.group(2)) if m.group(2) else 1.0
    return float(m.group(1)) / per if per > 0 else None


def duration_days(text: str) -> float | None:
    """An explicit duration in a sig ('x 5 days', 'for 2 weeks')."""
    m = _DURATION.search(normalise_one(text))
    if not m:
        return None
    n = _number(m.group(1))
    return n * 7 if m.group(2).startswith("w") else n


def dose_from_text(text: str, drug_name: str) -> tuple[float | None, str | None]:
    """mg per administration written in a sig (or a taper step); (None, reason) when absent."""
    t = normalise_one(text)
    m = _TOTAL.search(t)
    if m:
        return float(m.group(1)) * _UNIT_MG[m.group(2)], None
    m = _TAKE_UNITS.search(t)
    if m:
        strength = strength_mg(drug_name)
        if strength is None:
            return None, "tablet count in the sig but no strength in the drug name"
        return _number(m.group(1)) * strength, None
    m = _VOLUME.search(t)
    conc_in_text = _CONCENTRATION.search(t)
    if m and not (conc_in_text and conc_in_text.start() <= m.start() <= conc_in_text.end()):
        conc = concentration_mg_per_ml(drug_name) or concentration_mg_per_ml(text)
        if conc is None:
            return None, "volume in the sig but no mg/mL concentration"
        return float(m.group(1)) * conc, None
    m = _STRENGTH.search(t)
    if m:
        return float(m.group(1)) * _UNIT_MG[m.group(2)], None
    return None, "no dose in the dose column or the sig"


def dose_mg(dose: float, unit: str, drug_name: str, sig: str) -> tuple[float | None, str | None, str]:
    """mg of drug per administration; (None, reason, column) when it cannot be known."""
    u = normalise_one(unit)
    if dose is None or not np.isfinite(dose):
        mg, why = dose_from_text(sig, drug_name)
        return mg, why, "sig"
    if dose == 0:
        return None, "dose is zero", "dose"
    if u in _UNIT_MG:
        return dose * _UNIT_MG[u], None, "dose_unit"
    if u in _UNIT_TABLET:
        strength = strength_mg(drug_name)
        if strength is None:
            return None, f"dose in {unit!r} but no mg strength in the drug name", "dose_unit"
        return dose * strength, None, "dose_unit"
    if u in _UNIT_ML:
        conc = concentration_mg_per_ml(drug_name) or concentration_mg_per_ml(sig)
        if conc is None:
            return None, "dose in mL but no mg/mL concentration in the drug name or sig", "dose_unit"
        return dose * conc, None, "dose_unit"
    if u.replace(" ", "") in {c.replace(" ", "") for c in _UNIT_CONC}:
        vol = _VOLUME.search(normalise_one(sig))
        if vol:
            return dose * float(vol.group(1)), None, "dose_unit"
        return None, "dose unit mg/mL without a volume in the sig", "dose_unit"
    if u == "":
        mg, why = dose_from_text(sig, drug_name)
        if mg is not None:
            return mg, None, "dose_unit"
        return None, "dose without a unit, and no mg amount in the sig", "dose_unit"
    return None, f"unknown dose unit {unit!r}", "dose_unit"


def parse_taper(sig: str, drug_name: str, default_per_day: Frequency | None,
                rules: FrequencyRules | None = None) -> list[tuple[float, float]] | None:
    """Steps of a written taper as (days, mg/day of drug); None when the sig is not a taper.

    'dexamethasone 4 mg BID x 3 days, then 2 mg BID x 3 days, then 2 mg daily x 3 days, then stop'
    gives [(3, 8), (3, 4), (3, 2)]. A last step without a duration gets NaN days (it runs to the
    order's end). A step without a dose or a frequency makes the whole sig unreadable as a taper.
    """
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
    return steps if len(steps) >= 2 else None


#: Columns of :func:`parse_orders`'s result.
PARSED_COLUMNS = ["mg_per_admin", "per_day", "drug_mg_per_day", "once", "prn", "duration_days", "schedule",
                  "dose_pack", "antiemetic", "taper", "problem", "problem_column"]


def parse_one(drug: str, drug_name: str, dose: float, unit: str, frequency: str, sig: str,
              rules: SteroidRules, freq_rules: FrequencyRules) -> dict[str, Any]:
    """Parse one distinct order text; see :data:`PARSED_COLUMNS`."""
    out: dict[str, Any] = dict.fromkeys(PARSED_COLUMNS)
    out.update(once=False, prn=False, dose_pack=False, taper=False, antiemetic=False)
    name_sig = normalise_one(f"{drug_name} {sig}")
    out["antiemetic"] = bool(rules.antiemetic_pattern.search(normalise_one(sig)))
    for pack in rules.dose_packs:
        if pack.drug == drug and pack.pattern.search(name_sig):
            sched = [(1.0, mg) for mg in pack.mg_per_day]
            out.update(schedule=tuple(sched), dose_pack=True, duration_days=float(len(sched)),
                       mg_per_admin=sched[0][1], per_day=1.0, drug_mg_per_day=sched[0][1])
            return out
    freq = parse_frequency(frequency, freq_rules) if frequency else None
    if freq is None:
        freq = parse_frequency(sig, freq_rules)
    taper = parse_taper(sig, drug_name, freq, freq_rules) if sig else None
    if taper:
        out.update(schedule=tuple(taper), taper=True, drug_mg_per_day=taper[0][1], per_day=np.nan,
                   mg_per_admin=np.nan)
        known = [d for d, _ in taper if np.isfinite(d)]
        out["duration_days"] = float(sum(known)) if len(known) == len(taper) else np.nan
        return out
    mg, why, column = dose_mg(dose, unit, drug_name, sig)
    if mg is None:
        out.update(problem=why, problem_column=column)
        return out
    if freq is None:
        out.update(problem="no frequency in the frequency column or the sig", problem_column="frequency",
                   mg_per_admin=mg)
        return out
    out.update(mg_per_admin=mg, per_day=freq.per_day, once=freq.once, prn=freq.prn,
               drug_mg_per_day=mg if freq.once else mg * freq.per_day)
    out["duration_days"] = 1.0 if freq.once else duration_days(sig)
    return out


def parse_orders(meds: pd.DataFrame, drug: pd.Series, rules: SteroidRules,
                 freq_rules: FrequencyRules | None = None) -> pd.DataFrame:
    """Parse every row of ``meds`` (steroid rows; ``drug`` = ingredient per row) into :data:`PARSED_COLUMNS`.

    The text is parsed once per distinct (drug, name, dose, unit, frequency, sig) combination, so a
    million rows written from a few thousand order templates cost a few thousand parses.
    """
    freq_rules = freq_rules or load_frequency_rules()
    if meds.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PARSED_COLUMNS}, index=meds.index)
    key = pd.DataFrame({
        "drug": drug.fillna(""),
        "drug_name": meds["drug_name"].fillna("").astype(str),
        "dose": meds["dose"].astype("float64").fillna(-1.0),
        "dose_unit": meds["dose_unit"].fillna("").astype(str),
        "frequency": meds["frequency"].fillna("").astype(str),
        "sig": meds["sig"].fillna("").astype(str),
    }, index=meds.index)
    codes = key.groupby(list(key.columns), sort=False, dropna=False).ngroup().to_numpy()
    first = pd.Series(np.arange(len(codes))).groupby(codes).first().to_numpy()
    uniq = key.iloc[first]
    parsed = [
        parse_one(d, n, np.nan if x < 0 else x, u, f, s, rules, freq_rules)
        for d, n, x, u, f, s in zip(uniq["drug"], uniq["drug_name"], uniq["dose"], uniq["dose_unit"],
                                    uniq["frequency"], uniq["sig"])
    ]
    table = pd.DataFrame(parsed, columns=PARSED_COLUMNS)
    out = table.iloc[codes].reset_index(drop=True)
    out.index = meds.index
    return out
