#!/usr/bin/env bash
# Make Fashion-MNIST available to `make test` and `make demo` (no download at run time):
#   1. $COMPRESS_DATA (or $COMPRESS_DATA/fashion-mnist) holding the four *-ubyte.gz files: nothing to do;
#   2. the Debian package dataset-fashion-mnist's folder (/usr/share/datasets/fashion-mnist): nothing to do;
#   3. otherwise install that package with apt (root, or passwordless sudo).
# When neither works: ONE line naming both ways (apt, or the four files in a folder named by COMPRESS_DATA, which
# needs no root and works on any OS). `--require` (make demo) makes that an error, exit 1; without it (make test)
# it is a warning and the tests that need the data are skipped. FASHION_MNIST_SYSTEM_DIR overrides the package's
# folder (tests use it).
set -u
require=0
[ "${1:-}" = "--require" ] && require=1
dir=${FASHION_MNIST_SYSTEM_DIR:-/usr/share/datasets/fashion-mnist}
have() { [ -f "$1/train-images-idx3-ubyte.gz" ] || [ -f "$1/fashion-mnist/train-images-idx3-ubyte.gz" ]; }
if [ -n "${COMPRESS_DATA:-}" ] && have "$COMPRESS_DATA"; then exit 0; fi
if have "$dir"; then exit 0; fi
why="apt-get is not available"
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
  $SUDO apt-get update -qq >/dev/null 2>&1 || true
  # apt's own complaint, kept to its last line for the one-line message below
  if out=$(DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist 2>&1 >/dev/null); then
    have "$dir" && exit 0
    out="the package installed no files in $dir"
  fi
  why="apt-get install dataset-fashion-mnist failed: $(printf '%s\n' "$out" | tail -n 1)"
fi
level=warning; [ "$require" = 1 ] && level=error
then_what="the tests that need it will be skipped"; [ "$require" = 1 ] && then_what="it is needed here"
echo "$level: Fashion-MNIST not found (${COMPRESS_DATA:+COMPRESS_DATA=$COMPRESS_DATA, }$dir) and not installed" \
     "($why); $then_what. Either install the Debian package (sudo apt-get install dataset-fashion-mnist), or," \
     "on any OS without root, download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz," \
     "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from" \
     "https://github.com/zalandoresearch/fashion-mnist (data/fashion) into a folder and set" \
     "COMPRESS_DATA=/that/folder (or pass --data-root /that/folder)" >&2
[ "$require" = 1 ] && exit 1
exit 0
