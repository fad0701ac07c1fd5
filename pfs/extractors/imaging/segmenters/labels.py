"""Label conventions: which value (or output channel) of a mask or a model is enhancing tumour.

BraTS moved ET from label 4 (2017-2021) to 3 (2023), and 2024's post-treatment task gave 4 to the
resection cavity; a pipeline reading one convention as another silently measures nothing or the
wrong thing. So every mask and model declares its convention (a name from
``pfs/rules/label_conventions.json``, or the label names in its own dataset.json/metadata.json), and
a map whose ET is empty while other tumour labels are present is flagged, never a silent zero.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from pfs.exceptions import ConfigError, RuleFileError

RULE_FILE = "label_conventions.json"
#: qc_flags entry: the enhancing-tumour label is empty although other tumour labels are present.
FLAG_ET_EMPTY = "et_empty_other_tumour_labels"
_TOP_KEYS = {"_source", "structures", "conventions", "channels"}


@dataclass(frozen=True)
class Convention:
    """What each label value means, as structure codes (ET, NCR, ED, TC, WT, RC, background)."""

    name: str
    labels: dict[int, str]

    @property
    def et_values(self) -> list[int]:
        return sorted(v for v, s in self.labels.items() if s == "ET")

    def tumour_values(self) -> list[int]:
        """Label values of tumour other than ET (the evidence that an empty ET is suspicious)."""
        tumour = _rules()["tumour"]
        return sorted(v for v, s in self.labels.items() if s != "ET" and tumour.get(s, False))


def normalise(name: str) -> str:
    """Lower case, punctuation to spaces, British to American spelling, as the rule file lists names."""
    text = re.sub(r"[^a-z0-9]+", " ", str(name).lower()).strip()
    return text.replace("tumour", "tumor")


@lru_cache(maxsize=1)
def _rules() -> dict[str, Any]:
    text = resources.files("pfs.rules").joinpath(RULE_FILE).read_text(encoding="utf-8")
    data = json.loads(text)
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise RuleFileError(f"{RULE_FILE}: unknown keys {sorted(unknown)}")
    structures: dict[str, str] = {}
    tumour: dict[str, bool] = {}
    for code, spec in data["structures"].items():
        tumour[code] = bool(spec["tumour"])
        for n in spec["names"]:
            if normalise(n) in structures:
                raise RuleFileError(f"{RULE_FILE}: structure name {n!r} listed twice")
            structures[normalise(n)] = code
    conventions = {}
    for name, spec in data["conventions"].items():
        labels = {int(k): v for k, v in spec["labels"].items()}
        bad = sorted(set(labels.values()) - set(tumour))
        if bad:
            raise RuleFileError(f"{RULE_FILE}: convention {name!r} uses unknown structures {bad}")
        conventions[name] = Convention(name, labels)
    channels = {normalise(n): seq for seq, names in data["channels"].items() if not seq.startswith("_")
                for n in names}
    return {"structures": structures, "tumour": tumour, "conventions": conventions, "channels": channels}


def conventions() -> list[str]:
    return sorted(_rules()["conventions"])


def convention(name: str, where: str) -> Convention:
    """The named convention; ``where`` (the config key) goes into the error."""
    known = _rules()["conventions"]
    if name not in known:
        raise ConfigError(f"{where} {name!r} is not a known label convention (known: {', '.join(sorted(known))})")
    return known[name]


def structure_of(name: str) -> str | None:
    """Structure code (ET, NCR, ED, TC, WT, RC, background) of a label or channel name, or None."""
    return _rules()["structures"].get(normalise(name))


def sequence_of(name: str) -> str | None:
    """pfs sequence (T1C, T1, T2, FLAIR) of a model's input channel name, or None."""
    return _rules()["channels"].get(normalise(name))


def convention_from_names(names: dict[int, str], source: str) -> Convention:
    """A convention read from a model's own label names (``{value: name}``).

    Raises:
        ConfigError: no name is enhancing tumour, so pfs would measure nothing.
    """
    labels = {}
    for value, n in names.items():
        code = structure_of(n)
        labels[int(value)] = code if code is not None else "unknown"
    if not any(code == "ET" for code in labels.values()):
        raise ConfigError(f"{source}: none of the labels {dict(names)} is enhancing tumour by name; set the "
                          f"label convention in imaging.toml (known: {', '.join(conventions())})")
    return Convention(f"from {source}", labels)


def check_label_map(label_map: np.ndarray, conv: Convention, what: str) -> tuple[np.ndarray, list[str]]:
    """The ET mask of an integer label map and its QC flags.

    Raises:
        ValueError: the map holds values the convention does not define (read with the wrong
            convention); the message says which values and which conventions would fit.
    """
    present = {int(v) for v in np.unique(label_map)} - {0}
    undefined = sorted(present - set(conv.labels))
    if undefined:
        fits = [c.name for c in _rules()["conventions"].values() if present <= set(c.labels)]
        hint = f" (conventions that define all of {sorted(present)}: {', '.join(fits)})" if fits else ""
        raise ValueError(f"{what} holds label values {undefined} that convention {conv.name!r} does not define"
                         f"{hint}; set the right convention")
    et = np.isin(label_map, conv.et_values)
    return et, et_empty_flags(bool(et.any()), any(v in present for v in conv.tumour_values()))


def et_empty_flags(et_present: bool, other_tumour_present: bool) -> list[str]:
    """The QC flag for an empty ET beside other tumour labels (a wrong convention or a non-enhancing scan)."""
    return [FLAG_ET_EMPTY] if (not et_present and other_tumour_present) else []
