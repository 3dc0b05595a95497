"""RL algorithms as pure tensor math (advantage estimators, policy losses)."""
from rlvr.algorithms.grpo import (
    clipped_policy_loss,
    clipped_policy_loss_terms,
    entropy_from_logits,
    get_advantage_estimator,
    group_advantages,
    kl_estimator,
    masked_mean,
    masked_sum,
    register_advantage,
    token_logprobs,
    token_logprobs_and_entropy,
    truncated_is_weights,
)
from rlvr.algorithms.advantages import compute_advantages  # registers the other estimators
from rlvr.algorithms.losses import aggregate, aggregation_weights, kl_penalty, policy_loss_terms

__all__ = [
    "clipped_policy_loss", "clipped_policy_loss_terms", "entropy_from_logits",
    "get_advantage_estimator", "group_advantages", "kl_estimator", "masked_mean", "masked_sum",
    "register_advantage", "token_logprobs", "token_logprobs_and_entropy", "truncated_is_weights",
    "compute_advantages", "aggregate", "aggregation_weights", "kl_penalty", "policy_loss_terms",
]
