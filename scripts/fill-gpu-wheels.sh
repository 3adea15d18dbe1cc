#!/usr/bin/env bash
# Fill the GPU check's wheels folder on a machine with network, for the GPU machine's Python (docs/gpu.md):
#
#     bash scripts/fill-gpu-wheels.sh --python-version 3.12 [--dir gpu-wheels] [--arch x86_64] [--glibc 2.28] [--ort-gpu]
#     bash scripts/fill-gpu-wheels.sh --python-version 3.12 --only "onnxslim pytest" [--no-deps]   # what one image lacks
#
# What goes in: every dependency of the package except torch and torchvision (pyproject.toml's list, read
# here, with their own dependencies; timm without its torch/torchvision), pytest for the check's test row,
# and setuptools + wheel, so that `scripts/gpu-check.sh` builds and installs the package there with no
# network (a bare Python 3.12 venv has no setuptools). Binary wheels only, for --python-version (find it on
# the GPU machine: python3 -c 'import sys; print(sys.version)'), --arch (uname -m there; aarch64 for a Jetson
# or a Grace machine) and --glibc (ldd --version there; default 2.28, which PyPI's own torch wheels already
# need): wheels tagged manylinux for that glibc or any older one. --ort-gpu adds onnxruntime-gpu for the
# ort-cuda row (about 250 MB). --only takes just the named packages (with their dependencies, unless --no-deps)
# and setuptools + wheel: for an image that has the rest (the check installs only what is missing).
# The machine's own torch and torchvision stay: a torchvision matching that torch is not downloaded here.
set -euo pipefail
cd "$(dirname "$0")/.."
PYV=""
DIR=gpu-wheels
ARCH=x86_64
GLIBC=2.28
ORT_GPU=0
ONLY=""
NODEPS=()
while [ $# -gt 0 ]; do
  case $1 in
    --python-version) PYV=$2; shift ;;
    --dir) DIR=$2; shift ;;
    --arch) ARCH=$2; shift ;;
    --glibc) GLIBC=$2; shift ;;
    --ort-gpu) ORT_GPU=1 ;;
    --only) ONLY=$2; shift ;;
    --no-deps) NODEPS=(--no-deps) ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$PYV" ] || { echo "error: --python-version X.Y is required: the GPU machine's Python" \
  "(python3 -c 'import sys; print(sys.version)' there)" >&2; exit 2; }
PY=${PYTHON:-python3}

# pyproject.toml's dependencies, less torch/torchvision (the machine's own) and timm (downloaded without deps)
mapfile -t REQS < <("$PY" - <<'EOF'
import re
try:
    import tomllib
except ImportError:  # Python 3.10: pip vendors the same parser
    from pip._vendor import tomli as tomllib
with open("pyproject.toml", "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
for dep in deps:
    name = re.match(r"[A-Za-z0-9_.-]+", dep).group(0).lower()
    if name not in ("torch", "torchvision"):
        print(dep)
EOF
)
TIMM=(); REST=()
for r in "${REQS[@]}"; do case $r in timm*) TIMM+=("$r") ;; *) REST+=("$r") ;; esac; done
mkdir -p "$DIR"
# every manylinux tag the target's glibc takes, spelled out: pip before 24 does not widen manylinux_2_28 by itself
PLATFORMS=()
for ((minor = ${GLIBC#2.}; minor >= 17; minor--)); do PLATFORMS+=(--platform "manylinux_2_${minor}_$ARCH"); done
PLATFORMS+=(--platform "manylinux2014_$ARCH")
common=(-q -d "$DIR" --only-binary=:all: --python-version "$PYV" "${PLATFORMS[@]}")
if [ -n "$ONLY" ]; then
  # shellcheck disable=SC2086  # a list of package names
  "$PY" -m pip download "${common[@]}" ${NODEPS[@]+"${NODEPS[@]}"} $ONLY "setuptools>=68" wheel
else
  # timm's own dependencies other than torch/torchvision: huggingface_hub (and theirs), pyyaml, safetensors
  "$PY" -m pip download "${common[@]}" "${REST[@]}" huggingface_hub pytest "setuptools>=68" wheel
  "$PY" -m pip download "${common[@]}" --no-deps "${TIMM[@]}"
fi
[ $ORT_GPU = 1 ] && "$PY" -m pip download "${common[@]}" onnxruntime-gpu
echo "$(ls "$DIR" | wc -l) wheels, $(du -sh "$DIR" | cut -f1), in $DIR for Python $PYV (manylinux, glibc <= $GLIBC, $ARCH)"
