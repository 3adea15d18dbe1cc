#!/usr/bin/env bash
# The one GPU check (docs/gpu.md): on a machine with NVIDIA GPUs and its own PyTorch, with no network,
#
#     bash scripts/gpu-check.sh [--wheels DIR]      # ≤ 8 minutes, prints one table; from any directory
#     bash scripts/gpu-check.sh --cpu-dry-run       # the same steps at tiny sizes on CPU
#
# Steps: (0) install: the package from this checkout, with its entry points and `compress` script, probed
# from / (not from here, where the folder imports without any install); (1) the CUDA tests (sync-free hot
# loop, fused optimiser, bf16 autocast); (2) training throughput, MV-MR clip-vit-b16 (random weights) →
# resnet50 at 224 px, bf16, live vs cached teacher; (3) the same with torch.compile; (4) compress export
# --format onnx, then compress bench --backend ort-cuda (SKIP without onnxruntime-gpu); (5) trt-fp16: export
# and bench where `tensorrt` imports, cross-checked with trtexec or polygraphy (SKIP naming the package
# otherwise); (6) compress distill under torchrun (NCCL, SyncBatchNorm, bf16; gloo on CPU); (7)
# benchmarks/peers.py --probe (SKIP without Fashion-MNIST: ./gpu-data). A failed step is a FAIL row, not
# the end: the table always prints.
#
# Python: $PYTHON, else ./.venv/bin/python, else python3, with its own torch. What else is missing comes
# from the wheels folder (--wheels DIR or $GPU_CHECK_WHEELS; default ./gpu-wheels), filled on a machine with
# network by scripts/fill-gpu-wheels.sh for this machine's Python version (docs/gpu.md).
set -uo pipefail
DRY=0
WHEELS=${GPU_CHECK_WHEELS:-}
while [ $# -gt 0 ]; do
  case $1 in
    --cpu-dry-run) DRY=1 ;;
    --wheels) WHEELS=$2; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1 (use --cpu-dry-run or --wheels DIR)" >&2; exit 2 ;;
  esac
  shift
done
# relative paths in the arguments and $PYTHON mean the caller's directory: resolve them before the cd
abs() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }
[ -n "$WHEELS" ] && WHEELS=$(abs "$WHEELS")
PY=""
if [ -n "${PYTHON:-}" ]; then
  case $PYTHON in
    */*) PY=$(abs "$PYTHON") ;;
    *) PY=$(command -v "$PYTHON") || { echo "error: PYTHON=$PYTHON is not on PATH" >&2; exit 2; } ;;
  esac
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
ROOT=$PWD
WHEELS=${WHEELS:-$ROOT/gpu-wheels}
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY=$ROOT/.venv/bin/python; else PY=$(command -v python3); fi
fi
OUT=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
ROWS=$OUT/rows.tsv
: > "$ROWS"
row() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$ROWS"; }
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || { echo "error: $PY does not run" >&2; exit 2; }
FILL="fill it on a machine with network: bash scripts/fill-gpu-wheels.sh --python-version $PYVER --dir $WHEELS (docs/gpu.md)"

# --- 0. install: the package without deps (keeps the machine's torch); then what is missing, from the wheels
# folder; then the probe again, in full. Probed from / so that the checkout's folders do not stand in for the
# installed package.
probe() { (cd / && "$PY" "$ROOT/scripts/gpu_check_install.py" probe "$ROOT" "$@"); }
if CLI=$(probe --deps-later); then
  how_installed="already installed from $ROOT"
else
  echo "installing the package from $ROOT ($CLI)"
  if compgen -G "$WHEELS/setuptools-*.whl" > /dev/null; then
    how=(--no-index --find-links "$WHEELS")  # built offline: setuptools and wheel come from the folder
  elif "$PY" -c "
import importlib.util, sys, setuptools
v = tuple(int(x) for x in setuptools.__version__.split('.')[:2])
sys.exit(0 if v >= (70, 1) or (v >= (68, 0) and importlib.util.find_spec('wheel')) else 1)" 2> /dev/null; then
    how=(--no-build-isolation)  # the machine's setuptools builds it (70.1+ needs no wheel package)
  else
    how=()  # pip fetches setuptools itself: needs network (a bare Python 3.12 venv has no setuptools)
  fi
  "$PY" -m pip install --no-deps ${how[@]+"${how[@]}"} -e "$ROOT" > "$OUT/install.txt" 2>&1 \
    || { echo "error: pip install -e $ROOT failed (log: $OUT/install.txt); offline, the wheels folder must" \
              "hold setuptools and wheel: $FILL" >&2; exit 1; }
  how_installed="installed now (editable) from $ROOT"
fi
mapfile -t NEEDS < <("$PY" "$ROOT/scripts/gpu_check_install.py" needs)
if ! "$PY" -m pip install --no-index --find-links "$WHEELS" "${NEEDS[@]}" > "$OUT/deps.txt" 2>&1; then
  lack=$("$PY" "$ROOT/scripts/gpu_check_install.py" missing)
  only=""; [ -n "$lack" ] && only=", or just those: --only \"$lack\""
  echo "error: could not install from $WHEELS what this Python lacks (${lack:-a version outside the declared ranges};" \
       "log: $OUT/deps.txt); $FILL$only" >&2
  exit 1
fi
CLI=$(probe) || { echo "error: the package is installed but incomplete: $CLI" >&2; exit 1; }
added=$(sed -n 's/^Successfully installed //p' "$OUT/deps.txt" | wc -w)
row "install: package, plug-ins, compress script" PASS \
  "$how_installed; $added packages from the wheels folder ($OUT/deps.txt); $("$PY" "$ROOT/scripts/gpu_check_install.py" torch)"

if [ $DRY = 1 ]; then
  DEVICE=cpu; TEACHER=vit_tiny_patch16_224; STUDENT=resnet10t; SIZE=32; BATCH=4; STEPS=1; PREC=fp32
  COMPILE_BACKEND=aot_eager  # traces and compiles the graph without inductor's C++ codegen (minutes on 2 cores)
  RUN_ARGS=(--student resnet10t --recipe simclr --data synthetic --image-size 32 --batch-size 8 --max-steps 2
            --set "projector_dims=[16,16]" --device cpu); BENCH=ort-cpu
  NPROC=2  # two CPU processes on gloo: DDP, the global-batch BatchNorm and the gathered loss all run
  DDP_ARGS=("${RUN_ARGS[@]}" --precision fp32)
else
  DEVICE=cuda; TEACHER=vit_base_patch16_clip_224; STUDENT=resnet50; SIZE=224; BATCH=64; STEPS=20; PREC=bf16
  COMPILE_BACKEND=inductor
  RUN_ARGS=(--student resnet50 --recipe simclr --data synthetic --image-size 224 --batch-size 64 --max-steps 20
            --device cuda); BENCH=ort-cuda
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "error: no CUDA GPU visible to $PY's torch; on a CPU machine use --cpu-dry-run" >&2; exit 1; }
  NPROC=$("$PY" -c "import torch; print(min(torch.cuda.device_count(), 8))")
  DDP_ARGS=(--student resnet50 --recipe simclr --data synthetic --image-size 224 --batch-size $((32 * NPROC))
            --max-steps 20 --device cuda --precision bf16)
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

# bench's rows for one backend, from its --json: p50 (and the end-to-end p50 where the runner reports one)
bench_figures() {
  "$PY" - "$1" "$2" <<'EOF'
import json, sys
rows = [r for r in json.load(open(sys.argv[1]))["results"] if r["backend"] == sys.argv[2]]
def one(r):
    e2e = f", end to end {r['e2e_p50_ms']:.2f} ms" if r.get("e2e_p50_ms") not in (None, r["p50_ms"]) else ""
    return f"{r['format']} batch {r['batch']}: p50 {r['p50_ms']:.2f} ms{e2e}, {r['throughput_ips']:.0f} img/s"
print("; ".join(one(r) for r in rows))
EOF
}

# --- 4. export to ONNX, then bench on ONNX Runtime's CUDA provider (ort-cpu in the dry run)
RUN=$OUT/run
if "$CLI" distill "${RUN_ARGS[@]}" --out "$RUN" > "$OUT/distill.txt" 2>&1 \
   && "$CLI" export "$RUN" --format onnx > "$OUT/export.txt" 2>&1; then
  row "compress export --format onnx" PASS "$(ls "$RUN"/export/*.onnx 2>/dev/null | head -1 | xargs -r basename)"
  reason=$("$PY" -c "from compressor.export.runtime import ort_available; print(ort_available('$BENCH') or '')")
  if [ -n "$reason" ]; then
    row "compress bench --backend $BENCH" SKIP "$reason"
  elif "$CLI" bench "$RUN" --backend $BENCH --batch 1,8 --json "$OUT/bench.json" > "$OUT/bench.txt" 2>&1; then
    row "compress bench --backend $BENCH" PASS "$(bench_figures "$OUT/bench.json" $BENCH)"
  else
    row "compress bench --backend $BENCH" FAIL "$(tail -1 "$OUT/bench.txt") (log: $OUT/bench.txt)"
  fi
else
  row "compress export --format onnx" FAIL "$(tail -1 "$OUT/export.txt" 2>/dev/null || tail -1 "$OUT/distill.txt")"
fi

# --- 5. TensorRT: the FP16 engine, built and run where `tensorrt` imports; the export is asked for everywhere,
# so on a machine without TensorRT the CLI's own refusal (one line, exit 2, naming the package) is what is shown.
TRT_ROW="compress export --format trt-fp16, bench --backend trt"
XCHECK_ROW="engine cross-check (trtexec or polygraphy)"
CUDA_MAJOR=$("$PY" -c "import torch; print((torch.version.cuda or '12').split('.')[0])")
CARRY="TensorRT's wheels come from NVIDIA's index (pypi.nvidia.com; PyPI holds only an sdist that fetches them):"
CARRY+=" pip download --no-deps -d gpu-wheels --extra-index-url https://pypi.nvidia.com --python-version $PYVER"
CARRY+=" --only-binary=:all: tensorrt-cu$CUDA_MAJOR tensorrt-cu$CUDA_MAJOR-libs tensorrt-cu$CUDA_MAJOR-bindings"
CARRY+=" (the libs wheel is far larger than the rest; an image that ships TensorRT, e.g. NGC's, is the easier way)"
ENGINE=""
if [ ! -f "$RUN/student.safetensors" ]; then
  row "$TRT_ROW" FAIL "no run to export (distill failed: $OUT/distill.txt)"
else
  "$CLI" export "$RUN" --format trt-fp16 > "$OUT/trt-export.txt" 2>&1
  rc=$?
  if [ $rc = 0 ]; then
    ENGINE=$(ls "$RUN"/export/*.engine "$RUN"/export/*.plan 2>/dev/null | head -1)
    if "$CLI" bench "$RUN" --backend trt --batch 1,8 --json "$OUT/bench-trt.json" > "$OUT/bench-trt.txt" 2>&1; then
      row "$TRT_ROW" PASS "$(basename "$ENGINE"); $(bench_figures "$OUT/bench-trt.json" trt)"
    else
      row "$TRT_ROW" FAIL "engine built; bench: $(tail -1 "$OUT/bench-trt.txt") (log: $OUT/bench-trt.txt)"
    fi
  elif [ $rc = 2 ] && ! "$PY" -c "import tensorrt" 2> /dev/null; then
    row "$TRT_ROW" SKIP "$(sed -n 's/^error: //p' "$OUT/trt-export.txt" | head -1) | $CARRY"
  elif [ $rc = 2 ] && [ $DRY = 1 ]; then  # tensorrt imports but no GPU: the refusal is the expected answer
    row "$TRT_ROW" SKIP "$(sed -n 's/^error: //p' "$OUT/trt-export.txt" | head -1)"
  else
    row "$TRT_ROW" FAIL "exit $rc: $(tail -1 "$OUT/trt-export.txt") (log: $OUT/trt-export.txt)"
  fi
fi
# the engine checked by NVIDIA's own tools: trtexec times it (GPU compute median, beside bench's p50 above);
# polygraphy runs it on the same inputs as ONNX Runtime on model.onnx and compares the outputs
POLYGRAPHY=$(dirname "$PY")/polygraphy; [ -x "$POLYGRAPHY" ] || POLYGRAPHY=$(command -v polygraphy || true)
if [ -z "$ENGINE" ]; then
  row "$XCHECK_ROW" SKIP "no engine was built here"
else
  INPUT=$("$PY" -c "import onnx, sys; print(onnx.load(sys.argv[1]).graph.input[0].name)" "$RUN/export/model.onnx")
  SHAPE="1x3x${SIZE}x${SIZE}"
  if command -v trtexec > /dev/null; then
    if trtexec --loadEngine="$ENGINE" --shapes="$INPUT:$SHAPE" > "$OUT/trtexec.txt" 2>&1; then
      row "$XCHECK_ROW" PASS "trtexec batch 1: $(grep -m1 'GPU Compute Time' "$OUT/trtexec.txt" | sed 's/.*GPU Compute Time: //')"
    else
      row "$XCHECK_ROW" FAIL "trtexec: $(tail -1 "$OUT/trtexec.txt") (log: $OUT/trtexec.txt)"
    fi
  elif [ -n "$POLYGRAPHY" ]; then
    if "$POLYGRAPHY" run "$RUN/export/model.onnx" --onnxrt --input-shapes "$INPUT:[1,3,$SIZE,$SIZE]" \
         --save-inputs "$OUT/pg-in.json" --save-outputs "$OUT/pg-ort.json" > "$OUT/polygraphy.txt" 2>&1 \
       && "$POLYGRAPHY" run "$ENGINE" --model-type engine --trt --load-inputs "$OUT/pg-in.json" \
         --load-outputs "$OUT/pg-ort.json" --atol 0.05 --rtol 0.05 >> "$OUT/polygraphy.txt" 2>&1; then
      row "$XCHECK_ROW" PASS "polygraphy: the engine matches ONNX Runtime on model.onnx (atol/rtol 0.05, FP16)"
    else
      row "$XCHECK_ROW" FAIL "polygraphy: $(grep -m1 -E 'FAILED|Error' "$OUT/polygraphy.txt") (log: $OUT/polygraphy.txt)"
    fi
  else
    row "$XCHECK_ROW" SKIP "neither trtexec (TensorRT's tar and containers) nor polygraphy (pip download polygraphy: pure Python) here"
  fi
fi

# --- 6. distributed training as docs/distributed.md launches it: torchrun, one process per GPU (NCCL,
# SyncBatchNorm, bf16); two CPU processes on gloo in the dry run. One GPU means one process, where the engine
# trains without a process group: the row then proves the launcher only, and says so.
DDP_ROW="torchrun --nproc_per_node $NPROC compress distill ($DEVICE, ${DDP_ARGS[*]: -1})"
if "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" "$CLI" distill "${DDP_ARGS[@]}" \
     --out "$OUT/ddp" > "$OUT/ddp.txt" 2>&1; then
  joined=$(grep -m1 -o "joined the [a-z]* process group" "$OUT/ddp.txt")
  ips=$("$PY" -c "import json, sys; print('%.0f' % json.loads(open(sys.argv[1]).read().splitlines()[-1])['ips'])" \
        "$OUT/ddp/metrics.jsonl" 2>/dev/null)
  if [ "$NPROC" -gt 1 ]; then
    row "$DDP_ROW" PASS "rank 0 ${joined:-did not log joining a process group}; DDP, $([ $DEVICE = cuda ] && echo SyncBatchNorm || echo global-batch BatchNorm); ${ips:-?} img/s"
  else
    row "$DDP_ROW" PASS "1 process (one GPU): the launcher only, no process group (DDP, NCCL and SyncBatchNorm start at 2 GPUs); ${ips:-?} img/s"
  fi
else
  row "$DDP_ROW" FAIL "$(grep -m1 -E 'Error|error' "$OUT/ddp.txt" || tail -1 "$OUT/ddp.txt") (log: $OUT/ddp.txt)"
fi

# --- 7. the peer methods' table on this machine: every run of it for a few steps, its training time projected
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
