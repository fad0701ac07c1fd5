"""The source registry is the one list of sources: everything else that names sources agrees with it."""

from __future__ import annotations

import importlib
import importlib.util

import pytest

from pfs.extractors import SOURCES, Role, WorkUnit, load_extractor, source_spec
from pfs.exceptions import ConfigError
from pfs.io.schema import load_schema
from pfs.report.plots import COLOURS
from pfs.vocab import METHODS, Method, Source


def _enum(schema: str, column: str) -> list:
    field = next(f for f in load_schema(schema).fields if f.name == column)
    return list(field.enum)


def test_every_registered_source_has_an_extract_function() -> None:
    for name in SOURCES:
        assert callable(getattr(load_extractor(name), "extract", None)), name


def test_study_cut_sources_expose_their_per_study_step() -> None:
    for spec in SOURCES.values():
        if spec.unit == WorkUnit.STUDIES:
            module = load_extractor(spec.name)
            assert callable(module.process_study) and callable(module.crashed_study)


def test_schema_enums_list_exactly_the_registered_sources() -> None:
    assert _enum("events", "source") == list(SOURCES)
    assert _enum("endpoints", "method") == [*SOURCES, "reconciled", "manual"]
    assert _enum("comparison", "method") == [*SOURCES, "reconciled", "manual"]


def test_each_output_table_and_input_table_has_a_schema() -> None:
    for spec in SOURCES.values():
        for table in (spec.input_table, *spec.output_tables):
            assert load_schema(table).fields, table
        assert spec.record_date in {f.name for f in load_schema(spec.input_table).fields}
        assert set(spec.file_columns) <= {f.name for f in load_schema(spec.input_table).fields}


def test_vocabularies_plots_and_comparison_are_derived_from_the_registry() -> None:
    assert [str(s) for s in Source] == list(SOURCES)
    assert [str(m) for m in Method] == [*SOURCES, "reconciled", "manual"]
    assert METHODS == [*SOURCES, "reconciled"]
    for name, spec in SOURCES.items():
        assert COLOURS[name] == spec.colour


def test_every_source_has_a_role_the_reconciler_knows() -> None:
    assert all(isinstance(spec.role, Role) for spec in SOURCES.values())


def test_unknown_source_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown source 'nlpp'.*known: steroid"):
        source_spec("nlpp")


def test_registry_module_imports_nothing_heavy() -> None:
    """`pfs --help` and the vocabularies must not pay for pandas, spaCy or torch."""
    import subprocess
    import sys

    code = "import sys, pfs.extractors, pfs.vocab; print(sorted({'pandas','spacy','torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_method_has_its_own_colour() -> None:
    assert len(set(COLOURS.values())) == len(COLOURS)
