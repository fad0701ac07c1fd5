"""Clinical vocabularies and rules as data files, shipped inside the package (read with importlib.resources)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def check_keys(obj: Any, allowed: set[str], where: str, rule_file: str) -> None:
    """Reject a section of a rule file that is not an object or holds keys its loader does not know
    (a typo would otherwise be ignored silently, as medspaCy's ``_ALLOWED_KEYS`` guards against)."""
    from pfs.exceptions import RuleFileError

    if not isinstance(obj, Mapping):
        raise RuleFileError(f"{rule_file}: {where} must be an object, not {type(obj).__name__}")
    unknown = set(obj) - allowed
    if unknown:
        raise RuleFileError(f"{rule_file}: unknown keys {sorted(unknown)} in {where} (allowed: {sorted(allowed)})")


def read_rule_json(rule_file: str) -> Any:
    """The parsed JSON of a shipped rule file; invalid JSON is a :class:`~pfs.exceptions.RuleFileError`."""
    import json
    from importlib import resources

    from pfs.exceptions import RuleFileError

    try:
        text = resources.files("pfs.rules").joinpath(rule_file).read_text(encoding="utf-8")
    except OSError as err:
        raise RuleFileError(f"{rule_file}: cannot read: {err}") from err
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise RuleFileError(f"{rule_file}: not valid JSON: {err}") from err
