"""The trainer's recipe sections (trainer, algorithm) as it receives them: parsed, checked, and
summarised in one console line."""
from __future__ import annotations

from typing import Any, Mapping

from rlvr.config.schema import AlgorithmConfig, TrainerConfig

TRAIN_DTYPES = ("float32", "bfloat16")


def uses_reference(alg: AlgorithmConfig) -> bool:
    """Whether a frozen reference model is built: for a KL term, or to log policy/kl_to_init."""
    return alg.kl_coef > 0 or alg.log_kl_to_init


def parse_section(cls, values: Mapping[str, Any], section: str):
    """`values` as the dataclass `cls`; unknown keys are an error naming the section."""
    known = {f for f in cls.__dataclass_fields__}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{section}: unknown field(s) {unknown}; known fields: {sorted(known)}")
    return cls(**dict(values))


def validate(trainer: TrainerConfig, algorithm: AlgorithmConfig) -> None:
    from rlvr.algorithms.grpo import _ADVANTAGE_ESTIMATORS
    from rlvr.algorithms.losses import KL_ESTIMATORS, LOSS_AGGS, LOSSES

    if trainer.zero_stage not in (0, 1, 2, 3):
        raise ValueError(f"trainer.zero_stage = {trainer.zero_stage} must be 0, 1, 2 or 3")
    if trainer.micro_batch_size < 1:
        raise ValueError(f"trainer.micro_batch_size = {trainer.micro_batch_size} must be >= 1")
    for key in ("updates_per_step", "ppo_epochs", "minibatches_per_step"):
        if getattr(trainer, key) < 1:
            raise ValueError(f"trainer.{key} = {getattr(trainer, key)} must be >= 1")
    if trainer.updates_per_step > 1 and trainer.ppo_epochs > 1:
        raise ValueError("trainer.updates_per_step is an alias of trainer.ppo_epochs: set only ppo_epochs")
    if trainer.backend not in ("auto", "gloo", "nccl"):
        raise ValueError(f"trainer.backend = {trainer.backend!r} must be auto, gloo or nccl")
    if algorithm.name not in _ADVANTAGE_ESTIMATORS:
        raise ValueError(f"algorithm.name = {algorithm.name!r} must be one of {sorted(_ADVANTAGE_ESTIMATORS)}")
    for key, choices in (("loss", LOSSES), ("loss_agg", LOSS_AGGS), ("kl_estimator", KL_ESTIMATORS)):
        if getattr(algorithm, key) not in choices:
            raise ValueError(f"algorithm.{key} = {getattr(algorithm, key)!r} must be one of {list(choices)}")
    if algorithm.kl_in not in ("loss", "reward"):
        raise ValueError(f"algorithm.kl_in = {algorithm.kl_in!r} must be loss or reward")
    if algorithm.loss_agg == "dr_grpo" and algorithm.loss_agg_constant <= 0:
        raise ValueError("algorithm.loss_agg = dr_grpo needs algorithm.loss_agg_constant > 0 "
                         "(recipes set it to rollout.max_new_tokens)")
    if not 0.0 < algorithm.clip_eps < 1.0:
        raise ValueError(f"algorithm.clip_eps = {algorithm.clip_eps} must be within (0, 1)")
    low, high = clip_bounds(algorithm)
    if not 0.0 < low < 1.0 or high <= 0.0:
        raise ValueError(f"algorithm.clip_eps_low = {low} must be within (0, 1) and clip_eps_high = {high} > 0")
    if algorithm.clip_ratio_c and algorithm.clip_ratio_c <= 1.0:
        raise ValueError(f"algorithm.clip_ratio_c = {algorithm.clip_ratio_c} must be 0 (off) or > 1")
    if algorithm.kl_coef < 0 or algorithm.entropy_coef < 0:
        raise ValueError("algorithm.kl_coef and algorithm.entropy_coef must be >= 0")
    if algorithm.tis_cap < 0:
        raise ValueError(f"algorithm.tis_cap = {algorithm.tis_cap} must be >= 0 (0 = off)")
    if algorithm.tis_cap > 0 and not algorithm.recompute_logprobs:
        raise ValueError("algorithm.tis_cap > 0 needs algorithm.recompute_logprobs = true")


def clip_bounds(algorithm: AlgorithmConfig):
    """(eps_low, eps_high) of the PPO clip: each falls back to clip_eps when unset."""
    low = algorithm.clip_eps if algorithm.clip_eps_low is None else algorithm.clip_eps_low
    high = algorithm.clip_eps if algorithm.clip_eps_high is None else algorithm.clip_eps_high
    return float(low), float(high)


def algorithm_summary(trainer: TrainerConfig, algorithm: AlgorithmConfig) -> str:
    """One line naming every algorithm choice (the trainer's console header)."""
    low, high = clip_bounds(algorithm)
    loss = "pg (no clip)" if algorithm.loss == "pg" else f"ppo_clip [{1 - low:g}, {1 + high:g}]"
    if algorithm.loss == "ppo_clip" and algorithm.clip_ratio_c:
        loss += f" dual clip c={algorithm.clip_ratio_c:g}"
    agg = algorithm.loss_agg + (f" /{algorithm.loss_agg_constant}" if algorithm.loss_agg == "dr_grpo" else "")
    adv = algorithm.name + (" (std off)" if algorithm.name == "grpo" and not algorithm.normalize_std else "")
    kl = (f"kl {algorithm.kl_estimator} x {algorithm.kl_coef:g} in {algorithm.kl_in}"
          if algorithm.kl_coef > 0 else "kl off")
    return (f"advantages {adv}, loss {loss}, aggregation {agg}, {kl}, entropy x {algorithm.entropy_coef:g}, "
            f"{max(trainer.ppo_epochs, trainer.updates_per_step)} epoch(s) x "
            f"{trainer.minibatches_per_step} minibatch(es)")
