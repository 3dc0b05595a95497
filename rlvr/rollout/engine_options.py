"""The rollout engine's options, from recipe keys to the arguments vLLM's `LLM(...)` is built with.

Pure functions (no vLLM import): what a recipe asks for is checked and resolved at load time,
and the exact keyword arguments an engine gets can be tested without starting one.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

EXTENSION = "rlvr.rollout.vllm_extension.WeightReloadExtension"


def resolve_enforce_eager(enforce_eager: Optional[bool], on_gpu: bool) -> bool:
    """`rollout.enforce_eager` None (auto): CUDA graphs on a GPU (decoding a small model is bound by
    kernel launches without them), eager on CPU (vLLM's CPU backend gains little from compiling and
    starts seconds faster)."""
    return (not on_gpu) if enforce_eager is None else bool(enforce_eager)


def engine_kwargs(rollout, dtype: str, tensor_parallel_size: int = 1) -> Dict[str, Any]:
    """The `engine_kwargs` a RolloutWorker gets for `rollout` (a RolloutConfig): backend-specific.

    The hf engine takes only `dtype` (make_engine drops max_model_len and gpu_memory_utilization
    for it); vLLM also gets the engine options, with `enforce_eager` resolved for where the engine
    runs (a GPU when rollout.num_gpus_per_worker > 0)."""
    kwargs: Dict[str, Any] = {"dtype": dtype, "max_model_len": rollout.max_model_len,
                              "gpu_memory_utilization": rollout.gpu_memory_utilization}
    if rollout.backend != "vllm":
        return kwargs
    kwargs.update(
        enforce_eager=resolve_enforce_eager(rollout.enforce_eager, rollout.num_gpus_per_worker > 0),
        max_num_seqs=rollout.max_num_seqs, enable_prefix_caching=rollout.enable_prefix_caching,
        sleep_mode=rollout.sleep_while_training, load_chunk_mb=rollout.sync_bucket_mb)
    if tensor_parallel_size > 1:
        kwargs["tensor_parallel_size"] = tensor_parallel_size
    return kwargs


def vllm_llm_kwargs(model_dir: str, *, dtype: str, seed: int, max_model_len: int, gpu_memory_utilization: float,
                    on_cpu: bool, kv_cache_memory_bytes: Optional[int] = None, tensor_parallel_size: int = 1,
                    enforce_eager: Optional[bool] = None, max_num_seqs: Optional[int] = None,
                    enable_prefix_caching: bool = True, sleep_mode: bool = False) -> Dict[str, Any]:
    """Keyword arguments of vLLM's `LLM(...)` for an rlvr engine (None options are left to vLLM)."""
    kwargs: Dict[str, Any] = dict(
        model=str(model_dir), dtype=dtype, seed=seed,
        enforce_eager=resolve_enforce_eager(enforce_eager, not on_cpu),
        max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
        kv_cache_memory_bytes=kv_cache_memory_bytes, worker_extension_cls=EXTENSION,
        # sampled tokens' log-probs of softmax(logits / T), the trainer's at temperature T
        # (vLLM applies top-k/top-p before them too; at T = 1, top-p = 1 they equal raw ones)
        logprobs_mode="processed_logprobs",
        # the G samples of a prompt are G requests: prefix caching computes the prompt's KV once
        enable_prefix_caching=bool(enable_prefix_caching),
        # tp > 1: one Ray worker per shard, in the bundles the controller names (VLLM_RAY_BUNDLE_INDICES)
        tensor_parallel_size=tensor_parallel_size,
        distributed_executor_backend="ray" if tensor_parallel_size > 1 else None)
    if max_num_seqs is not None:
        kwargs["max_num_seqs"] = int(max_num_seqs)
    if sleep_mode:
        if on_cpu:
            raise ValueError("rollout.sleep_while_training = true: vLLM's CPU backend has no sleep mode; "
                             "set it false (it only helps an engine sharing a GPU with the trainer)")
        kwargs["enable_sleep_mode"] = True
    return kwargs


def resolve_rollout_options(cfg) -> None:
    """Write auto values out (so config.yaml shows what ran): rollout.enforce_eager."""
    if cfg.rollout.backend == "vllm" and cfg.rollout.enforce_eager is None:
        cfg.rollout.enforce_eager = resolve_enforce_eager(None, cfg.rollout.num_gpus_per_worker > 0)


def rollout_option_problems(cfg) -> List[str]:
    """One line per engine-option setting no engine could honour (cfg: a RecipeConfig)."""
    r = cfg.rollout
    problems = []
    if r.max_num_seqs is not None and r.max_num_seqs < 1:
        problems.append(f"rollout.max_num_seqs = {r.max_num_seqs} must be >= 1 (or unset for vLLM's default)")
    if r.sleep_while_training:
        if r.backend != "vllm":
            problems.append(f"rollout.sleep_while_training = true needs rollout.backend = vllm (the {r.backend} "
                            "engine has no sleep mode); set it false")
        elif r.num_gpus_per_worker == 0:
            problems.append("rollout.sleep_while_training = true: vLLM's CPU backend has no sleep mode (it is "
                            "CUDA-only); set it false or give engines GPUs (rollout.num_gpus_per_worker)")
        elif not cfg.cluster.colocate:
            problems.append("rollout.sleep_while_training = true frees an engine's GPU memory while the trainer "
                            "steps, which helps only engines sharing the trainer's GPUs: set cluster.colocate = "
                            "true or rollout.sleep_while_training = false")
        if r.overlap:
            problems.append("rollout.sleep_while_training = true with rollout.overlap = true: an engine cannot "
                            "sleep while it generates the next step during training; set one of them false")
    return problems
