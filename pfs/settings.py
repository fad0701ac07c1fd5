"""Run configuration: shipped defaults (one TOML file per section in ``pfs/config/``) plus user overrides.

A user config is a TOML file with the same sections, e.g.::

    [steroid]
    min_rise_mg_per_day = 4
    [endpoints]
    index_date = "diagnosis"

Unknown sections or keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pfs.exceptions import ConfigError


def _defaults() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entry in sorted(resources.files("pfs.config").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".toml"):
            out[entry.name[:-5]] = tomllib.loads(entry.read_text(encoding="utf-8"))
    return out


def _merge(base: dict, override: dict, where: str) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if key not in base:
            hint = difflib.get_close_matches(key, list(base), n=1)
            tip = f"; did you mean {hint[0]!r}?" if hint else f" (known: {', '.join(sorted(base))})"
            raise ConfigError(f"unknown config key {where}{key!r}{tip}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {where}{key!r} must be a table")
            merged[key] = _merge(base[key], value, f"{where}{key}.")
        else:
            if isinstance(base[key], bool) != isinstance(value, bool) or (
                isinstance(base[key], (int, float)) and not isinstance(value, (int, float))
            ) or (isinstance(base[key], str) and not isinstance(value, str)) or (
                isinstance(base[key], list) and not isinstance(value, list)
            ):
                raise ConfigError(
                    f"config key {where}{key!r} must be {type(base[key]).__name__}, not {value!r}"
                )
            merged[key] = value
    return merged


@dataclass(frozen=True)
class Config:
    """The effective configuration of a run; ``hash`` identifies it in the manifest."""

    data: dict[str, Any]

    def section(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.data.get(name, {}))

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.data, sort_keys=True).encode()).hexdigest()[:16]

    def with_overrides(self, overrides: dict[str, Any]) -> Config:
        return Config(_merge(self.data, overrides, ""))


def load_config(path: Path | str | dict | None = None) -> Config:
    """Defaults, updated from a TOML file (or a dict of the same shape)."""
    base = _defaults()
    if path is None:
        return Config(base)
    if isinstance(path, dict):
        return Config(_merge(base, path, ""))
    path = Path(path)
    try:
        user = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"config file not found: {path}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    try:
        return Config(_merge(base, user, ""))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err
