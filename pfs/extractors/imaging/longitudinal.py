"""Longitudinal consistency: a lesion seen on a patient's earlier scan is looked for at the same place.

Each study is segmented alone (one task per study), so a small stable residual near the enhancement
threshold can read 0, 1.1, 0, 1.0 mL on consecutive scans, and a 0 -> 1 mL step looks like new disease.
The segmenter therefore records, besides the confident enhancing tumour, its *faint* lesions (centroid
in scanner coordinates and volume; enhancement that reached only the lenient threshold). Per patient,
in date order, a faint lesion within ``follow_mm`` of a lesion seen on an earlier scan is the same
lesion, measured: its volume is added and it is "seen" for the next scan. No image is reloaded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pfs.extractors.imaging.segmenters.base import Lesion


def _near(lesion: Lesion, seen: list[tuple[float, float, float]], mm: float) -> bool:
    return any(float(np.linalg.norm(np.subtract(lesion.centroid_mm, c))) <= mm for c in seen)


def follow_lesions(volumes: pd.DataFrame, lesions: dict[str, list[Lesion]], faint: dict[str, list[Lesion]],
                   follow_mm: float) -> tuple[pd.DataFrame, dict[str, list[Lesion]]]:
    """(volumes with followed faint lesions counted, lesions per study including them).

    ``volumes`` needs patient_id, study_id, study_date, et_volume_ml and qc_flags; a followed study gets
    the flag ``faint_lesion_followed``, and its et_volume_low_ml is left as measured (the strict reading
    stays the lower end of the uncertainty).
    """
    out = volumes.copy()
    merged = {sid: list(les) for sid, les in lesions.items()}
    if follow_mm <= 0 or out.empty:
        return out, merged
    order = out.sort_values(["patient_id", "study_date", "study_id"], kind="stable")
    for _, group in order.groupby("patient_id", sort=False):
        seen: list[tuple[float, float, float]] = []
        for idx, row in group.iterrows():
            sid = row["study_id"]
            found = [les for les in faint.get(sid, []) if seen and _near(les, seen, follow_mm)]
            if found:
                added = sum(les.volume_ml for les in found)
                out.at[idx, "et_volume_ml"] = round(float(row["et_volume_ml"]) + added, 3)
                flags = [f for f in str(row["qc_flags"] or "").split(";") if f and f != "no_enhancement"]
                out.at[idx, "qc_flags"] = ";".join([*flags, "faint_lesion_followed"])
                merged[sid] = sorted([*merged.get(sid, []), *found], key=lambda les: -les.volume_ml)
                if "n_lesions" in out:
                    out.at[idx, "n_lesions"] = len(merged[sid])
            seen.extend(les.centroid_mm for les in merged.get(sid, []))
    return out, merged
