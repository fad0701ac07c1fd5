"""Every input row is used or quarantined: on randomly faulted small exports, the manifest's rows_read
is the number of records in each file and equals rows_used + rows_quarantined (hypothesis)."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from pfs_testdata import MEDICATIONS, PATIENTS, REPORTS

from pfs.io.export import load_export
from pfs.pipeline import build_manifest
from pfs.settings import load_config

#: Field-level faults: each replaces one field of one row.
FIELD_FAULTS = ["", "   ", "-4", "1e400", "43831", "2020-13-45", "0021-01-01", "P404", "M1", "R1", "\"", "a,b",
                "é", "x" * 300, "2099-01-01", "NaN", "None"]


def _fault(text: str, row: int, col: int, value: str, kind: str) -> str:
    lines = text.rstrip("\n").split("\n")
    if not (1 <= row < len(lines)):
        return text
    fields = lines[row].split(",")
    if kind == "field" and col < len(fields):
        fields[col] = value
        lines[row] = ",".join(fields)
    elif kind == "cut":
        lines[row] = ",".join(fields[: max(1, col)])
    elif kind == "duplicate":
        lines.insert(row, lines[row])
    elif kind == "extra":
        lines[row] += ",extra"
    return "\n".join(lines) + "\n"


fault = st.tuples(st.sampled_from(["patients", "medications", "reports"]), st.integers(1, 3), st.integers(0, 9),
                  st.sampled_from(FIELD_FAULTS), st.sampled_from(["field", "field", "cut", "duplicate", "extra"]))
CONFIG = load_config()


def _records(text: str) -> int:
    """Data records as the csv module sees them (blank lines are not records)."""
    return sum(1 for r in csv.reader(io.StringIO(text, newline="")) if r) - 1


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.lists(fault, min_size=1, max_size=4))
def test_every_row_is_used_or_quarantined(faults: list[tuple]) -> None:
    texts = {"patients": PATIENTS, "medications": MEDICATIONS, "reports": REPORTS}
    for table, row, col, value, kind in faults:
        texts[table] = _fault(texts[table], row, col, value, kind)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, text in texts.items():
            (root / f"{name}.csv").write_text(text, encoding="utf-8")
        try:
            export = load_export(root)
        except Exception as err:  # only a whole-table problem may stop the load, never a bug
            from pfs.exceptions import ExportError

            assert isinstance(err, ExportError), err
            return
        q = export.quarantine.frame()
        manifest = build_manifest(export, CONFIG, [], {}, q)
    for name, counts in manifest["tables"].items():
        assert counts["rows_read"] == _records(texts[name]), name
        assert counts["rows_read"] == counts["rows_used"] + counts["rows_quarantined"], name
        assert counts["rows_used"] == len(export.table(name)), name
        assert set(q.loc[q["table"] == name, "row"]) <= set(range(1, counts["rows_read"] + 1)), name
        used = set(export.table(name)["_row"])
        assert not used & set(q.loc[q["table"] == name, "row"]), f"{name}: a row both used and quarantined"
