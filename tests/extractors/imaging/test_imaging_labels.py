"""Label conventions: BraTS <= 2021 (4 = ET), 2023 (3 = ET), 2024 post-treatment (4 = resection cavity).

A mask read in the wrong convention must never become a silent zero or a wrong volume: values the
convention does not define quarantine the study with a hint, and an empty ET beside other tumour
labels is a QC flag in volumes.csv.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pfs.exceptions import ConfigError
from pfs.extractors.imaging import extract
from pfs.extractors.imaging.segmenters import labels
from pfs.io.export import load_export
from pfs.settings import load_config


def _map(values: dict[int, int]) -> np.ndarray:
    """A 10 x 10 x 10 label map with ``n`` voxels of each label value."""
    out = np.zeros(1000, np.int32)
    start = 0
    for value, n in values.items():
        out[start:start + n] = value
        start += n
    return out.reshape(10, 10, 10)


def test_shipped_rule_file_is_valid_and_each_convention_has_one_et_value():
    data = json.loads(resources.files("pfs.rules").joinpath(labels.RULE_FILE).read_text(encoding="utf-8"))
    assert set(data) <= {"_source", "structures", "conventions", "channels"}
    for name in labels.conventions():
        conv = labels.convention(name, "test")
        assert len(conv.et_values) == 1, name
        assert all(spec.get("reason") for spec in data["conventions"].values())
    assert labels.convention("brats_2017_2021", "x").et_values == [4]
    assert labels.convention("brats_2023", "x").et_values == [3]
    post = labels.convention("brats_2024_post_treatment", "x")
    assert post.et_values == [3] and post.labels[4] == "RC" and 4 not in post.tumour_values()


def test_names_used_by_brats_models_are_understood():
    assert [labels.structure_of(n) for n in ("Tumor core", "Whole tumor", "Enhancing tumor", "enhancing tumour",
                                             "NETC", "SNFH", "RC", "background")] == \
        ["TC", "WT", "ET", "ET", "NCR", "ED", "RC", "background"]
    assert [labels.sequence_of(n) for n in ("T1c", "T1", "T2", "FLAIR", "T1ce", "Flair", "t1gd", "T2w", "t1n",
                                            "t2f")] == ["T1C", "T1", "T2", "FLAIR", "T1C", "FLAIR", "T1C", "T2",
                                                        "T1", "FLAIR"]


def test_brats_2023_map_read_as_2021_is_refused_with_a_hint():
    m = _map({1: 50, 2: 200, 3: 80})
    with pytest.raises(ValueError, match=r"label values \[3\].*brats_2023"):
        labels.check_label_map(m, labels.convention("brats_2017_2021", "x"), "mask")
    et, flags = labels.check_label_map(m, labels.convention("brats_2023", "x"), "mask")
    assert int(et.sum()) == 80 and flags == []


def test_brats_2021_map_read_as_2024_post_treatment_flags_the_empty_et():
    """4 is ET in 2021 but resection cavity in 2024: the map reads without error, so the flag must speak."""
    m = _map({1: 50, 2: 200, 4: 80})
    et, flags = labels.check_label_map(m, labels.convention("brats_2024_post_treatment", "x"), "mask")
    assert not et.any() and flags == [labels.FLAG_ET_EMPTY]


def test_cavity_alone_is_not_tumour_and_not_flagged():
    et, flags = labels.check_label_map(_map({4: 80}), labels.convention("brats_2024_post_treatment", "x"), "mask")
    assert not et.any() and flags == []


def test_names_without_et_are_refused():
    with pytest.raises(ConfigError, match="none of the labels"):
        labels.convention_from_names({1: "edema", 2: "necrosis"}, "dataset.json")
    with pytest.raises(ConfigError, match="not a known label convention"):
        labels.convention("brats_2022", "imaging.precomputed.convention")


PATIENTS = "patient_id,diagnosis_date\nP1,2020-01-01\n"


def _export(tmp_path, phantom_factory, maps: dict[str, np.ndarray]):
    ph = phantom_factory("a", with_t1=False, spacing=(4.0, 4.0, 4.0))
    shape = nib.load(ph.t1c).shape
    rows = ["patient_id,study_id,study_date,sequence,path,mask_path"]
    for i, (name, m) in enumerate(maps.items()):
        full = np.zeros(shape, np.uint8)
        full[:10, :10, :10] = m
        nib.save(nib.Nifti1Image(full, ph.affine), tmp_path / f"{name}.nii.gz")
        rows.append(f"P1,S{i},2020-0{i + 1}-01,T1C,{ph.t1c.relative_to(tmp_path)},{name}.nii.gz")
    (tmp_path / "patients.csv").write_text(PATIENTS)
    (tmp_path / "imaging.csv").write_text("\n".join(rows) + "\n")
    return load_export(tmp_path)


def test_precomputed_masks_in_their_declared_convention_through_extract(tmp_path, phantom_factory, caplog):
    export = _export(tmp_path, phantom_factory, {"brats23": _map({1: 50, 2: 200, 3: 80}),
                                                 "brats21": _map({1: 50, 2: 200, 4: 80}),
                                                 "no_et": _map({1: 50, 2: 200})})
    cfg = load_config({"imaging": {"segmenter": "precomputed", "precomputed": {"convention": "brats_2023"}}})
    result = extract(export, cfg)
    vol = result.tables["volumes"].set_index("study_id")
    assert vol.loc["S0", "et_volume_ml"] == pytest.approx(80 * 0.064)
    assert labels.FLAG_ET_EMPTY not in vol.loc["S0", "qc_flags"]
    assert vol.loc["S2", "et_volume_ml"] == 0.0 and labels.FLAG_ET_EMPTY in vol.loc["S2", "qc_flags"]
    assert "1 studies have no enhancing tumour beside other tumour labels" in caplog.text
    q = result.quarantine  # the 2021 mask holds 4, which BraTS 2023 does not define
    assert q["column"].tolist() == ["mask_path"] and "label values [4]" in q["reason"].iloc[0]
    assert "brats_2017_2021" in q["reason"].iloc[0]


def test_unknown_convention_stops_before_any_study(tmp_path, phantom_factory):
    export = _export(tmp_path, phantom_factory, {"m": _map({1: 10})})
    cfg = load_config({"imaging": {"segmenter": "precomputed", "precomputed": {"convention": "brats2023"}}})
    with pytest.raises(ConfigError, match="not a known label convention"):
        extract(export, cfg)


BRATS18 = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "brats2018-labelled"
CASES = ["Brats18_CBICA_ALU_1", "Brats18_TCIA10_628_1"]  # a glioblastoma and the low-grade glioma (2.0 mL ET)


@pytest.mark.skipif(not BRATS18.is_dir(), reason="shared BraTS 2018 sample (../shared/data/brats2018-labelled) absent")
def test_real_brats_2018_labels_in_each_convention(tmp_path):
    """Expert BraTS 2018 label maps (1, 2, 4): ET is label 4 read as 2017-2021; read as 2023 the studies are
    quarantined with a hint; read as 2024 post-treatment ET is empty and flagged, never a silent zero."""
    import shutil

    rows = ["patient_id,study_id,study_date,sequence,path,mask_path"]
    expected = {}
    for i, case in enumerate(CASES):
        for kind in ("t1ce", "seg"):  # copied in: an export's paths must lie inside it
            shutil.copy(BRATS18 / case / f"{case}_{kind}.nii.gz", tmp_path)
        rows.append(f"P{i},{case},2020-01-01,T1C,{case}_t1ce.nii.gz,{case}_seg.nii.gz")
        seg = nib.load(tmp_path / f"{case}_seg.nii.gz")
        voxel_ml = float(np.prod(seg.header.get_zooms()[:3])) / 1000.0
        expected[case] = float((np.asarray(seg.dataobj) == 4).sum()) * voxel_ml
    (tmp_path / "patients.csv").write_text("patient_id,diagnosis_date\n" + "".join(f"P{i},2019-12-01\n"
                                                                                    for i in range(len(CASES))))
    (tmp_path / "imaging.csv").write_text("\n".join(rows) + "\n")
    export = load_export(tmp_path)

    def run(conv):
        return extract(export, load_config({"imaging": {"segmenter": "precomputed",
                                                        "precomputed": {"convention": conv}}}))

    vol = run("brats_2017_2021").tables["volumes"].set_index("study_id")
    for case in CASES:
        assert vol.loc[case, "et_volume_ml"] == pytest.approx(expected[case], abs=1e-3)
        assert expected[case] > 1.0
    wrong = run("brats_2023")
    assert wrong.tables["volumes"].empty
    assert wrong.quarantine["reason"].str.contains(r"label values \[4\].*brats_2017_2021").all()
    post = run("brats_2024_post_treatment").tables["volumes"]
    assert (post["et_volume_ml"] == 0).all() and post["qc_flags"].str.contains(labels.FLAG_ET_EMPTY).all()
