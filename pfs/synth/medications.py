"""Synthetic medication orders rendered from the true course, as a GBM centre's EHR would hold them.

Corticosteroids are a late and partial signal of progression: only some progressors get a new
dexamethasone course, usually weeks after the MRI shows it, and the same drugs are ordered for many
other reasons. The generator reproduces that, so the steroid extractor is tested against the truth
and not against an idealised prescription record.

Parameters and what they reflect (days unless stated; each patient draws from its own stream):

==================================  ==================  ==================================================
parameter                           value               reflects
==================================  ==================  ==================================================
perioperative dexamethasone         all; 8-16 mg/day    started at diagnosis for oedema, IV around surgery
                                                        in 35 %, tapered over 7-21 days after surgery as
                                                        step orders or one taper sig (40 %)
course during RT                    50 %; 2-4 mg/day    symptomatic oedema during chemoradiation, off by
                                                        2-6 weeks after RT end
low-dose maintenance after RT       12 %; 0.5-1 mg/day  patients who cannot be weaned
course at progression               68 % of progressors reference study: 63 % of patients found from
                                    drawn; ~60 % seen   prescriptions (Chappidi et al. 2025); courses that
                                                        would start after follow-up ends are not written
delay after RANO progression        log-normal, median  steroids follow imaging (reference study: 5.2
                                    35 (10th-90th       months later than the manual standard on
                                    pct 16-76)          average); 18 % start 5-35 days *before* the
                                                        RANO date, on symptoms
progression dose                    4-16 mg/day; 35 %   escalation for worsening symptoms; renewals of
                                    escalate            14-30 days overlapping by 0-4 days
taper after bevacizumab             at 2-6 weeks        bevacizumab reduces oedema and steroid need
course at pseudoprogression         40 % of pseudo      a false steroid signal (Rowe et al. 2018)
radiation-necrosis course           7 %                 short course, a false signal
prednisone burst                    12 %                COPD, asthma, rash: 20-60 mg/day for 5 days
methylprednisolone dose pack        7 %                 6-day Medrol taper (24 mg day 1 ... 4 mg day 6)
Solu-Medrol 125 mg IV once          6 %                 infusion reaction / premedication
single antiemetic dexamethasone     8 %, + irinotecan   4-10 mg IV once on chemotherapy/procedure days
hydrocortisone replacement          4 %                 adrenal insufficiency after long courses
non-systemic corticosteroids        4-12 % each         creams, inhalers, nasal sprays, eye drops,
                                                        intra-articular injection: must never count
blank end date / blank frequency    10 % / 20 %         real exports leave them blank; the sig holds
                                                        the frequency then (end date blank in 50 % of
                                                        single doses)
==================================  ==================  ==================================================

Every systemic corticosteroid row is internally consistent: dose x unit (and the concentration in the
drug name when the unit is mL) x frequency (column, or the sig when blank) gives the true daily dose of
the order's first step, stored in ``_truth_daily_mg``. Columns starting with ``_truth_`` are ground
truth for evaluation and must be split off before the frame is written into an export
(:func:`split_truth` does it):

- ``_truth_intent``: why the order was written: periop, rt, maintenance, progression, pseudoprogression,
  necrosis, unrelated (bursts, dose packs, antiemetic and single doses, replacement), non_systemic,
  non_steroid.
- ``_truth_course``: the course the order belongs to (renewals and taper steps share it), e.g. ``P0003-C02``.
- ``_truth_detail``: a short description (e.g. "taper step", "renewal", "escalation", "dose pack").
- ``_truth_daily_mg``: mg/day of the drug itself (not dexamethasone-equivalent) for systemic
  corticosteroids; the first step of a taper sig; day 1 of a dose pack; the single dose of a "once" order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from pfs.exceptions import RuleFileError
from pfs.io.schema import load_schema
from pfs.synth.course import PatientCourse, patient_rng

#: Random stream of this generator in :func:`pfs.synth.course.patient_rng`.
STREAM = 10

#: The native medications columns, taken from the schema so the generator cannot drift from the contract.
COLUMNS = load_schema("medications").columns
TRUTH_COLUMNS = ["_truth_intent", "_truth_course", "_truth_detail", "_truth_daily_mg"]

P_IV_PERIOP = 0.35
P_TAPER_SIG = 0.40
P_RT_COURSE = 0.50
P_MAINTENANCE = 0.12
P_PROGRESSION_COURSE = 0.68
P_BEFORE_IMAGING = 0.18
DELAY_MEDIAN_DAYS = 35.0
DELAY_SIGMA = 0.6
P_ESCALATION = 0.35
P_BEVACIZUMAB = 0.45
P_PSEUDO_COURSE = 0.40
P_NECROSIS_COURSE = 0.07
P_PREDNISONE_BURST = 0.12
P_DOSE_PACK = 0.07
P_ANTIEMETIC = 0.08
P_SOLU_MEDROL = 0.06
P_REPLACEMENT = 0.04
P_NON_SYSTEMIC = {
    "hc_cream": 0.10,
    "triam_oint": 0.06,
    "flut_nasal": 0.12,
    "flut_inh": 0.06,
    "bud_inh": 0.04,
    "dex_ophth": 0.04,
    "triam_ia": 0.04,
}
P_BLANK_END = 0.10
P_BLANK_FREQUENCY = 0.20
P_MISSPELLING = 0.05
P_PLAIN_NAME = 0.25
P_REUSE_RENDERING = 0.70

#: Dexamethasone mg/day -> (mg per administration, frequency key) as prescribers write them.
DEX_LADDER: dict[float, list[tuple[float, str]]] = {
    16: [(4, "qid"), (8, "bid")],
    12: [(4, "tid"), (6, "bid")],
    8: [(4, "bid"), (8, "daily")],
    6: [(2, "tid"), (3, "bid")],
    4: [(2, "bid"), (4, "daily")],
    3: [(1.5, "bid")],
    2: [(1, "bid"), (2, "daily")],
    1: [(1, "daily"), (0.5, "bid")],
    0.5: [(0.5, "daily")],
}
#: Methylprednisolone dose pack: tablets of 4 mg per day over 6 days.
DOSE_PACK_TABLETS = (6, 5, 4, 3, 2, 1)

_SYSTEMIC_COURSE_INTENTS = {"periop", "rt", "maintenance", "progression", "pseudoprogression", "necrosis"}
_FORM_KEYS = {
    "ingredient",
    "systemic",
    "kind",
    "route",
    "strengths",
    "names",
    "names_plain",
    "misspellings",
    "concentration_mg_per_ml",
    "regimens",
}
_TOP_KEYS = {"_source", "forms", "frequencies", "routes", "route_sig", "sigs", "background", "oncology"}


@cache
def load_rules() -> dict[str, Any]:
    """The spellings file ``pfs/rules/synth_drugs.json``, checked so that a typo fails loudly."""
    text = resources.files("pfs.rules").joinpath("synth_drugs.json").read_text(encoding="utf-8")
    return validate_rules(json.loads(text))


def validate_rules(data: dict[str, Any]) -> dict[str, Any]:
    """Reject unknown keys and dangling references, as medspaCy does for its rule files."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise RuleFileError(
            f"synth_drugs.json: unknown top-level keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}"
        )
    missing = _TOP_KEYS - {"_source"} - set(data)
    if missing:
        raise RuleFileError(f"synth_drugs.json: missing top-level keys {sorted(missing)}")
    for name, form in data["forms"].items():
        bad = set(form) - _FORM_KEYS
        if bad:
            raise RuleFileError(f"synth_drugs.json: form {name!r} has unknown keys {sorted(bad)}")
        if form["route"] not in data["routes"]:
            raise RuleFileError(
                f"synth_drugs.json: form {name!r} has route {form['route']!r}, not in 'routes'"
            )
        for reg in form.get("regimens", []):
            if reg["frequency"] not in data["frequencies"]:
                raise RuleFileError(
                    f"synth_drugs.json: form {name!r} uses frequency {reg['frequency']!r}, "
                    f"not in 'frequencies' ({', '.join(data['frequencies'])})"
                )
    for key, spec in data["frequencies"].items():
        if set(spec) != {"per_day", "column", "sig", "abbr"}:
            raise RuleFileError(
                f"synth_drugs.json: frequency {key!r} needs exactly per_day, column, sig, abbr"
            )
    return data


@dataclass(frozen=True)
class _Order:
    """One planned order; systemic steroids are rendered later, everything else carries its own text."""

    start: date
    end: date | None  # last day (inclusive); None = open (a single dose with no end)
    intent: str
    course: str
    detail: str
    form: str = ""  # key into forms (corticosteroids)
    dose_mg: float = 0.0  # mg per administration (first step)
    freq: str = ""  # frequency key
    steps: tuple[tuple[float, str, int], ...] = ()  # taper sig: (mg, frequency key, days)
    fixed: dict[str, str] = field(default_factory=dict)  # pre-rendered text for other drugs


@dataclass
class _Ctx:
    """Per-patient planning state: the course, its random stream and the orders so far."""

    c: PatientCourse
    rng: np.random.Generator
    rules: dict[str, Any]
    record_end: date
    orders: list[_Order] = field(default_factory=list)
    n_courses: int = 0

    def new_course(self) -> str:
        self.n_courses += 1
        return f"{self.c.patient_id}-C{self.n_courses:02d}"

    def days(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi] (``random()`` is cheaper than ``integers()`` per call)."""
        return lo + int(self.rng.random() * (hi - lo + 1))

    def pick(self, items: list) -> Any:
        return items[int(self.rng.random() * len(items))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)


def _d(day: date, n: int) -> date:
    return day + timedelta(days=int(n))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _ladder(ctx: _Ctx, mg_per_day: float) -> tuple[float, str]:
    return ctx.pick(DEX_LADDER[mg_per_day])


# --- planning: corticosteroid courses ---------------------------------------------------------------


def _supersede(ctx: _Ctx, day: date) -> None:
    """A new course replaces the running one: active steroid orders end the day before (sometimes on it)."""
    kept: list[_Order] = []
    for o in ctx.orders:
        if o.form and o.intent in _SYSTEMIC_COURSE_INTENTS:
            if o.start >= day:
                continue
            if o.end is None or o.end >= day:
                overlap = 1 if ctx.chance(0.2) else 0
                o = replace(o, end=_d(day, -1 + overlap))
        kept.append(o)
    ctx.orders = kept


def _block(
    ctx: _Ctx,
    form: str,
    start: date,
    end: date,
    mg_per_day: float,
    intent: str,
    course: str,
    detail: str,
    supply: list[int],
) -> None:
    """A constant-dose stretch written as an order renewed every ``supply`` days, overlapping by 0-4 days."""
    dose, freq = _ladder(ctx, mg_per_day)
    t = start
    first = True
    while t <= end:
        length = ctx.pick(supply)
        stop = min(end, _d(t, length - 1))
        ctx.orders.append(_Order(t, stop, intent, course, detail if first else "renewal", form, dose, freq))
        first = False
        if stop >= end:
            break
        t = _d(stop, 1 - ctx.days(0, 4))
        t = max(t, _d(ctx.orders[-1].start, 1))


def _taper(
    ctx: _Ctx,
    start: date,
    levels: list[float],
    total_days: int,
    intent: str,
    course: str,
    as_sig: bool | None = None,
) -> date:
    """Taper through ``levels`` (mg/day) over about ``total_days``; returns the last day on steroids."""
    per = max(2, total_days // len(levels))
    steps = [(*_ladder(ctx, lv), per) for lv in levels]
    if as_sig is None:
        as_sig = ctx.chance(P_TAPER_SIG)
    if as_sig:
        total = per * len(steps)
        last = _d(start, total - 1)
        dose, freq, _ = steps[0]
        ctx.orders.append(
            _Order(start, last, intent, course, "taper sig", "dex_tab", dose, freq, tuple(steps))
        )
        return last
    t = start
    for dose, freq, n in steps:
        stop = _d(t, n - 1)
        ctx.orders.append(_Order(t, stop, intent, course, "taper step", "dex_tab", dose, freq))
        t = _d(stop, 1)
    return _d(t, -1)


def _periop(ctx: _Ctx) -> None:
    c = ctx.c
    course = ctx.new_course()
    start = _d(c.diagnosis_date, ctx.days(0, 2))
    start = min(start, c.surgery_date)
    init = float(ctx.rng.choice([16, 8, 12], p=[0.5, 0.35, 0.15]))
    post_op_end = _d(c.surgery_date, ctx.days(1, 4))
    if ctx.chance(P_IV_PERIOP):
        if c.surgery_date > start:
            _block(ctx, "dex_tab", start, _d(c.surgery_date, -1), init, "periop", course, "pre-op", [30])
        ctx.orders.append(
            _Order(
                c.surgery_date,
                c.surgery_date,
                "periop",
                course,
                "intra-op load",
                "dex_inj",
                float(ctx.pick([10, 8])),
                "once",
            )
        )
        dose, freq = _ladder(ctx, 16 if init >= 12 else 8)
        ctx.orders.append(
            _Order(c.surgery_date, post_op_end, "periop", course, "post-op IV", "dex_inj", dose, freq)
        )
    else:
        _block(ctx, "dex_tab", start, post_op_end, init, "periop", course, "pre-op", [30])
    ladder = [lv for lv in (8, 4, 2, 1) if lv < init]
    n_steps = ctx.days(3, len(ladder)) if len(ladder) > 3 else len(ladder)
    _taper(ctx, _d(post_op_end, 1), ladder[:n_steps], ctx.days(7, 21), "periop", course)


def _rt_course(ctx: _Ctx) -> date | None:
    """Dexamethasone during chemoradiation; returns the last day on it (None if not given)."""
    c = ctx.c
    if not ctx.chance(P_RT_COURSE):
        return None
    course = ctx.new_course()
    start = _d(c.rt_start_date, ctx.days(-3, 10))
    _supersede(ctx, start)
    mg = float(ctx.pick([2, 4, 4, 3]))
    full_end = _d(c.rt_end_date, ctx.days(0, 14))
    _block(ctx, "dex_tab", start, full_end, mg, "rt", course, "start", [30, 28])
    levels = [2, 1] if mg > 2 else [1, 0.5]
    return _taper(ctx, _d(full_end, 1), levels, ctx.days(7, 28), "rt", course)


def _progression_start(ctx: _Ctx) -> date | None:
    """Start of the progression course, or None for progressors whose steroids never follow."""
    c = ctx.c
    if c.rano_progression_date is None or not ctx.chance(P_PROGRESSION_COURSE):
        return None
    if ctx.chance(P_BEFORE_IMAGING):
        start = _d(c.rano_progression_date, -ctx.days(5, 35))
        start = max(start, _d(c.rt_end_date, 21))
    else:
        delay = max(10, int(round(DELAY_MEDIAN_DAYS * float(np.exp(ctx.rng.normal(0.0, DELAY_SIGMA))))))
        start = _d(c.rano_progression_date, delay)
    return start if start < ctx.record_end else None


def _maintenance(ctx: _Ctx, after: date, until: date | None) -> None:
    """Low-dose dexamethasone that a patient cannot be weaned from, until the next course or weaning."""
    course = ctx.new_course()
    start = _d(after, 1)
    end = _d(start, ctx.days(60, 240))
    if until is not None:
        end = min(end, _d(until, -1))
    end = min(end, ctx.record_end)
    if end > start:
        _block(
            ctx, "dex_tab", start, end, float(ctx.pick([0.5, 1, 1])), "maintenance", course, "start", [90, 30]
        )


def _progression_course(ctx: _Ctx, start: date, bev_start: date | None) -> None:
    c = ctx.c
    course = ctx.new_course()
    _supersede(ctx, start)
    levels = [4.0, 8.0, 12.0, 16.0]
    k = int(ctx.rng.choice(4, p=[0.3, 0.4, 0.1, 0.2]))
    end = _d(start, ctx.days(30, 150))
    if bev_start is not None and bev_start > start:
        end = min(end, _d(bev_start, ctx.days(14, 42)))
    if c.death_date is not None and (c.death_date - end).days < 60:
        end = c.death_date
    end = min(end, ctx.record_end)
    t = start
    detail = "start"
    while t <= end:
        seg_end = end
        if k < 3 and ctx.chance(P_ESCALATION):
            seg_end = min(end, _d(t, ctx.days(7, 28) - 1))
        _block(ctx, "dex_tab", t, seg_end, levels[k], "progression", course, detail, [14, 28, 30])
        if seg_end >= end:
            break
        t, k, detail = _d(seg_end, 1), k + 1, "escalation"
    if end < ctx.record_end:
        ladder = [lv for lv in (8.0, 4.0, 2.0, 1.0) if lv < levels[k]]
        _taper(ctx, _d(end, 1), ladder, ctx.days(10, 28), "progression", course)


def _short_course(ctx: _Ctx, start: date, mg: float, days: int, intent: str) -> None:
    """A short course (pseudoprogression, radiation necrosis) then a taper: a false progression signal."""
    course = ctx.new_course()
    _supersede(ctx, start)
    end = min(_d(start, days - 1), ctx.record_end)
    _block(ctx, "dex_tab", start, end, mg, intent, course, "start", [14, 30])
    if end < ctx.record_end:
        _taper(ctx, _d(end, 1), [lv for lv in (4.0, 2.0, 1.0) if lv < mg], ctx.days(7, 21), intent, course)


def _random_day(ctx: _Ctx, lo: date, hi: date) -> date | None:
    span = (hi - lo).days
    return None if span < 0 else _d(lo, ctx.days(0, span))


def _unrelated(ctx: _Ctx, bev_days: list[date], irinotecan: bool) -> None:
    """Systemic steroids for other reasons, which a progression rule must discount."""
    c, end = ctx.c, ctx.record_end
    lo = _d(c.surgery_date, 30)
    if ctx.chance(P_PREDNISONE_BURST):
        for _ in range(ctx.days(1, 2)):
            day = _random_day(ctx, lo, _d(end, -5))
            if day is None:
                break
            course = ctx.new_course()
            reason = ctx.pick(["COPD exacerbation", "asthma", "rash", "gout flare"])
            if ctx.chance(0.25):
                steps = ((40.0, "daily", 3), (20.0, "daily", 3), (10.0, "daily", 3))
                ctx.orders.append(
                    _Order(
                        day,
                        _d(day, 8),
                        "unrelated",
                        course,
                        f"prednisone taper ({reason})",
                        "pred_tab",
                        40.0,
                        "daily",
                        steps,
                    )
                )
            else:
                dose, freq = ctx.pick([(40.0, "daily"), (60.0, "daily"), (20.0, "bid"), (50.0, "daily")])
                ctx.orders.append(
                    _Order(
                        day,
                        _d(day, 4),
                        "unrelated",
                        course,
                        f"prednisone burst ({reason})",
                        "pred_tab",
                        dose,
                        freq,
                    )
                )
    if ctx.chance(P_DOSE_PACK):
        day = _random_day(ctx, lo, _d(end, -6))
        if day is not None:
            ctx.orders.append(
                _Order(day, _d(day, 5), "unrelated", ctx.new_course(), "dose pack", "mp_dosepack", 4.0, "")
            )
    single_days: list[date] = []
    if irinotecan:
        single_days += [d for d in bev_days if ctx.chance(0.6)]
    if ctx.chance(P_ANTIEMETIC):
        for _ in range(ctx.days(1, 3)):
            day = _random_day(ctx, c.surgery_date, end)
            if day is not None:
                single_days.append(day)
    for day in single_days:
        form, dose = ctx.pick([("dex_inj", 8.0), ("dex_inj", 10.0), ("dex_inj", 4.0), ("dex_tab", 12.0)])
        ctx.orders.append(
            _Order(day, day, "unrelated", ctx.new_course(), "antiemetic single dose", form, dose, "once")
        )
    if ctx.chance(P_SOLU_MEDROL):
        day = _random_day(ctx, c.surgery_date, end)
        if day is not None:
            ctx.orders.append(
                _Order(day, day, "unrelated", ctx.new_course(), "infusion reaction", "mp_inj", 125.0, "once")
            )
    if ctx.chance(P_REPLACEMENT):
        day = _random_day(ctx, _d(c.rt_end_date, 60), _d(end, -10))
        if day is not None:
            course = ctx.new_course()
            mg = float(ctx.pick([20, 15, 20]))
            dose, freq = {20.0: ctx.pick([(10.0, "bid"), (20.0, "daily")]), 15.0: (5.0, "tid")}[mg]
            t = day
            while t <= end:
                stop = min(end, _d(t, 89))
                ctx.orders.append(
                    _Order(t, stop, "unrelated", course, "physiological replacement", "hc_tab", dose, freq)
                )
                t = _d(stop, 1 - ctx.days(0, 7))
                if stop >= end:
                    break
            if ctx.chance(0.5):
                sd = _random_day(ctx, day, end)
                if sd is not None:
                    ctx.orders.append(
                        _Order(sd, sd, "unrelated", course, "stress dose", "hc_inj", 100.0, "once")
                    )


def _non_systemic(ctx: _Ctx) -> None:
    """Creams, inhalers, sprays, drops, joint injections: corticosteroids that must never count."""
    rules = ctx.rules["forms"]
    for form, p in P_NON_SYSTEMIC.items():
        if not ctx.chance(p):
            continue
        spec = rules[form]
        for _ in range(ctx.days(1, 2)):
            day = _random_day(ctx, ctx.c.diagnosis_date, ctx.record_end)
            if day is None:
                break
            reg = ctx.pick(spec["regimens"])
            if reg["frequency"] == "once":
                stop: date | None = day
            else:
                stop = min(ctx.record_end, _d(day, ctx.pick([7, 14, 30, 90]) - 1))
            freq = ctx.pick(ctx.rules["frequencies"][reg["frequency"]]["column"])
            fixed = {
                "drug_name": ctx.pick(spec["names"]),
                "dose": reg["dose"],
                "dose_unit": reg["unit"],
                "frequency": freq,
                "route": ctx.pick(ctx.rules["routes"][spec["route"]]),
                "sig": reg["sig"],
            }
            ctx.orders.append(
                _Order(day, stop, "non_systemic", "", spec["ingredient"] + " " + spec["kind"], fixed=fixed)
            )


# --- planning: other drugs ---------------------------------------------------------------------------


def _other(
    ctx: _Ctx,
    drug: str,
    start: date,
    end: date | None,
    detail: str,
    *,
    name: str | None = None,
    dose: str,
    unit: str,
    freq: str,
    route: str,
    sig: str,
) -> None:
    routes = ctx.rules["routes"]
    fixed = {
        "drug_name": name or ctx.pick(ctx.rules["background"][drug]["names"]),
        "dose": dose,
        "dose_unit": unit,
        "frequency": freq,
        "route": ctx.pick(routes[route]) if route in routes else route,
        "sig": sig,
    }
    ctx.orders.append(_Order(start, end, "non_steroid", "", detail, fixed=fixed))


def _renewed_regimen(ctx: _Ctx, drug: str, start: date, end: date, supply: list[int]) -> None:
    reg = ctx.pick(ctx.rules["background"][drug]["regimens"])
    name = ctx.pick(ctx.rules["background"][drug]["names"])
    t = start
    while t <= end:
        stop = min(end, _d(t, ctx.pick(supply) - 1))
        _other(
            ctx,
            drug,
            t,
            stop,
            drug,
            name=name,
            dose=reg["dose"],
            unit=reg["unit"],
            freq=reg["frequency"],
            route=reg["route"],
            sig=reg["sig"],
        )
        if stop >= end:
            break
        t = _d(stop, 1 - ctx.days(0, 7))


def _capsule_name(ctx: _Ctx, dose_mg: int) -> str:
    strength = max(s for s in (5, 20, 100, 140, 180, 250) if s <= dose_mg)
    return (
        ctx.pick(ctx.rules["oncology"]["temozolomide"]["names"])
        .replace("{S}", str(strength))
        .replace("{s}", str(strength))
    )


def _oncology(ctx: _Ctx, bsa: float) -> tuple[date | None, list[date], bool]:
    """Temozolomide (Stupp), supportive drugs, and second-line therapy at progression.

    Returns (bevacizumab start, infusion days, irinotecan given) for the steroid planner.
    """
    c, end = ctx.c, ctx.record_end
    onc = ctx.rules["oncology"]
    rt_end = min(c.rt_end_date, end)
    if c.rt_start_date <= end:
        dose = int(round(75 * bsa / 5) * 5)
        _other(
            ctx,
            "temozolomide",
            c.rt_start_date,
            rt_end,
            "temozolomide concurrent",
            name=_capsule_name(ctx, dose),
            dose=str(dose),
            unit="mg",
            freq=ctx.pick(["daily", "QD", "nightly"]),
            route="oral",
            sig=ctx.pick(
                [
                    f"Take {dose} mg by mouth daily during radiation therapy (75 mg/m2)",
                    f"{dose} mg PO qHS 1 hour before radiation, 7 days a week",
                ]
            ),
        )
        _renewed_regimen(ctx, "ondansetron", c.rt_start_date, rt_end, [30, 45])
        if ctx.chance(0.7):
            _renewed_regimen(ctx, "tmp_smx", c.rt_start_date, rt_end, [30, 45])
    stop_adjuvant = c.rano_progression_date or end
    if c.rano_progression_date is not None and ctx.chance(0.3):
        stop_adjuvant = _d(c.rano_progression_date, ctx.days(10, 40))  # one more cycle before the switch
    t = _d(c.rt_end_date, ctx.days(28, 35))
    n_cycles = 12 if ctx.chance(0.25) else 6
    escalate = ctx.chance(0.8)
    for k in range(n_cycles):
        if t > min(stop_adjuvant, end):
            break
        per_m2 = 150 if k == 0 or not escalate else 200
        dose = int(round(per_m2 * bsa / 5) * 5)
        _other(
            ctx,
            "temozolomide",
            t,
            min(_d(t, 4), end),
            "temozolomide adjuvant",
            name=_capsule_name(ctx, dose),
            dose=str(dose),
            unit="mg",
            freq=ctx.pick(["daily", "QHS", "daily x5 days"]),
            route="oral",
            sig=f"Take {dose} mg by mouth daily for 5 days of each 28-day cycle "
            f"(cycle {k + 1}, {per_m2} mg/m2)",
        )
        if ctx.chance(0.5):
            _renewed_regimen(ctx, "ondansetron", t, min(_d(t, 4), end), [5])
        t = _d(t, 28 + (ctx.days(1, 10) if ctx.chance(0.2) else 0))
    bev_start: date | None = None
    bev_days: list[date] = []
    irinotecan = False
    if c.rano_progression_date is not None:
        if ctx.chance(P_BEVACIZUMAB):
            bev_start = _d(c.rano_progression_date, ctx.days(14, 60))
            weight = float(ctx.rng.uniform(55, 110))
            bev_dose = int(round(10 * weight / 10) * 10)
            irinotecan = ctx.chance(0.35)
            stop = min(end, _d(bev_start, ctx.days(60, 300)))
            day = bev_start
            while day <= stop and len(bev_days) < 14:
                bev_days.append(day)
                _other(
                    ctx,
                    "bevacizumab",
                    day,
                    day,
                    "bevacizumab",
                    name=ctx.pick(onc["bevacizumab"]["names"]),
                    dose=str(bev_dose),
                    unit="mg",
                    freq=ctx.pick(["every 14 days", "q2 weeks", "once"]),
                    route="iv",
                    sig=f"{bev_dose} mg (10 mg/kg) IV over 30 minutes every 2 weeks",
                )
                if irinotecan:
                    dose = int(round(125 * bsa / 10) * 10)
                    _other(
                        ctx,
                        "irinotecan",
                        day,
                        day,
                        "irinotecan",
                        name=ctx.pick(onc["irinotecan"]["names"]),
                        dose=str(dose),
                        unit="mg",
                        freq="once",
                        route="iv",
                        sig=f"{dose} mg (125 mg/m2) IV over 90 minutes",
                    )
                day = _d(day, 14 + (7 if ctx.chance(0.1) else 0))
        elif ctx.chance(0.4):
            day = _d(c.rano_progression_date, ctx.days(14, 45))
            dose = int(round(110 * bsa / 10) * 10)
            for _ in range(ctx.days(1, 4)):
                if day > end:
                    break
                _other(
                    ctx,
                    "lomustine",
                    day,
                    day,
                    "lomustine",
                    name=ctx.pick(onc["lomustine"]["names"]),
                    dose=str(dose),
                    unit="mg",
                    freq="once",
                    route="oral",
                    sig=f"Take {dose} mg by mouth once every 6 weeks (110 mg/m2)",
                )
                day = _d(day, 42)
    return bev_start, bev_days, irinotecan


def _supportive(ctx: _Ctx) -> None:
    c, end = ctx.c, ctx.record_end
    if ctx.chance(0.75):
        _renewed_regimen(ctx, "levetiracetam", _d(c.diagnosis_date, ctx.days(0, 3)), end, [90, 90, 30])
    if ctx.chance(0.5):
        gi = ctx.pick(["pantoprazole", "pantoprazole", "famotidine"])
        _renewed_regimen(
            ctx, gi, _d(c.diagnosis_date, ctx.days(0, 3)), min(end, _d(c.surgery_date, 30)), [30]
        )
    extra = [
        "docusate",
        "acetaminophen",
        "oxycodone",
        "enoxaparin",
        "apixaban",
        "metformin",
        "insulin",
        "lorazepam",
        "atorvastatin",
        "lisinopril",
    ]
    for _ in range(ctx.days(0, 3)):
        drug = ctx.pick(extra)
        start = _random_day(ctx, c.diagnosis_date, end)
        if start is None:
            break
        _renewed_regimen(ctx, drug, start, min(end, _d(start, ctx.days(20, 300))), [30, 90])


# --- rendering -----------------------------------------------------------------------------------------


def _tablet_strength(spec: dict[str, Any], dose: float, ctx: _Ctx) -> float | None:
    """A tablet strength that gives a sensible count; mostly the largest, as pharmacies dispense."""
    fits = sorted(s for s in spec.get("strengths", []) if (dose / s) in (0.5, 1, 1.5, 2, 3, 4))
    whole = [s for s in fits if float(dose / s).is_integer()]
    if whole and ctx.chance(0.7):
        return whole[-1]
    return ctx.pick(fits) if fits else None


def _name(ctx: _Ctx, spec: dict[str, Any], strength: float | None) -> tuple[str, bool]:
    """(drug name, whether the name states the tablet strength)."""
    names = [n for n in spec["names"] if "{s}" in n.lower()] if strength is not None else []
    if spec["kind"] != "tablet" and spec["kind"] != "dose_pack":
        names = spec["names"]
    if spec["kind"] == "dose_pack":
        name, has = ctx.pick(spec["names"]), True
    elif strength is not None and spec.get("misspellings") and ctx.chance(P_MISSPELLING):
        name = ctx.pick(spec["misspellings"])
        has = "{s}" in name.lower()
    elif spec.get("names_plain") and (not names or ctx.chance(P_PLAIN_NAME)):
        name, has = ctx.pick(spec["names_plain"]), False
    else:
        name, has = ctx.pick(names), spec["kind"] == "tablet"
    if strength is not None:
        name = name.replace("{s}", _num(strength)).replace("{S}", _num(strength))
    if ctx.chance(0.05):
        name = name.lower() if ctx.chance(0.5) else name.upper()
    return name, has


def _freq_text(ctx: _Ctx, key: str, kind: str) -> str:
    return ctx.pick(ctx.rules["frequencies"][key][kind])


def _taper_sig(ctx: _Ctx, steps: tuple[tuple[float, str, int], ...]) -> str:
    sigs = ctx.rules["sigs"]
    template = ctx.pick(sigs["taper_step"])
    parts = [
        template.format(dose=_num(d), abbr=_freq_text(ctx, f, "abbr"), freq=_freq_text(ctx, f, "sig"), days=n)
        for d, f, n in steps
    ]
    parts = parts[:1] + [p[0].lower() + p[1:] for p in parts[1:]]
    return ctx.pick(sigs["taper_join"]).join(parts) + ctx.pick(sigs["taper_end"])


def _render_steroid(ctx: _Ctx, o: _Order) -> dict[str, str]:
    rules = ctx.rules
    spec = rules["forms"][o.form]
    kind = spec["kind"]
    sigs = rules["sigs"]
    strength = _tablet_strength(spec, o.dose_mg, ctx) if kind in ("tablet", "dose_pack") else None
    name, has_strength = _name(ctx, spec, strength)
    unit = "MG" if ctx.chance(0.3) else "mg"
    dose = _num(o.dose_mg)
    freq_col = "" if ctx.chance(P_BLANK_FREQUENCY) else _freq_text(ctx, o.freq, "column") if o.freq else ""
    fmt = {
        "dose": dose,
        "abbr": _freq_text(ctx, o.freq, "abbr") if o.freq else "",
        "freq": _freq_text(ctx, o.freq, "sig") if o.freq else "",
    }
    if kind == "dose_pack":
        sig = ctx.pick(sigs["dose_pack"])
        freq_col = ""
    elif o.steps:
        sig = _taper_sig(ctx, o.steps)
        if ctx.chance(0.5):
            freq_col = ""
    elif kind == "tablet":
        if has_strength and strength is not None and ctx.chance(0.5):
            n = o.dose_mg / strength
            sig = ctx.pick(sigs["oral_tab"]).format(n=_num(n), tabs="tablet" if n <= 1 else "tablets", **fmt)
        else:
            sig = ctx.pick(sigs["oral_mg"]).format(**fmt)
    elif kind == "liquid":
        vol = o.dose_mg / spec["concentration_mg_per_ml"]
        sig = ctx.pick(sigs["oral_liquid"]).format(vol=_num(vol), **fmt)
        dose, unit = _num(vol), "mL"
    else:  # injection
        vol = o.dose_mg / spec["concentration_mg_per_ml"]
        if "mg/" in name.lower() and float(vol * 100).is_integer() and ctx.chance(0.4):
            sig = ctx.pick(sigs["iv_ml"]).format(vol=_num(vol), **fmt)
            dose, unit = _num(vol), "mL"
        else:
            sig = ctx.pick(sigs["iv_mg"]).format(**fmt)
    if o.detail.startswith("prednisone burst") and not o.steps and ctx.chance(0.5):
        n_days = (o.end - o.start).days + 1 if o.end else 5
        sig += ctx.pick([f" for {n_days} days", f" x{n_days} days", f" x {n_days} days"])
    return {
        "drug_name": name,
        "dose": dose,
        "dose_unit": unit,
        "frequency": freq_col,
        "route": ctx.pick(rules["routes"][spec["route"]]),
        "sig": sig,
    }


def _truth_daily_mg(ctx: _Ctx, o: _Order) -> str:
    if not o.form:
        return ""
    if ctx.rules["forms"][o.form]["kind"] == "dose_pack":
        return _num(4.0 * DOSE_PACK_TABLETS[0])
    dose, freq = (o.steps[0][0], o.steps[0][1]) if o.steps else (o.dose_mg, o.freq)
    per_day = ctx.rules["frequencies"][freq]["per_day"]
    return _num(dose * per_day if per_day else dose)


def _plan(c: PatientCourse, seed: int, rules: dict[str, Any]) -> tuple[_Ctx, list[_Order]]:
    rng = patient_rng(seed, c.index, STREAM)
    ctx = _Ctx(c=c, rng=rng, rules=rules, record_end=c.death_date or c.last_followup_date)
    bsa = float(rng.uniform(1.5, 2.3))
    _periop(ctx)
    rt_last = _rt_course(ctx)
    bev_start, bev_days, irinotecan = _oncology(ctx, bsa)
    prog_start = _progression_start(ctx)
    if rt_last is not None and ctx.chance(P_MAINTENANCE / P_RT_COURSE):
        _maintenance(ctx, rt_last, prog_start)
    if c.pseudoprogression and ctx.chance(P_PSEUDO_COURSE):
        start = _d(c.rt_end_date, ctx.days(30, 75))
        if start < ctx.record_end and (prog_start is None or start < _d(prog_start, -30)):
            _short_course(ctx, start, float(ctx.pick([4, 8, 8])), ctx.days(14, 35), "pseudoprogression")
    if ctx.chance(P_NECROSIS_COURSE):
        hi = min(ctx.record_end, c.rano_progression_date or ctx.record_end, prog_start or ctx.record_end)
        start = _random_day(ctx, _d(c.rt_end_date, 120), _d(hi, -30))
        if start is not None:
            _short_course(ctx, start, 8.0, ctx.days(5, 14), "necrosis")
    if prog_start is not None:
        _progression_course(ctx, prog_start, bev_start)
    _unrelated(ctx, bev_days, irinotecan)
    _non_systemic(ctx)
    _supportive(ctx)
    return ctx, _within_record(ctx)


def _within_record(ctx: _Ctx) -> list[_Order]:
    """Orders clipped to the patient's record (diagnosis .. last follow-up or death)."""
    lo, hi = ctx.c.diagnosis_date, ctx.record_end
    out = []
    for o in ctx.orders:
        if o.start > hi or (o.end is not None and o.end < lo):
            continue
        start = max(o.start, lo)
        end = None if o.end is None else max(start, min(o.end, hi))
        out.append(o if (start, end) == (o.start, o.end) else replace(o, start=start, end=end))
    return out


def _rows(ctx: _Ctx, orders: list[_Order]) -> list[dict[str, Any]]:
    rows = []
    cache_: dict[tuple, dict[str, str]] = {}
    for seq, o in enumerate(orders):
        if o.form:
            key = (o.course, o.form, o.dose_mg, o.freq, o.steps)
            if key in cache_ and ctx.chance(P_REUSE_RENDERING):
                text = cache_[key]
            else:
                text = _render_steroid(ctx, o)
                cache_[key] = text
        else:
            text = o.fixed
        single = o.freq == "once" or text.get("frequency", "").lower() == "once"
        blank_end = o.end is None or ctx.chance(0.5 if single else P_BLANK_END)
        rows.append(
            {
                "patient_id": ctx.c.patient_id,
                "order_date": o.start.isoformat(),
                "end_date": "" if blank_end else o.end.isoformat(),
                **text,
                "_truth_intent": o.intent,
                "_truth_course": o.course,
                "_truth_detail": o.detail,
                "_truth_daily_mg": _truth_daily_mg(ctx, o),
                "_seq": seq,
            }
        )
    return rows


def generate(courses: list[PatientCourse], seed: int) -> pd.DataFrame:
    """Medication rows in the native ``medications`` layout (dates as ISO strings), plus ``_truth_*`` columns.

    The same (courses, seed) always gives the same frame; each patient uses its own random stream, so a
    patient's orders do not change when the cohort grows.
    """
    rules = load_rules()
    rows: list[dict[str, Any]] = []
    for c in courses:
        ctx, orders = _plan(c, seed, rules)
        rows.extend(_rows(ctx, orders))
    frame = pd.DataFrame(rows, columns=[*COLUMNS, *TRUTH_COLUMNS, "_seq"])
    frame = frame.sort_values(["patient_id", "order_date", "_seq"], kind="mergesort").reset_index(drop=True)
    width = max(6, len(str(len(frame))))
    frame["medication_id"] = [f"M{i + 1:0{width}d}" for i in range(len(frame))]
    return frame.drop(columns="_seq")[[*COLUMNS, *TRUTH_COLUMNS]].fillna("").astype(str)


#: ``_truth_*`` column -> column of ``truth/truth_medications.csv``.
TRUTH_RENAME = {
    "_truth_intent": "intent",
    "_truth_course": "course_id",
    "_truth_detail": "detail",
    "_truth_daily_mg": "true_daily_mg",
}


def split_truth(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the export's ``medications`` rows, the truth per order keyed by medication_id).

    The truth must never reach the export: an extractor that saw it would be graded on its own answer.
    """
    truth = frame[["medication_id", "patient_id", *TRUTH_COLUMNS]].rename(columns=TRUTH_RENAME)
    return frame[COLUMNS].copy(), truth.reset_index(drop=True)
