"""Outcome-reward advantage estimators beside GRPO's, each registered under its `algorithm.name`.

Every estimator maps rewards [P, G] (P prompts, G samples each) to one advantage per sample
[P, G], in float32; the trainer broadcasts a sample's advantage over its response tokens.
`compute_advantages` is what the controller calls: it picks the estimator and its options.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rlvr.algorithms.grpo import get_advantage_estimator, group_advantages, register_advantage


def _check(rewards: Tensor) -> Tensor:
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [prompts, group_size], got shape {tuple(rewards.shape)}")
    return rewards.to(torch.float32)


@register_advantage("dr_grpo")
def dr_grpo_advantages(rewards: Tensor) -> Tensor:
    """Dr. GRPO advantages [P, G]: reward minus its group's mean, no std division.

    Liu et al. 2025, "Understanding R1-Zero-Like Training: A Critical Perspective",
    arXiv:2503.20783 (pair it with `algorithm.loss_agg = dr_grpo`, their constant normaliser).
    """
    return group_advantages(_check(rewards), normalize_std=False)


@register_advantage("rloo")
def rloo_advantages(rewards: Tensor) -> Tensor:
    """RLOO advantages [P, G]: r_i minus the mean of the OTHER G - 1 rewards of its group.

    Equals G / (G - 1) * (r_i - group mean). Kool et al. 2019, "Buy 4 REINFORCE Samples, Get
    a Baseline for Free!"; Ahmadian et al. 2024, arXiv:2402.14740. G = 1 gives 0 (no baseline
    can be formed without bias).
    """
    r = _check(rewards)
    g = r.shape[1]
    if g < 2:
        return torch.zeros_like(r)
    others_mean = (r.sum(dim=1, keepdim=True) - r) / (g - 1)
    return r - others_mean


@register_advantage("reinforce")
def reinforce_advantages(rewards: Tensor) -> Tensor:
    """REINFORCE advantages [P, G]: the raw reward, no baseline (Williams 1992), so the
    reward's shift and scale reach the gradient unchanged."""
    return _check(rewards).clone()


@register_advantage("reinforce_baseline")
def reinforce_baseline_advantages(rewards: Tensor) -> Tensor:
    """REINFORCE with a batch-mean baseline [P, G]: r minus the mean of all P * G rewards
    (Williams 1992, the constant-baseline variant). Not OpenRLHF's `reinforce_baseline`
    (REINFORCE++-baseline: group-mean baseline, then whitening over the batch)."""
    r = _check(rewards)
    return r - r.mean()


@register_advantage("reinforce_pp")
def reinforce_pp_advantages(rewards: Tensor, eps: float = 1e-8) -> Tensor:
    """REINFORCE++ advantages [P, G]: the batch's rewards whitened over the whole batch,
    (r - batch mean) / (batch std + eps), with the population std (divide by P * G).

    Hu et al. 2025, "REINFORCE++", arXiv:2501.03262; OpenRLHF's `advantage_estimator:
    reinforce` and verl's `reinforce_plus_plus` whiten the returns over the global batch.
    With an outcome-only reward every token of a sequence carries its sequence's return, so
    whitening per sequence here differs from their per-token whitening only in weighting each
    sequence equally rather than by its length. The KL term their return includes is the
    trainer's `algorithm.kl_coef` (in the loss). A constant batch gets exactly 0.
    """
    r = _check(rewards)
    centered = r - r.mean()
    std = centered.pow(2).mean().sqrt()
    if float(r.max() - r.min()) == 0.0:
        return torch.zeros_like(r)
    return centered / (std + eps)


def compute_advantages(name: str, rewards: Tensor, normalize_std: bool = True, **_: Any) -> Tensor:
    """Advantages [P, G] of rewards [P, G] under `algorithm.name`; `normalize_std` is GRPO's."""
    estimator = get_advantage_estimator(name)
    if name == "grpo":
        return estimator(rewards, normalize_std=normalize_std)
    return estimator(rewards)
