"""The format registry and the one quarantine that converters write to."""

from __future__ import annotations

import pytest

from pfs.exceptions import ExportError
from pfs.io.formats import FORMATS, convert
from pfs.io.formats.common import set_aside, set_aside_rows
from pfs.io.formats.fhir import convert_fhir
from pfs.io.formats.omop import convert_omop
from pfs.io.quarantine import MAX_VALUE_CHARS, Quarantine


def test_registry_names_each_converter_once():
    assert FORMATS == {"omop": convert_omop, "fhir": convert_fhir}


def test_unknown_format_is_one_clear_error(tmp_path):
    with pytest.raises(ExportError, match="unknown export format 'hl7v2': use one of omop, fhir"):
        convert(tmp_path, tmp_path / "out", "hl7v2")


def test_converter_rows_follow_the_quarantine_conventions():
    import pandas as pd

    q = Quarantine()
    set_aside(q, "NOTE.csv", 7, "radiology note with empty note_text", patient_id=3, column="text", value="free text")
    set_aside(q, "person.csv", 2, "duplicate person_id", patient_id=None, column="person_id", value="x" * 300)
    q.add("person.csv", [1], "missing person_id", stage="load")
    set_aside_rows(q, "death.csv", pd.DataFrame({"_row": [4, 3], "person_id": ["9", "8"], "death_date": ["a", "b"]}),
                   "unparseable or missing date in death_date", column="death_date")
    f = q.frame()
    assert len(q) == 5
    assert f[["table", "row"]].values.tolist() == [["NOTE.csv", 7], ["death.csv", 3], ["death.csv", 4],
                                                   ["person.csv", 1], ["person.csv", 2]]
    assert f.loc[f["table"] == "NOTE.csv", "value"].item() == "<redacted>"  # free text never copied
    long = f.loc[(f["table"] == "person.csv") & (f["row"] == 2), "value"].item()
    assert long == "x" * MAX_VALUE_CHARS + "..."
    assert set(f.loc[f["table"] != "person.csv", "stage"]) == {"convert"}
    assert q.rows_of("death.csv") == {3, 4}
