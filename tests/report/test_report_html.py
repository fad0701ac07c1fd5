"""The HTML report: self-contained, every text escaped, every section present or marked not available."""

from __future__ import annotations

import re
from pathlib import Path

from pfs.report.html import report


def test_report_is_self_contained_and_escapes_evidence(out_dir: Path, tmp_path: Path) -> None:
    path = report(out_dir, out_dir.parent / "annotations.csv", tmp_path / "r.html")
    assert path == tmp_path / "r.html"
    doc = path.read_text(encoding="utf-8")
    # The evidence string "<script>alert('x')</script> & ..." is shown as text, never as markup.
    assert "<script" not in doc.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot;" in doc
    # No external requests: no http(s) URL, no src other than inline data.
    assert not re.search(r"https?://", doc)
    srcs = re.findall(r'src="([^"]*)"', doc)
    assert len(srcs) == 4 and all(s.startswith("data:image/png;base64,") for s in srcs)
    for heading in (
        "Cohort",
        "Comparison with the manual annotations",
        "Figures",
        "Patients",
        "Quarantine",
        "Manifest",
    ):
        assert f"<h2>{heading}</h2>" in doc
    # Per-patient drill-down with the reconciler's evidence chain and the source tables.
    assert doc.count("<details>") == 8
    assert "back-dated to the steroid increase" in doc and "Report labels" in doc
    assert "steroid-only signal" in doc  # P6's prednisone burst, set aside
    # The comparison shows the tails of the date lag that a median hides.
    for column in ("progressors within ±15 d", "progressors within ±30 d", "&gt; 60 d early", "&gt; 60 d late"):
        assert column in doc, column
    # The quarantine summary groups by reason.
    assert "value below minimum 0" in doc and "unparseable date" in doc


def test_report_degrades_gracefully_without_optional_tables(minimal_out: Path) -> None:
    doc = report(minimal_out).read_text(encoding="utf-8")
    assert (minimal_out / "report.html").exists()
    assert "comparison with manual annotations (no --annotations given): not available" in doc
    assert "quarantine: not available" in doc and "Report labels: not available" in doc
    assert "No progression events were emitted." in doc
    assert doc.count('src="data:image/png;base64,') == 2  # KM and swimmer only
