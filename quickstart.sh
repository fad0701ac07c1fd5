#!/usr/bin/env bash
# Set up pfs in ./.venv (once) and run the demo or the tests.
#   bash quickstart.sh demo    # synthetic cohort -> extract -> compare -> plots -> HTML report
#   bash quickstart.sh test    # the whole test suite
set -euo pipefail
# Report text is UTF-8 whatever the machine locale says.
export PYTHONUTF8=1
cd "$(dirname "$0")"

PY=${PYTHON:-python3.11}
VENV=.venv
STAMP=$VENV/.pfs-installed

setup() {
    if ! command -v "$PY" >/dev/null 2>&1; then
        echo "quickstart: $PY not found; pfs needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
        exit 2
    fi
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    local want
    want=$(sha256sum pyproject.toml | cut -c1-16)
    if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
        "$VENV/bin/python" -m pip install -q --upgrade pip
        # The CPU build of torch first, pinned: an unpinned torch (pulled in by monai) is a multi-GB CUDA build.
        "$VENV/bin/python" -m pip install -q torch==2.13.0
        "$VENV/bin/python" -m pip install -q -e ".[monai,dask,test]" --config-settings editable_mode=lenient
        # nnU-Net v2 (segmenter "nnunet", optional extra pfs[nnunet]) for its tests: the package and what its
        # inference imports, without the training stack (torchvision, timm, hub clients) its full install pulls.
        "$VENV/bin/python" -m pip install -q --no-deps nnunetv2==2.8.1 acvl-utils==0.2.6 \
            dynamic-network-architectures==0.4.4 batchgenerators==0.25.5
        "$VENV/bin/python" -m pip install -q "blosc2>=3.3.2" "scikit-image>=0.19.3"
        echo "$want" > "$STAMP"
    fi
    # pip check does not notice a pyarrow built for NumPy 2, so import every dependency for real.
    "$VENV/bin/python" - <<'PYEOF'
import importlib
mods = ["numpy", "pandas", "pyarrow", "scipy", "typer", "rich", "lifelines", "matplotlib", "nibabel",
        "SimpleITK", "pydicom", "nilearn", "spacy", "medspacy", "torch", "monai", "dask", "distributed",
        "pytest", "hypothesis", "nbclient", "nbformat", "ipykernel"]
for m in mods:
    importlib.import_module(m)
import pandas as pd, io
pd.DataFrame({"a": [1]}).to_parquet(io.BytesIO())  # pyarrow really works with this numpy
print("quickstart: all dependencies import")
PYEOF
}

case "${1:-}" in
    demo)
        setup
        shift
        "$VENV/bin/pfs" demo "$@"
        ;;
    test)
        setup
        shift
        "$VENV/bin/python" -m pytest -q "$@"
        ;;
    *)
        echo "usage: bash quickstart.sh demo|test" >&2
        exit 2
        ;;
esac
