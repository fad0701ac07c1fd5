"""Every shipped Table Schema and rule file is well formed."""

from __future__ import annotations

import json
from importlib import resources

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


@pytest.mark.parametrize("path", sorted(p.name for p in resources.files("pfs.rules").iterdir()
                                        if p.name.endswith(".json")))
def test_rule_files_are_valid_json(path: str) -> None:
    json.loads(resources.files("pfs.rules").joinpath(path).read_text(encoding="utf-8"))
