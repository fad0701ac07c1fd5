"""Dose, unit, frequency and sig parsing for corticosteroid orders: one row per order, read in bulk.

EHR orders say the same thing in many ways ("4 mg PO BID", "Take 1 tablet (4 mg total) by mouth
2 (two) times daily", dose 0.5 unit mL of a 1 mg/mL solution, "8 mg x3 days then 4 mg x3 days then
stop"). Each distinct combination of (drug name, dose, unit, frequency, sig) is parsed once; what
cannot be read is returned with a reason for the quarantine (:data:`DOSE_PROBLEMS`), never guessed.
What one text says (a dose, a strength, a duration, a written taper) is read by :mod:`.sig`; how often
by :mod:`.frequencies`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from pfs.extractors.steroid.drugs import SteroidRules, normalise_one
from pfs.extractors.steroid.frequencies import FrequencyRules, load_frequency_rules, parse_frequency
from pfs.extractors.steroid.sig import (
    DOSE_PROBLEMS,
    STRENGTH,
    UNIT_MG,
    concentration_mg_per_ml,
    dose_forms,
    dose_from_text,
    duration_days,
    parse_taper,
    sig_dose,
    strength_mg,
    taper_steps,
)

__all__ = [
    "DOSE_PROBLEMS",
    "PARSED_COLUMNS",
    "FrequencyRules",
    "concentration_mg_per_ml",
    "dose_from_text",
    "duration_days",
    "load_frequency_rules",
    "parse_frequency",
    "parse_one",
    "parse_orders",
    "parse_taper",
    "strength_mg",
]

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
    total_mg, tablets, volume_ml, mass_mg = dose_forms(t)
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
        mass = STRENGTH.search(part)
        freq = parse_frequency(part, rules)
        if mass is None or freq is None or freq.once:
            return np.nan
        total += float(mass.group(1)) * UNIT_MG[mass.group(2)] * freq.per_day
    return total


def _pack_bits(text: str, rules: SteroidRules) -> int:
    """Bit i set when dose pack i of the rule file is named in ``text``."""
    t = normalise_one(text)
    return sum(1 << i for i, pack in enumerate(rules.dose_packs) if pack.pattern.search(t))


def _unit_tuple(unit: str) -> tuple[str, float]:
    u = normalise_one(unit)
    if u in UNIT_MG:
        return "mass", UNIT_MG[u]
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
    sig_mg, sig_why = sig_dose(total, tabs, strength, vol, conc, mass)
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
    return taper_steps(sig, name, parse_frequency(freq, rules) if freq else parse_frequency(sig, rules), rules)


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
