"""The ``guideline`` strategy (default): RANO-like reconciliation of tumour, clinical and treatment sources.

Rules, each configurable with its reason in ``pfs/config/reconcile.toml`` ([guideline]):

- Imaging or report progression counts. It is *preliminary* and needs confirmation when it lies in
  the pseudoprogression window (surgery, or RT start, to ``pseudoprogression_days`` after RT end: the
  one window of pfs, applied here only), when the other tumour source read the same study as stable, improved or
  treatment effect (a conflict: neither decides alone), or when a volumetric progression started from
  a nadir below the measurable floor. A new lesion or histology needs none inside the window.
- Confirmation: a later tumour event or a later scan/report still showing progression
  ``confirm_min_days``..``confirm_max_days`` later, the start of a next line of therapy within
  ``treatment_confirms_days``, or death. Once confirmed, progression is dated to the first scan
  (RANO 2.0), so confirmation costs the date nothing.
- Next-line therapy confirms a preliminary tumour progression (which keeps its scan date) and never
  dates progression itself when a tumour event precedes it; with none before it, the start of the
  new line dates progression, flagged late.
- Bevacizumab pseudo-response: after bevacizumab starts, enhancement shrinks within weeks; an imaging
  progression measured from a nadir set after that start is measured again from the nadir before it.
- A steroid signal alone is never progression (RANO); corroborated by tumour progression within
  ``steroid_corroboration_days`` it joins the evidence and, when earlier, back-dates progression to the
  increase ("dated to the first time the increase was needed"), never to one inside the window.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pfs.extractors import Role, sources_with_role
from pfs.reconcile.chain import ACCEPTED, REJECTED, Event, by_date, collapse, dates, frame, prepare, row
from pfs.reconcile.window import window_bounds

Assessment = dict[str, Any]


def _assessments_by_patient(assessments: pd.DataFrame | None) -> dict[str, list[Assessment]]:
    if assessments is None or assessments.empty:
        return {}
    out: dict[str, list[Assessment]] = {}
    for rec in assessments.sort_values(["patient_id", "assessment_date"], kind="stable").to_dict("records"):
        out.setdefault(str(rec["patient_id"]), []).append(rec)
    return out


def _describe(a: Assessment) -> str:
    vol = a.get("et_volume_ml")
    extra = f" (ET {vol:.1f} mL)" if vol is not None and pd.notna(vol) else ""
    day = f"{a['assessment_date']:%Y-%m-%d}"
    return f"{a['source']} {day} {a['ref_id']} read the same study as {a['assessment']}{extra}"


def _conflicts(day: list[Event], date: pd.Timestamp, asm: list[Assessment], tumour: set[str],
               cfg: dict[str, Any]) -> list[str]:
    """The other tumour source's reading of the same study, when it disagrees with progression."""
    said = {e["source"] for e in day}
    tol = int(cfg["same_study_days"])
    labels = set(cfg["conflicting_assessments"])
    return [_describe(a) for a in asm
            if a["source"] in tumour and a["source"] not in said and a["assessment"] in labels
            and abs((a["assessment_date"] - date).days) <= tol]


def _study(day: list[Event], asm: list[Assessment]) -> Assessment | None:
    """The imaging assessment of the study an imaging event rests on."""
    refs = {e["ref_id"] for e in day if e["source"] == "imaging"}
    hits = [a for a in asm if a["source"] == "imaging" and a["ref_id"] in refs]
    return hits[0] if hits else None


def _pseudo_response(day: list[Event], date: pd.Timestamp, asm: list[Assessment], bev: list[pd.Timestamp],
                     cfg: dict[str, Any]) -> str:
    """Why an imaging-only progression is none against the pre-bevacizumab nadir ('' when it still is)."""
    if not bev or {e["source"] for e in day} != {"imaging"}:
        return ""
    started = [b for b in bev if b < date]
    study = _study(day, asm)
    if not started or study is None or pd.isna(study["et_volume_ml"]):
        return ""
    b = started[-1]
    img = [a for a in asm if a["source"] == "imaging" and pd.notna(a["et_volume_ml"])]
    before = [a["et_volume_ml"] for a in img if a["assessment_date"] <= b and a["assessment"] in
              ("baseline", "stable", "improved")]
    reset = any(b < a["assessment_date"] < date and a["assessment"] == "improved" for a in img)
    if not before or not reset:
        return ""
    pre, v = min(before), float(study["et_volume_ml"])
    if v >= pre * (1 + cfg["pseudo_response_rise_fraction"]) and v - pre >= cfg["pseudo_response_min_increase_ml"]:
        return ""
    return (f"guideline: imaging progression after bevacizumab started on {b:%Y-%m-%d} measured from a "
            f"pseudo-response nadir; {v:.1f} mL is no progression against the nadir before it ({pre:.1f} mL)")


def _confirmation(date: pd.Timestamp, day: list[Event], tumour: list[Event], asm: list[Assessment],
                  treat: list[Event], death: pd.Timestamp | None, cfg: dict[str, Any],
                  ) -> tuple[pd.Timestamp, str, list[Event], set[str]] | None:
    """The first thing confirming a preliminary progression: (date, how, events joining the chain, by whom)."""
    cmin, cmax = pd.Timedelta(days=int(cfg["confirm_min_days"])), pd.Timedelta(days=int(cfg["confirm_max_days"]))
    found: list[tuple[pd.Timestamp, str, list[Event], set[str]]] = []
    later = [e for e in tumour if date + cmin <= e["event_date"] <= date + cmax]
    if later:
        first = [e for e in later if e["event_date"] == later[0]["event_date"]]
        found.append((first[0]["event_date"], f"confirmed on {first[0]['event_date']:%Y-%m-%d}", first,
                      {e["source"] for e in first}))
    study = _study(day, asm)
    floor = float(study["et_volume_ml"]) if study is not None and pd.notna(study["et_volume_ml"]) else None
    for a in asm:
        if not date + cmin <= a["assessment_date"] <= date + cmax:
            continue
        grows = a["assessment"] == "progression" or (
            a["assessment"] == "after_progression" and a["source"] == "imaging")
        if a["source"] == "imaging" and floor is not None:
            grows = grows and pd.notna(a["et_volume_ml"]) and a["et_volume_ml"] >= floor
        if grows:
            found.append((a["assessment_date"], f"confirmed by {a['source']} {a['ref_id']} on "
                          f"{a['assessment_date']:%Y-%m-%d} ({a['assessment']})", [], {a["source"]}))
            break
    tx = pd.Timedelta(days=int(cfg["treatment_confirms_days"]))
    started = [e for e in treat if date <= e["event_date"] <= date + tx]
    if started:
        t = started[0]
        found.append((t["event_date"], f"confirmed by the start of next-line therapy on {t['event_date']:%Y-%m-%d}",
                      [t], {t["source"]}))
    if cfg["death_confirms"] and death is not None and date <= death <= date + cmax:
        found.append((death, f"confirmed by death on {death:%Y-%m-%d}", [], {"death"}))
    if not found:
        return None
    first_day = min(f[0] for f in found)
    same_day = [f for f in found if f[0] == first_day]
    return (first_day, "; ".join(f[1] for f in same_day), [e for f in same_day for e in f[2]],
            set().union(*(f[3] for f in same_day)))


def guideline(events: pd.DataFrame, patients: pd.DataFrame, settings: dict[str, Any],
              assessments: pd.DataFrame | None = None) -> pd.DataFrame:
    """RANO-like reconciliation (see the module docstring for the rules and their sources)."""
    from pfs.reconcile.strategies import section

    cfg = section(settings, "guideline")
    tumour_src = set(sources_with_role(Role.TUMOUR))
    steroid_src = set(sources_with_role(Role.CLINICAL))
    treat_src = set(sources_with_role(Role.TREATMENT))
    corr = pd.Timedelta(days=int(cfg["steroid_corroboration_days"]))
    tx = pd.Timedelta(days=int(cfg["treatment_confirms_days"]))
    exempt, self_confirmed = set(cfg["exempt_kinds"]), set(cfg["confirmed_kinds"])
    floor = float(cfg["measurable_nadir_ml"])
    rt_ends, deaths = dates(patients, "rt_end_date"), dates(patients, "death_date")
    windows = window_bounds(patients, cfg)
    by_patient = _assessments_by_patient(assessments)
    rows: list[dict] = []
    for pid, chain in prepare(events).items():
        rt_end, death = rt_ends.get(pid), deaths.get(pid)
        start, window_end = windows.get(pid, (None, None))
        asm = by_patient.get(str(pid), [])
        tumour = [e for e in chain if e["source"] in tumour_src]
        steroid = [e for e in chain if e["source"] in steroid_src]
        treat = [e for e in chain if e["source"] in treat_src]
        other = [e for e in chain if e["source"] not in tumour_src | steroid_src | treat_src]
        bev = [e["event_date"] for e in treat if e["kind"] in set(cfg["pseudo_response_kinds"])]
        accepted: list[dict] = []
        tumour_dates: list[pd.Timestamp] = []
        for date, day in by_date(tumour):
            tumour_dates.append(date)
            kinds = {e["kind"] for e in day}
            in_window = start is not None and start <= date <= window_end
            context = _conflicts(day, date, asm, tumour_src, cfg)
            disagreeing = {line.split(" ", 1)[0] for line in context}
            why_not = _pseudo_response(day, date, asm, bev, cfg)
            if why_not:
                rows.append(row(pid, date, REJECTED, why_not, day))
                continue
            study = _study(day, asm)
            nadir = None if study is None or pd.isna(study["nadir_ml"]) else float(study["nadir_ml"])
            needs = []
            if in_window and not kinds & exempt:
                needs.append("inside the pseudoprogression window")
            if context:
                needs.append("the other source read the same study differently")
            if nadir is not None and nadir < floor and not kinds & exempt and {e["source"] for e in day} == {"imaging"}:
                needs.append(f"from a non-measurable nadir ({nadir:.1f} mL < {floor:g} mL)")
            if not needs and cfg["confirm_outside_window"] and not kinds & exempt:
                needs.append("needing confirmation")
            if not needs:
                if kinds & exempt:
                    rule = "guideline: new lesion or histology, no confirmation needed"
                else:
                    phase = (" (no RT end date)" if rt_end is None else " before the pseudoprogression window"
                             if date < start else " after the pseudoprogression window")
                    rule = "guideline: tumour progression" + phase
                accepted.append({"date": date, "rule": rule, "chain": day, "context": []})
                continue
            what = "; ".join(needs)
            if kinds & self_confirmed:
                accepted.append({"date": date, "rule": f"guideline: preliminary progression ({what}), already "
                                 "confirmed by its extractor", "chain": day, "context": context})
                continue
            confirmed = _confirmation(date, day, tumour, asm, treat, death, cfg)
            if confirmed is not None:
                when, how, extra, by = confirmed
                rule = f"guideline: preliminary progression ({what}), {how}"
                dated = date
                if context and by & disagreeing and cfg["conflict_dated_by_the_other_source"]:
                    # The source that read the first scan as not progression reads this one as progression:
                    # the first scan on which both agree is the first that showed it.
                    dated = when
                    rule += f"; dated to {when:%Y-%m-%d}, the first scan the other source also reads as progression"
                accepted.append({"date": dated, "rule": rule,
                                 "chain": day + [e for e in extra if e not in day], "context": context})
            else:
                rule = (f"guideline: preliminary progression ({what}) not confirmed within "
                        f"{int(cfg['confirm_max_days'])} days"
                        + (" (possible pseudoprogression)" if in_window else ""))
                rows.append(row(pid, date, REJECTED, rule, day, context=context))
        # Next-line therapy: confirms (above) or corroborates a tumour event before it; alone it dates, late.
        used = {id(e) for acc in accepted for e in acc["chain"]}
        for t in treat:
            if id(t) in used:
                continue
            date = t["event_date"]
            before = [acc for acc in accepted if acc["date"] <= date and not acc.get("alone")]
            prior = [acc for acc in before if date - tx <= acc["date"]]
            if prior:
                prior[-1]["chain"] = prior[-1]["chain"] + [t]
                prior[-1]["rule"] += f"; next-line therapy started on {date:%Y-%m-%d}"
                continue
            if before:
                rows.append(row(pid, date, REJECTED, "guideline: next-line therapy after the progression dated "
                                f"{before[-1]['date']:%Y-%m-%d}; it never dates progression itself", [t]))
            elif any(date - tx <= d <= date for d in tumour_dates):
                rows.append(row(pid, date, REJECTED, "guideline: next-line therapy after a tumour event that was "
                                "set aside; it never dates progression itself", [t]))
            elif window_end is not None and start <= date <= window_end and not cfg["treatment_alone_in_window"]:
                rows.append(row(pid, date, REJECTED, "guideline: next-line therapy inside the pseudoprogression "
                                "window with no tumour progression (possible treatment of pseudoprogression)", [t]))
            else:
                accepted.append({"date": date, "rule": "guideline: next-line therapy with no tumour progression "
                                 "before it: dated by the start of the new line (late)", "chain": [t], "context": [],
                                 "note": "late: dated by the start of next-line therapy", "alone": True})
        used_steroid: set[int] = set()
        cutoff = None if rt_end is None else (window_end if cfg["steroid_backdate_after_window"] else rt_end)
        for acc in sorted(accepted, key=lambda a: a["date"]):
            date, rule, note = acc["date"], acc["rule"], acc.get("note", "")
            near = [e for e in steroid if date - corr <= e["event_date"] <= date + corr]
            used_steroid.update(id(e) for e in near)
            out_date = date
            if near:
                reach = pd.Timedelta(days=int(cfg["steroid_backdate_max_days"]))
                # the earliest increase that may date progression, else the earliest one (to say why not)
                usable = [e["event_date"] for e in near if date - reach <= e["event_date"] < date
                          and (cutoff is None or e["event_date"] > cutoff)]
                first = usable[0] if usable else near[0]["event_date"]
                why_not = ""
                if cutoff is not None and first <= cutoff:
                    why_not = ("steroid increase before the end of radiotherapy"
                               + (" or inside the pseudoprogression window" if cutoff != rt_end else "")
                               + " not used for back-dating")
                elif first < date - reach:
                    why_not = (f"steroid increase {(date - first).days} days before the scan (more than "
                               f"{reach.days}) not used for back-dating")
                if cfg["steroid_backdate"] and first < date and not why_not:
                    out_date = first
                    rule += f"; back-dated to the steroid increase on {first:%Y-%m-%d}"
                else:
                    rule += "; corroborated by a steroid increase"
                    if cfg["steroid_backdate"] and first < date:
                        note = "; ".join(n for n in (note, why_not) if n)
            rows.append(row(pid, out_date, ACCEPTED, rule, acc["chain"] + near, note, acc["context"]))
        for date, day in by_date([e for e in steroid if id(e) not in used_steroid]):
            rows.append(row(pid, date, REJECTED, "guideline: steroid-only signal, not corroborated by tumour "
                            f"progression within {corr.days} days", day))
        for date, day in by_date(other):
            rows.append(row(pid, date, REJECTED, "guideline: source not in the source registry", day))
    return collapse(frame(rows))
