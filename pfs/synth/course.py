"""The true clinical course of each synthetic GBM patient: the ground truth every generator renders.

The course is simulated first and only then written out as medications, reports and MRI, so that
each source sees the same truth through its own (noisy, delayed) lens, as in a real hospital.

Parameters and what they reflect (days unless stated):

==========================  ===========================  =============================================
parameter                   value                        reflects
==========================  ===========================  =============================================
diagnosis -> surgery        3-21                         biopsy/resection soon after the first MRI
surgery -> RT start         21-35                        Stupp protocol: chemoradiation 3-5 weeks post-op
RT duration                 40-44                        60 Gy in 30 fractions over 6 weeks
time to progression         log-normal, median 125       RANO-detected median PFS about 7 months (Stupp)
progression -> death        log-normal, median 290       median OS about 15 months
administrative censoring    uniform 12-40 months         patients still followed when the export is cut
lost to follow-up           8 % of patients              moved away / changed hospital
pseudoprogression           20 %                         transient enlargement within 12 weeks of RT end
distant new lesion          25 % of progressions         progression by a new lesion away from the cavity
residual enhancing volume   0-4 mL, 30 % near 0          gross total vs subtotal resection
growth after progression    doubling 35-90 days, capped  untreated recurrent GBM growth,
                            smoothly at 60-90 mL          saturating before death
MRI schedule                post-op day 1-2; 21-35 d     RANO reference scan; post-RT baseline;
                            after RT; then every 55-95   follow-up every 2-3 months with irregular gaps
==========================  ===========================  =============================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from pfs.vocab import ReportLabel

#: Volumetric RANO used for the reference annotations (RANO 2.0): +40 % over the nadir and +1 mL.
RANO_RISE = 0.40
RANO_MIN_ABS_ML = 1.0
PSEUDO_WINDOW_DAYS = 84


@dataclass(frozen=True)
class Scan:
    """One brain MRI study and the truth at that date."""

    study_id: str
    date: date
    phase: str  # postop | post_rt | follow_up
    et_volume_ml: float  # true enhancing-tumour volume (local + distant)
    flair_volume_ml: float
    distant_lesion_ml: float  # enhancing volume of a new distant lesion (0 if none)
    pseudo: bool  # enlargement here is treatment effect, not tumour
    label: ReportLabel  # what an ideal radiologist would conclude
    scanner: int  # index of the scanner (intensity scale, spacing, orientation)
    has_t1: bool  # a pre-contrast T1 was acquired


@dataclass(frozen=True)
class PatientCourse:
    patient_id: str
    index: int
    diagnosis_date: date
    surgery_date: date
    rt_start_date: date
    rt_end_date: date
    last_followup_date: date
    death_date: date | None
    true_progression_date: date | None  # biological onset of regrowth
    rano_progression_date: date | None  # first scan meeting RANO 2.0 (what a careful annotator dates)
    progression_type: str | None  # local | distant
    pseudoprogression: bool
    residual_ml: float
    scans: tuple[Scan, ...] = field(default_factory=tuple)

    @property
    def progressed(self) -> bool:
        return self.rano_progression_date is not None


def _lognormal_days(rng: np.random.Generator, median: float, sigma: float) -> int:
    return max(20, int(round(median * float(np.exp(rng.normal(0.0, sigma))))))


def patient_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """Independent deterministic stream per (patient, generator) so adding a generator changes no other."""
    return np.random.default_rng([seed, index, stream])


def _true_volume(day: int, c: dict) -> tuple[float, float, bool]:
    """(local+distant ET mL, distant ET mL, pseudo-enlargement?) ``day`` days after surgery."""
    v = c["residual"]
    # Chemoradiation shrinks residual tumour towards a nadir.
    rt_start, rt_end = c["rt_start"], c["rt_end"]
    if day > rt_start:
        frac = min(1.0, (day - rt_start) / max(1, c["nadir_day"] - rt_start))
        v = v * (1.0 - c["shrink"] * frac)
    pseudo = False
    if c["pseudo"]:
        # Treatment effect: enlargement peaking ~5-8 weeks after RT end, gone by ~16 weeks.
        t = day - rt_end
        if 0 < t < c["pseudo_len"]:
            bump = c["pseudo_peak"] * np.sin(np.pi * t / c["pseudo_len"])
            v += bump
            pseudo = bump > 0.3
    distant = 0.0
    if c["prog_day"] is not None and day > c["prog_day"]:
        growth = 2.0 ** ((day - c["prog_day"]) / c["doubling"])
        if c["distant"]:
            distant = 0.15 * growth
        else:
            v = max(v, 0.05) + c["seed_ml"] * (growth - 1.0)
    # Tumours do not grow without bound: the patient deteriorates and dies first. Saturate smoothly
    # at a per-patient ceiling (60-90 mL, a large recurrent GBM) so small volumes are left unchanged.
    ceiling = 60.0 + 50.0 * c["shrink"]
    v = ceiling * float(np.tanh(v / ceiling))
    distant = min(distant, 0.5 * ceiling * float(np.tanh(distant / (0.5 * ceiling))))
    return float(v + distant), float(distant), pseudo


def _scan_label(vol: float, prev: float | None, nadir: float, progressed: bool, pseudo: bool,
                phase: str) -> ReportLabel:
    if phase == "postop":
        return ReportLabel.NO_ASSESSMENT
    if progressed:
        return ReportLabel.PROGRESSION
    if pseudo:
        return ReportLabel.TREATMENT_EFFECT
    if prev is None:
        return ReportLabel.STABLE
    if vol < prev * 0.8 and prev - vol > 0.2:
        return ReportLabel.IMPROVED
    if vol > max(prev * 1.25, prev + 0.5):
        return ReportLabel.INDETERMINATE
    return ReportLabel.STABLE


def simulate_patient(seed: int, index: int, start: date) -> PatientCourse:
    rng = patient_rng(seed, index, 0)
    pid = f"P{index + 1:04d}"
    dx = start + timedelta(days=int(rng.integers(0, 5 * 365)))
    surgery = dx + timedelta(days=int(rng.integers(3, 22)))
    rt_start_d = int(rng.integers(21, 36))
    rt_end_d = rt_start_d + int(rng.integers(40, 45))
    prog_d = _lognormal_days(rng, 125, 0.6)
    death_d = prog_d + _lognormal_days(rng, 290, 0.6)
    admin_d = int(rng.integers(365, 40 * 30))
    lost = rng.random() < 0.08
    if lost:
        admin_d = int(rng.integers(120, 500))
    fu_d = min(death_d, admin_d)
    died = death_d <= admin_d
    c = {
        "residual": float(rng.choice([rng.uniform(0.0, 0.3), rng.uniform(0.5, 4.0)], p=[0.3, 0.7])),
        "rt_start": rt_start_d,
        "rt_end": rt_end_d,
        "nadir_day": rt_end_d + int(rng.integers(30, 120)),
        "shrink": float(rng.uniform(0.1, 0.6)),
        "pseudo": bool(rng.random() < 0.20),
        "pseudo_len": int(rng.integers(70, 115)),
        "pseudo_peak": float(rng.uniform(1.5, 6.0)),
        "prog_day": prog_d if prog_d < fu_d else None,
        "doubling": float(rng.uniform(35, 90)),
        "distant": bool(rng.random() < 0.25),
        "seed_ml": float(rng.uniform(0.3, 1.0)),
    }
    # Progression inside the RT course itself is rare and not what this cohort models.
    if c["prog_day"] is not None and c["prog_day"] < rt_end_d + 14:
        c["prog_day"] = rt_end_d + 14 + int(rng.integers(0, 30))
        prog_d = c["prog_day"]
    # MRI schedule: post-op, post-RT baseline, then every 2-3 months (irregular), until follow-up ends.
    days = [int(rng.integers(1, 3)), rt_end_d + int(rng.integers(21, 36))]
    while True:
        gap = int(rng.integers(55, 96)) + (int(rng.integers(20, 60)) if rng.random() < 0.12 else 0)
        nxt = days[-1] + gap
        if nxt > fu_d - 3:
            break
        days.append(nxt)
    n_scanners = 4
    scanner = int(rng.integers(0, n_scanners))
    scans: list[Scan] = []
    nadir = np.inf
    prev = None
    rano_day = None
    pending = None  # preliminary progression inside the pseudoprogression window
    for k, d in enumerate(days):
        vol, distant, pseudo = _true_volume(d, c)
        flair = 8.0 + 3.0 * vol + (2.0 * distant) + float(rng.uniform(-1.0, 1.0))
        phase = "postop" if k == 0 else ("post_rt" if k == 1 else "follow_up")
        tumour_growth = c["prog_day"] is not None and d > c["prog_day"]
        meets = (
            k >= 1 and np.isfinite(nadir)
            and vol >= nadir * (1 + RANO_RISE) and vol - nadir >= RANO_MIN_ABS_ML
        ) or distant > 0.05
        if rano_day is None and meets and tumour_growth:
            in_window = d - rt_end_d <= PSEUDO_WINDOW_DAYS and distant == 0
            if in_window and pending is None:
                pending = d  # needs confirmation on the next scan; if confirmed, dated here
            else:
                rano_day = pending if pending is not None else d
        elif pending is not None and not meets:
            pending = None
        label = _scan_label(vol, prev, nadir, rano_day is not None or (pending is not None and tumour_growth),
                            pseudo and not tumour_growth, phase)
        if scanner_change := (rng.random() < 0.1):
            scanner = int(rng.integers(0, n_scanners))
        del scanner_change
        scans.append(Scan(
            study_id=f"{pid}-S{k + 1:02d}",
            date=surgery + timedelta(days=d),
            phase=phase,
            et_volume_ml=round(vol, 3),
            flair_volume_ml=round(max(flair, 1.0), 3),
            distant_lesion_ml=round(distant, 3),
            pseudo=pseudo and not tumour_growth,
            label=label,
            scanner=scanner,
            has_t1=bool(rng.random() < 0.6),
        ))
        if k >= 1:
            nadir = min(nadir, vol)
        prev = vol
    if rano_day is None and pending is not None:
        rano_day = pending  # follow-up ended before confirmation: the annotator still calls it
    true_prog = surgery + timedelta(days=c["prog_day"]) if c["prog_day"] is not None else None
    return PatientCourse(
        patient_id=pid,
        index=index,
        diagnosis_date=dx,
        surgery_date=surgery,
        rt_start_date=surgery + timedelta(days=rt_start_d),
        rt_end_date=surgery + timedelta(days=rt_end_d),
        last_followup_date=surgery + timedelta(days=fu_d),
        death_date=surgery + timedelta(days=death_d) if died else None,
        true_progression_date=true_prog,
        rano_progression_date=surgery + timedelta(days=rano_day) if rano_day is not None else None,
        progression_type=("distant" if c["distant"] else "local") if c["prog_day"] is not None else None,
        pseudoprogression=c["pseudo"],
        residual_ml=round(c["residual"], 3),
        scans=tuple(scans),
    )


def simulate_cohort(n: int, seed: int, start: date = date(2015, 1, 1)) -> list[PatientCourse]:
    """``n`` patient courses; the same (n, seed) always gives the same cohort, patient by patient."""
    return [simulate_patient(seed, i, start) for i in range(n)]
