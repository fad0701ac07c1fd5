"""Sentence boundaries and text clean-up for radiology reports.

medspaCy's default PyRuSH sentencizer runs at about 25-30 reports/s on this project's machines; report
structure (headings, numbered impressions, blank lines) makes a handful of token rules as good and
about a hundred times faster. ConText scopes end at these boundaries, so a heading such as
"FINDINGS:" is its own sentence and never lends its words to the finding that follows.

Clean-up keeps every character offset: markup is overwritten with spaces, never removed, so the
evidence offsets written to ``report_labels.csv`` point into the text as it was exported.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from spacy.tokens import Doc

_SENT_END = frozenset({".", "!", "?"})
#: Tokens after which a full stop does not end a sentence (spaCy keeps most of these whole already).
_ABBREVIATIONS = frozenset({"dr", "approx", "cf", "fig", "no", "nos", "vs", "mr", "ms", "st", "pt", "sr", "jr", "etc"})
#: A heading before ':' is at most this many tokens from the line start ("CLINICAL HISTORY:").
_MAX_HEADING_TOKENS = 4

_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]{0,200}>")
_HTML_BLOCK = re.compile(r"^</?(?:br|p|div|li|tr|ul|ol|h\d|table|td)\b", re.IGNORECASE)
_HTML_ENTITY = re.compile(r"&(?:nbsp|amp|lt|gt|quot|apos|#\d{1,5});")
_RTF_WORD = re.compile(r"\\(?:'[0-9a-fA-F]{2}|[a-zA-Z]{1,32}-?\d{0,10} ?|[{}\\])")
_RTF_BREAK = re.compile(r"\\(?:par|line|row|cell)\b")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ENTITY_CHAR = {"&nbsp;": " ", "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'"}


def _pad(replacement: str, length: int) -> str:
    return (replacement + " " * length)[:length]


def clean_text(text: str) -> tuple[str, list[str]]:
    """Overwrite HTML/RTF remnants, control characters and carriage returns with same-length text.

    Returns the cleaned text (same length as ``text``) and the names of the fixes applied, for counting.
    """
    fixes: list[str] = []
    if "\r" in text:
        text = text.replace("\r\n", " \n").replace("\r", "\n")
    if _CONTROL.search(text):
        text = _CONTROL.sub(" ", text)
        fixes.append("control_characters")
    if text.lstrip().startswith("{\\rtf"):
        text = _RTF_BREAK.sub(lambda m: _pad("\n", len(m.group())), text)
        text = _RTF_WORD.sub(lambda m: " " * len(m.group()), text)
        text = text.replace("{", " ").replace("}", " ")
        fixes.append("rtf")
    if "<" in text and _HTML_TAG.search(text):
        text = _HTML_TAG.sub(lambda m: _pad("\n" if _HTML_BLOCK.match(m.group()) else " ", len(m.group())), text)
        fixes.append("html")
    if "&" in text and _HTML_ENTITY.search(text):
        text = _HTML_ENTITY.sub(lambda m: _pad(_ENTITY_CHAR.get(m.group(), " "), len(m.group())), text)
        if "html" not in fixes:
            fixes.append("html")
    return text, fixes


def sentence_starts(words: list[str]) -> np.ndarray:
    """1 where a token starts a sentence, -1 elsewhere, from token texts alone (fast, no Doc needed).

    Breaks: blank lines; a line break unless a lower-case word continues a wrapped line; '.', '!' or
    '?' before a capital, digit or line end (not after a list number such as "1." or an abbreviation);
    ':' closing a heading ("IMPRESSION:", "Clinical history:").
    """
    n = len(words)
    out = np.full(n, -1, dtype=np.int32)
    if n == 0:
        return out
    out[0] = 1
    line_count = 0  # non-space tokens seen on the current line
    prev = prev2 = ""  # the last two non-space tokens
    prev_at_boundary = prev2_at_boundary = False
    for i in range(n):
        w = words[i]
        if w.isspace():
            if "\n" in w:
                nxt = words[i + 1] if i + 1 < n else ""
                continued = nxt[:1].islower() and (prev[-1:].isalpha() or prev == ",")
                if i + 1 < n and (w.count("\n") >= 2 or not continued):
                    out[i + 1] = 1
                line_count = 0
            continue
        if i > 0 and out[i] != 1:
            if prev in _SENT_END:
                list_number = prev == "." and prev2.isdigit() and len(prev2) <= 2 and prev2_at_boundary
                abbrev = prev == "." and prev2.lower() in _ABBREVIATIONS
                if not list_number and not abbrev and not w[0].islower():
                    out[i] = 1
            elif prev == ":" and (line_count <= _MAX_HEADING_TOKENS + 1 or (prev2.isupper() and len(prev2) >= 3)):
                out[i] = 1
        at_boundary = out[i] == 1 or line_count == 0
        prev2_at_boundary, prev_at_boundary = prev_at_boundary, at_boundary
        prev2, prev = prev, w
        line_count += 1
    return out


def set_sentences(doc: Doc) -> Doc:
    """spaCy component body: write report-aware sentence starts onto ``doc``."""
    from spacy.attrs import SENT_START

    if len(doc) == 0:
        return doc
    starts = sentence_starts([t.text for t in doc])
    doc.from_array([SENT_START], starts.astype("uint64").reshape(-1, 1))
    return doc
