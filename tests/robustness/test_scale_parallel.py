"""Scale-out (issue 8): outputs do not depend on workers or batches; the per-patient cache makes a
rerun free and a killed run resumable with byte-identical outputs; a crashing patient is quarantined.

Uses the robustness suite's clean export: 8 synthetic patients with medications and reports, and
9 small MRI studies (NIfTI and DICOM, precomputed masks) for 3 of them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from robustness_export import copy_export, digest

from pfs.extractors import SOURCES
from pfs.pipeline import run_extract
from pfs.settings import load_config


def _csvs(folder: Path) -> dict[str, str]:
    return {k: v for k, v in digest(folder).items() if k.endswith(".csv")}


def test_a_local_dask_cluster_with_two_workers_gives_the_plain_run_s_outputs(clean, tmp_path: Path) -> None:
    out = tmp_path / "dask"
    run_extract(clean.export, out, config=clean.config, workers=2)
    assert digest(out) == digest(clean.out)  # manifest included: workers are not part of the result


def test_cutting_the_cohort_into_single_patient_batches_changes_no_output(clean, tmp_path: Path) -> None:
    cfg = load_config(clean.config).with_overrides(
        {"pipeline": {"batch_patients": 1, "batch_rows": 1, "imaging_batch_patients": 1}})
    run_extract(clean.export, tmp_path / "single", config=cfg)
    assert _csvs(tmp_path / "single") == _csvs(clean.out)
    manifest = pd.read_json(tmp_path / "single" / "manifest.json", typ="series")
    clean_manifest = pd.read_json(clean.out / "manifest.json", typ="series")
    assert manifest["sources"] == clean_manifest["sources"]  # per-patient counts add up to the same totals


def test_a_rerun_reuses_every_patient_and_writes_the_same_bytes(clean, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = run_extract(clean.export, tmp_path / "a", config=clean.config, cache_dir=cache)
    n = len(SOURCES)  # 8 patients x steroid, nlp, imaging, treatment
    assert first.cache == {"reused": 0, "stored": 8 * n}
    second = run_extract(clean.export, tmp_path / "b", config=clean.config, cache_dir=cache)
    assert second.cache == {"reused": 8 * n, "stored": 0}
    assert digest(tmp_path / "b") == digest(tmp_path / "a") == digest(clean.out)


def test_a_changed_prescription_recomputes_only_that_patient_s_steroid_result(clean, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    run_extract(clean.export, tmp_path / "a", config=clean.config, cache_dir=cache)
    export = copy_export(clean.export, tmp_path / "export")
    meds = pd.read_csv(export / "medications.csv", dtype=str, keep_default_na=False)
    row = meds.index[meds["drug_name"].str.contains("dexa", case=False)][0]
    pid = meds.loc[row, "patient_id"]
    meds.loc[row, "dose"] = str(float(meds.loc[row, "dose"]) * 2)  # a dexamethasone order at twice the dose
    meds.to_csv(export / "medications.csv", index=False)
    again = run_extract(export, tmp_path / "b", config=clean.config, cache_dir=cache)
    # Medications are the input of two sources (steroid and treatment): both recompute that patient.
    readers = sum("medications" in spec.input_tables for spec in SOURCES.values())
    assert again.cache == {"reused": 8 * len(SOURCES) - readers, "stored": readers}
    run_extract(export, tmp_path / "c", config=clean.config)  # no cache: everything computed afresh
    assert _csvs(tmp_path / "b") == _csvs(tmp_path / "c")
    daily_b = pd.read_csv(tmp_path / "b" / "steroid_daily.csv", dtype=str)
    daily_a = pd.read_csv(tmp_path / "a" / "steroid_daily.csv", dtype=str)
    assert not daily_b.loc[daily_b["patient_id"] == pid].equals(daily_a.loc[daily_a["patient_id"] == pid])


def test_a_run_killed_midway_resumes_to_byte_identical_outputs(clean, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(clean.config.read_text(encoding="utf-8")
                      + "\n[pipeline]\nbatch_patients = 1\nbatch_rows = 1\nimaging_batch_patients = 1\n",
                      encoding="utf-8")
    out, cache = tmp_path / "out", tmp_path / "cache"
    cmd = [sys.executable, "-m", "pfs", "extract", str(clean.export), "--out", str(out), "--config", str(config),
           "--workers", "1", "--cache-dir", str(cache)]
    env = {**os.environ, "PYTHONUTF8": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while not any(cache.rglob("*.pkl")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = list(cache.rglob("*.pkl"))
    assert 0 < len(done) < 8 * len(SOURCES), "the kill must land in the middle of the run"
    assert not (out / "manifest.json").exists()  # an interrupted run never looks finished

    resumed = run_extract(clean.export, out, config=config, cache_dir=cache)
    assert resumed.cache["reused"] == len(done)
    uninterrupted = tmp_path / "uninterrupted"
    run_extract(clean.export, uninterrupted, config=config)
    assert digest(out) == digest(uninterrupted)


def test_a_patient_the_extractor_crashes_on_is_quarantined_and_the_others_go_on(
        clean, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pfs.extractors.steroid as steroid

    original = steroid.extract
    victim = "P0002"

    def crash_on_victim(export, config):
        if victim in export.patient_ids:
            raise RuntimeError("synthetic crash")
        return original(export, config)

    monkeypatch.setattr(steroid, "extract", crash_on_victim)
    result = run_extract(clean.export, tmp_path / "out", config=clean.config, cache_dir=tmp_path / "cache")
    status = result.manifest["sources"]["steroid"]
    assert status["status"].startswith("ran (1 patient(s) failed")
    q = result.quarantine.loc[result.quarantine["stage"] == "steroid"]
    meds = pd.read_csv(clean.export / "medications.csv", dtype=str)
    victim_rows = (meds.index[meds["patient_id"] == victim] + 1).tolist()
    assert sorted(q.loc[q["patient_id"] == victim, "row"].tolist()) == victim_rows
    assert q["reason"].str.contains("steroid extractor failed on this patient .RuntimeError: synthetic crash").all()
    others = result.events.loc[(result.events["source"] == "steroid") & (result.events["patient_id"] != victim)]
    clean_ev = clean.result.events
    expected = clean_ev.loc[(clean_ev["source"] == "steroid") & (clean_ev["patient_id"] != victim)]
    pd.testing.assert_frame_equal(others.reset_index(drop=True), expected.reset_index(drop=True))

    # A crash is not cached: once the extractor works again, the victim is computed and nothing else.
    monkeypatch.setattr(steroid, "extract", original)
    again = run_extract(clean.export, tmp_path / "again", config=clean.config, cache_dir=tmp_path / "cache")
    assert again.cache == {"reused": 8 * len(SOURCES) - 1, "stored": 1}
    assert _csvs(tmp_path / "again") == _csvs(clean.out)


def test_an_existing_scheduler_is_used_and_progress_counts_every_patient_and_study(clean, tmp_path: Path) -> None:
    from dask.distributed import LocalCluster

    seen: dict[str, tuple[int, int]] = {}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        run_extract(clean.export, tmp_path / "out", config=clean.config, scheduler=cluster.scheduler_address,
                    on_progress=lambda label, done, total: seen.__setitem__(label, (done, total)))
    assert digest(tmp_path / "out") == digest(clean.out)
    assert seen == {**{s: (8, 8) for s in SOURCES}, "MRI studies": (9, 9)}


def test_streaming_in_buckets_of_three_patients_and_small_read_batches_changes_no_output(
        clean, tmp_path: Path) -> None:
    """The export is read in batches and staged by bucket of patients; the cut is invisible."""
    cfg = load_config(clean.config).with_overrides({"pipeline": {"bucket_patients": 3, "read_batch_mb": 0.004}})
    seen: dict[str, tuple[int, int]] = {}
    totals: dict[str, set[int]] = {}

    def progress(label: str, done: int, total: int) -> None:
        assert done >= seen.get(label, (0, 0))[0], "progress never goes back"
        seen[label] = (done, total)
        totals.setdefault(label, set()).add(total)

    out = tmp_path / "buckets"
    run_extract(clean.export, out, config=cfg, on_progress=progress)
    assert _csvs(out) == _csvs(clean.out)
    manifest = pd.read_json(out / "manifest.json", typ="series")
    clean_manifest = pd.read_json(clean.out / "manifest.json", typ="series")
    for key in ("tables", "sources", "inputs", "quarantine_rows", "outputs"):
        assert manifest[key] == clean_manifest[key], key
    # Progress counts every patient and study once over the three buckets, against totals known from the start.
    assert seen == {**{s: (8, 8) for s in SOURCES}, "MRI studies": (9, 9)}
    assert totals == {**{s: {8} for s in SOURCES}, "MRI studies": {9}}
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == []  # the staged rows are gone


def test_staged_rows_a_killed_run_left_behind_are_removed_by_the_next_run(clean, tmp_path: Path) -> None:
    out = tmp_path / "out"
    left = out / "pfs-staging-killed" / "medications"
    left.mkdir(parents=True)
    (left / "000000.pkl").write_bytes(b"half a pickle")
    run_extract(clean.export, out, config=clean.config)
    assert not (out / "pfs-staging-killed").exists()
    assert digest(out) == digest(clean.out)
