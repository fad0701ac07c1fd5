"""Radiology-report extractor: a label and its evidence for every report, progression events for the PFS.

Stages (one module each): :mod:`.sentences` (clean-up and sentence rules) -> :mod:`.pipeline`
(spaCy + medspaCy: sections, findings as targets, ConText modifiers via :mod:`.fast_context`) ->
:mod:`.findings` (what each finding says about the tumour, whether the report shows a tumour) ->
:mod:`.labels` (report-level decision, BT-RADS) -> :mod:`.events` (confirmation rule). Every report
of the export gets a row in ``report_labels``: brain MRIs are assessed, other procedures are
``not_applicable``; a report that cannot be read is quarantined *and* listed (label ``no_assessment``),
so no report is ever lost.
Report text never goes to the log or the quarantine.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pandas as pd

from pfs.exceptions import ConfigError
from pfs.extractors import ExtractorResult, built_once, count_per_patient, totals
from pfs.io.quarantine import COLUMNS as QUARANTINE_COLUMNS
from pfs.vocab import ReportLabel

if TYPE_CHECKING:
    from pfs.extractors.nlp.pipeline import ReportPipeline
    from pfs.io import Export
    from pfs.settings import Config

log = logging.getLogger(__name__)

LABEL_COLUMNS = ["patient_id", "report_id", "report_date", "label", "bt_rads", "evidence_sentence",
                 "evidence_start", "evidence_end", "rule", "section", "finding_start", "finding_end", "finding_rule",
                 "modifiers"]
#: The deciding sentence is cut to this length in report_labels (offsets still give the whole sentence).
MAX_EVIDENCE_CHARS = 500


def modifiers_json(modifiers: tuple[tuple[str, int, int, str], ...]) -> str:
    """The deciding finding's ConText modifiers as a JSON list (offsets into the report text), for reviewers."""
    return json.dumps([{"category": c, "start": a, "end": b, "rule": f"{c}:{lit}"} for c, a, b, lit in modifiers],
                      ensure_ascii=False)


def build_pipeline(settings: dict[str, Any]) -> ReportPipeline:
    """The NLP pipeline for an ``nlp`` config section (shipped rules unless files are named)."""
    from pfs.extractors.nlp.pipeline import ReportPipeline

    return ReportPipeline(targets=settings.get("targets_file") or None, context=settings.get("context_file") or None,
                          sections=settings.get("sections_file") or None, batch_size=int(settings["batch_size"]))


def pipeline_for(settings: dict[str, Any]) -> ReportPipeline:
    """The pipeline for these settings, built once per process (building spaCy + rules takes seconds).

    Parallelism is the runner's (one Dask worker process per core, each with its own pipeline).
    """
    keys = {k: settings.get(k) for k in ("targets_file", "context_file", "sections_file", "batch_size")}
    return built_once("nlp_pipeline", keys, lambda: build_pipeline(settings))


def _check_settings(settings: dict[str, Any]) -> None:
    if int(settings["max_report_chars"]) < 1000:
        raise ConfigError(f"nlp.max_report_chars must be at least 1000, not {settings['max_report_chars']}")
    valid = {str(x) for x in ReportLabel}
    bad = [x for x in settings["events"]["contradicting_labels"] if x not in valid]
    if bad:
        raise ConfigError(f"nlp.events.contradicting_labels: unknown label {bad[0]!r} "
                          f"(known: {', '.join(sorted(valid))})")


def label_reports(reports: pd.DataFrame, pipeline: ReportPipeline,
                  settings: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Label every report; returns (report_labels with a ``certainty`` column, quarantine rows, counts).

    ``reports`` has the columns of the reports table (``_row`` optional).
    """
    from pfs.extractors.nlp.labels import decide, is_brain_mri
    from pfs.extractors.nlp.sentences import clean_text

    max_chars = int(settings["max_report_chars"])
    assessed = tuple(settings["assessed_sections"])
    counts = {"reports": len(reports), "brain_mri": 0, "not_applicable": 0, "too_long": 0, "markup_cleaned": 0}
    quarantine: list[dict[str, Any]] = []
    texts, todo = [], []
    labels: list[dict[str, Any]] = [{} for _ in range(len(reports))]
    rows = reports.get("_row", pd.Series(range(1, len(reports) + 1), index=reports.index)).tolist()
    for i, rec in enumerate(reports[["patient_id", "report_id", "report_date", "procedure", "text"]]
                            .itertuples(index=False)):
        base = {"patient_id": rec.patient_id, "report_id": rec.report_id, "report_date": rec.report_date,
                "bt_rads": "", "evidence_sentence": "", "evidence_start": -1, "evidence_end": -1, "section": "",
                "finding_start": -1, "finding_end": -1, "finding_rule": "", "modifiers": "[]",
                "certainty": 0, "markup_cleaned": False}
        text = rec.text if isinstance(rec.text, str) else ""
        procedure = rec.procedure if isinstance(rec.procedure, str) else ""
        if not is_brain_mri(procedure, text):
            counts["not_applicable"] += 1
            labels[i] = {**base, "label": str(ReportLabel.NOT_APPLICABLE), "rule": "not_brain_mri"}
            continue
        counts["brain_mri"] += 1
        if len(text) > max_chars:
            counts["too_long"] += 1
            labels[i] = {**base, "label": str(ReportLabel.NO_ASSESSMENT), "rule": "too_long"}
            quarantine.append({"table": "reports", "row": int(rows[i]), "patient_id": str(rec.patient_id),
                               "column": "text", "value": f"<{len(text)} characters>", "stage": "nlp",
                               "reason": f"report text longer than nlp.max_report_chars ({max_chars}); not assessed"})
            continue
        cleaned, fixes = clean_text(text)
        if fixes:
            counts["markup_cleaned"] += 1
        labels[i] = {**base, "markup_cleaned": bool(fixes)}
        texts.append(cleaned)
        todo.append(i)
    facts = list(pipeline.analyse_many(texts))
    for i, text, fact in zip(todo, texts, facts, strict=True):
        d = decide(text, fact, assessed)
        sentence = text[d.evidence_start:d.evidence_end] if d.evidence_start >= 0 else ""
        labels[i].update({"label": str(d.label), "rule": d.rule, "bt_rads": d.bt_rads,
                          "evidence_sentence": " ".join(sentence.split())[:MAX_EVIDENCE_CHARS],
                          "evidence_start": d.evidence_start, "evidence_end": d.evidence_end, "section": d.section,
                          "finding_start": d.finding_start, "finding_end": d.finding_end,
                          "finding_rule": d.finding_rule, "modifiers": modifiers_json(d.modifiers),
                          "certainty": d.certainty})
    frame = pd.DataFrame(labels, columns=LABEL_COLUMNS + ["certainty", "markup_cleaned"])
    frame["markup_cleaned"] = frame["markup_cleaned"].fillna(False).astype(bool)
    for label in ReportLabel:
        counts[f"label_{label}"] = int((frame["label"] == str(label)).sum())
    q = pd.DataFrame(quarantine, columns=QUARANTINE_COLUMNS)
    return frame, q, counts


def extract(export: Export, config: Config) -> ExtractorResult:
    """Label every report of ``export`` and emit progression events (source ``nlp``)."""
    from pfs.extractors.nlp.events import progression_events
    from pfs.io.schema import conform

    settings = config.section("nlp")
    _check_settings(settings)
    reports = export.table("reports")
    patients = export.table("patients")
    pipeline = pipeline_for(settings)
    labels, quarantine, counts = label_reports(reports, pipeline, settings)
    before_dx = labels["report_date"].lt(labels["patient_id"].map(patients.set_index("patient_id")["diagnosis_date"]))
    counts["reports_before_diagnosis"] = int(before_dx.fillna(False).sum())
    per_patient: dict[str, dict[str, int]] = {}
    events, ev_counts = progression_events(labels, patients, settings["events"], per_patient)
    pids = patients["patient_id"].astype(str)
    lab = labels.assign(patient_id=labels["patient_id"].astype(str))
    patient_counts = count_per_patient(
        pids,
        reports=lab["patient_id"],
        brain_mri=lab.loc[lab["label"] != str(ReportLabel.NOT_APPLICABLE), "patient_id"],
        not_applicable=lab.loc[lab["label"] == str(ReportLabel.NOT_APPLICABLE), "patient_id"],
        too_long=lab.loc[lab["rule"] == "too_long", "patient_id"],
        markup_cleaned=lab.loc[labels["markup_cleaned"].to_numpy(), "patient_id"],
        **{f"label_{x}": lab.loc[lab["label"] == str(x), "patient_id"] for x in ReportLabel},
        reports_before_diagnosis=lab.loc[before_dx.fillna(False).to_numpy(), "patient_id"],
    )
    for key in ev_counts:
        patient_counts[key] = [int(per_patient.get(p, {}).get(key, 0)) for p in patient_counts.index]
    patient_counts["events"] = count_per_patient(pids, events=events["patient_id"])["events"]
    counts = totals(patient_counts)
    log.info("nlp: %d reports, %d brain MRI, %d events", counts["reports"], counts["brain_mri"], len(events))
    return ExtractorResult(
        events=conform(events, "events"),
        tables={"report_labels": conform(labels.drop(columns=["certainty", "markup_cleaned"]), "report_labels")},
        quarantine=quarantine,
        counts=counts,
        patient_counts=patient_counts,
    )
