"""Every shipped Table Schema and rule file is well formed."""

from __future__ import annotations

import importlib
import importlib.resources
import json
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from pfs.exceptions import RuleFileError
from pfs.io.schema import INPUT_TABLES, OUTPUT_TABLES, load_schema, parse_schema

SCHEMAS = sorted(p.name[:-5] for p in resources.files("pfs.schemas").iterdir() if p.name.endswith(".json"))


@pytest.mark.parametrize("name", SCHEMAS)
def test_shipped_schema_parses(name: str) -> None:
    schema = load_schema(name)
    assert schema.fields, name
    assert all(k in schema.columns for k in schema.primary_key)


def test_every_input_and_output_table_has_a_schema() -> None:
    assert set(INPUT_TABLES) | set(OUTPUT_TABLES) <= set(SCHEMAS)


def test_unknown_schema_keys_are_rejected() -> None:
    with pytest.raises(RuleFileError, match="unknown constraints"):
        parse_schema({"fields": [{"name": "a", "constraints": {"requird": True}}]})


def _nlp(kind: str) -> Callable[[], Any]:
    def load() -> Any:
        from pfs.extractors.nlp.pipeline import _build_rules, read_rule_file

        return _build_rules(kind, read_rule_file(kind), kind)

    return load


def _fn(module: str, name: str) -> Callable[[], Any]:
    def load() -> Any:
        func = getattr(importlib.import_module(module), name)
        if hasattr(func, "cache_clear"):  # a cached loader must read the file now, and not keep it afterwards
            func.cache_clear()
        try:
            return func()
        finally:
            if hasattr(func, "cache_clear"):
                func.cache_clear()

    return load


#: Every shipped rule file and the function pfs reads it with (found by grepping the file name in pfs/).
RULE_LOADERS: dict[str, Callable[[], Any]] = {
    "corticosteroids.json": _fn("pfs.extractors.steroid.drugs", "load_rules"),
    "steroid_frequencies.json": _fn("pfs.extractors.steroid.frequencies", "load_frequency_rules"),
    "fhir_mapping.json": _fn("pfs.io.formats.fhir.rules", "load_rules"),
    "omop_mapping.json": _fn("pfs.io.formats.omop.rules", "load_rules"),
    "series.json": _fn("pfs.io.series", "load_rules"),
    "synth_series.json": _fn("pfs.synth.formats", "_vendor_names"),
    "nlp/targets.json": _nlp("targets"),
    "nlp/context.json": _nlp("context"),
    "nlp/sections.json": _nlp("sections"),
    "nlp/procedures.json": _fn("pfs.extractors.nlp.labels", "_procedure_patterns"),
    "label_conventions.json": _fn("pfs.extractors.imaging.segmenters.labels", "_rules"),
    "synth_drugs.json": _fn("pfs.synth.medications", "load_rules"),
    "synth_mri.json": _fn("pfs.synth.mri", "load_params"),
    "synth_report_phrases.json": _fn("pfs.synth.reports", "load_phrases"),
    "next_line_therapy.json": _fn("pfs.extractors.treatment.rules", "load_rules"),
}
RULES_ROOT = Path(str(resources.files("pfs.rules")))


def test_every_shipped_rule_file_has_a_loader_here() -> None:
    shipped = {p.relative_to(RULES_ROOT).as_posix() for p in RULES_ROOT.rglob("*.json")}
    assert shipped == set(RULE_LOADERS)


@pytest.mark.parametrize("name", sorted(RULE_LOADERS))
def test_rule_file_loads_through_its_loader(name: str) -> None:
    assert RULE_LOADERS[name]()


@pytest.fixture
def broken_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """A copy of pfs/rules that ``importlib.resources`` serves instead of the shipped one."""
    copy = tmp_path / "rules"
    shutil.copytree(RULES_ROOT, copy)
    files = importlib.resources.files

    def fake(package: Any) -> Any:
        return copy if package == "pfs.rules" else files(package)

    monkeypatch.setattr(importlib.resources, "files", fake)

    def add_unknown_key(name: str) -> None:
        data = json.loads((copy / name).read_text(encoding="utf-8"))
        data["unknown_key_from_a_typo"] = []
        (copy / name).write_text(json.dumps(data), encoding="utf-8")

    return add_unknown_key


@pytest.mark.parametrize("name", sorted(RULE_LOADERS))
def test_a_rule_file_that_parses_but_has_an_unknown_key_is_rejected(name: str, broken_rules) -> None:
    broken_rules(name)
    with pytest.raises(RuleFileError, match="unknown"):
        RULE_LOADERS[name]()
