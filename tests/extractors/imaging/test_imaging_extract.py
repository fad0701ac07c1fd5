"""The imaging extractor end to end on a tiny export: volumes, events, quarantine, saved masks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pfs.exceptions import ConfigError
from pfs.extractors.imaging import extract
from pfs.io.export import load_export
from pfs.io.schema import load_schema
from pfs.settings import load_config

PATIENTS = """patient_id,diagnosis_date,surgery_date,rt_start_date,rt_end_date,last_followup_date,death_date
P1,2020-01-01,2020-01-10,2020-02-10,2020-03-20,2021-06-01,
P2,2020-02-01,2020-02-05,2020-03-05,2020-04-15,2021-06-01,
"""


def _rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root))


@pytest.fixture
def export_dir(tmp_path, phantom_factory):
    """P1: baseline, stable, then a much larger lesion; P2: one good study, one corrupt, one without T1C."""
    root = tmp_path
    rows = []
    p1 = [("P1-S1", "2020-04-20", 5.0), ("P1-S2", "2020-07-20", 5.0), ("P1-S3", "2020-10-20", 8.0)]
    for sid, date, r in p1:
        ph = phantom_factory(sid, lesion_r=r, with_t1=False, vessel=False)
        rows += [f"P1,{sid},{date},T1Gd,{_rel(ph.t1c, root)},", f"P1,{sid},{date},T2-FLAIR,{_rel(ph.flair, root)},"]
    ph = phantom_factory("P2-S1", with_t1=False)
    rows += [f"P2,P2-S1,2020-05-20,T1C,{_rel(ph.t1c, root)},", f"P2,P2-S1,2020-05-20,FLAIR,{_rel(ph.flair, root)},"]
    bad = root / "images" / "P2-S2_t1c.nii.gz"
    bad.write_bytes(ph.t1c.read_bytes()[:4000])
    rows += [f"P2,P2-S2,2020-08-20,T1C,{_rel(bad, root)},", f"P2,P2-S2,2020-08-20,FLAIR,{_rel(ph.flair, root)},"]
    rows += [f"P2,P2-S3,2020-11-20,FLAIR,{_rel(ph.flair, root)},"]
    (root / "patients.csv").write_text(PATIENTS)
    (root / "imaging.csv").write_text("patient_id,study_id,study_date,sequence,path,mask_path\n" + "\n".join(rows) + "\n")
    return root


def test_volumes_events_and_quarantine(export_dir, tmp_path):
    masks = tmp_path / "masks"
    cfg = load_config({"imaging": {"save_masks": True, "masks_dir": str(masks)}})
    result = extract(load_export(export_dir), cfg)
    vol = result.tables["volumes"]
    assert list(vol.columns) == load_schema("volumes").columns
    assert vol["study_id"].tolist() == ["P1-S1", "P1-S2", "P1-S3", "P2-S1"]
    assert (vol["segmenter"] == "default").all()
    v = vol.set_index("study_id")["et_volume_ml"]
    assert v["P1-S1"] == pytest.approx(v["P1-S2"], rel=0.1)
    assert v["P1-S3"] > 1.4 * v["P1-S2"] and v["P1-S3"] - v["P1-S2"] > 1.0
    ev = result.events
    assert ev["ref_id"].tolist() == ["P1-S3"]
    assert ev.iloc[0]["kind"] == "volumetric_progression"
    assert ev.iloc[0]["source"] == "imaging"
    assert ev.iloc[0]["evidence"].startswith("ET ")
    q = result.quarantine
    assert set(q["table"]) == {"imaging"} and set(q["stage"]) == {"imaging"}
    reasons = dict(zip(q["row"], q["reason"], strict=True))
    assert "T1C unusable" in reasons[9] and "cannot read" in reasons[9]
    assert "study set aside" in reasons[10]
    assert "no T1C" in reasons[11]
    assert result.counts["studies"] == 6 and result.counts["studies_measured"] == 4
    # Saved masks: NIfTI in the T1C's own geometry, and a QC picture.
    saved = nib.load(masks / "P1" / "P1-S3_et.nii.gz")
    t1c = nib.load(export_dir / "images" / "P1-S3_t1c.nii.gz")
    assert saved.shape == t1c.shape and np.allclose(saved.affine, t1c.affine, atol=1e-4)
    assert int(np.asarray(saved.dataobj).sum()) * 1.5 ** 3 / 1000 == pytest.approx(v["P1-S3"], rel=1e-3)
    assert (masks / "P1" / "P1-S3_qc.png").stat().st_size > 1000


def test_studies_run_by_another_runner_give_the_same_volumes(export_dir):
    """The pipeline hands studies to Dask through ``run_studies``; order and results must not change."""
    from pfs.extractors.imaging import process_study

    one = extract(load_export(export_dir), load_config())
    reverse = extract(load_export(export_dir), load_config(),
                      run_studies=lambda jobs, cfg: [process_study((j, cfg)) for j in jobs[::-1]][::-1])
    pd.testing.assert_frame_equal(one.tables["volumes"], reverse.tables["volumes"])


def test_precomputed_masks_used_as_given_and_wrong_shape_quarantined(tmp_path, phantom_factory):
    ph = phantom_factory("a", with_t1=False)
    lab = np.zeros(nib.load(ph.t1c).shape, np.uint8)
    lab[10:20, 10:20, 10:20] = 3  # 1000 voxels of 1.5 mm = 3.375 mL
    nib.save(nib.Nifti1Image(lab, ph.affine), tmp_path / "good.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)), tmp_path / "bad.nii.gz")
    (tmp_path / "patients.csv").write_text(PATIENTS)
    (tmp_path / "imaging.csv").write_text(
        "patient_id,study_id,study_date,sequence,path,mask_path\n"
        f"P1,S1,2020-05-01,T1C,{_rel(ph.t1c, tmp_path)},good.nii.gz\n"
        f"P1,S2,2020-08-01,T1C,{_rel(ph.t1c, tmp_path)},bad.nii.gz\n")
    cfg = load_config({"imaging": {"segmenter": "precomputed", "precomputed": {"convention": "brats_2023"}}})
    result = extract(load_export(tmp_path), cfg)
    vol = result.tables["volumes"]
    assert vol["et_volume_ml"].tolist() == [pytest.approx(3.375)]
    assert vol["segmenter"].tolist() == ["precomputed"]
    q = result.quarantine
    assert q["row"].tolist() == [2] and q["column"].tolist() == ["mask_path"]
    assert "does not match the T1C shape" in q["reason"].iloc[0]


def test_config_mistakes_are_config_errors(export_dir):
    export = load_export(export_dir)
    with pytest.raises(ConfigError, match="not known"):
        extract(export, load_config({"imaging": {"segmenter": "deepmedic"}}))
    with pytest.raises(ConfigError, match="masks_dir"):
        extract(export, load_config({"imaging": {"save_masks": True}}))


def test_no_imaging_table_gives_empty_outputs(tmp_path):
    (tmp_path / "patients.csv").write_text(PATIENTS)
    result = extract(load_export(tmp_path), load_config())
    assert result.events.empty and result.tables["volumes"].empty and result.quarantine.empty


def test_importing_the_extractor_does_not_import_torch():
    code = "import sys, pfs.extractors.imaging; print('torch' in sys.modules, 'monai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_shipped_config_keys_are_exactly_the_parameters():
    from pfs.extractors.imaging.rano import RanoParams
    from pfs.extractors.imaging.segmenters.default import DefaultParams

    section = load_config().section("imaging")
    assert set(section["default"]) == set(DefaultParams.__dataclass_fields__)
    assert set(section["rano"]) == set(RanoParams.__dataclass_fields__)


def test_series_named_by_the_scanner_are_classified_chosen_and_reported(tmp_path, phantom_factory):
    """Vendor descriptions, a second T1C candidate and a DWI: one series per role used, every series reported."""
    ph = phantom_factory("v", with_t1=True)
    small = phantom_factory("w", with_t1=False, lesion_r=4.0)
    root = tmp_path
    dwi = root / "images" / "dwi.nii.gz"
    dwi.write_bytes(ph.flair.read_bytes())
    (root / "patients.csv").write_text(PATIENTS)
    (root / "imaging.csv").write_text(
        "patient_id,study_id,study_date,sequence,path,mask_path\n"
        f"P1,S1,2020-05-01,Ax T1 FS post,{_rel(small.t1c, root)},\n"
        f"P1,S1,2020-05-01,t1_mprage_sag_p2_iso_post,{_rel(ph.t1c, root)},\n"
        f"P1,S1,2020-05-01,t1_mprage_sag_p2_iso,{_rel(ph.t1, root)},\n"
        f"P1,S1,2020-05-01,t2_tirm_tra_dark-fluid,{_rel(ph.flair, root)},\n"
        f"P1,S1,2020-05-01,ep2d_diff_3scan_trace,{_rel(dwi, root)},\n"
        f"P1,S2,2020-08-01,AX T1,{_rel(ph.t1, root)},\n"
        f"P1,S2,2020-08-01,AX T2 FLAIR,{_rel(ph.flair, root)},\n")
    export = load_export(root)
    assert export.quarantine.frame().empty  # descriptions are not invalid values
    result = extract(export, load_config())
    series = result.tables["series"].set_index("row")
    assert series.loc[[1, 2, 3, 4, 5], "role"].tolist() == ["T1C", "T1C", "T1", "FLAIR", "OTHER"]
    assert series.loc[[1, 2, 3, 4, 5], "used"].tolist() == ["no", "yes", "yes", "yes", "no"]
    assert "'t1_mprage_sag_p2_iso_post' chosen (3D preferred over 2D)" in series.loc[1, "why"]
    vol = result.tables["volumes"].set_index("study_id")
    assert vol.loc["S1", "et_volume_ml"] == pytest.approx(ph.truth_ml, rel=0.35)  # the 3D study's lesion, not the small one
    q = result.quarantine.set_index("row")
    assert sorted(q.index) == [6, 7]  # only the study without a T1C, every series of it, with the reason
    assert "study has no T1C" in q.loc[6, "reason"] and "'AX T1' (T1)" in q.loc[6, "reason"]
