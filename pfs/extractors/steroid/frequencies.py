"""How often a corticosteroid order is taken: administrations per day from a frequency column or a sig.

The vocabulary ('BID', 'every 6 hours', 'once', 'PRN', ...) lives in ``pfs/rules/steroid_frequencies.json``;
this module validates and compiles it, and reads one text at a time (texts repeat, so results are cached).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from pfs.exceptions import RuleFileError
from pfs.extractors.steroid.drugs import normalise_one

FREQUENCY_FILE = "steroid_frequencies.json"
_FREQ_KEYS = {"description", "sources", "once", "prn", "every_hours", "times_per_day", "fixed"}


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
