"""OMOP imaging: the DICOM series description is read where the OHDSI imaging extension keeps it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pfs.io.formats.omop import convert_omop
from pfs.io.series import classify


def _csv(path: Path, text: str) -> None:
    path.write_text("\n".join(line.strip() for line in text.strip().splitlines()) + "\n")


def test_descriptions_from_observation_image_feature_and_file_name(tmp_path):
    root = tmp_path / "omop"
    (root / "img").mkdir(parents=True)
    for name in ("a.nii.gz", "b.nii.gz", "c.nii.gz", "AX_T2_FLAIR.nii.gz", "e.nii.gz"):
        (root / "img" / name).write_bytes(b"x")
    _csv(root / "person.csv", "person_id,person_source_value\n1,P1")
    _csv(root / "condition_occurrence.csv",
         "condition_occurrence_id,person_id,condition_concept_id,condition_start_date,condition_source_value\n"
         "1,1,0,2021-01-01,C71.9")
    _csv(root / "image_occurrence.csv", """
        image_occurrence_id,person_id,image_occurrence_date,image_study_uid,image_series_uid,local_path
        10,1,2021-02-01,S1,S1.1,img/a.nii.gz
        11,1,2021-02-01,S1,S1.2,img/b.nii.gz
        12,1,2021-02-01,S1,S1.3,img/c.nii.gz
        13,1,2021-02-01,S1,S1.4,img/AX_T2_FLAIR.nii.gz
        14,1,2021-02-01,S1,S1.5,img/e.nii.gz""")
    # 10: CDM 5.4 observation_event_id with a labelled source value (plus an echo time, not a description);
    # 11: through IMAGE_FEATURE; 12: the one text observation tied to it, unlabelled;
    # 13: nothing tied -> the file name; 14: a description of a person-1 observation tied to nothing.
    _csv(root / "observation.csv", """
        observation_id,person_id,observation_concept_id,observation_date,value_as_string,observation_source_value,observation_event_id
        100,1,0,2021-02-01,AX T1 POST GAD,"Series Description (0008,103E)",10
        101,1,0,2021-02-01,12,Echo Time,10
        102,1,0,2021-02-01,t1_mprage_sag_p2_iso,SeriesDescription,
        103,1,0,2021-02-01,ep2d_diff_3scan_trace,,12
        104,1,0,2021-02-01,t1w_gd,Series Description,""")
    _csv(root / "image_feature.csv", """
        image_feature_id,person_id,image_occurrence_id,image_feature_event_id,image_feature_event_field_concept_id
        1,1,11,102,0""")
    result = convert_omop(root, tmp_path / "native", patient_id="person_source_value")
    imaging = pd.read_csv(result.out / "imaging.csv", dtype=str, keep_default_na=False)
    assert imaging["sequence"].tolist() == ["AX T1 POST GAD", "t1_mprage_sag_p2_iso", "ep2d_diff_3scan_trace",
                                            "AX_T2_FLAIR", "e"]
    assert [classify(s).role for s in imaging["sequence"]] == ["T1C", "T1", "OTHER", "FLAIR", ""]
    assert result.counts["series_descriptions_from_observation"] == 3
    assert result.counts["quarantined"] == 0  # unrecognised series are not conversion errors
