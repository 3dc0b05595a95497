"""tools/gpu_check.py: its CPU mode end to end on a machine emulating the bare GPU box (Ray,
omegaconf and vLLM unimportable), its wheel unpacking and its table."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_cpu_mode_prints_the_table_without_ray_or_omegaconf(tmp_path):
    out = tmp_path / "result.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--cpu", "--cases", "zero2",
                          "--block-imports", "ray,omegaconf,vllm", "--json", str(out)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "| case" in run.stdout and "| zero2 " in run.stdout and "FAIL" not in run.stdout
    row = json.loads(out.read_text())["results"]["zero2"]
    assert row["ratio_off"] == 0.0  # recomputed old log-probs: exactly on-policy
    assert 0.0 < row["gap_mean"] <= row["gap_max"] < 0.5  # bf16 engine vs bf16 trainer
    assert row["post_sync_gap"] < 1e-3  # the engine holds the trainer's weights
    assert row["ipc_gap"] < 1e-3 and row["ipc_s"] > 0  # so does the engine fed by handle from another process
    assert row["step_s"] > 0 and row["peak_gib"] >= row["train_peak_gib"] > 0
    components = json.loads(out.read_text())["components"]
    sender = components["sync sender peak MiB (5 syncs)"]
    assert sender["ok"] and sender["buckets"] > 2 and sender["buffers_allocated"] == 2
    assert components["hf generate tok/s, eager"]["value"] > 0
    assert components["hf generate tok/s, CUDA graphs"] == {"skipped": "CUDA graphs need a GPU"}
    assert "| component" in run.stdout and "| skipped " in run.stdout


@pytest.mark.gpu
def test_gpu_mode_on_cuda(tmp_path):
    """What the table must show on a GPU: exactly on-policy ratio, a small bf16 gap, a synced engine."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    out = tmp_path / "result.json"
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--json", str(out)],
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    for case, row in json.loads(out.read_text())["results"].items():
        assert row["ratio_off"] == 0.0, case
        assert 0.0 < row["gap_mean"] < 0.05, case
        assert row["post_sync_gap"] < 0.05, case
        assert row["ipc_gap"] < 0.05 and row["ipc_buckets"] > 1, case  # CUDA IPC, the buffer reused
    components = json.loads(out.read_text())["components"]
    assert components["sync sender peak MiB (5 syncs)"]["ok"]  # within two buckets
    assert all("error" not in row for row in components.values()), components


def _fake_wheel(folder: Path, filename: str, module: str, text: str) -> None:
    with zipfile.ZipFile(folder / filename, "w") as zf:
        zf.writestr(f"{module}/__init__.py", f"WHICH = {text!r}\n")


def test_unpack_wheels_picks_this_pythons_build_once_and_names_what_is_missing(tmp_path, load_tool):
    tool = load_tool("gpu_check.py")
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    wheels.mkdir()
    here = f"cp{sys.version_info.major}{sys.version_info.minor}"
    _fake_wheel(wheels, "rlvr_fake_mod-1.0-cp38-cp38-manylinux2014_x86_64.whl", "rlvr_fake_mod", "cp38")
    _fake_wheel(wheels, f"rlvr_fake_mod-1.0-{here}-{here}-manylinux2014_x86_64.whl", "rlvr_fake_mod", here)
    modules = [("rlvr_fake_mod", "rlvr_fake_mod", None), ("json", "json", None)]  # json is importable
    assert tool.unpack_wheels(wheels, site, modules) == [f"rlvr_fake_mod-1.0-{here}-{here}-manylinux2014_x86_64.whl"]
    assert (site / "rlvr_fake_mod" / "__init__.py").read_text() == f"WHICH = {here!r}\n"
    assert tool.unpack_wheels(wheels, site, modules) == []  # already there
    with pytest.raises(SystemExit, match="rlvr_other is not installed .* --fetch-wheels"):
        tool.unpack_wheels(wheels, site, [("rlvr_other", "rlvr_other", None)])


def test_table_marks_a_failed_case(load_tool):
    tool = load_tool("gpu_check.py")
    ok = {key: 1.0 for _, key, _ in tool.COLUMNS}
    table = tool.format_table({"zero2": ok, "zero3+ckpt": {"error": "RuntimeError: NCCL error"}}, "GPU")
    lines = table.splitlines()
    assert "train peak GPU GiB" in lines[0] and "| peak GPU GiB" in lines[0] and "| ok " in lines[2]
    assert "FAIL: RuntimeError: NCCL error" in lines[3]


def test_sender_memory_check_on_cpu_stays_within_two_buckets(load_tool):
    tool = load_tool("gpu_check.py")
    row = tool.check_sender_memory("cpu", syncs=3)
    # 24 tensors of 64 KiB in buckets of 128 KiB: 12 buckets, two buffers of one bucket held
    assert row["buckets"] == 12 and row["buffers_allocated"] == 2 and row["ok"]
    assert abs(row["value"] - 0.25) < 0.01 and row["model_mib"] == 1.5


def test_component_table_marks_failures_and_skips(load_tool):
    tool = load_tool("gpu_check.py")
    table = tool.format_components({
        "sync sender peak MiB (5 syncs)": {"value": 70.0, "bound": 65.0, "buckets": 12, "ok": False},
        "hf generate tok/s, eager": {"error": "RuntimeError: CUDA out of memory"},
        "hf generate tok/s, CUDA graphs": {"skipped": "CUDA graphs need a GPU"}}).splitlines()
    assert "| FAIL " in table[2] and "bound 65.00" in table[2] and "70.00" in table[2]
    assert "CUDA out of memory" in table[3] and "| skipped " in table[4]
