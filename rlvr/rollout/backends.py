"""The rollout engine named by `rollout.backend`: the one place that knows every backend (the
base class in engine.py knows none of them)."""
from __future__ import annotations

from rlvr.rollout.engine import RolloutEngine

BACKENDS = ("hf", "vllm")


def make_engine(backend: str, model_dir: str, *, seed: int = 0, dtype: str = "float32",
                gpu_memory_utilization: float = 0.5, max_model_len: int = 256,
                **backend_kwargs) -> RolloutEngine:
    """Build the rollout engine named by `rollout.backend` ("hf" | "vllm") over an HF model folder.

    `gpu_memory_utilization` and `max_model_len` only matter to vLLM; `backend_kwargs` go to the
    backend's constructor (e.g. `device` for hf, `kv_cache_memory_bytes` for vllm).
    """
    if backend == "hf":
        from rlvr.rollout.hf_engine import HFEngine

        return HFEngine(model_dir, seed=seed, dtype=dtype, **backend_kwargs)
    if backend == "vllm":
        from rlvr.rollout.vllm_engine import VLLMEngine

        return VLLMEngine(model_dir, seed=seed, dtype=dtype,
                          gpu_memory_utilization=gpu_memory_utilization,
                          max_model_len=max_model_len, **backend_kwargs)
    raise ValueError(f"rollout.backend = {backend!r} is not a rollout engine; use one of {list(BACKENDS)}")
