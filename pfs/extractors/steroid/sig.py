"""What one text of a corticosteroid order says: a dose, a tablet strength, a duration, a written taper.

The same reading serves the bulk parser (:func:`pfs.extractors.steroid.doses.parse_orders`, once per
distinct sig or drug name) and the steps of a taper; results are cached because texts repeat.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from pfs.extractors.steroid.drugs import normalise_one
from pfs.extractors.steroid.frequencies import Frequency, FrequencyRules, parse_frequency

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
UNIT_MG = {
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
_MASS = r"(mg|milligrams?|mcg|micrograms?|ug|µg|g|gm|grams?)"
STRENGTH = re.compile(_NUM + r"\s?" + _MASS + r"(?!\s?/|[a-z])")
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


def _number(text: str) -> float:
    return _WORD_NUMBERS[text] if text in _WORD_NUMBERS else float(text)


@lru_cache(maxsize=1 << 14)
def strength_mg(drug_name: str) -> float | None:
    """Tablet strength in mg written in a product name ('dexAMETHasone 4 MG tablet' -> 4)."""
    t = normalise_one(drug_name)
    if _CONCENTRATION.search(t):
        return None
    m = STRENGTH.search(t)
    return float(m.group(1)) * UNIT_MG[m.group(2)] if m else None


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


def dose_forms(t: str) -> tuple[float, float, float, float]:
    """The dose as a normalised text writes it: (mg 'total', tablet count, mL, mg), NaN for a form it lacks.

    A volume inside a concentration ('1 mg/5 mL') is not a volume to take.
    """
    total = _TOTAL.search(t)
    tabs = _TAKE_UNITS.search(t)
    vol = _VOLUME.search(t)
    conc = _CONCENTRATION.search(t)
    if vol and conc and conc.start() <= vol.start() <= conc.end():
        vol = None
    mass = STRENGTH.search(t)
    return (
        float(total.group(1)) * UNIT_MG[total.group(2)] if total else np.nan,
        _number(tabs.group(1)) if tabs else np.nan,
        float(vol.group(1)) if vol else np.nan,
        float(mass.group(1)) * UNIT_MG[mass.group(2)] if mass else np.nan,
    )


def sig_dose(
    total: np.ndarray, tabs: np.ndarray, strength: np.ndarray, vol: np.ndarray, conc: np.ndarray, mass: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(mg per administration, reason or None) per row from the dose forms of :func:`dose_forms`.

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

    The same reading :func:`pfs.extractors.steroid.doses.parse_orders` gives a sig, on one text.
    """
    total, tabs, vol, mass = (np.array([x], dtype="float64") for x in dose_forms(normalise_one(text)))
    strength = np.array([strength_mg(drug_name) or np.nan])
    conc = np.array([concentration_mg_per_ml(drug_name) or concentration_mg_per_ml(text) or np.nan])
    mg, why = sig_dose(total, tabs, strength, vol, conc, mass)
    return (None, str(why[0])) if why[0] is not None else (float(mg[0]), None)


def parse_taper(
    sig: str, drug_name: str, default_per_day: Frequency | None, rules: FrequencyRules | None = None
) -> list[tuple[float, float]] | None:
    """Steps of a written taper as (days, mg/day of drug); None when the sig is not a taper.

    'dexamethasone 4 mg BID x 3 days, then 2 mg BID x 3 days, then 2 mg daily x 3 days, then stop'
    gives [(3, 8), (3, 4), (3, 2)]. A last step without a duration gets NaN days (it runs to the
    order's end). A step without a dose or a frequency makes the whole sig unreadable as a taper.
    """
    steps = taper_steps(sig, drug_name, default_per_day, rules)
    return None if steps is None else list(steps)


@lru_cache(maxsize=1 << 16)
def taper_steps(
    sig: str, drug_name: str, default_per_day: Frequency | None, rules: FrequencyRules | None
) -> tuple[tuple[float, float], ...] | None:
    """Cached worker of :func:`parse_taper` (sigs repeat across orders)."""
    parts = [p.strip() for p in re.split(r"\bthen\b|;|\bfollowed by\b", str(sig).lower()) if p.strip()]
    if len(parts) < 2:
        return None
    steps: list[tuple[float, float]] = []
    last_freq = default_per_day
    for i, part in enumerate(parts):
        if _STOP.search(normalise_one(part)) and not STRENGTH.search(normalise_one(part)):
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
