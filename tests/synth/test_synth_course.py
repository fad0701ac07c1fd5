"""The simulated clinical course: plausible GBM timelines, reproducible from the seed."""

from __future__ import annotations

import numpy as np
from lifelines import KaplanMeierFitter

from pfs.synth.course import simulate_cohort


def test_same_seed_same_cohort_and_other_seed_differs() -> None:
    assert simulate_cohort(10, 3) == simulate_cohort(10, 3)
    assert simulate_cohort(10, 3) != simulate_cohort(10, 4)


def test_timeline_order_and_scan_schedule() -> None:
    for c in simulate_cohort(60, 1):
        assert c.diagnosis_date <= c.surgery_date < c.rt_start_date < c.rt_end_date
        assert 21 <= (c.rt_start_date - c.surgery_date).days <= 35
        assert c.scans[0].phase == "postop" and (c.scans[0].date - c.surgery_date).days <= 2
        dates = [s.date for s in c.scans]
        assert dates == sorted(dates) and dates[-1] <= c.last_followup_date
        if c.rano_progression_date is not None:
            assert c.rano_progression_date in dates
            assert c.true_progression_date <= c.rano_progression_date


def test_cohort_medians_resemble_gbm_trials() -> None:
    cs = simulate_cohort(300, 11)
    t = [((c.rano_progression_date or c.death_date or c.last_followup_date) - c.surgery_date).days / 30.44
         for c in cs]
    e = [c.progressed or c.death_date is not None for c in cs]
    median_pfs = KaplanMeierFitter().fit(t, e).median_survival_time_
    t_os = [((c.death_date or c.last_followup_date) - c.surgery_date).days / 30.44 for c in cs]
    median_os = KaplanMeierFitter().fit(t_os, [c.death_date is not None for c in cs]).median_survival_time_
    assert 6 <= median_pfs <= 10
    assert 12 <= median_os <= 18
    assert 0.12 <= np.mean([c.pseudoprogression for c in cs]) <= 0.28
    assert 0 < np.mean([c.progression_type == "distant" for c in cs]) < 0.4
