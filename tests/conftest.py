"""Test-wide environment: one thread per process (2-core machines), no Ray usage stats,
wandb offline, DeepSpeed on the CPU accelerator."""
import os

for key, value in {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
    "WANDB_MODE": "offline",
    "DS_ACCELERATOR": "cpu",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}.items():
    os.environ.setdefault(key, value)

import torch  # noqa: E402

torch.set_num_threads(1)


import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

TOOLS = Path(__file__).resolve().parents[1] / "tools"


@pytest.fixture(scope="session")
def load_tool():
    """Import a script under tools/ (not a package) as a module: load_tool("bench/vs_trl.py")."""
    def load(relative: str):
        path = TOOLS / relative
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def tiny_hub_model(tmp_path_factory):
    """The tiny model served as hub id `rlvr-test/tiny-char` from a local HF cache laid out
    as huggingface_hub writes one: blobs/, snapshots/<sha>/ of symlinks into blobs, refs/main.

    Returns (hf_home, hub cache, repo id, snapshot folder, commit sha)."""
    import hashlib
    import shutil
    from pathlib import Path

    from rlvr.models.tiny import build_tiny_model

    home = tmp_path_factory.mktemp("hf_home")
    built = build_tiny_model(home / "built", hidden_size=64, num_layers=2, num_heads=2, intermediate_size=256)
    cache, sha = home / "hub", "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--rlvr-test--tiny-char"
    snapshot = repo / "snapshots" / sha
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for f in sorted(Path(built).iterdir()):
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        shutil.copy(f, repo / "blobs" / digest)
        (snapshot / f.name).symlink_to(Path("..") / ".." / "blobs" / digest)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    shutil.rmtree(built)
    return home, cache, "rlvr-test/tiny-char", snapshot, sha


@pytest.fixture
def fake_checkpoint():
    """write(folder, step): a checkpoint folder holding every file a resume checks (tiny
    rlvr_state.json, model.safetensors, trainer/deepspeed/*.pt) without training anything."""
    import json

    from safetensors.torch import save_file

    def write(folder, step, **state):
        path = folder.checkpoint_dir(step)
        (path / "trainer" / "deepspeed").mkdir(parents=True, exist_ok=True)
        save_file({"w": torch.arange(64, dtype=torch.float32)}, str(path / "model.safetensors"))
        torch.save({"module": {"w": torch.zeros(8)}}, path / "trainer" / "deepspeed" / "mp_rank_00_model_states.pt")
        (path / "rlvr_state.json").write_text(json.dumps(
            {"step": step, "evals": [0.1], "initial_eval_gt_accuracy": 0.1, **state}))
        return path

    return write
