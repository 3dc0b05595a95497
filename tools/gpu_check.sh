#!/usr/bin/env bash
# The GPU check: bash tools/gpu_check.sh [--cpu] [--cases zero2,zero3+ckpt] [--json out.json]
#   Hardware: one CUDA GPU; software: python with torch and transformers only (no network, no
#   ray/vllm/deepspeed/omegaconf). Prints two tables in under 10 minutes (tools/gpu_check.py).
# Before, on a machine with network and the project's .venv (CPU torch), bring the wheels:
#   bash tools/gpu_check.sh --fetch-wheels      # fills .gpu_wheels/ (gitignored, ~20 MB)
# and copy the checkout with .gpu_wheels/ to the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
WHEELS=.gpu_wheels

if [ "${1:-}" = "--fetch-wheels" ]; then
  VENV_PY="${VENV_PY:-.venv/bin/python}"
  mkdir -p "$WHEELS"
  # deepspeed is an sdist: build its pure-Python wheel with the venv's torch (no build
  # isolation, so pip does not pull a CUDA torch); its ops JIT-compile on the GPU machine.
  "$VENV_PY" -m pip download -q --no-deps -d "$WHEELS" deepspeed==0.19.8
  DS_BUILD_OPS=0 "$VENV_PY" -m pip wheel -q --no-deps --no-build-isolation -w "$WHEELS" "$WHEELS"/deepspeed-0.19.8.tar.gz
  # deepspeed's small dependencies a torch+transformers machine lacks (versions tested here)
  "$VENV_PY" -m pip download -q --no-deps --only-binary=:all: -d "$WHEELS" einops==0.8.2 hjson==3.1.0 \
    py-cpuinfo==9.0.0 pydantic==2.14.4 annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0
  for v in 3.10 3.11 3.12 3.13 3.14; do  # binary wheels for whichever Python the GPU machine has
    "$VENV_PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$v" \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d "$WHEELS" pydantic-core==2.50.5 msgpack==1.2.4 psutil==7.2.2 ninja==1.13.2
  done
  ls "$WHEELS"
  exit 0
fi

"$PY" -c "import torch, transformers" || { echo "gpu_check: needs torch and transformers in $PY"; exit 1; }
# one site folder per Python version: binary wheels (pydantic-core, msgpack) differ
SITE="$WHEELS/site-$("$PY" -c 'import sys; print("%d%d" % sys.version_info[:2])')"
if [ -d "$WHEELS" ]; then
  "$PY" tools/gpu_check.py --unpack-wheels "$WHEELS" --site "$SITE"
fi
export PYTHONPATH="$PWD:$PWD/$SITE${PYTHONPATH:+:$PYTHONPATH}"
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-$PWD/$WHEELS/torch_extensions}"
timeout 600 "$PY" tools/gpu_check.py "$@"
