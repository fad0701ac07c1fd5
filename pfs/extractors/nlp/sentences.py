"""Sentence boundaries and text clean-up for radiology reports.

medspaCy's default PyRuSH sentencizer runs at about 30 reports/s on this project's machines; report
structure (headings, numbered impressions, blank lines) makes a handful of token rules as good, and
tokenizer + these rules run at 1,500-3,000 reports of 1.4 kB per second on one (shared) core.
ConText scopes end at these boundaries, so a heading such as "FINDINGS:" is its own sentence and
never lends its words to the finding that follows.

Clean-up keeps every character offset: markup is overwritten with spaces, never removed, so the
evidence offsets written to ``report_labels.csv`` point into the text as it was exported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from spacy.tokens import Doc

_TRIGGERS = frozenset({".", "!", "?", ":"})
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


def sentence_starts(words: Sequence[str]) -> np.ndarray:
    """1 where a token starts a sentence, -1 elsewhere, from the token texts.

    Breaks: blank lines; a line break unless a lower-case word continues a wrapped line; '.', '!' or
    '?' before anything but a lower-case word (not after a list number such as "1." or an
    abbreviation); ':' closing a heading ("IMPRESSION:", "Clinical history:").
    """
    candidates = [i for i, w in enumerate(words) if w in _TRIGGERS or (w.isspace() and "\n" in w)]
    return _starts(len(words), candidates, words.__getitem__)


def _starts(n: int, candidates: Iterable[int], text_at: Callable[[int], str]) -> np.ndarray:
    """The rules of :func:`sentence_starts`, visiting only tokens that can end a sentence (fast)."""
    out = np.full(n, -1, dtype=np.int32)
    if n == 0:
        return out
    out[0] = 1
    last_newline = -1
    for k in candidates:
        if k + 1 >= n:
            break
        w = text_at(k)
        prev = text_at(k - 1) if k > 0 else ""
        if w.isspace():
            nxt = text_at(k + 1)
            continued = nxt[:1].islower() and (prev[-1:].isalpha() or prev == ",")
            if w.count("\n") >= 2 or not continued:
                out[k + 1] = 1
            last_newline = k
            continue
        j = k + 1
        nxt = text_at(j)
        if nxt.isspace():
            # "word.  Next": spaces without a line break between two sentences (transcribed notes)
            if "\n" in nxt or j + 1 >= n:
                continue
            j += 1
            nxt = text_at(j)
        if w == ":":
            # at most _MAX_HEADING_TOKENS words (+ the colon) since the line start, or a capitalised heading
            if k - last_newline <= _MAX_HEADING_TOKENS + 1 or (prev.isupper() and len(prev) >= 3):
                out[j] = 1
            continue
        if nxt[:1].islower() or not nxt:
            continue
        if w == "." and prev:
            if prev.lower() in _ABBREVIATIONS:
                continue
            # "1." opening a list item: the number sits at a line or sentence start
            if prev.isdigit() and len(prev) <= 2 and (k - 1 == 0 or out[k - 1] == 1 or text_at(k - 2).isspace()):
                continue
        out[j] = 1
    return out


def set_sentences(doc: Doc) -> Doc:
    """spaCy component body: write report-aware sentence starts onto ``doc``."""
    from spacy.attrs import IS_SPACE, ORTH, SENT_START

    n = len(doc)
    if n == 0:
        return doc
    arr = doc.to_array([ORTH, IS_SPACE])
    hashes = np.array([doc.vocab.strings.add(t) for t in _TRIGGERS], dtype=arr.dtype)
    candidates = np.flatnonzero(np.isin(arr[:, 0], hashes) | (arr[:, 1] == 1)).tolist()
    candidates = [k for k in candidates if arr[k, 1] == 0 or "\n" in doc[k].text]
    starts = _starts(n, candidates, lambda i: doc[i].text)
    # SENT_START is read back as uint64 (-1 wraps); an int32 array is misread.
    doc.from_array([SENT_START], starts.astype("uint64").reshape(-1, 1))
    return doc
