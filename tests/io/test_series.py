"""Which series is which: a specification over vendor-style series descriptions.

The first tables are names from the issue and from the rule file's own vendors; the
``UNSEEN`` table holds descriptions written for this test that no rule names literally (other
word orders, other vendors' prefixes, other languages' contrast words), to check that the rules
state principles (a contrast marker on a T1, inversion that nulls CSF) rather than phrases.
"""

from __future__ import annotations

import pandas as pd
import pytest

from pfs.io.series import choose_series, classify, load_rules

NAMED = {
    "t1_mprage_sag_p2_iso_post": "T1C", "AX T2 FLAIR": "FLAIR", "T1W_3D_TFE +GD": "T1C",
    "t2_tirm_tra_dark-fluid": "FLAIR", "Ax T1 FS post": "T1C", "OBL COR T1 POST": "T1C", "3D BRAVO +C": "T1C",
    "AX T1 POST GAD": "T1C", "t1w_gd": "T1C", "s501_t1_ce": "T1C", "t1_post": "T1C",
    "T1C": "T1C", "T1Gd": "T1C", "T1CE": "T1C", "t1n": "T1", "t2w": "T2", "t2f": "FLAIR", "T1": "T1", "T2": "T2",
    "FLAIR": "FLAIR", "t1_mprage_sag_p2_iso": "T1", "AX T1 PRE": "T1", "AX T2 FSE": "T2", "t2_tse_tra": "T2",
    "ep2d_diff_3scan_trace": "OTHER", "ADC": "OTHER", "SWI_Images": "OTHER", "ep2d_perf": "OTHER",
    "localizer": "OTHER", "AX T2*": "OTHER",
}

UNSEEN = {
    # contrast markers in other places, spellings and languages
    "SAG 3D T1 FSPGR W/ CONTRAST": "T1C", "Cor T1 SE C+ fat sat": "T1C", "T1_SE_TRA_KM": "T1C",
    "T1 TSE ax mdc": "T1C", "COR T1 GADAVIST": "T1C", "WIP T1W 3D TFE post-contrast": "T1C",
    "t1_vibe_tra_post": "T1C", "T1 SPIN ECHO AXIAL +GADO": "T1C", "Ax 3D T1 post Dotarem": "T1C",
    "T1W_SE_CLEAR enhanced": "T1C", "sag_t1_pc": "T1", "3D_T1_MPRAGE_nativ": "T1", "AX T1 W/O": "T1",
    "t1_se_tra_pre_contrast": "T1", "T1 precontrast axial": "T1", "Sag T1 FLAIR": "T1", "AX T1 FLAIR +C": "T1C",
    # T2 vs FLAIR vs T2*: weighting, inversion, gradient echo
    "Ax T2 PROPELLER": "T2", "T2W_TSE_CLEAR": "T2", "cor_t2_haste": "T2", "3D T2 SPACE dark fluid sag": "FLAIR",
    "T2-FLAIR CUBE": "FLAIR", "Sag CUBE FLAIR": "FLAIR", "t2_tirm_cor": "FLAIR", "T2W FFE": "OTHER",
    "AX T2 GRE": "OTHER", "SWAN": "OTHER", "T2 star weighted": "OTHER",
    # other kinds
    "AX DWI 1000": "OTHER", "Apparent Diffusion Coefficient (mm2/s)": "OTHER", "DSC_PERFUSION": "OTHER",
    "3-plane loc": "OTHER", "Survey_MST": "OTHER", "ASSET calibration": "OTHER", "MRA TOF 3D": "OTHER",
    "t1_mprage_sag_post_SUB": "OTHER", "MIP COR": "OTHER", "SVS_PRESS_TE135": "OTHER",
    "AX PD FSE": "OTHER",
}


def _check(table: dict[str, str]) -> list[tuple[str, str, str]]:
    return [(d, want, classify(d).role) for d, want in table.items() if classify(d).role != want]


def test_named_descriptions():
    assert _check(NAMED) == []


def test_descriptions_no_rule_names_literally():
    assert _check(UNSEEN) == []


def test_unrecognised_is_said_not_guessed():
    c = classify("Series 7")
    assert c.role == "" and c.reason == "description not recognised"
    assert classify("").reason == "no series description"


@pytest.mark.parametrize(("headers", "role"), [
    ({"InversionTime": "2500", "EchoTime": "120", "RepetitionTime": "9000"}, "FLAIR"),
    ({"EchoTime": "100", "RepetitionTime": "4500"}, "T2"),
    ({"EchoTime": "12", "RepetitionTime": "550"}, "T1"),
    ({"EchoTime": "3", "RepetitionTime": "2000", "InversionTime": "900"}, "T1"),
    ({"EchoTime": "3", "RepetitionTime": "8", "ContrastBolusAgent": "Gadobutrol"}, "T1C"),
    ({"EchoTime": "3", "RepetitionTime": "8", "ContrastBolusAgent": "NONE"}, "T1"),
])
def test_headers_decide_when_the_name_does_not(headers, role):
    c = classify("Series 301", headers)
    assert c.role == role and c.from_headers


def test_headers_refine_a_name():
    # A T2 named series acquired with a CSF-nulling inversion is FLAIR; an agent makes a plain T1 a T1C.
    assert classify("AX T2 TSE", {"InversionTime": "2200", "EchoTime": "110"}).role == "FLAIR"
    assert classify("AX T1 SE", {"ContrastBolusAgent": "Dotarem 10 ml"}).role == "T1C"
    assert classify("AX T1 SE", {"ContrastBolusAgent": ""}).role == "T1"
    assert classify("AX T1 SE pre", {"ContrastBolusAgent": "Dotarem"}).role == "T1"  # the name says before
    assert classify("", {"SeriesDescription": "Ax T1 post"}).role == "T1C"


def test_second_candidate_is_kept_and_reported():
    frame = pd.DataFrame({
        "study_id": ["S1"] * 5 + ["S2"],
        "sequence": ["Ax T1 FS post", "t1_mprage_sag_p2_iso_post", "AX T2 FLAIR", "ep2d_diff", "Series 9",
                     "T1 POST"],
        "_row": [1, 2, 3, 4, 5, 6],
    })
    out = choose_series(frame).set_index("_row")
    assert out.loc[2, "chosen"] and not out.loc[1, "chosen"]  # the 3D post-contrast over the 2D
    assert "'t1_mprage_sag_p2_iso_post' chosen (3D preferred over 2D)" in out.loc[1, "why"]
    assert out.loc[3, "role"] == "FLAIR" and out.loc[3, "chosen"]
    assert out.loc[4, "role"] == "OTHER" and not out.loc[4, "chosen"]
    assert out.loc[5, "role"] == "" and not out.loc[5, "chosen"]
    assert out.loc[6, "chosen"]  # another study is chosen on its own


def test_rule_file_has_a_reason_for_every_pattern():
    rules = load_rules()
    assert all(p.reason.strip() for group in rules.groups.values() for p in group)
    assert {"other", "flair", "t1", "t2", "contrast_given", "contrast_not_given"} <= set(rules.groups)


def test_real_brats_file_names():
    """File names of the shared real studies (BraTS 2018 and 2023 conventions) name their role."""
    from pathlib import Path

    files = sorted(Path("/work/shared/data").glob("brats*/**/*.nii*"))
    if not files:
        pytest.skip("shared BraTS data not present")
    want = {"t1": "T1", "t1n": "T1", "t1ce": "T1C", "t1c": "T1C", "t2": "T2", "t2w": "T2", "flair": "FLAIR",
            "t2f": "FLAIR", "seg": "OTHER"}
    for f in files:
        stem = f.name.split(".nii")[0]
        suffix = stem.replace("-", "_").split("_")[-1].lower()
        assert classify(stem).role == want[suffix], stem
