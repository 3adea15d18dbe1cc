#!/usr/bin/env bash
# The smoke tier on the oldest supported torch (README, "Supported PyTorch"), as a stranger's GPU machine
# would run it; CI runs it after `make test`, which covers the pinned torch (constraints.txt).
#
#     bash scripts/old-torch-smoke.sh          # ~6 minutes on 2 cores, ~5 GB under $TMPDIR, removed after
#
# 1. A fresh venv (Python 3.12 where there is one: the lent GPU machines' Python, whose venv has no
#    setuptools) holding only torch $OLD_TORCH and its torchvision: no development install, no constraints.
#    PyPI's wheel is the CUDA build (the CPU-only wheels live on an index this CI cannot reach); it runs on CPU.
# 2. The wheels folder filled as docs/gpu.md tells a user (scripts/fill-gpu-wheels.sh for that Python).
# 3. Offline from here on (pip sees only the wheels folder), from a directory outside the checkout:
#    scripts/gpu-check.sh --cpu-dry-run (the install decision, every row; a missing wheel fails here), then
#    through the installed `compress` script a teacher distill (mvmr), an INT8 export with its parity check,
#    a bench of torch and ONNX Runtime, and the tests nearest the torch API (DDP, every recipe's step).
set -euo pipefail
OLD_TORCH=${OLD_TORCH:-2.11.0}
OLD_TORCHVISION=${OLD_TORCHVISION:-0.26.0}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PYBIN=${OLD_TORCH_PYTHON:-}
if [ -z "$PYBIN" ]; then
  for cand in python3.12 /root/.pyenv/versions/3.12*/bin/python3.12 python3; do
    if "$cand" -c "import venv" 2> /dev/null; then PYBIN=$cand; break; fi
  done
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/old-torch.XXXXXX")
[ "${KEEP_OLD_TORCH_VENV:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
V=$WORK/venv
# none of this machine's pip settings (its find-links, its constraint file): what a stranger's pip does
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1
unset PIP_FIND_LINKS PIP_CONSTRAINT PIP_EXTRA_INDEX_URL PIP_INDEX_URL
t0=$SECONDS
"$PYBIN" -m venv "$V"
"$V/bin/python" -m pip install -q "torch==$OLD_TORCH" "torchvision==$OLD_TORCHVISION"
PYV=$("$V/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PYTHON=$PYBIN bash scripts/fill-gpu-wheels.sh --python-version "$PYV" --dir "$WORK/wheels"
echo "venv ($("$V/bin/python" -c 'import torch; print("torch", torch.__version__)'), Python $PYV) and wheels: $((SECONDS - t0)) s"

export PIP_NO_INDEX=1  # offline from here: only the wheels folder
cd "$WORK"
t1=$SECONDS
PYTHON=$V/bin/python GPU_CHECK_WHEELS=$WORK/wheels bash "$ROOT/scripts/gpu-check.sh" --cpu-dry-run
echo "dry run: $((SECONDS - t1)) s"

t2=$SECONDS
C=$V/bin/compress
"$C" distill --teacher timm:resnet18 --teacher-weights random --student resnet10t --recipe mvmr --data synthetic \
  --image-size 32 --batch-size 8 --max-steps 3 --device cpu --out "$WORK/run"
"$C" export "$WORK/run" --format onnx-int8
"$C" bench "$WORK/run" --backend torch,ort-cpu --batch 1 --json "$WORK/bench.json"
"$V/bin/python" - "$WORK/bench.json" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["results"]
backends = {r["backend"] for r in rows}
assert {"torch", "ort-cpu"} <= backends, f"bench rows: {backends}"
print("bench:", "; ".join(f"{r['backend']} {r['format']} p50 {r['p50_ms']:.1f} ms" for r in rows))
EOF
cd "$ROOT"
echo "smoke on torch $OLD_TORCH so far: $((SECONDS - t2)) s; in all $((SECONDS - t0)) s; then the tests:"
# the tests nearest the torch API: 2 gloo processes = 1 process (DDP, global-batch BatchNorm), each recipe's CPU step;
# pytest's summary line is this script's last line
"$V/bin/python" -m pytest -o addopts="" -q -p no:cacheprovider tests/recipes/test_every_recipe.py \
  "tests/engine/test_distributed.py::test_two_gloo_processes_give_the_weights_of_one"
