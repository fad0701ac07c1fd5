"""Every shipped rule file and the nlp config section are valid; bad files are refused with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pfs.exceptions import ConfigError, RuleFileError
from pfs.extractors.nlp import _check_settings
from pfs.extractors.nlp.pipeline import RULE_FILES, _build_rules, read_rule_file
from pfs.settings import load_config


@pytest.mark.parametrize("kind", sorted(RULE_FILES))
def test_shipped_rule_files_load_into_medspacy_rules(kind: str) -> None:
    rules = read_rule_file(kind)
    assert len(rules) > 50 if kind != "sections" else len(rules) > 20
    assert len(_build_rules(kind, rules, kind)) == len(rules)


def test_shipped_rule_files_cite_their_source() -> None:
    for kind in RULE_FILES:
        assert read_rule_file(kind)  # loads
    from importlib import resources

    for name in ("targets.json", "context.json", "sections.json", "procedures.json"):
        data = json.loads(resources.files("pfs.rules").joinpath("nlp", name).read_text(encoding="utf-8"))
        assert len(data["_source"]) > 40


def test_unknown_top_level_key_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "ctx.json"
    path.write_text(json.dumps({"context_rules": [], "contxt_rules": []}), encoding="utf-8")
    with pytest.raises(RuleFileError, match="unknown keys"):
        read_rule_file("context", path)


def test_unknown_rule_key_is_rejected_with_the_rule_named() -> None:
    with pytest.raises(RuleFileError, match="'no'"):
        _build_rules("context", [{"literal": "no", "category": "NEGATED_EXISTENCE", "scope": 3}], "x.json")


def test_missing_rule_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match="not found"):
        read_rule_file("targets", tmp_path / "nope.json")


def test_nlp_config_defaults_pass_and_bad_values_fail() -> None:
    settings = load_config().section("nlp")
    _check_settings(settings)
    bad = load_config({"nlp": {"events": {"contradicting_labels": ["pseudo"]}}}).section("nlp")
    with pytest.raises(ConfigError, match="pseudo"):
        _check_settings(bad)
    with pytest.raises(ConfigError, match="max_report_chars"):
        _check_settings(load_config({"nlp": {"max_report_chars": 10}}).section("nlp"))


@pytest.mark.parametrize("kind", ["targets", "context"])
def test_no_phrase_is_listed_twice(kind: str) -> None:
    keys = [(r["literal"].lower(), r.get("direction", "")) for r in read_rule_file(kind)]
    assert len(keys) == len(set(keys))
