"""``pfs synth``: a realistic synthetic GBM cohort in the native export layout, with its ground truth.

Output layout::

    OUT/export/          the native export (patients, medications, reports, imaging [+ images/])
    OUT/annotations.csv  the manual reference: RANO applied to the truth with rater variability
    OUT/truth/           true progression dates, volumes per study, labels per report, start of the
                         second line of treatment (+ masks/)

The course of each patient is simulated first (:mod:`pfs.synth.course`); each generator then
renders it with its own seeded stream, so the same seed gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pfs.io.output import write_table
from pfs.synth.course import PatientCourse, patient_rng, simulate_cohort

#: Probability that the annotator dates progression one scan later than RANO would (rater variability).
RATER_LATE = 0.10
#: Probability that the annotator misses a borderline progression near the end of follow-up.
RATER_MISS = 0.03


@dataclass(frozen=True)
class SynthResult:
    root: Path
    export: Path
    annotations: Path
    truth: Path
    n_patients: int


def _iso(d) -> str:
    return "" if d is None else d.isoformat()


def patients_frame(courses: list[PatientCourse], seed: int) -> pd.DataFrame:
    rows = []
    for c in courses:
        rng = patient_rng(seed, c.index, 1)
        # Real exports often leave last follow-up blank; pfs then derives it from the latest record.
        fu = "" if rng.random() < 0.1 else _iso(c.last_followup_date)
        rows.append({
            "patient_id": c.patient_id,
            "diagnosis_date": _iso(c.diagnosis_date),
            "surgery_date": _iso(c.surgery_date),
            "rt_start_date": _iso(c.rt_start_date),
            "rt_end_date": _iso(c.rt_end_date),
            "last_followup_date": fu,
            "death_date": _iso(c.death_date),
        })
    return pd.DataFrame(rows)


def annotations_frame(courses: list[PatientCourse], seed: int) -> pd.DataFrame:
    """RANO dates as a careful chart reviewer would record them, with a little rater variability."""
    rows = []
    for c in courses:
        rng = patient_rng(seed, c.index, 2)
        prog = c.rano_progression_date
        if prog is not None and rng.random() < RATER_LATE:
            later = [s.date for s in c.scans if s.date > prog]
            if later:
                prog = later[0]
        if prog is not None and rng.random() < RATER_MISS and prog == c.scans[-1].date:
            prog = None
        rows.append({
            "patient_id": c.patient_id,
            "progressed": int(prog is not None),
            "progression_date": _iso(prog),
            "censor_date": "" if prog is not None else _iso(c.death_date or c.last_followup_date),
        })
    return pd.DataFrame(rows)


def truth_frames(courses: list[PatientCourse]) -> dict[str, pd.DataFrame]:
    patients = pd.DataFrame([{
        "patient_id": c.patient_id,
        "true_progression_date": _iso(c.true_progression_date),
        "rano_progression_date": _iso(c.rano_progression_date),
        "progression_type": c.progression_type or "",
        "pseudoprogression": int(c.pseudoprogression),
        "residual_ml": c.residual_ml,
        "death_date": _iso(c.death_date),
        "last_followup_date": _iso(c.last_followup_date),
    } for c in courses])
    scans = pd.DataFrame([{
        "patient_id": c.patient_id,
        "study_id": s.study_id,
        "study_date": _iso(s.date),
        "phase": s.phase,
        "true_et_volume_ml": s.et_volume_ml,
        "true_flair_volume_ml": s.flair_volume_ml,
        "distant_lesion_ml": s.distant_lesion_ml,
        "pseudo": int(s.pseudo),
        "true_label": s.label.value,
    } for c in courses for s in c.scans])
    return {"truth_patients": patients, "truth_scans": scans}


#: What ``pfs synth`` orders as a second line at progression (the ``detail`` of its truth rows).
SECOND_LINE_DRUGS = ("bevacizumab", "lomustine", "irinotecan")


def second_line_frame(courses: list[PatientCourse], meds: pd.DataFrame, med_truth: pd.DataFrame) -> pd.DataFrame:
    """Per patient, the start of the second line as written in the export (blank when none started).

    Read back from the rendered orders, so it is the date the export shows (orders after the end of
    follow-up are never written), not the date the planner drew.
    """
    second = med_truth.loc[med_truth["detail"].isin(SECOND_LINE_DRUGS), ["medication_id", "detail"]]
    second = second.merge(meds[["medication_id", "order_date"]], on="medication_id")
    second = second.merge(med_truth[["medication_id", "patient_id"]], on="medication_id")
    first = second.sort_values(["order_date", "medication_id"]).drop_duplicates("patient_id").set_index("patient_id")
    rows = []
    for c in courses:
        start = first["order_date"].get(c.patient_id, "")
        lag = ""
        if start and c.rano_progression_date is not None:
            lag = str((pd.Timestamp(start) - pd.Timestamp(c.rano_progression_date)).days)
        rows.append({"patient_id": c.patient_id, "second_line_start_date": start,
                     "second_line_drug": first["detail"].get(c.patient_id, ""),
                     "days_after_rano_progression": lag})
    return pd.DataFrame(rows)


def synthesize(out: Path | str, patients: int = 20, seed: int = 0, *, images: bool = True,
               faults: bool = False, progress=None) -> SynthResult:
    """Write a synthetic cohort of ``patients`` patients to ``out`` (see the module docstring)."""
    from pfs.synth import medications, reports

    say = progress or (lambda msg: None)
    root = Path(out)
    export = root / "export"
    truth = root / "truth"
    export.mkdir(parents=True, exist_ok=True)
    truth.mkdir(parents=True, exist_ok=True)
    courses = simulate_cohort(patients, seed)
    write_table(patients_frame(courses, seed), export / "patients.csv")
    say("medications")
    med_rows, med_truth = medications.split_truth(medications.generate(courses, seed))
    write_table(med_rows, export / "medications.csv")
    write_table(med_truth, truth / "truth_medications.csv")
    write_table(second_line_frame(courses, med_rows, med_truth), truth / "truth_treatment.csv")
    say("reports")
    report_rows, report_truth = reports.generate(courses, seed)
    write_table(report_rows, export / "reports.csv")
    write_table(report_truth, truth / "truth_reports.csv")
    if images:
        from pfs.synth import mri

        say("MRI")
        imaging_rows, volume_truth = mri.write_studies(courses, export, truth, seed, progress=progress)
        write_table(imaging_rows, export / "imaging.csv")
        write_table(volume_truth, truth / "truth_volumes.csv")
    for name, frame in truth_frames(courses).items():
        write_table(frame, truth / f"{name}.csv")
    annotations = root / "annotations.csv"
    write_table(annotations_frame(courses, seed), annotations)
    if faults:
        from pfs.synth import faults as fault_mod

        say("faults")
        fault_mod.apply(export, seed)
    return SynthResult(root=root, export=export, annotations=annotations, truth=truth, n_patients=patients)
