"""Safety: gzip bombs stop at a limit, logs hold no patient data, the report escapes markup,
interrupted runs leave nothing that looks finished, model weights never run code."""

from __future__ import annotations

import ast
import gzip
import json
import logging
import re
from pathlib import Path

import pandas as pd
import pytest
from robustness_export import copy_export, digest, extract_cli

import pfs.io.limits
from pfs.exceptions import ExportError
from pfs.io.limits import open_text_gzip_limited, read_gzip_limited

BOMB_BYTES = 50 * 1024**2
LIMIT = 1024**2


def _bomb(path: Path, head: bytes = b"", fill: bytes = b"\0") -> Path:
    """``head`` then 50 MB of ``fill``, gzip-compressed to about 50 kB."""
    chunk = fill * (1024**2 // len(fill))
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        fh.write(head)
        for _ in range(BOMB_BYTES // len(chunk)):
            fh.write(chunk)
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _bomb(tmp_path_factory.mktemp("bomb") / "zeros.gz")


def test_bomb_is_small_on_disk(bomb: Path) -> None:
    assert bomb.stat().st_size < 200_000


def test_gzip_bomb_stops_at_the_limit_naming_file_and_limit(bomb: Path) -> None:
    with pytest.raises(ExportError, match=rf"zeros\.gz: decompresses to more than {LIMIT} bytes"):
        read_gzip_limited(bomb, LIMIT)


def test_text_stream_of_a_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    path = _bomb(tmp_path / "lines.ndjson.gz", fill=b"\n")
    with pytest.raises(ExportError, match="lines.ndjson.gz"), open_text_gzip_limited(path, LIMIT) as fh:
        for _ in fh:
            pass


def test_gzip_under_the_limit_is_read_whole(tmp_path: Path) -> None:
    data = b"patient_id,diagnosis_date\nP1,2020-01-01\n" * 1000
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(data))
    assert read_gzip_limited(path, len(data)) == data
    with pytest.raises(ExportError, match="more than 100 bytes"):
        read_gzip_limited(path, 100)


def test_truncated_or_fake_gzip_is_an_export_error(tmp_path: Path) -> None:
    good = gzip.compress(b"x" * 10_000)
    (tmp_path / "cut.gz").write_bytes(good[: len(good) // 2])
    (tmp_path / "fake.gz").write_bytes(b"not gzip at all")
    for name in ("cut.gz", "fake.gz"):
        with pytest.raises(ExportError, match=f"{name}: corrupt gzip file"):
            read_gzip_limited(tmp_path / name, LIMIT)


def _convert_fhir(root: Path, out: Path) -> None:
    from pfs.io.formats import convert

    convert(root, out, "fhir")


def _load_native(root: Path, out: Path) -> None:
    from pfs.io.export import load_export

    load_export(root)


@pytest.mark.parametrize(("reader", "name", "head"), [
    (_convert_fhir, "Patient.ndjson.gz", b'{"resourceType": "Patient", "id": "p1"}\n'),
    (_load_native, "patients.csv.gz", b"patient_id,diagnosis_date\nP1,2020-01-01\n"),
], ids=["fhir-ndjson", "native-csv"])
def test_gzip_bomb_is_refused(reader, name: str, head: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "export"
    src.mkdir()
    _bomb(src / name, head=head, fill=b"\n")
    monkeypatch.setattr(pfs.io.limits, "MAX_DECOMPRESSED_BYTES", LIMIT)
    with pytest.raises(ExportError, match=rf"{re.escape(name)}: decompresses to more than {LIMIT} bytes"):
        reader(src, tmp_path / "out")


# ---------------------------------------------------------------------------------------------
# Logs
# ---------------------------------------------------------------------------------------------

def _text_fragments(export: Path) -> list[str]:
    texts = pd.read_csv(export / "reports.csv", dtype=str, keep_default_na=False)["text"]
    frags = []
    for t in texts:
        frags += [s.strip() for s in t.replace("\n", ".").split(".") if len(s.strip()) >= 25]
    return sorted(set(frags))


def test_no_report_text_or_patient_id_in_logs(clean, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from pfs.pipeline import run_extract

    export = copy_export(clean.export, tmp_path / "export")
    # A failing input of each kind, so the warning paths log too.
    with (export / "reports.csv").open("a", encoding="utf-8") as fh:
        fh.write('P9999,RX-1,2019-05-01,MRI BRAIN,"IMPRESSION: Progression of the left frontal mass."\n')
    (export / "images" / "P0001" / "S0001-2_t1c.nii.gz").write_bytes(b"")
    caplog.set_level(logging.DEBUG)
    run_extract(export, tmp_path / "out", config=clean.config)
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert caplog.records, "the pipeline logs nothing at DEBUG: the test would prove nothing"
    patients = pd.read_csv(export / "patients.csv", dtype=str)["patient_id"].tolist() + ["P9999"]
    assert not [p for p in patients if p in logged]
    fragments = _text_fragments(export)
    assert len(fragments) > 50
    assert not [f for f in fragments if f in logged]


# ---------------------------------------------------------------------------------------------
# HTML report
# ---------------------------------------------------------------------------------------------

EVIL = "<script>alert('pfs')</script>"


def test_html_report_escapes_markup_from_report_text(clean, tmp_path: Path, monkeypatch, capsys) -> None:
    from pfs.report.html import report

    export = copy_export(clean.export, tmp_path / "export")
    reports = pd.read_csv(export / "reports.csv", dtype=str, keep_default_na=False)
    i = reports.index[reports["text"].str.contains("progression", case=False)
                      & reports["procedure"].str.contains("MRI")][0]
    reports.loc[i, "text"] = reports.loc[i, "text"].replace("IMPRESSION:", f"IMPRESSION: {EVIL}")
    reports.loc[i, "report_id"] = f"R{EVIL}"
    reports.to_csv(export / "reports.csv", index=False, lineterminator="\n")
    run = extract_cli(export, tmp_path / "out", clean.config, monkeypatch, capsys)
    assert run.code == 0, run.output
    outputs = "".join(p.read_text(encoding="utf-8") for p in run.out.glob("*.csv"))
    assert EVIL in outputs  # the markup reached the outputs (report_id at least), so the report must escape it
    doc = report(run.out).read_text(encoding="utf-8")
    assert "<script" not in doc.lower()
    assert "&lt;script&gt;alert(&#x27;pfs&#x27;)&lt;/script&gt;" in doc


# ---------------------------------------------------------------------------------------------
# Atomic outputs
# ---------------------------------------------------------------------------------------------

def _fail_on_third_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    import pfs.io.output

    calls = {"n": 0}
    real = pfs.io.output.os.fsync

    def fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real(fd)

    monkeypatch.setattr(pfs.io.output.os, "fsync", fsync)


def test_interrupted_write_leaves_no_partial_table_and_no_manifest(clean, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from pfs.pipeline import run_extract

    _fail_on_third_fsync(monkeypatch)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="No space left"):
        run_extract(clean.export, out, config=clean.config)
    names = sorted(p.name for p in out.iterdir())
    # The tables finished before the failure are whole; the one being written when the disk filled up
    # does not exist, nor do temporary files, the staged rows or a manifest.
    assert len(names) == 2, names
    for name in names:
        assert (out / name).read_bytes() == (clean.out / name).read_bytes()


def test_interrupted_rerun_does_not_leave_the_old_manifest(clean, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from pfs.pipeline import run_extract

    out = tmp_path / "out"
    run_extract(clean.export, out, config=clean.config)
    assert (out / "manifest.json").exists()
    _fail_on_third_fsync(monkeypatch)
    with pytest.raises(OSError):
        run_extract(clean.export, out, config=clean.config)
    assert not (out / "manifest.json").exists()


# ---------------------------------------------------------------------------------------------
# Determinism and model weights
# ---------------------------------------------------------------------------------------------

def test_two_runs_give_byte_identical_outputs(clean, tmp_path: Path, monkeypatch, capsys) -> None:
    run = extract_cli(clean.export, tmp_path / "again", clean.config, monkeypatch, capsys)
    assert run.code == 0, run.output
    assert digest(run.out) == digest(clean.out)
    assert json.loads((run.out / "manifest.json").read_text(encoding="utf-8"))["quarantine_rows"] == 0


def test_every_torch_load_uses_weights_only() -> None:
    """A pickled checkpoint can run code; pfs must only ever load tensors (the behaviour itself is
    tested in tests/extractors/imaging/test_imaging_monai.py with a malicious checkpoint)."""
    import pfs

    root = Path(pfs.__file__).parent
    calls = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
                kw = {k.arg: k.value for k in node.keywords}
                ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
                calls.append((path.name, node.lineno, ok))
    assert calls, "no torch.load call found: the check is looking in the wrong place"
    assert all(ok for _, _, ok in calls), calls


def test_a_full_disk_is_one_line_naming_the_cause_not_a_traceback(clean, tmp_path: Path, monkeypatch, capsys) -> None:
    _fail_on_third_fsync(monkeypatch)
    run = extract_cli(clean.export, tmp_path / "out", clean.config, monkeypatch, capsys)
    assert run.code == 7, run.output
    assert "pfs: error: No space left on device" in run.output and "Traceback" not in run.output
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_an_output_folder_that_is_a_file_is_a_clear_error(clean, tmp_path: Path, monkeypatch, capsys) -> None:
    target = tmp_path / "results"
    target.write_text("not a folder", encoding="utf-8")
    run = extract_cli(clean.export, target, clean.config, monkeypatch, capsys)
    assert run.code == 2, run.output
    assert f"{target}: the output folder given exists and is not a folder" in run.output
    assert target.read_text(encoding="utf-8") == "not a folder"
