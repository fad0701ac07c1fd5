"""Where to highlight a report: the evidence sentence, the deciding finding and its modifiers.

``report_labels.csv`` carries character offsets into the report text. Every ``X_start``/``X_end``
column pair is a span of kind ``X`` (``evidence`` is the sentence; ``finding``, ``modifier`` ... as the
NLP adds them), and a ``X_spans`` column may hold several spans as JSON ``[[start, end], ...]`` or
``start-end;start-end``. Offsets that do not fit the text are not trusted: the sentence is then found
by searching for it, so an older run still shows its evidence.
"""

from __future__ import annotations

import json
import re
from typing import Any

SENTENCE = "evidence"


def _int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _parse_spans(value: str) -> list[tuple[int, int]]:
    value = (value or "").strip()
    if not value:
        return []
    try:
        data = json.loads(value)
        return [(int(s), int(e)) for s, e in data]
    except (ValueError, TypeError):
        pass
    spans = []
    for part in value.split(";"):
        m = re.fullmatch(r"\s*(\d+)\s*[-:,]\s*(\d+)\s*", part)
        if m:
            spans.append((int(m.group(1)), int(m.group(2))))
    return spans


def _modifier_spans(value: str) -> list[tuple[int, int]]:
    """Spans of report_labels' ``modifiers`` column: a JSON list of {category, start, end, rule}."""
    try:
        data = json.loads(value or "[]")
        return [(int(m["start"]), int(m["end"])) for m in data if isinstance(m, dict)]
    except (ValueError, TypeError, KeyError):
        return []


def _search(text: str, sentence: str) -> tuple[int, int] | None:
    """The sentence in the text, ignoring differences in white space."""
    if not sentence:
        return None
    at = text.find(sentence)
    if at >= 0:
        return at, at + len(sentence)
    words = sentence.split()
    if not words:
        return None
    m = re.search(r"\s+".join(re.escape(w) for w in words), text)
    return (m.start(), m.end()) if m else None


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def label_spans(text: str, label: dict[str, Any]) -> list[tuple[int, int, str]]:
    """(start, end, kind) for one report_labels row, checked against the text."""
    n = len(text)
    spans: list[tuple[int, int, str]] = []
    sentence = str(label.get("evidence_sentence") or "")
    for col in label:
        if col.endswith("_start"):
            kind = col[: -len("_start")]
            s, e = _int(label.get(col)), _int(label.get(f"{kind}_end"))
            if s is None or e is None or not 0 <= s < e <= n:
                continue
            if kind == SENTENCE and sentence and not _same(text[s:e], sentence):
                continue  # offsets into another version of the text
            spans.append((s, e, kind))
        elif col.endswith("_spans"):
            kind = col[: -len("_spans")]
            spans += [(s, e, kind) for s, e in _parse_spans(str(label.get(col) or "")) if 0 <= s < e <= n]
        elif col == "modifiers":  # the NLP's ConText modifiers of the deciding finding, with their categories
            spans += [(s, e, "modifier") for s, e in _modifier_spans(str(label.get(col) or "")) if 0 <= s < e <= n]
    if sentence and not any(k == SENTENCE for _, _, k in spans):
        found = _search(text, sentence)
        if found:
            spans.append((*found, SENTENCE))
    return spans


def segments(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[str, str]]:
    """The text cut at every span boundary: (piece, space-separated kinds covering it, '' for none)."""
    cuts = sorted({0, len(text), *(s for s, _, _ in spans), *(e for _, e, _ in spans)})
    out: list[tuple[str, str]] = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        if a >= b:
            continue
        kinds = sorted({k for s, e, k in spans if s <= a and b <= e})
        out.append((text[a:b], " ".join("hl-" + re.sub(r"[^a-z0-9_]", "", k.lower()) for k in kinds)))
    return out
