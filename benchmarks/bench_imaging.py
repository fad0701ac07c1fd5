"""Speed and memory of the default segmenter on one 240 x 240 x 155 study, loading included.

Uses the real BraTS 2023 case in ../shared/data when present, otherwise writes a synthetic volume of
that size. Each configuration runs in a fresh single-threaded process so that its peak resident
memory (ru_maxrss, which includes Python, numpy and SimpleITK themselves) is its own.

    .venv/bin/python benchmarks/bench_imaging.py [--repeat 3]

Targets (issue 5): <= 2 s per T1C volume on one core; <= 2 GB per worker; 743 scans on 2 cores <= 15 min.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BRATS = Path(__file__).resolve().parents[2] / "shared" / "data" / "brats2023-gli-00001-000"

_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from pfs.extractors.imaging.loading import load_study
from pfs.extractors.imaging.segmenters.default import DefaultParams, segment
from pfs.settings import load_config
paths = {k: Path(v) for k, v in json.loads(sys.argv[1]).items()}
repeat = int(sys.argv[2])
p = DefaultParams.from_config(load_config().section("imaging")["default"])
times = []
for _ in range(repeat):
    t0 = time.perf_counter()
    images, _ = load_study(paths)
    t1 = time.perf_counter()
    seg = segment(images, p)
    t2 = time.perf_counter()
    times.append((t1 - t0, t2 - t1))
best = min(times, key=lambda t: t[0] + t[1])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(json.dumps({"load_s": round(best[0], 3), "segment_s": round(best[1], 3), "total_s": round(sum(best), 3),
                  "et_ml": round(seg.et_volume_ml, 2), "peak_rss_mb": peak}))
"""


def _synthetic(folder: Path) -> dict[str, str]:
    import nibabel as nib
    import numpy as np

    rng = np.random.default_rng(0)
    x, y, z = np.meshgrid(np.arange(240), np.arange(240), np.arange(155), indexing="ij")
    brain = ((x - 120) / 70) ** 2 + ((y - 120) / 85) ** 2 + ((z - 77) / 60) ** 2 <= 1
    lesion = ((x - 150) ** 2 + (y - 110) ** 2 + (z - 80) ** 2) <= 15 ** 2
    core = ((x - 150) ** 2 + (y - 110) ** 2 + (z - 80) ** 2) <= 9 ** 2
    out = {}
    for seq, (base, ring, c) in {"T1C": (1000, 1750, 450), "FLAIR": (1000, 1300, 1100)}.items():
        img = np.where(brain, base, 0).astype(np.float32)
        img[lesion] = ring
        img[core] = c
        img *= 1 + rng.normal(0, 0.03, img.shape).astype(np.float32)
        path = folder / f"{seq}.nii.gz"
        nib.save(nib.Nifti1Image(np.rint(img).astype(np.int16), np.eye(4)), path)
        out[seq] = str(path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    if BRATS.exists():
        f = {s: str(BRATS / f"BraTS-GLI-00001-000-{n}.nii.gz") for s, n in
             (("T1C", "t1c"), ("T1", "t1n"), ("FLAIR", "t2f"))}
        source = "BraTS-GLI-00001-000 (240x240x155, 1 mm)"
    else:
        f = _synthetic(Path(tmp.name))
        source = "synthetic 240x240x155"
    configs = {"T1C": {"T1C": f["T1C"]}, "T1C+FLAIR": {"T1C": f["T1C"], "FLAIR": f["FLAIR"]}}
    if "T1" in f:
        configs["T1C+T1+FLAIR"] = {"T1C": f["T1C"], "T1": f["T1"], "FLAIR": f["FLAIR"]}
    env = os.environ | {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                          "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")}
    results = {"source": source, "load_average": os.getloadavg()[0]}
    for name, paths in configs.items():
        out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(paths), str(args.repeat)], env=env,
                             capture_output=True, text=True, check=True)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    per = results["T1C+FLAIR"]["total_s"]
    results["cohort_743_scans_on_2_workers_min"] = round(743 * per / 2 / 60, 1)
    print(json.dumps(results, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
