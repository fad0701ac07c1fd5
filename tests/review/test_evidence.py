"""Highlight spans from report_labels offsets, whatever offset columns the NLP writes."""

from __future__ import annotations

from pfs.review.evidence import label_spans, segments

TEXT = "FINDINGS: Stable cavity.\nIMPRESSION: Enlarging enhancing mass, compatible with recurrent tumor."
SENTENCE = "Enlarging enhancing mass, compatible with recurrent tumor."
S = TEXT.index(SENTENCE)


def test_sentence_offsets_are_used_when_they_fit():
    spans = label_spans(TEXT, {"evidence_sentence": SENTENCE, "evidence_start": S, "evidence_end": S + len(SENTENCE)})
    assert spans == [(S, S + len(SENTENCE), "evidence")]


def test_finding_and_modifier_offsets_become_their_own_marks():
    f = TEXT.index("recurrent tumor")
    m = TEXT.index("compatible with")
    label = {"evidence_sentence": SENTENCE, "evidence_start": S, "evidence_end": S + len(SENTENCE),
             "finding_start": f, "finding_end": f + len("recurrent tumor"), "modifier_spans": f"[[{m}, {m + 15}]]"}
    segs = segments(TEXT, label_spans(TEXT, label))
    assert "".join(t for t, _ in segs) == TEXT
    assert ("recurrent tumor", "hl-evidence hl-finding") in segs
    assert ("compatible with", "hl-evidence hl-modifier") in segs
    assert segs[0] == ("FINDINGS: Stable cavity.\nIMPRESSION: ", "")


def test_offsets_into_another_text_fall_back_to_searching_the_sentence():
    spans = label_spans(TEXT, {"evidence_sentence": SENTENCE, "evidence_start": 0, "evidence_end": len(SENTENCE)})
    assert spans == [(S, S + len(SENTENCE), "evidence")]
    # no offset columns at all (an older run), and white space that differs
    spans = label_spans(TEXT, {"evidence_sentence": "Enlarging  enhancing\nmass,"})
    assert spans == [(S, S + len("Enlarging enhancing mass,"), "evidence")]


def test_out_of_range_or_missing_offsets_are_ignored():
    label = {"evidence_sentence": "", "evidence_start": -1, "evidence_end": -1, "finding_start": 5,
             "finding_end": 10_000, "modifier_spans": "3-1;x"}
    assert label_spans(TEXT, label) == []
    assert segments(TEXT, []) == [(TEXT, "")]
    assert label_spans(TEXT, {"evidence_sentence": "not in this report"}) == []


def test_the_nlp_modifiers_column_marks_each_modifier_of_the_deciding_finding():
    """report_labels.csv as the NLP writes it: finding offsets and a JSON list of modifiers with categories."""
    f, m = TEXT.index("recurrent tumor"), TEXT.index("compatible with")
    label = {"evidence_sentence": SENTENCE, "evidence_start": S, "evidence_end": S + len(SENTENCE),
             "finding_start": f, "finding_end": f + 15, "finding_rule": "PROGRESSION:recurrent tumor",
             "modifiers": f'[{{"category": "PROBABLE_EXISTENCE", "start": {m}, "end": {m + 15}, '
                          f'"rule": "PROBABLE_EXISTENCE:compatible with"}}]'}
    segs = segments(TEXT, label_spans(TEXT, label))
    assert ("recurrent tumor", "hl-evidence hl-finding") in segs
    assert ("compatible with", "hl-evidence hl-modifier") in segs
    assert label_spans(TEXT, {**label, "modifiers": "not json"}) == label_spans(TEXT, {**label, "modifiers": "[]"})
