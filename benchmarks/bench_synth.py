"""Time and disk size of `pfs synth` (default: 92 patients with images, as in the reference study).

Usage: .venv/bin/python benchmarks/bench_synth.py [--patients 92] [--seed 0] [--no-images]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from pfs.synth import synthesize


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=92)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-images", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = synthesize(Path(tmp) / "cohort", patients=args.patients, seed=args.seed, images=not args.no_images)
        elapsed = time.perf_counter() - t0
        files = [p for p in res.root.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        export_size = sum(p.stat().st_size for p in res.export.rglob("*") if p.is_file())
        n_nifti = sum(1 for p in res.export.rglob("*.nii.gz"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"pfs synth --patients {args.patients} --seed {args.seed}{' --no-images' if args.no_images else ''}")
    print(f"  wall time       {elapsed:8.1f} s")
    print(f"  files           {len(files):8d}  ({n_nifti} NIfTI in the export)")
    print(f"  disk, all       {size / 2**20:8.1f} MiB")
    print(f"  disk, export    {export_size / 2**20:8.1f} MiB")
    print(f"  peak RSS        {peak:8.0f} MiB")


if __name__ == "__main__":
    main()
