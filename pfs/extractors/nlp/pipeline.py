"""The spaCy + medspaCy pipeline that turns one report text into plain facts.

Built once per process (it is the costly state of this extractor) from the medspaCy JSON rule files in
``pfs/rules/nlp/``. Where the time goes, measured on 1.4 kB reports (single core, shared machine):

* spaCy's English tokenizer as shipped re-tokenises the whole document whenever a special-case rule
  contains whitespace ("\\n" and friends are in ``tokenizer.rules``); removing those entries leaves the
  tokens identical and makes tokenising ~10x faster.
* PyRuSH sentence splitting (medspaCy's default) is replaced by :mod:`.sentences` (token rules).
* medspaCy's TargetMatcher adds each match with ``doc.ents += (span,)`` (a full re-validation of the
  entity table per match); here it returns spans and they are set once.
* medspaCy's Sectionizer writes ``token._.section`` on every token (a third of the remaining time);
  :func:`_make_sectionizer` keeps its rules, matcher and ``doc._.sections`` without that loop.
* Section rules are phrases (PhraseMatcher), not token patterns; the one target pattern is a single
  regular expression (medspaCy rebuilds ``doc.text`` for each one it runs).
* Measured CPU time per stage for 2,000 reports of 1.4 kB after these changes: ConText 27 %,
  target matching 20 %, sentences 15 %, tokenizer 12 %, fact extraction 7 %; about 600 reports/s
  per core end to end.
* With findings as targets (issue 15) a report has ~3x more targets and modifiers; medspaCy's
  targets x modifiers loop is replaced by :mod:`.fast_context` (same rules and result, scopes kept in
  their sentence), medspaCy's default ConText token patterns are expanded into phrases (PhraseMatcher),
  and token offsets and sentences are read once per Doc in :func:`facts_of`.
* Only plain :class:`ReportFacts` leave this module, so a process pool can return them (medspaCy's
  Doc extensions do not pickle, which is why ``nlp.pipe(n_process=2)`` fails).

spaCy and medspaCy are imported inside functions: ``import pfs`` must stay instant.
"""

from __future__ import annotations

import json
import warnings
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from pfs.exceptions import RuleFileError
from pfs.extractors.nlp.sentences import set_sentences

#: Keys a rule file may carry besides its rules (documentation only).
_DOC_KEYS = frozenset({"_source", "_description"})
#: ConText categories that describe a finding's change (each attaches to its one nearest finding).
CHANGE_CATEGORIES = frozenset({"NEW", "INCREASED", "DECREASED", "STABLE"})
RULE_FILES = {"targets": ("targets.json", "target_rules"), "context": ("context.json", "context_rules"),
              "sections": ("sections.json", "section_rules")}


class Mention(NamedTuple):
    """One matched concept with where it is and what ConText said about it (character offsets).

    A NamedTuple rather than a dataclass: worker processes pickle thousands of these, and tuples
    pickle several times faster.
    """

    category: str
    literal: str
    start: int
    end: int
    sent_start: int
    sent_end: int
    section: str
    modifiers: tuple[str, ...]
    #: Character offset of each modifier, same order as ``modifiers``.
    modifier_starts: tuple[int, ...] = ()
    #: Each modifier as (category, start, end, rule literal), same order as ``modifiers``.
    modifier_spans: tuple[tuple[str, int, int, str], ...] = ()
    #: The target rule's metadata: ``tumour_context`` (shows a brain tumour), ``change`` (a change it states).
    tumour_context: bool = False
    change: str = ""
    #: ``enhancing``: an enhancing lesion (LESION); ``diagnosis``: a non-tumour disease that explains lesions;
    enhancing: bool = False
    diagnosis: bool = False
    #: ``treated_site``: post-surgical change, a craniotomy (a treated site, read as the tumour's in a terse report).
    treated_site: bool = False
    #: ``generic_tumour``: "tumour", "neoplasm" (any organ's); ``extracranial_cancer``: lung, breast ... cancer.
    generic_tumour: bool = False
    extracranial_cancer: bool = False


class _Sentence(NamedTuple):
    start: int
    start_char: int
    end_char: int


class ReportFacts(NamedTuple):
    """What the NLP found in one report; picklable, so worker processes can return it."""

    mentions: tuple[Mention, ...]
    sections: tuple[tuple[str, int], ...]
    #: Change modifiers that found no finding in their scope ("No interval change."), as mentions of category
    #: ``UNATTACHED`` whose ``modifiers`` are the change and the sentence's other modifiers.
    unattached: tuple[Mention, ...] = ()


def read_rule_file(kind: str, path: Path | str | None = None) -> list[dict[str, Any]]:
    """Rules of ``kind`` (targets, context, sections) from ``path`` or the shipped file, validated.

    Unknown top-level keys are rejected here; medspaCy's ``from_dict`` rejects unknown rule keys.
    """
    name, key = RULE_FILES[kind]
    try:
        if path:
            origin = str(path)
            text = Path(path).read_text(encoding="utf-8")
        else:
            origin = f"pfs/rules/nlp/{name}"
            text = resources.files("pfs.rules").joinpath("nlp", name).read_text(encoding="utf-8")
        data = json.loads(text)
    except FileNotFoundError as err:
        raise RuleFileError(f"{path}: rule file not found") from err
    except json.JSONDecodeError as err:
        raise RuleFileError(f"{origin}: not valid JSON: {err}") from err
    if not isinstance(data, dict) or key not in data:
        raise RuleFileError(f"{origin}: expected a JSON object with the key {key!r}")
    unknown = set(data) - _DOC_KEYS - {key}
    if unknown:
        raise RuleFileError(
            f"{origin}: unknown keys {sorted(unknown)} (allowed: {key!r}, {', '.join(sorted(_DOC_KEYS))})")
    rules = data[key]
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise RuleFileError(f"{origin}: {key!r} must be a list of rule objects")
    return rules


def _build_rules(kind: str, rules: list[dict[str, Any]], origin: str) -> list[Any]:
    from medspacy.context import ConTextRule
    from medspacy.section_detection import SectionRule
    from medspacy.target_matcher import TargetRule

    cls = {"targets": TargetRule, "context": ConTextRule, "sections": SectionRule}[kind]
    out = []
    for i, rule in enumerate(rules):
        try:
            out.append(cls.from_dict(dict(rule)))
        except (ValueError, TypeError) as err:
            raise RuleFileError(f"{origin}: rule {i} ({rule.get('literal')!r}) is invalid: {err}") from err
    return out


def _register_components() -> None:
    from spacy.language import Language

    if not Language.has_factory("pfs_report_sentences"):
        Language.component("pfs_report_sentences", func=set_sentences)
    if not Language.has_factory("pfs_set_targets"):
        Language.factory("pfs_set_targets", func=_make_set_targets)
    if not Language.has_factory("pfs_sectionizer"):
        Language.factory("pfs_sectionizer", func=_make_sectionizer)
    if not Language.has_factory("pfs_context"):
        from pfs.extractors.nlp.fast_context import make_context

        Language.factory("pfs_context", func=make_context)


def _make_sectionizer(nlp: Any, name: str) -> Any:
    """medspaCy's Sectionizer (its rules, matcher and Section objects) without per-token attributes.

    medspaCy writes ``token._.section`` for every token of the document, a third of this pipeline's
    time on 1.5 kB reports; pfs reads only ``doc._.sections``. Parent sections are not used here.
    """
    from medspacy.section_detection import Section, Sectionizer

    class LeanSectionizer(Sectionizer):
        def __call__(self, doc: Any) -> Any:
            matcher = self._Sectionizer__matcher  # medspaCy's own matcher (name-mangled attribute)
            matches = sorted(matcher(doc), key=lambda m: (m[1], -m[2]))
            n = len(doc)
            sections = []
            if not matches or matches[0][1] != 0:
                sections.append(Section(None, 0, 0, 0, matches[0][1] if matches else n))
            for i, (match_id, start, end) in enumerate(matches):
                rule = matcher.rule_map[self.nlp.vocab.strings[match_id]]
                stop = matches[i + 1][1] if i + 1 < len(matches) else n
                sections.append(Section(rule.category, start, end, end, stop, None, rule))
            doc._.sections = sections
            return doc

    return LeanSectionizer(nlp, name=name, rules=None, span_attrs=None)


def _fast_tokenizer(nlp: Any) -> None:
    """Drop tokenizer special cases made of whitespace (see the module docstring); tokens stay identical."""
    nlp.tokenizer.rules = {k: v for k, v in nlp.tokenizer.rules.items() if k.strip()}


class ReportPipeline:
    """spaCy blank English + report sentences + medspaCy sectionizer, target matcher and ConText.

    Args:
        targets: a medspaCy target-rule JSON file replacing the shipped one (None: shipped).
        context: a ConText rule JSON file (``{"context_rules": [...]}``) replacing the shipped one.
        sections: a section rule JSON file replacing the shipped one.
        batch_size: documents per ``nlp.pipe`` batch.
    """

    def __init__(self, targets: Path | str | None = None, context: Path | str | None = None,
                 sections: Path | str | None = None, batch_size: int = 64) -> None:
        import spacy
        from medspacy.context import ConText
        from medspacy.section_detection import Sectionizer
        from medspacy.target_matcher import TargetMatcher

        if batch_size < 1:
            raise RuleFileError(f"batch_size must be at least 1, not {batch_size}")
        self.batch_size = batch_size
        paths = {"targets": targets, "context": context, "sections": sections}
        rules = {k: _build_rules(k, read_rule_file(k, p), str(p or RULE_FILES[k][0])) for k, p in paths.items()}
        _register_components()
        nlp = spacy.blank("en")
        _fast_tokenizer(nlp)
        nlp.add_pipe("pfs_report_sentences")
        sectionizer: Sectionizer = nlp.add_pipe("pfs_sectionizer")
        sectionizer.add(rules["sections"])
        # Not a pipe: called with result_type=None and its spans set once (see the module docstring).
        self._targets = TargetMatcher(nlp, result_type=None)
        self._targets.add(rules["targets"])
        nlp.add_pipe("pfs_set_targets")
        nlp.get_pipe("pfs_set_targets").matcher = self._targets
        # prune_on_target_overlap: a modifier inside a target ("no change") does not modify anything.
        context_pipe: ConText = nlp.add_pipe("pfs_context")
        context_pipe.add(rules["context"])
        self.nlp = nlp

    def analyse(self, text: str) -> ReportFacts:
        """Facts of one (cleaned) report text."""
        return list(self.analyse_many([text]))[0]

    def analyse_many(self, texts: Iterable[str]) -> Iterator[ReportFacts]:
        """Facts of many texts, in order, batched through ``nlp.pipe``."""
        with warnings.catch_warnings():
            # spaCy warns (W036) that medspaCy's token Matcher is empty: our rules are phrases and regexes.
            warnings.filterwarnings("ignore", message=r"\[W036\]")
            for doc in self.nlp.pipe(texts, batch_size=self.batch_size):
                yield facts_of(doc)


class _SetTargets:
    """Pipe component: run medspaCy's TargetMatcher and write its spans to ``doc.ents`` in one go."""

    def __init__(self) -> None:
        self.matcher: Any = None

    def __call__(self, doc: Any) -> Any:
        from spacy.util import filter_spans

        if self.matcher is not None:
            doc.ents = filter_spans(self.matcher(doc))
        return doc


def _make_set_targets(nlp: Any, name: str) -> _SetTargets:
    return _SetTargets()


def _line_start(doc: Any, i: int) -> bool:
    return i == 0 or (doc[i - 1].is_space and "\n" in doc[i - 1].text)


def _is_heading(doc: Any, start: int, end: int) -> bool:
    """Whether a section-rule match reads as a heading, not as a word in a sentence ("mixed findings:").

    'Heading:' counts at a line or sentence start or when capitalised; a bare heading only in capitals
    at a line start. (medspaCy's ``require_start_line`` would drop run-on "... FINDINGS: ..." headings.)
    """
    first = doc[start]
    if doc[end - 1].text == ":":
        return bool(first.is_sent_start) or _line_start(doc, start) or not first.is_lower
    return doc[start:end].text.isupper() and _line_start(doc, start)


#: Sections that introduce a report; with no findings or impression heading after them, they end early.
PREAMBLE_SECTIONS = frozenset({"history", "technique", "comparison"})
_ASSESSING_SECTIONS = frozenset({"findings", "impression", "addendum"})


def _end_preamble_sections(doc: Any, kept: list[list[Any]]) -> list[list[Any]]:
    """Stop a history/technique/comparison section at its first line end when no heading follows.

    Many reports give "COMPARISON: <date>" and then the findings as plain paragraphs; without this the
    comparison section would swallow the findings. A comparison also ends at its first sentence.
    """
    out: list[list[Any]] = []
    for i, (start, end, cat, body) in enumerate(kept):
        later = {k[2] for k in kept[i + 1:]}
        if cat not in PREAMBLE_SECTIONS or later & _ASSESSING_SECTIONS:
            out.append([start, end, cat, body])
            continue
        j = body
        while j < end and doc[j].is_space:
            j += 1
        cut = end
        for k in range(j + 1, end):
            tok = doc[k]
            if (tok.is_space and "\n" in tok.text) or (cat == "comparison" and tok.is_sent_start):
                cut = k + 1 if tok.is_space else k
                break
        out.append([start, cut, cat, body])
        if cut < end:
            out.append([cut, end, "", cut])
    return out


def facts_of(doc: Any) -> ReportFacts:
    """Reduce a processed Doc to plain data (what labels.py needs and nothing that holds the Doc)."""
    kept: list[list[Any]] = []
    for sec in doc._.sections:
        start, end = sec.section_span
        if sec.category is None or _is_heading(doc, *sec.title_span):
            kept.append([start, end, sec.category or "", sec.body_span[0]])
        elif kept:
            kept[-1][1] = end
        else:
            kept.append([start, end, "", start])
    kept = _end_preamble_sections(doc, kept)
    n = len(doc)
    sections = tuple((cat, doc[start].idx if start < n else len(doc.text)) for start, _, cat, _ in kept)
    bounds = [(start, end, cat) for start, end, cat, _ in kept]

    def section_of(token_i: int) -> str:
        for start, end, category in bounds:
            if start <= token_i < end:
                return category
        return ""

    # Token offsets and sentences read once (Token and Span.sent lookups dominated this function).
    from spacy.attrs import IDX, LENGTH, SENT_START

    table = doc.to_array([IDX, LENGTH, SENT_START]).tolist()
    offsets = [(i, n) for i, n, _ in table]
    sent_starts = [k for k, row in enumerate(table) if row[2] == 1] or [0]
    if sent_starts[0] != 0:
        sent_starts.insert(0, 0)
    # Sentences as (first token, start char, end char); the end is the end of its last token.
    sents = [_Sentence(a, offsets[a][0], offsets[b - 1][0] + offsets[b - 1][1])
             for a, b in zip(sent_starts, [*sent_starts[1:], len(table)], strict=True)]

    def span_of(m: Any) -> tuple[str, int, int, str]:
        a, b = m.modifier_span
        return (m.category, offsets[a][0], offsets[b - 1][0] + offsets[b - 1][1], m.rule.literal)

    mentions = []
    for ent in doc.ents:
        sent = sents[bisect_right(sent_starts, ent.start) - 1]
        mods = ent._.modifiers
        rule = ent._.target_rule
        meta = (rule.metadata if rule is not None else None) or {}
        mentions.append(Mention(
            category=ent.label_,
            literal=rule.literal if rule is not None else ent.text.lower(),
            start=ent.start_char,
            end=ent.end_char,
            sent_start=sent.start_char,
            sent_end=sent.end_char,
            section=section_of(ent.start),
            modifiers=tuple(m.category for m in mods),
            modifier_starts=tuple(offsets[m.modifier_span[0]][0] for m in mods),
            modifier_spans=tuple(span_of(m) for m in mods),
            tumour_context=bool(meta.get("tumour_context", False)),
            change=str(meta.get("change", "")),
            enhancing=bool(meta.get("enhancing", False)),
            diagnosis=bool(meta.get("diagnosis", False)),
            treated_site=bool(meta.get("treated_site", False)),
            generic_tumour=bool(meta.get("generic_tumour", False)),
            extracranial_cancer=bool(meta.get("extracranial_cancer", False)),
        ))
    return ReportFacts(mentions=tuple(mentions), sections=sections,
                       unattached=_unattached(doc, sents, section_of, span_of))


def _unattached(doc: Any, sents: list[Any], section_of: Any, span_of: Any) -> tuple[Mention, ...]:
    """Change modifiers with no finding in scope, each with the other modifiers of its sentence."""
    graph = doc._.context_graph
    if graph is None or not any(m.category in CHANGE_CATEGORIES and not m.num_targets for m in graph.modifiers):
        return ()
    starts = [s.start for s in sents]
    by_sentence: dict[int, list[Any]] = {}
    for m in graph.modifiers:
        by_sentence.setdefault(bisect_right(starts, m.modifier_span[0]) - 1, []).append(m)
    out = []
    for i, mods in by_sentence.items():
        for m in mods:
            if m.category not in CHANGE_CATEGORIES or m.num_targets:
                continue
            sent = sents[i]
            # the modifiers that would modify this change word if it were a finding (ConText scope)
            a, b = m.modifier_span
            others = [o for o in mods if o is not m and o.category not in CHANGE_CATEGORIES
                      and o.direction not in ("TERMINATE", "PSEUDO")
                      and (o.scope_span[0] <= a < o.scope_span[1] or o.scope_span[0] < b <= o.scope_span[1])]
            span = span_of(m)
            out.append(Mention(
                category="UNATTACHED", literal=m.rule.literal, start=span[1], end=span[2],
                sent_start=sent.start_char, sent_end=sent.end_char, section=section_of(m.modifier_span[0]),
                modifiers=(m.category, *(o.category for o in others)),
                modifier_starts=(span[1], *(span_of(o)[1] for o in others)),
                modifier_spans=(span, *(span_of(o) for o in others)),
            ))
    return tuple(out)
