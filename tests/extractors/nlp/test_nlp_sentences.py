"""Sentence rules and offset-preserving clean-up of report text."""

from __future__ import annotations

from pfs.extractors.nlp.sentences import clean_text, sentence_starts


def starts(words: list[str]) -> list[str]:
    flags = sentence_starts(words)
    return [w for w, f in zip(words, flags, strict=True) if f == 1]


def test_a_heading_colon_ends_the_heading_sentence() -> None:
    assert starts(["FINDINGS", ":", "No", "new", "lesion", "."]) == ["FINDINGS", "No"]


def test_a_colon_inside_a_long_line_does_not_split() -> None:
    words = ["the", "lesion", "now", "measures", "as", "follows", ":", "2", "cm"]
    assert starts(words) == ["the"]


def test_full_stop_before_capital_splits_but_list_numbers_do_not() -> None:
    words = ["IMPRESSION", ":", "1", ".", "Stable", ".", "2", ".", "No", "new", "lesion", "."]
    assert starts(words) == ["IMPRESSION", "1", "2"]


def test_full_stop_before_lower_case_does_not_split() -> None:
    assert starts(["approx", ".", "2", "cm", "lesion", "."]) == ["approx"]
    assert starts(["measures", "2", "cm", ".", "stable", "."]) == ["measures"]


def test_blank_line_always_splits_and_wrapped_lines_continue() -> None:
    words = ["Increased", "enhancement", "\n", "along", "the", "cavity", "\n\n", "stable", "edema"]
    assert starts(words) == ["Increased", "stable"]


def test_single_line_break_before_a_capital_splits() -> None:
    assert starts(["Stable", "cavity", "\n", "No", "new", "lesion"]) == ["Stable", "No"]


def test_clean_text_keeps_length_and_offsets() -> None:
    raw = "<p>IMPRESSION:&nbsp;Stable.</p><br>No new lesion.\r\n"
    cleaned, fixes = clean_text(raw)
    assert len(cleaned) == len(raw)
    assert "html" in fixes
    assert cleaned[raw.index("Stable"):].startswith("Stable.")
    assert "<" not in cleaned and "&nbsp;" not in cleaned


def test_clean_text_blanks_rtf_control_words() -> None:
    raw = r"{\rtf1\ansi{\fonttbl\f0 Arial;}\f0\fs20 IMPRESSION: Progression.\par New lesion.}"
    cleaned, fixes = clean_text(raw)
    assert fixes == ["rtf"]
    assert len(cleaned) == len(raw)
    assert "\\" not in cleaned and "{" not in cleaned
    assert "IMPRESSION: Progression." in cleaned and "\n" in cleaned


def test_clean_text_leaves_plain_text_alone() -> None:
    assert clean_text("FINDINGS: Stable.\n") == ("FINDINGS: Stable.\n", [])
