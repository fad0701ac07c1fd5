"""Volumetric RANO 2.0 on hand-made volume series: nadir, +40 % and +1 mL, new lesion, onsets of growth."""

from __future__ import annotations

import pandas as pd
import pytest

from pfs.extractors.imaging.rano import RanoParams, assess
from pfs.extractors.imaging.segmenters.base import Lesion
from pfs.settings import load_config

HERE = (10.0, 0.0, 0.0)


@pytest.fixture
def params() -> RanoParams:
    return RanoParams.from_config(load_config().section("imaging")["rano"])


def _patients(rt_end="2021-01-10", surgery="2020-11-01"):
    return pd.DataFrame({"patient_id": ["P1"], "surgery_date": [pd.Timestamp(surgery)],
                         "rt_end_date": [pd.Timestamp(rt_end)]})


def _series(*scans):
    """scans: (date, volume[, extra lesion centres])."""
    rows, lesions = [], {}
    for k, scan in enumerate(scans, start=1):
        sid = f"S{k}"
        rows.append({"patient_id": "P1", "study_id": sid, "study_date": pd.Timestamp(scan[0]), "et_volume_ml": scan[1]})
        lesions[sid] = [Lesion(HERE, scan[1])] + [Lesion(c, 0.5) for c in (scan[2] if len(scan) > 2 else [])]
    return pd.DataFrame(rows), lesions


def test_rise_over_nadir_dated_to_that_scan_with_evidence(params):
    vols, les = _series(("2020-11-02", 9.0), ("2021-02-05", 3.5), ("2021-03-02", 3.1), ("2021-06-01", 6.8))
    events, states = assess(vols, les, _patients(), params)
    assert len(events) == 1
    ev = events.iloc[0]
    assert (ev["kind"], ev["ref_id"], ev["event_date"]) == ("volumetric_progression", "S4", pd.Timestamp("2021-06-01"))
    assert ev["evidence"] == "ET 3.1 → 6.8 mL (+119 % vs nadir 3.1 mL on 2021-03-02)"
    assert ev["value"] == pytest.approx(119.35, abs=0.01)
    st = states.set_index("study_id")["rano_state"]
    # The post-op scan (before RT end) is not compared: RANO 2.0 post-RT baseline by default.
    assert st.to_dict() == {"S1": "pre_baseline", "S2": "baseline", "S3": "new_nadir", "S4": "progression"}


def test_forty_percent_below_one_millilitre_is_not_progression(params):
    vols, les = _series(("2021-02-05", 1.0), ("2021-05-01", 1.9))
    events, _ = assess(vols, les, _patients(), params)
    assert events.empty


def test_post_op_baseline_when_configured(params):
    p = RanoParams(**{**params.__dict__, "baseline": "post_op"})
    vols, les = _series(("2020-11-02", 1.0), ("2021-05-01", 3.0))
    events, states = assess(vols, les, _patients(), p)
    assert events["ref_id"].tolist() == ["S2"]
    assert states.set_index("study_id").at["S1", "rano_state"] == "baseline"


def test_an_early_rise_that_shrinks_is_reported_and_the_watch_goes_on(params):
    """Inside the 12 weeks after RT the rise is still reported (the reconciler asks for confirmation);
    when it recedes, a later growth is a new onset, so a true progression after pseudoprogression is seen."""
    vols, les = _series(("2021-02-01", 2.0), ("2021-03-20", 5.0), ("2021-05-20", 2.2), ("2021-08-20", 7.0))
    events, states = assess(vols, les, _patients(), params)
    assert events["ref_id"].tolist() == ["S2", "S4"]
    st = states.set_index("study_id")["rano_state"].to_dict()
    assert st == {"S1": "baseline", "S2": "progression", "S3": "stable", "S4": "progression"}


def test_growth_that_lasts_is_one_onset_followed_by_after_progression_scans(params):
    vols, les = _series(("2021-02-01", 2.0), ("2021-03-20", 5.0), ("2021-05-20", 8.0))
    events, states = assess(vols, les, _patients(), params)
    assert events["kind"].tolist() == ["volumetric_progression"]
    assert events["event_date"].tolist() == [pd.Timestamp("2021-03-20")]
    assert states.set_index("study_id").at["S3", "rano_state"] == "after_progression"


def test_new_distant_lesion_is_progression_even_inside_the_window(params):
    vols, les = _series(("2021-02-01", 2.0), ("2021-03-01", 2.1, [(80.0, 0.0, 0.0)]))
    events, _ = assess(vols, les, _patients(), params)
    assert events["kind"].tolist() == ["new_lesion"]
    assert events["ref_id"].tolist() == ["S2"]


def test_nearby_piece_is_not_a_new_lesion(params):
    vols, les = _series(("2021-02-01", 2.0), ("2021-05-01", 2.1, [(20.0, 5.0, 0.0)]))
    events, _ = assess(vols, les, _patients(), params)
    assert events.empty


def test_continued_growth_is_not_a_second_event(params):
    vols, les = _series(("2021-02-05", 1.0), ("2021-05-01", 3.0), ("2021-07-01", 9.0))
    events, states = assess(vols, les, _patients(), params)
    assert events["ref_id"].tolist() == ["S2"]
    assert states.set_index("study_id").at["S3", "rano_state"] == "after_progression"


def test_bad_baseline_setting_is_a_config_error(params):
    from pfs.exceptions import ConfigError

    with pytest.raises(ConfigError, match="post_op"):
        RanoParams.from_config({**params.__dict__, "baseline": "first"})


def test_a_speck_below_the_new_lesion_size_does_not_hide_its_later_growth(params):
    vols, les = _series(("2021-02-01", 2.0), ("2021-05-01", 2.0), ("2021-08-01", 2.2))
    les["S2"].append(Lesion((80.0, 0.0, 0.0), 0.1))  # below new_lesion_min_ml: not yet a lesion
    les["S3"].append(Lesion((80.0, 0.0, 0.0), 0.5))
    events, _ = assess(vols, les, _patients(), params)
    assert events["kind"].tolist() == ["new_lesion"] and events["ref_id"].tolist() == ["S3"]
