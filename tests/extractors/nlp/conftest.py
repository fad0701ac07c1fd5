"""One NLP pipeline for the whole test session: building it (spaCy, medspaCy, ~300 rules) takes seconds."""

from __future__ import annotations

import pytest

from pfs.extractors.nlp.pipeline import ReportPipeline


@pytest.fixture(scope="session")
def report_pipeline() -> ReportPipeline:
    return ReportPipeline()
