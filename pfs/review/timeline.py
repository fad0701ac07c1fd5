"""One patient's timeline as server-side SVG: no chart library, nothing fetched, every label escaped.

Lanes from top to bottom: treatment (surgery, radiotherapy, other dated treatment), the daily
dexamethasone-equivalent dose, enhancing tumour volume per MRI with its RANO state, report labels,
then each source's candidate progression dates; vertical lines mark the reconciled date, death and
censoring. Hover titles carry the detail.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from markupsafe import Markup, escape

WIDTH, LEFT, RIGHT = 1000, 130, 20
LANES = [("treatment", 26), ("dose", 70), ("volume", 70), ("reports", 26), ("steroid", 22), ("nlp", 22),
         ("imaging", 22), ("reconciled", 22)]
LANE_LABELS = {"treatment": "Treatment", "dose": "Dex-eq mg/day", "volume": "Enhancing mL", "reports": "Reports",
               "steroid": "Steroid", "nlp": "Report NLP", "imaging": "MRI volumetry", "reconciled": "Reconciled"}
LABEL_COLOURS = {"progression": "#c0392b", "stable": "#7f8c8d", "improved": "#27ae60",
                 "treatment_effect": "#e67e22", "indeterminate": "#d4ac0d", "no_assessment": "#bdc3c7"}


def _d(text: Any) -> date | None:
    try:
        return date.fromisoformat(str(text)[:10])
    except ValueError:
        return None


class _Scale:
    def __init__(self, start: date, end: date) -> None:
        self.start, self.days = start, max((end - start).days, 1)

    def x(self, day: date) -> float:
        return round(LEFT + (WIDTH - LEFT - RIGHT) * (day - self.start).days / self.days, 1)


def _el(tag: str, title: str | None = None, **attrs: Any) -> str:
    text = " ".join(f'{k.rstrip("_").replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
    if title is None:
        return f"<{tag} {text}/>"
    return f"<{tag} {text}><title>{escape(title)}</title></{tag}>"


def _span(view: dict[str, Any]) -> tuple[date, date]:
    days = [d for d in (_d(v) for v in view["all_dates"]) if d]
    if not days:
        today = date.today()
        return today - timedelta(days=365), today
    lo, hi = min(days), max(days)
    pad = timedelta(days=max(14, (hi - lo).days // 40))
    return lo - pad, hi + pad


def timeline_svg(view: dict[str, Any]) -> Markup:
    """The SVG for a patient view built by :func:`pfs.review.pages.patient_view`."""
    start, end = _span(view)
    sc = _Scale(start, end)
    tops, y = {}, 22
    for name, h in LANES:
        tops[name] = (y, h)
        y += h + 8
    height = y + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {height}" '
             f'width="{WIDTH}" height="{height}" role="img" aria-label="patient timeline">']
    for name, (top, h) in tops.items():
        parts.append(_el("rect", x=LEFT, y=top, width=WIDTH - LEFT - RIGHT, height=h, class_="lane"))
        label = escape(LANE_LABELS[name])
        parts.append(f'<text x="{LEFT - 6}" y="{top + h / 2 + 4}" class="lane-label">{label}</text>')
    parts += _axis(sc, start, end, height)
    parts += _treatment(view, sc, tops["treatment"])
    parts += _curve(view["dose_steps"], sc, tops["dose"], "dose", "mg/day")
    parts += _curve(view["volume_points"], sc, tops["volume"], "volume", "mL")
    parts += _reports(view, sc, tops["reports"])
    parts += _candidates(view, sc, tops)
    parts += _lines(view, sc, height)
    parts.append("</svg>")
    return Markup("".join(parts))


def _axis(sc: _Scale, start: date, end: date, height: int) -> list[str]:
    months = max(1, ((end - start).days // 30) // 12 + 1)
    out, day = [], date(start.year, start.month, 1)
    while day <= end:
        if day >= start:
            x = sc.x(day)
            out.append(_el("line", x1=x, x2=x, y1=16, y2=height - 4, class_="grid"))
            out.append(f'<text x="{x}" y="12" class="tick">{escape(day.strftime("%b %Y"))}</text>')
        m = day.month - 1 + months
        day = date(day.year + m // 12, m % 12 + 1, 1)
    return out


def _treatment(view: dict[str, Any], sc: _Scale, lane: tuple[int, int]) -> list[str]:
    top, h = lane
    out = []
    for label, first, last in view["treatments"]:
        a, b = _d(first), _d(last) or _d(first)
        if a is None or b is None:
            continue
        width = max(sc.x(b) - sc.x(a), 4)
        out.append(_el("rect", f"{label}: {first}" + (f" to {last}" if last and last != first else ""),
                       x=sc.x(a), y=top + 4, width=width, height=h - 8, class_=f"tx tx-{label.split()[0].lower()}"))
    return out


def _curve(points: list[tuple[str, str, float, str]], sc: _Scale, lane: tuple[int, int], kind: str,
           unit: str) -> list[str]:
    """Steps (dose: start, end, value) or dots joined by lines (volume: date, date, value, state)."""
    top, h = lane
    if not points:
        return [f'<text x="{LEFT + 6}" y="{top + h / 2 + 4}" class="none">none</text>']
    peak = max(v for _, _, v, _ in points) or 1.0
    out = [f'<text x="{LEFT + 4}" y="{top + 11}" class="scale">{escape(f"max {peak:g} {unit}")}</text>']

    def yv(v: float) -> float:
        return round(top + h - 3 - (h - 14) * v / peak, 1)

    if kind == "dose":
        path = []
        for first, last, v, _ in points:
            a, b = _d(first), _d(last) or _d(first)
            if a and b:
                path.append(f"M{sc.x(a)},{yv(0)} L{sc.x(a)},{yv(v)} L{sc.x(b + timedelta(days=1))},{yv(v)} "
                            f"L{sc.x(b + timedelta(days=1))},{yv(0)}")
        out.append(_el("path", d=" ".join(path), class_="dose"))
        for first, last, v, _ in points:
            a = _d(first)
            if a:
                out.append(_el("rect", f"{first} to {last}: {v:g} mg/day dexamethasone equivalent",
                               x=sc.x(a), y=yv(v), width=max(sc.x(_d(last) or a) - sc.x(a), 2), height=1.5,
                               class_="dose-top"))
        return out
    xy = [(sc.x(d), yv(v), first, v, state) for first, _, v, state in points if (d := _d(first))]
    out.append(_el("polyline", points=" ".join(f"{x},{y}" for x, y, *_ in xy), class_="volume"))
    for x, y, first, v, state in xy:
        out.append(_el("circle", f"MRI {first}: enhancing {v:g} mL" + (f", RANO {state}" if state else ""),
                       cx=x, cy=y, r=4, class_=f"mri rano-{state or 'none'}"))
    return out


def _reports(view: dict[str, Any], sc: _Scale, lane: tuple[int, int]) -> list[str]:
    top, h = lane
    out = []
    for rep in view["reports"]:
        d = _d(rep["report_date"])
        if d is None or rep["label"] in ("", "not_applicable"):
            continue
        colour = LABEL_COLOURS.get(rep["label"], "#95a5a6")
        out.append(_el("rect", f"{rep['report_date']} {rep['report_id']}: {rep['label']}",
                       x=sc.x(d) - 3, y=top + 5, width=6, height=h - 10, fill=colour, class_="report-mark"))
    return out


def _candidates(view: dict[str, Any], sc: _Scale, tops: dict[str, tuple[int, int]]) -> list[str]:
    out = []
    for cand in view["candidates"]:
        lane = tops.get(cand["source"])
        d = _d(cand["event_date"])
        if lane is None or d is None:
            continue
        top, h = lane
        cls = f"cand cand-{cand['status'] or 'unused'}"
        out.append(_el("circle", f"{cand['source']} {cand['event_date']} {cand['kind']} "
                                 f"({cand['status'] or 'not reconciled'}): {cand['evidence']}",
                       cx=sc.x(d), cy=top + h / 2, r=6, class_=cls))
    for rec in view["reconciled_events"]:
        d = _d(rec["event_date"])
        if d is None:
            continue
        top, h = tops["reconciled"]
        out.append(_el("rect", f"{rec['event_date']} {rec['status']}: {rec['rule']}", x=sc.x(d) - 5, y=top + 4,
                       width=10, height=h - 8, class_=f"rec rec-{rec['status']}"))
    return out


def _lines(view: dict[str, Any], sc: _Scale, height: int) -> list[str]:
    out = []
    for label, value, cls in (("reconciled progression", view["reconciled_date"], "vl-reconciled"),
                              ("death", view["death_date"], "vl-death"),
                              ("censored (last follow-up)", view["censor_date"] if not view["death_date"] else "",
                               "vl-censor"),
                              ("index date", view["index_date"], "vl-index")):
        d = _d(value)
        if d is None:
            continue
        x = sc.x(d)
        out.append(_el("line", f"{label}: {value}", x1=x, x2=x, y1=16, y2=height - 2, class_=f"vl {cls}"))
        out.append(f'<text x="{x + 3}" y="{height - 4}" class="vl-text {cls}">{escape(label.split(" (")[0])}</text>')
    return out
