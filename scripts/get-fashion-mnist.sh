#!/usr/bin/env bash
# Make Fashion-MNIST available at /usr/share/datasets/fashion-mnist (Debian: dataset-fashion-mnist).
set -u
dir=/usr/share/datasets/fashion-mnist
if [ -n "${COMPRESS_DATA:-}" ] && [ -f "$COMPRESS_DATA/train-images-idx3-ubyte.gz" ]; then exit 0; fi
if [ -f "$dir/train-images-idx3-ubyte.gz" ]; then exit 0; fi
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo -n"
if command -v apt-get >/dev/null; then
  echo "Fashion-MNIST not found; installing the Debian package dataset-fashion-mnist" >&2
  $SUDO apt-get update -qq >/dev/null 2>&1 || true
  if DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null; then exit 0; fi
fi
echo "warning: Fashion-MNIST is not installed and apt is unusable; set COMPRESS_DATA to a folder with the" \
     "four *-ubyte.gz files (tests that need it will be skipped)" >&2
exit 0
