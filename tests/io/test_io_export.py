"""The loader: every row is used or quarantined with file, row, column and reason."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pfs_testdata import MEDICATIONS, PATIENTS, REPORTS, write_export

from pfs.exceptions import ExportError
from pfs.io.export import load_export


def test_clean_export_loads_with_typed_columns(small_export: Path) -> None:
    export = load_export(small_export)
    meds = export.table("medications")
    assert len(meds) == 3 and len(export.quarantine) == 0
    assert pd.api.types.is_datetime64_any_dtype(meds["order_date"])
    assert meds["dose"].dtype == "float64"
    assert meds.loc[meds["medication_id"] == "M2", "end_date"].isna().all()
    assert export.rows_read == {"patients": 3, "medications": 3, "reports": 2}
    # multi-line quoted report text survives
    assert "IMPRESSION" in export.table("reports").set_index("report_id").loc["R1", "text"]


def test_absent_optional_table_is_an_empty_frame_with_schema_columns(small_export: Path) -> None:
    export = load_export(small_export)
    assert not export.has("imaging")
    assert {"study_id", "sequence", "path"} <= set(export.table("imaging").columns)
    assert any("imaging" in n for n in export.notes)


def test_missing_patients_table_is_one_clear_error(tmp_path: Path) -> None:
    root = write_export(tmp_path / "e", medications=MEDICATIONS)
    with pytest.raises(ExportError, match="required table 'patients' not found"):
        load_export(root)


def test_missing_required_column_names_file_and_column(tmp_path: Path) -> None:
    meds = MEDICATIONS.replace("drug_name", "drug")
    root = write_export(tmp_path / "e", patients=PATIENTS, medications=meds)
    with pytest.raises(ExportError, match=r"medications\.csv: required column 'drug_name' missing"):
        load_export(root)


def test_bad_rows_are_quarantined_with_row_column_and_reason(tmp_path: Path) -> None:
    meds = MEDICATIONS + (
        "P1,M4,2020-13-45,,dexamethasone,4,mg,BID,PO,\n"  # row 4: bad date
        "P9,M5,2020-01-01,,dexamethasone,4,mg,BID,PO,\n"  # row 5: unknown patient
        "P1,M6,2020-01-01,,dexamethasone,-2,mg,BID,PO,\n"  # row 6: negative dose
        "P1,M1,2020-01-01,,dexamethasone,4,mg,BID,PO,\n"  # row 7: duplicate id
        "P1,,2020-01-01,,dexamethasone,4,mg,BID,PO,\n"  # row 8: missing id
    )
    root = write_export(tmp_path / "e", patients=PATIENTS, medications=meds)
    export = load_export(root)
    q = export.quarantine.frame().set_index("row")
    assert list(q.index) == [4, 5, 6, 7, 8]
    assert q.loc[4, "column"] == "order_date" and "unparseable" in q.loc[4, "reason"]
    assert q.loc[4, "value"] == "2020-13-45"
    assert "unknown patient_id" in q.loc[5, "reason"]
    assert q.loc[6, "column"] == "dose" and "minimum" in q.loc[6, "reason"]
    assert "duplicate medication_id" in q.loc[7, "reason"] and "row 1" in q.loc[7, "reason"]
    assert "missing required value" in q.loc[8, "reason"]
    assert set(export.table("medications")["medication_id"]) == {"M1", "M2", "M3"}


def test_truncated_and_overlong_rows_are_quarantined(tmp_path: Path) -> None:
    meds = MEDICATIONS + "P1,M9,2020-01-01,,dexamethasone,4,mg,BID,PO,,EXTRA\nP1,M10,2020-0"
    root = write_export(tmp_path / "e", patients=PATIENTS, medications=meds)
    export = load_export(root)
    q = export.quarantine.frame()
    assert sorted(q["row"]) == [4, 5]
    assert export.rows_read["medications"] == 5
    assert len(export.table("medications")) == 3


def test_latin1_semicolon_export_is_read_with_notes(tmp_path: Path) -> None:
    root = tmp_path / "e"
    root.mkdir()
    (root / "patients.csv").write_bytes(PATIENTS.replace(",", ";").encode("latin-1"))
    meds = MEDICATIONS.replace("dexamethasone,4", "déxaméthasone,4")
    (root / "medications.csv").write_bytes(meds.encode("latin-1"))
    export = load_export(root)
    assert len(export.table("patients")) == 3
    assert "déxaméthasone" in set(export.table("medications")["drug_name"])
    assert any("Latin-1" in n for n in export.notes) and any("delimiter" in n for n in export.notes)


def test_utf8_bom_header_is_stripped(tmp_path: Path) -> None:
    root = tmp_path / "e"
    root.mkdir()
    (root / "patients.csv").write_bytes(b"\xef\xbb\xbf" + PATIENTS.encode())
    assert len(load_export(root).table("patients")) == 3


def test_mapping_file_renames_columns_and_parses_us_dates(tmp_path: Path) -> None:
    root = tmp_path / "e"
    root.mkdir()
    (root / "pts.csv").write_text("MRN,DX_DATE\nA,03/15/2020\nB,3/1/2021\n")
    mapping = tmp_path / "map.toml"
    mapping.write_text('[tables.patients]\nfile = "pts.csv"\ndate_format = "%m/%d/%Y"\n'
                       '[tables.patients.columns]\nMRN = "patient_id"\nDX_DATE = "diagnosis_date"\n')
    pts = load_export(root, mapping).table("patients")
    assert list(pts["diagnosis_date"].dt.strftime("%Y-%m-%d")) == ["2020-03-15", "2021-03-01"]


def test_parquet_tables_are_read_like_csv(tmp_path: Path, small_export: Path) -> None:
    root = tmp_path / "pq"
    root.mkdir()
    pts = pd.read_csv(small_export / "patients.csv", dtype=str, keep_default_na=False)
    pts["diagnosis_date"] = pd.to_datetime(pts["diagnosis_date"])
    pts.to_parquet(root / "patients.parquet")
    export = load_export(root)
    assert export.table("patients")["diagnosis_date"].iloc[0] == pd.Timestamp("2020-01-01")


def test_image_paths_must_stay_inside_the_export(tmp_path: Path) -> None:
    root = write_export(tmp_path / "e", patients=PATIENTS)
    (root / "img").mkdir()
    (root / "img" / "a.nii.gz").write_bytes(b"x")
    outside = tmp_path / "secret.nii.gz"
    outside.write_bytes(b"x")
    (root / "img" / "link.nii.gz").symlink_to(outside)
    (root / "imaging.csv").write_text(
        "patient_id,study_id,study_date,sequence,path,mask_path\n"
        "P1,S1,2020-05-01,T1Gd,img/a.nii.gz,\n"
        "P1,S2,2020-05-01,T1C,../secret.nii.gz,\n"
        "P1,S3,2020-05-01,T1C,img/link.nii.gz,\n"
        "P1,S4,2020-05-01,T1C,img/none.nii.gz,\n"
        "P1,S5,2020-05-01,DWI,img/a.nii.gz,\n"
    )
    export = load_export(root)
    img = export.table("imaging")
    # Series descriptions are kept as written (the imaging source classifies them): a DWI is no invalid value.
    assert list(img["study_id"]) == ["S1", "S5"] and list(img["sequence"]) == ["T1Gd", "DWI"]
    q = export.quarantine.frame().set_index("row")
    assert q.loc[2, "reason"] == q.loc[3, "reason"] == "path escapes the export directory"
    assert q.loc[4, "reason"] == "file not found"
    assert 5 not in q.index


def test_rows_of_a_quarantined_patient_say_so(tmp_path: Path) -> None:
    pts = PATIENTS + "P4,not-a-date,,,,,\n"
    reps = REPORTS + "P4,R3,2020-06-01,MRI BRAIN,text\n"
    root = write_export(tmp_path / "e", patients=pts, reports=reps)
    q = load_export(root).quarantine.frame()
    rep = q[q["table"] == "reports"].iloc[0]
    assert rep["reason"] == "patient was quarantined in the patients table"


def test_report_text_is_never_copied_into_the_quarantine(tmp_path: Path) -> None:
    reps = REPORTS + "P1,R1,2020-06-01,MRI BRAIN,\n"  # duplicate id, blank text
    root = write_export(tmp_path / "e", patients=PATIENTS, reports=reps)
    q = load_export(root).quarantine.frame()
    assert (q.loc[q["column"] == "text", "value"] == "<redacted>").all()


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    root = write_export(tmp_path / "e", patients=PATIENTS, reports="")
    with pytest.raises(ExportError, match=r"reports\.csv: the file is empty"):
        load_export(root)


def test_impossible_calendar_days_and_non_numbers_are_quarantined(tmp_path: Path) -> None:
    meds = MEDICATIONS + (
        "P1,M4,2021-02-30,,dexamethasone,4,mg,BID,PO,\n"  # row 4: 30 February
        "P1,M5,2021-02-01,,dexamethasone,nan,mg,BID,PO,\n"  # row 5: 'nan' is not a dose
        "P1,M6,2021-02-01,,dexamethasone, 1e1 ,mg,BID,PO,\n"  # row 6: a number with spaces is fine
    )
    root = write_export(tmp_path / "e", patients=PATIENTS, medications=meds)
    export = load_export(root)
    q = export.quarantine.frame().set_index("row")
    assert list(q.index) == [4, 5]
    assert q.loc[4, "column"] == "order_date" and q.loc[5, "column"] == "dose"
    meds_ok = export.table("medications").set_index("medication_id")
    assert meds_ok.loc["M6", "dose"] == 10.0


def test_quoted_newlines_and_the_slow_reader_give_the_same_rows(tmp_path: Path) -> None:
    """The fast (pyarrow) reader and the fallback for malformed files number rows the same way."""
    reports = REPORTS + 'P1,R9,2020-05-01,MRI BRAIN,"line one\nline two, stable"\n'
    clean = load_export(write_export(tmp_path / "a", patients=PATIENTS, reports=reports))
    broken = load_export(write_export(tmp_path / "b", patients=PATIENTS, reports=reports + "P1,R10\n"))
    a, b = clean.table("reports"), broken.table("reports")
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False)
    assert broken.quarantine.frame()["row"].tolist() == [len(a) + 1]


def test_partition_gives_each_group_of_patients_exactly_its_rows(small_export: Path) -> None:
    export = load_export(small_export)
    groups = [["P2"], ["P1", "P3"], ["P9-not-a-patient"]]
    parts = list(export.partition(groups))
    assert len(parts) == 3
    for group, part in zip(groups, parts, strict=True):
        for name in ("patients", "medications", "reports"):
            frame = export.table(name)
            expected = frame.loc[frame["patient_id"].isin(group)].reset_index(drop=True)
            pd.testing.assert_frame_equal(part.table(name), expected)
            assert set(part.table(name)["patient_id"]) <= set(group)
    assert sum(len(p.table("medications")) for p in parts) == len(export.table("medications"))


def test_a_column_named_twice_in_the_header_is_one_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "e"
    root.mkdir()
    (root / "patients.csv").write_text("patient_id,diagnosis_date,diagnosis_date\nP1,2020-01-01,2020-02-02\n",
                                       encoding="utf-8")
    with pytest.raises(ExportError, match=r"patients\.csv: column 'diagnosis_date' appears more than once"):
        load_export(root)
