#!/usr/bin/env bash
# The one GPU check (docs/gpu.md): on a machine with one NVIDIA GPU and its own PyTorch, with no network,
#
#     bash scripts/gpu-check.sh [--wheels DIR]      # ≤ 8 minutes, prints one table
#     bash scripts/gpu-check.sh --cpu-dry-run       # the same steps at tiny sizes on CPU
#
# Steps: (1) the CUDA tests (sync-free hot loop under set_sync_debug_mode("error"), fused optimiser, bf16
# autocast); (2) training throughput, MV-MR clip-vit-b16 (timm's vit_base_patch16_clip_224, random weights)
# → resnet50 at 224 px, bf16, live vs cached teacher; (3) the same step with torch.compile; (4) compress
# export --format onnx, then compress bench --backend ort-cuda (skipped, with the reason, without
# onnxruntime-gpu); (5) benchmarks/peers.py --probe: the peer tables' training time on this machine,
# projected from 30 steps of each run (skipped without Fashion-MNIST: ./gpu-data). A failed step is a FAIL
# row, not the end: the table always prints.
#
# Install: the machine's own python (or $PYTHON) with its torch, timm, onnx, onnxruntime, typer and rich;
# the package goes in without its dependencies, and anything else missing comes from the wheels folder
# (default ./gpu-wheels; fill it on a machine with network: see docs/gpu.md).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DRY=0
WHEELS=${GPU_CHECK_WHEELS:-$ROOT/gpu-wheels}
while [ $# -gt 0 ]; do
  case $1 in
    --cpu-dry-run) DRY=1 ;;
    --wheels) WHEELS=$2; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1 (use --cpu-dry-run or --wheels DIR)" >&2; exit 2 ;;
  esac
  shift
done
PY=${PYTHON:-python3}
[ -x "$ROOT/.venv/bin/python" ] && [ -z "${PYTHON:-}" ] && PY=$ROOT/.venv/bin/python
OUT=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
ROWS=$OUT/rows.tsv
: > "$ROWS"
row() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$ROWS"; }

# --- install: the package itself without deps (keeps the machine's torch), the rest from the wheels folder
if ! "$PY" -c "import compressor" 2>/dev/null; then
  "$PY" -m pip install -q --no-deps --no-build-isolation -e "$ROOT" || { echo "error: pip install -e . failed" >&2; exit 1; }
fi
missing=$("$PY" - <<'EOF'
import importlib.util
need = {"safetensors": "safetensors", "yaml": "pyyaml", "onnxslim": "onnxslim", "pytest": "pytest",
        "timm": "timm", "onnx": "onnx", "onnxruntime": "onnxruntime", "typer": "typer", "rich": "rich",
        "PIL": "pillow", "numpy": "numpy"}
print(" ".join(pkg for mod, pkg in need.items() if importlib.util.find_spec(mod) is None))
EOF
)
if [ -n "$missing" ]; then
  if [ -d "$WHEELS" ]; then
    "$PY" -m pip install -q --no-index --find-links "$WHEELS" $missing || { echo "error: could not install $missing from $WHEELS" >&2; exit 1; }
  else
    echo "error: missing $missing and no wheels folder $WHEELS (fill it with pip download: docs/gpu.md)" >&2; exit 1
  fi
fi

if [ $DRY = 1 ]; then
  DEVICE=cpu; TEACHER=vit_tiny_patch16_224; STUDENT=resnet10t; SIZE=32; BATCH=4; STEPS=1; PREC=fp32
  COMPILE_BACKEND=aot_eager  # traces and compiles the graph without inductor's C++ codegen (minutes on 2 cores)
  RUN_ARGS=(--student resnet10t --recipe simclr --data synthetic --image-size 32 --batch-size 8 --max-steps 2
            --set projector_dims=[16,16] --device cpu); BENCH=ort-cpu
else
  DEVICE=cuda; TEACHER=vit_base_patch16_clip_224; STUDENT=resnet50; SIZE=224; BATCH=64; STEPS=20; PREC=bf16
  COMPILE_BACKEND=inductor
  RUN_ARGS=(--student resnet50 --recipe simclr --data synthetic --image-size 224 --batch-size 64 --max-steps 20
            --device cuda); BENCH=ort-cuda
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "error: no CUDA GPU visible to $PY's torch; on a CPU machine use --cpu-dry-run" >&2; exit 1; }
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"

# --- 1. the CUDA tests (on CPU they run and skip with their reason)
"$PY" -m pytest -rs -p no:cacheprovider tests/gpu/test_cuda.py \
  "tests/cli/test_bad_inputs.py::test_the_hot_loop_does_not_sync_with_the_gpu_between_log_steps" > "$OUT/tests.txt" 2>&1
rc=$?
summary=$(grep -E "(passed|skipped|failed|error)" "$OUT/tests.txt" | tail -1)
if [ $rc = 0 ]; then row "CUDA tests (sync-free loop, fused optimiser, bf16)" PASS "$summary"
else row "CUDA tests (sync-free loop, fused optimiser, bf16)" FAIL "$summary (log: $OUT/tests.txt)"; fi

# --- 2 and 3. throughput, live vs cached teacher; eager then compiled
for mode in eager compile; do
  extra=(); [ $mode = compile ] && extra=(--compile --compile-backend "$COMPILE_BACKEND")
  if "$PY" benchmarks/train_throughput.py --teacher $TEACHER --students $STUDENT --image-size $SIZE --batch $BATCH \
      --steps $STEPS --loader-images 4 --device $DEVICE --precision $PREC "${extra[@]}" > "$OUT/tp-$mode.txt" 2>&1; then
    line=$(grep -m1 -- "-> $STUDENT" "$OUT/tp-$mode.txt" | sed 's/^[^:]*: //')
    row "throughput $TEACHER -> $STUDENT ${SIZE}px $PREC ($mode)" PASS "$line"
  else
    row "throughput $TEACHER -> $STUDENT ${SIZE}px $PREC ($mode)" FAIL "$(tail -1 "$OUT/tp-$mode.txt") (log: $OUT/tp-$mode.txt)"
  fi
done

# --- 4. export to ONNX, then bench on ONNX Runtime's CUDA provider (ort-cpu in the dry run)
RUN=$OUT/run
if "$PY" -m compressor distill "${RUN_ARGS[@]}" --out "$RUN" > "$OUT/distill.txt" 2>&1 \
   && "$PY" -m compressor export "$RUN" --format onnx > "$OUT/export.txt" 2>&1; then
  row "compress export --format onnx" PASS "$(ls "$RUN"/export/*.onnx 2>/dev/null | head -1 | xargs -r basename)"
  reason=$("$PY" -c "from compressor.export.runtime import ort_available; print(ort_available('$BENCH') or '')")
  if [ -n "$reason" ]; then
    row "compress bench --backend $BENCH" SKIP "$reason"
  elif "$PY" -m compressor bench "$RUN" --backend $BENCH --batch 1,8 --json "$OUT/bench.json" > "$OUT/bench.txt" 2>&1; then
    row "compress bench --backend $BENCH" PASS "$("$PY" -c "
import json
rows = [r for r in json.load(open('$OUT/bench.json'))['results'] if r['backend'] == '$BENCH']
print('; '.join(f\"{r['format']} batch {r['batch']}: p50 {r['p50_ms']:.2f} ms, {r['throughput_ips']:.0f} img/s\" for r in rows))")"
  else
    row "compress bench --backend $BENCH" FAIL "$(tail -1 "$OUT/bench.txt") (log: $OUT/bench.txt)"
  fi
else
  row "compress export --format onnx" FAIL "$(tail -1 "$OUT/export.txt" 2>/dev/null || tail -1 "$OUT/distill.txt")"
fi

# --- 5. the peer methods' table on this machine: every run of it for a few steps, its training time projected
# from their images/s (the prepared GPU tables take hours; this says which fit a lease). Fashion-MNIST comes
# from $COMPRESS_DATA, ./gpu-data (its four *-ubyte.gz files, carried to the machine) or the Debian package.
[ -z "${COMPRESS_DATA:-}" ] && [ -f "$ROOT/gpu-data/train-images-idx3-ubyte.gz" ] && export COMPRESS_DATA=$ROOT/gpu-data
if [ $DRY = 1 ]; then PROBE=(--quick --probe 3 --recipes dogo --device cpu); else PROBE=(--gpu --device cuda --probe 30); fi
if ! "$PY" -c "import sys; from compressor.data.datasets import find_fashion_mnist; sys.exit(find_fashion_mnist() is None)"; then
  row "peers.py --probe (the peer tables' cost here)" SKIP "no Fashion-MNIST: copy its four *-ubyte.gz files to ./gpu-data (docs/gpu.md)"
else
  timeout "${PEERS_PROBE_TIMEOUT:-240}" "$PY" benchmarks/peers.py --out "$OUT/peers-probe" --seeds 3 4 5 "${PROBE[@]}" \
    > "$OUT/peers-probe.txt" 2>&1
  rc=$?
  probed=$("$PY" -c "
import json, pathlib
p = pathlib.Path('$OUT/peers-probe/probe.json')
res = json.loads(p.read_text()) if p.is_file() else {}
print('; '.join(f\"{r} {v['projected_minutes']:.0f} min\" for r, v in res.items()))")
  if [ $rc = 0 ]; then
    row "peers.py --probe (the peer tables' cost here)" PASS "$probed (training, 3 seeds; probe.md)"
  else  # a timeout (124) keeps the recipes probed before it
    row "peers.py --probe (the peer tables' cost here)" FAIL "exit $rc (124: stopped after ${PEERS_PROBE_TIMEOUT:-240} s); probed: ${probed:-none}; log: $OUT/peers-probe.txt"
  fi
fi

echo
"$PY" - "$ROWS" <<'EOF'
import sys
rows = [("step", "result", "figures")] + [tuple(line.rstrip("\n").split("\t")) for line in open(sys.argv[1])]
w0, w1 = (max(len(r[i]) for r in rows) for i in (0, 1))
for r in rows:
    print(f"{r[0]:<{w0}}  {r[1]:<{w1}}  {r[2]}")
EOF
[ $DRY = 1 ] && echo "(cpu dry run: tiny sizes; the figures mean nothing, the steps ran)"
echo "logs: $OUT"
! grep -q $'\tFAIL\t' "$ROWS"
