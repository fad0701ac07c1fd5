"""MRI volumetry: enhancing-tumour volume per study and volumetric RANO progression events.

Per study the T1C (required) and the sequences the segmenter needs are read onto the T1C grid
(:mod:`.loading`), the enhancing tumour is segmented by the configured segmenter (:mod:`.segmenters`),
volumes come from the header spacing, and each patient's series of volumes is read with volumetric
RANO 2.0 (:mod:`.rano`) after faint lesions at the place of an earlier scan's lesion are counted
(:mod:`.longitudinal`; studies run as independent tasks, so this uses only what each study recorded). A study that cannot be read goes to the quarantine with the reason; every
other study goes on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pfs.exceptions import ConfigError
from pfs.extractors import ExtractorResult, built_once, count_per_patient, totals
from pfs.extractors.imaging.loading import ImagingInputError, load_study, write_mask
from pfs.extractors.imaging.longitudinal import follow_lesions
from pfs.extractors.imaging.rano import RanoParams, assess
from pfs.extractors.imaging.segmenters import SEGMENTERS, SegmentFn, check_models, sequences_needed
from pfs.extractors.imaging.segmenters.base import Lesion
from pfs.extractors.imaging.segmenters.labels import FLAG_ET_EMPTY
from pfs.io.quarantine import COLUMNS as QUARANTINE_COLUMNS
from pfs.io.schema import conform
from pfs.io.series import choose_series, dicom_headers

log = logging.getLogger(__name__)

VOLUME_COLUMNS = ["patient_id", "study_id", "study_date", "et_volume_ml", "et_volume_low_ml", "et_volume_high_ml",
                  "flair_volume_ml", "n_lesions", "segmenter", "qc_flags", "rano_state", "nadir_ml",
                  "change_vs_nadir_pct", "change_within_uncertainty", "voxel_ml", "sequences"]
_RANO_COLUMNS = ("rano_state", "nadir_ml", "change_vs_nadir_pct", "change_within_uncertainty")
SERIES_COLUMNS = ["patient_id", "study_id", "row", "description", "role", "used", "why"]


@dataclass
class StudyJob:
    """Everything needed to process one study, picklable for worker processes."""

    patient_id: str
    study_id: str
    study_date: pd.Timestamp
    paths: dict[str, Path]
    rows: dict[str, int]
    mask_path: Path | None
    raw_paths: dict[str, str] = field(default_factory=dict)
    #: Why the study has no T1C, naming the series it does have (the quarantine reason).
    no_t1c: str = ""


@dataclass
class StudyOutcome:
    job: StudyJob
    volume: dict[str, Any] | None
    lesions: list[Lesion]
    quarantine: list[dict]
    faint: list[Lesion] = field(default_factory=list)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:120] or "study"


def _q(job: StudyJob, seq: str, reason: str, column: str = "path") -> dict:
    value = job.raw_paths.get(seq, "") if column == "path" else str(job.mask_path or "")
    return {"table": "imaging", "row": job.rows[seq], "patient_id": job.patient_id, "column": column,
            "value": value, "reason": reason, "stage": "imaging"}


def _process(job: StudyJob, segment: SegmentFn, cfg: dict[str, Any], name: str) -> StudyOutcome:
    """Load, segment and measure one study; failures become quarantine rows, never exceptions."""
    optional = sequences_needed(cfg)
    try:
        images, failed = load_study(job.paths, optional=optional, min_overlap=cfg["min_overlap"])
    except ImagingInputError as err:
        if "T1C" not in job.rows:
            rows = [_q(job, seq, job.no_t1c or str(err)) for seq in job.rows]
        else:
            rows = [_q(job, "T1C", f"T1C unusable: {err}")]
            rows += [_q(job, seq, f"study set aside: its T1C (row {job.rows['T1C']}) is unusable")
                     for seq in job.rows if seq != "T1C"]
        return StudyOutcome(job, None, [], rows)
    quarantine = [_q(job, seq, f"{seq} unusable, study measured without it: {reason}")
                  for seq, reason in failed.items()]
    try:
        seg = segment(images, job.mask_path)
    except ImagingInputError as err:
        column = "mask_path" if cfg["segmenter"] == "precomputed" else "path"
        quarantine.append(_q(job, "T1C", str(err), column=column))
        return StudyOutcome(job, None, [], quarantine)
    flags = list(images.notes) + list(seg.flags)
    flags += [f"{seq.lower()}_missing" for seq in optional if getattr(images, seq.lower()) is None]
    if seg.et_volume_ml == 0:
        flags.append("no_enhancement")
    volume = {
        "patient_id": job.patient_id, "study_id": job.study_id, "study_date": job.study_date,
        "et_volume_ml": round(seg.et_volume_ml, 3),
        "et_volume_low_ml": None if seg.et_volume_low_ml is None else round(seg.et_volume_low_ml, 3),
        "et_volume_high_ml": None if seg.et_volume_high_ml is None else round(seg.et_volume_high_ml, 3),
        "flair_volume_ml": None if seg.flair_volume_ml is None else round(seg.flair_volume_ml, 3),
        "n_lesions": len(seg.lesions), "segmenter": name, "qc_flags": ";".join(flags),
        "voxel_ml": round(images.grid.voxel_ml, 6),
        "sequences": ",".join(s for s in ("T1C", *optional) if s == "T1C" or getattr(images, s.lower()) is not None),
    }
    if cfg["save_masks"]:
        from pfs.extractors.imaging.qc import qc_png

        out = Path(cfg["masks_dir"]) / _safe(job.patient_id)
        stem = _safe(job.study_id)
        write_mask(seg.et, images.reference, out / f"{stem}_et.nii.gz")
        qc_png(images.t1c, seg.et, images.grid.spacing_zyx, out / f"{stem}_qc.png",
               title=f"{stem}: ET {seg.et_volume_ml:.2f} mL ({name})", flair_mask=seg.flair)
    return StudyOutcome(job, volume, seg.lesions, quarantine, faint=seg.faint_lesions)


def process_study(task: tuple[StudyJob, dict[str, Any]]) -> StudyOutcome:
    """Task body for a runner (one MRI study, on any worker): load, segment, measure."""
    job, cfg = task
    segment = built_once("segmenter", cfg, lambda: SEGMENTERS[cfg["segmenter"]](cfg))
    return _process(job, segment, cfg, cfg["segmenter"])


def crashed_study(job: StudyJob, err: BaseException) -> StudyOutcome:
    """The outcome of a study whose processing crashed (a bug or a killed worker): all its rows quarantined."""
    reason = f"study processing crashed ({type(err).__name__}: {str(err)[:200]})"
    return StudyOutcome(job, None, [], [_q(job, seq, reason) for seq in job.rows])


def study_jobs(export) -> tuple[list[StudyJob], pd.DataFrame]:
    """One job per study_id of the imaging table, and every series with its role and why.

    Each series is classified (:mod:`pfs.io.series`: its description, and its DICOM header when
    the path is a DICOM folder); one series per role and study is used. The others are reported
    in the ``series`` table, not quarantined; a study without a T1C is, with that reason.
    """
    table = export.table("imaging")
    # Absolute paths: a study may run on a worker whose working directory (or machine) differs.
    root = Path(export.root).absolute()
    headers = {int(r): dicom_headers(root / str(p)) for r, p in zip(table["_row"], table["path"], strict=True)
               if (root / str(p)).is_dir()}
    series = choose_series(table, headers) if not table.empty else table.assign(role="", why="", chosen=False)
    jobs = []
    for sid, g in series.groupby("study_id", sort=True):
        first = g.iloc[0]
        used = g.loc[g["chosen"]]
        t1c = used.loc[used["role"] == "T1C"]
        mask = t1c["mask_path"].iloc[0] if not t1c.empty else None
        recs = used.to_dict("records")
        no_t1c = ""
        if t1c.empty:
            found = ", ".join(f"{str(s)!r} ({r or 'not recognised'})" for s, r in zip(g["sequence"], g["role"],
                                                                                        strict=True))
            no_t1c = f"study has no T1C (post-contrast T1, required for volumetry); its series: {found}"
            recs = recs + [r for r in g.loc[~g["chosen"]].to_dict("records")]
        jobs.append(StudyJob(
            patient_id=str(first["patient_id"]), study_id=str(sid), study_date=first["study_date"],
            paths={str(r["role"]): root / str(r["path"]) for r in recs if r["chosen"]},
            rows={_key(r): int(r["_row"]) for r in recs},
            mask_path=root / str(mask) if isinstance(mask, str) and mask else None,
            raw_paths={_key(r): str(r["path"]) for r in recs},
            no_t1c=no_t1c,
        ))
    report = pd.DataFrame({
        "patient_id": series["patient_id"].astype(str), "study_id": series["study_id"].astype(str),
        "row": series["_row"].astype("int64"), "description": series["sequence"].astype(str),
        "role": series["role"], "used": series["chosen"].map({True: "yes", False: "no"}), "why": series["why"],
    }, columns=SERIES_COLUMNS)
    return jobs, report


def _key(rec: dict) -> str:
    """A chosen series is known by its role; any other by its row (it is only named in a quarantine)."""
    return str(rec["role"]) if rec["chosen"] else f"row {int(rec['_row'])}"


def _check_config(cfg: dict[str, Any]) -> None:
    if cfg["segmenter"] not in SEGMENTERS:
        raise ConfigError(f"imaging.segmenter {cfg['segmenter']!r} is not known (known: {', '.join(SEGMENTERS)})")
    if cfg["save_masks"] and not cfg["masks_dir"]:
        raise ConfigError("imaging.save_masks is true but imaging.masks_dir is empty; give a folder")
    check_models(cfg)


def run_jobs(jobs: list[StudyJob], cfg: dict[str, Any]) -> list[StudyOutcome]:
    """Process studies one after the other in this process (the pipeline spreads them over Dask)."""
    return [process_study((job, cfg)) for job in jobs]


def extract(export, config, run_studies: Callable[[list[StudyJob], dict[str, Any]], list[StudyOutcome]] | None = None,
            ) -> ExtractorResult:
    """Volumes per study (``volumes`` table) and volumetric RANO events for every patient.

    ``run_studies`` processes the study jobs (default :func:`run_jobs`); the pipeline passes one that
    spreads the studies over its Dask workers.
    """
    cfg = config.section("imaging")
    _check_config(cfg)
    rano_params = RanoParams.from_config(cfg["rano"])
    jobs, series = study_jobs(export)
    outcomes = (run_studies or run_jobs)(jobs, cfg)
    volumes = pd.DataFrame([o.volume for o in outcomes if o.volume is not None],
                           columns=[c for c in VOLUME_COLUMNS if c not in _RANO_COLUMNS])
    lesions = {o.job.study_id: o.lesions for o in outcomes if o.volume is not None}
    faint = {o.job.study_id: o.faint for o in outcomes if o.volume is not None}
    quarantine = pd.DataFrame([r for o in outcomes for r in o.quarantine], columns=QUARANTINE_COLUMNS)
    quarantine["row"] = quarantine["row"].astype("int64")
    if volumes.empty:
        events = pd.DataFrame(columns=["patient_id", "source", "event_date", "kind", "ref_id", "evidence",
                                       "value", "confidence"])
        states = pd.DataFrame(columns=["study_id", *_RANO_COLUMNS])
    else:
        volumes["study_date"] = pd.to_datetime(volumes["study_date"])
        volumes, lesions = follow_lesions(volumes, lesions, faint, rano_params.follow_mm)
        events, states = assess(volumes, lesions, export.table("patients"), rano_params)
    volumes = volumes.merge(states, on="study_id", how="left")
    volumes = conform(volumes[VOLUME_COLUMNS], "volumes").sort_values(
        ["patient_id", "study_date", "study_id"], kind="stable").reset_index(drop=True)
    events = conform(events, "events")
    patient_counts = count_per_patient(
        export.table("patients")["patient_id"],
        studies=[j.patient_id for j in jobs],
        studies_measured=volumes["patient_id"],
        studies_quarantined=[o.job.patient_id for o in outcomes if o.volume is None],
        sequence_rows_quarantined=quarantine["patient_id"],
        patients_with_event=events["patient_id"].drop_duplicates(),
    )
    counts = totals(patient_counts)
    log.info("imaging: %d of %d studies measured", counts["studies_measured"], counts["studies"])
    n_empty = int(volumes["qc_flags"].str.contains(FLAG_ET_EMPTY, regex=False).sum()) if len(volumes) else 0
    if n_empty:  # a wrong label convention looks exactly like this; a non-enhancing tumour too
        log.warning("imaging: %d studies have no enhancing tumour beside other tumour labels (qc_flags %s); "
                    "check the label convention", n_empty, FLAG_ET_EMPTY)
    return ExtractorResult(events=events, tables={"volumes": volumes, "series": series}, quarantine=quarantine, counts=counts,
                           patient_counts=patient_counts)
