"""Reading in partitions: a table read in small batches gives exactly what a whole read gives, and
staging by bucket of patients loses and reorders nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pfs.io.export import load_export, read_export
from pfs.io.staging import stage_export

#: A batch this small (the pyarrow reader's minimum block) cuts the test tables into many batches.
SMALL = 4096
PATIENTS = ["patient_id,diagnosis_date,surgery_date,rt_start_date,rt_end_date,last_followup_date,death_date"] + [
    f"P{i:03d},2020-01-01,2020-01-10,2020-02-10,2020-03-20,2021-01-01," for i in range(30)]
MED_HEADER = "patient_id,medication_id,order_date,end_date,drug_name,dose,dose_unit,frequency,route,sig"


def _med(i: int, pid: str | None = None, mid: str | None = None, dose: str = "4") -> str:
    pid = pid or f"P{(i * 7) % 30:03d}"  # patients interleaved through the file
    return f"{pid},{mid or f'M{i:05d}'},2020-0{1 + i % 9}-01,,dexamethasone,{dose},mg,BID,PO,\"{dose} mg PO BID\""


def _export(root: Path, meds: list[str], patients: list[str] = PATIENTS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "patients.csv").write_text("\n".join(patients) + "\n", encoding="utf-8")
    (root / "medications.csv").write_text("\n".join([MED_HEADER, *meds]) + "\n", encoding="utf-8")
    return root


def _same(a, b) -> None:
    assert a.rows_read == b.rows_read and a.file_hashes == b.file_hashes and a.notes == b.notes
    assert a.tables.keys() == b.tables.keys()
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name])
    pd.testing.assert_frame_equal(a.quarantine.frame(), b.quarantine.frame())


def test_a_table_read_in_small_batches_equals_the_table_read_whole(tmp_path: Path) -> None:
    root = _export(tmp_path / "e", [_med(i) for i in range(2000)])
    whole, batched = load_export(root), read_export(root, block_bytes=SMALL)
    assert len(whole.table("medications")) == 2000
    assert batched.table("medications")["_row"].tolist() == list(range(1, 2001))
    _same(whole, batched)


def test_a_duplicate_id_far_from_its_first_row_is_found_across_batches(tmp_path: Path) -> None:
    meds = [_med(i) for i in range(1500)]
    meds[1400] = _med(1400, mid="M00003")  # row 1401 repeats the id of row 4, many batches earlier
    root = _export(tmp_path / "e", meds)
    batched = read_export(root, block_bytes=SMALL)
    q = batched.quarantine.frame()
    assert q[["row", "column", "reason"]].values.tolist() == [
        [1401, "medication_id", "duplicate medication_id (first seen at row 4)"]]
    assert len(batched.table("medications")) == 1499
    _same(load_export(root), batched)


def test_a_malformed_row_in_the_middle_is_quarantined_and_every_other_row_is_read(tmp_path: Path) -> None:
    meds = [_med(i) for i in range(1500)]
    meds[700] = meds[700] + ",an extra field"
    root = _export(tmp_path / "e", meds)
    batched = read_export(root, block_bytes=SMALL)
    q = batched.quarantine.frame()
    assert q["row"].tolist() == [701] and "fields, the header has 10" in q["reason"].iloc[0]
    rows = batched.table("medications")["_row"].tolist()
    assert rows == [r for r in range(1, 1501) if r != 701]
    _same(load_export(root), batched)


def test_a_record_larger_than_a_read_batch_is_read_whole(tmp_path: Path) -> None:
    meds = [_med(i) for i in range(1500)]
    long_sig = "4 mg PO BID " + "then taper as directed; " * 400  # about 10 kB, more than a batch
    meds[1000] = meds[1000].replace('"4 mg PO BID"', f'"{long_sig}"')
    root = _export(tmp_path / "e", meds)
    batched = read_export(root, block_bytes=SMALL)
    assert batched.quarantine.frame().empty
    assert batched.table("medications").set_index("medication_id").loc["M01000", "sig"] == long_sig.strip()
    _same(load_export(root), batched)


def test_a_file_cut_inside_a_quoted_field_loses_only_its_last_record_in_batches(tmp_path: Path) -> None:
    root = _export(tmp_path / "e", [_med(i) for i in range(1200)])
    path = root / "medications.csv"
    path.write_bytes(path.read_bytes().rstrip(b"\n")[:-3])  # cut inside the last sig
    batched = read_export(root, block_bytes=SMALL)
    assert batched.quarantine.frame()[["row", "reason"]].values.tolist() == [
        [1200, "unreadable CSV record: the file ends inside a quoted field (truncated file?) (medications.csv)"]]
    assert len(batched.table("medications")) == 1199
    _same(load_export(root), batched)


def test_a_latin1_file_is_read_in_batches_with_its_accents(tmp_path: Path) -> None:
    meds = [_med(i) for i in range(1000)]
    meds[900] = meds[900].replace("mg PO BID", "mg PO BID après repas")
    root = _export(tmp_path / "e", meds)
    path = root / "medications.csv"
    path.write_bytes(path.read_text(encoding="utf-8").encode("latin-1"))
    batched = read_export(root, block_bytes=SMALL)
    assert any("read as Latin-1" in n for n in batched.notes)
    sig = batched.table("medications").set_index("medication_id").loc["M00900", "sig"]
    assert sig.endswith("après repas")
    _same(load_export(root), batched)


def test_a_parquet_table_is_read_in_batches(tmp_path: Path) -> None:
    root = _export(tmp_path / "e", [_med(i) for i in range(1000)])
    meds = pd.read_csv(root / "medications.csv", dtype=str, keep_default_na=False)
    (root / "medications.csv").unlink()
    meds.to_parquet(root / "medications.parquet")
    batched = read_export(root, block_bytes=SMALL)
    assert len(batched.table("medications")) == 1000
    _same(load_export(root), batched)


@pytest.mark.parametrize("bucket_patients", [1, 4, 1000])
@pytest.mark.parametrize("malformed", [False, True])
def test_staged_buckets_hold_each_patient_s_rows_once_in_file_order(tmp_path: Path, bucket_patients: int,
                                                                     malformed: bool) -> None:
    meds = [_med(i) for i in range(900)]
    meds[10] = _med(10, pid="P999")  # unknown patient: quarantined at load, in no bucket
    if malformed:  # pyarrow gives up at row 800, after staging earlier batches: they are dropped and reread
        meds[799] += ",one field too many"
    root = _export(tmp_path / "e", meds)
    whole = load_export(root)
    with stage_export(root, block_bytes=SMALL, bucket_patients=bucket_patients, directory=tmp_path / "stage") as st:
        assert len(st) == -(-30 // bucket_patients)
        assert st.patient_ids == whole.patient_ids
        pd.testing.assert_frame_equal(st.base.quarantine.frame(), whole.quarantine.frame())
        parts = []
        for i in range(len(st)):
            sub = st.bucket(i)
            assert sub.patient_ids == st.patients_in(i)
            m = sub.table("medications")
            assert set(m["patient_id"]) <= set(st.patients_in(i))
            assert m["_row"].is_monotonic_increasing  # file order within the bucket
            assert len(m) == st.rows_in("medications", i)
            parts.append(m)
        joined = pd.concat(parts).sort_values("_row").reset_index(drop=True)
        pd.testing.assert_frame_equal(joined, whole.table("medications"))
        staged_dir = next((tmp_path / "stage").iterdir())
        assert any(staged_dir.rglob("*.pkl"))
    assert not any((tmp_path / "stage").iterdir())  # the staged rows are deleted


def test_a_repeated_study_and_sequence_far_apart_is_found_across_batches(tmp_path: Path) -> None:
    root = _export(tmp_path / "e", [_med(0)])
    (root / "img").mkdir()
    (root / "img" / "t1c.nii.gz").write_bytes(b"")  # only its existence is checked at load
    rows = ["patient_id,study_id,study_date,sequence,path,mask_path"]
    for i in range(400):
        seq = ("T1", "T1Gd", "T2", "T2-FLAIR")[i % 4]
        rows.append(f"P{(i // 4) % 30:03d},S{i // 4:04d},2020-05-01,{seq},img/t1c.nii.gz,")
    rows.append("P000,S0002,2020-05-01,T1Gd,img/t1c.nii.gz,")  # row 401: the key of row 10
    (root / "imaging.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    batched = read_export(root, block_bytes=SMALL)
    q = batched.quarantine.frame()
    assert q[["table", "row", "reason"]].values.tolist() == [["imaging", 401, "duplicate key (study_id, sequence, path)"]]
    assert len(batched.table("imaging")) == 400
    _same(load_export(root), batched)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_a_utf16_table_named_in_the_mapping_is_read_in_batches(tmp_path: Path, encoding: str) -> None:
    root = _export(tmp_path / "e", [_med(i) for i in range(600)])
    path = root / "medications.csv"
    path.write_bytes(path.read_text(encoding="utf-8").encode(encoding))
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(f'[tables.medications]\nencoding = "{encoding}"\n', encoding="utf-8")
    batched = read_export(root, mapping, block_bytes=SMALL)
    assert batched.quarantine.frame().empty and len(batched.table("medications")) == 600
    _same(load_export(root, mapping), batched)
