"""A recipe's memory plan: the card's size, the model's shape, then the arithmetic of memory.py.

`memory_problems(cfg)` is what a pre-launch check calls: one line per GPU that does not fit,
empty when everything fits or when no actor asks for a GPU.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

from rlvr.plan.memory import DEFAULT_CARD_GB, GB, MemoryPlan, build_plan
from rlvr.plan.model_shape import ModelShapeError, model_shape, tiny_config


def card_memory_gb(configured: Optional[float]) -> Tuple[float, str]:
    """(GB of one GPU, where the figure came from): cluster.gpu_memory_gb, else the smallest visible
    CUDA device, else DEFAULT_CARD_GB."""
    if configured is not None:
        return float(configured), "cluster.gpu_memory_gb"
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count() > 0:
            sizes = [torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count())]
            name = torch.cuda.get_device_name(sizes.index(min(sizes)))
            return min(sizes) / GB, f"detected: {name}"
    except Exception:  # noqa: BLE001 - a broken CUDA setup is the preflight's to report, not the plan's
        pass
    return DEFAULT_CARD_GB, "no GPU visible here and cluster.gpu_memory_gb unset: assumed"


def asks_for_gpus(cfg) -> bool:
    return cfg.trainer.num_gpus_per_rank > 0 or cfg.rollout.num_gpus_per_worker > 0


def plan_recipe(cfg, model_dir: Optional[str] = None) -> MemoryPlan:
    """The memory plan of a loaded recipe. model_dir: the resolved local model folder, when the
    caller has one (else model.path is read as the recipe gives it). Raises ModelShapeError."""
    m = cfg.model
    shape = model_shape(model_dir or m.path,
                        tiny=tiny_config(m.hidden_size, m.num_layers, m.num_heads, m.intermediate_size))
    gb, source = card_memory_gb(getattr(cfg.cluster, "gpu_memory_gb", None))
    return build_plan(cfg, shape, gb, source)


def memory_problems(cfg, model_dir: Optional[str] = None, where: str = "memory plan") -> List[str]:
    """One-line problems of a recipe whose actors ask for GPUs; [] when it fits, when no GPU is
    asked for, or when the model's config cannot be read here (`rlvr plan` says why)."""
    if not asks_for_gpus(cfg):
        return []
    try:
        plan = plan_recipe(cfg, model_dir)
    except ModelShapeError:
        return []
    return plan.problems(where)
