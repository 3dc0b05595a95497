"""The knobs of `rlvr rm-train` (given on its command line as rm.<key>=value)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import List, Optional, Tuple

from rlvr.reward_models.pairs import BIASES


@dataclass
class RMTrainConfig:
    policy: str = "initial"  # whose samples the pairs come from: initial (the recipe's initial policy) | a model folder or hub id (e.g. a run's checkpoint)
    prompts: int = 256  # training prompts sampled for pairs
    samples_per_prompt: int = 8  # policy samples per prompt
    pairs: int = 2000  # training pairs
    heldout_prompts: int = 64  # eval-split prompts whose clean (gt-labelled) pairs measure held-out accuracy
    flip_rate: float = 0.0  # share of ordinary pairs whose preference label is flipped, in [0, 1]
    bias: str = "none"  # systematic flaw: none | off_by_one (gold +-1 preferred) | longer (a longer wrong answer preferred)
    bias_share: float = 0.0  # share of the pairs that are class pairs (correct vs a wrong answer of the bias class), in [0, 1]
    bias_rate: float = 1.0  # share of class pairs labelled with the wrong class answer preferred, in [0, 1]
    answer_format: str = "{answer};"  # how a gold answer is written as a response (class pairs)
    steps: int = 300  # optimizer steps
    batch_size: int = 64  # pairs per step
    lr: float = 1.0e-3  # AdamW learning rate
    weight_decay: float = 0.0  # AdamW weight decay
    init: str = "policy"  # backbone of the scalar head: policy (the sampling policy's weights) | scratch (random, same architecture)
    model_path: Optional[str] = None  # HF model folder or hub id to put the scalar head on (GPU scale); None = per `init`
    max_length: int = 256  # tokens of prompt + response the model reads
    log_every: int = 10  # a training-curve line every N steps
    seed: int = 0  # pair sampling, flips, batches and head init
    device: str = "auto"  # auto (cuda if visible) | cpu | cuda


def split_overrides(argv: List[str]) -> Tuple[List[str], List[str]]:
    """(recipe overrides, rm.* overrides without the prefix)."""
    recipe, rm = [], []
    for item in argv:
        (rm if item.startswith("rm.") else recipe).append(item[3:] if item.startswith("rm.") else item)
    return recipe, rm


def load_rm_config(overrides: List[str]) -> RMTrainConfig:
    """RMTrainConfig from `key=value` items; ValueError naming rm.<key> on a bad key or value."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    names = [f.name for f in fields(RMTrainConfig)]
    for item in overrides:
        key = item.split("=", 1)[0]
        if "=" not in item or key not in names:
            raise ValueError(f"rm.{item}: not a rm-train knob; knobs are rm.<{'|'.join(names)}>=value")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(RMTrainConfig), OmegaConf.from_dotlist(overrides))
    except OmegaConfBaseException as err:
        raise ValueError(f"rm.{err.key if hasattr(err, 'key') else ''}: {err.msg if hasattr(err, 'msg') else err}") \
            from None
    cfg = RMTrainConfig(**OmegaConf.to_container(merged))
    for key in ("flip_rate", "bias_share", "bias_rate"):
        if not 0.0 <= getattr(cfg, key) <= 1.0:
            raise ValueError(f"rm.{key} = {getattr(cfg, key)} must be within [0, 1]")
    if cfg.bias not in BIASES:
        raise ValueError(f"rm.bias = {cfg.bias!r} must be one of {list(BIASES)}")
    if cfg.init not in ("policy", "scratch"):
        raise ValueError(f"rm.init = {cfg.init!r} must be policy or scratch")
    for key in ("prompts", "samples_per_prompt", "pairs", "steps", "batch_size", "heldout_prompts", "log_every"):
        if getattr(cfg, key) < 1:
            raise ValueError(f"rm.{key} = {getattr(cfg, key)} must be >= 1")
    if cfg.samples_per_prompt < 2:
        raise ValueError("rm.samples_per_prompt must be >= 2 (pairs are within a prompt)")
    return cfg
