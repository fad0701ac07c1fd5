"""Properties every strategy keeps, on random cohorts (hypothesis, derandomised)."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pfs.reconcile import build_endpoints, reconcile_events

D = pd.Timestamp
PATIENTS = pd.DataFrame(
    [
        {
            "patient_id": pid,
            "diagnosis_date": D("2020-01-01"),
            "surgery_date": D("2020-01-10"),
            "rt_start_date": D("2020-02-10"),
            "rt_end_date": D("2020-03-20"),
            "last_followup_date": D("2021-06-01"),
            "death_date": D("2021-01-01") if pid == "B" else pd.NaT,
        }
        for pid in ("A", "B")
    ]
)

event = st.tuples(
    st.sampled_from(["A", "B"]),
    st.sampled_from(["steroid", "nlp", "imaging"]),
    st.integers(min_value=-30, max_value=500),
    st.sampled_from(["volumetric", "new_lesion", "dose_rise"]),
)


def frame(rows: list[tuple[str, str, int, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": [r[0] for r in rows],
            "source": [r[1] for r in rows],
            "event_date": [D("2020-01-10") + pd.Timedelta(days=r[2]) for r in rows],
            "kind": [r[3] for r in rows],
            "ref_id": [f"E{i}" for i in range(len(rows))],
            "evidence": ["x"] * len(rows),
        }
    )


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.lists(event, max_size=12))
def test_earliest_is_never_later_and_dates_are_event_dates(rows: list) -> None:
    ev = frame(rows)
    first = {}
    for name in ("earliest", "vote", "guideline"):
        rec = reconcile_events(ev, PATIENTS, {"strategy": name}, index_date="surgery")
        # Every proposed date is the date of one of the events it rests on.
        for _, r in rec.iterrows():
            assert r["event_date"].strftime("%Y-%m-%d") in r["evidence"]
        ep = build_endpoints(PATIENTS, rec, name).set_index("patient_id")
        assert (ep["pfs_days"] >= 0).all()
        assert (
            ep.loc[ep["progressed"] == 1, "progression_date"] >= ep.loc[ep["progressed"] == 1, "index_date"]
        ).all()
        first[name] = ep["progression_date"]
    for other in ("vote", "guideline"):
        both = first[other].notna()
        assert (first["earliest"][both] <= first[other][both]).all()
        # A strategy never finds progression where earliest finds none.
        assert not (first["earliest"].isna() & first[other].notna()).any()
