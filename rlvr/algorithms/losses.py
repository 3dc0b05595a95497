"""Policy-gradient losses, KL estimators and loss aggregation as pure tensor math.

Shapes: B sequences, T token positions; per-token tensors are [B, T]; `mask` is 1.0 at the
response tokens that count; advantages are one per sequence [B].
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

LOSSES = ("ppo_clip", "pg")
KL_ESTIMATORS = ("k1", "k2", "k3")
LOSS_AGGS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "dr_grpo")


def policy_loss_terms(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor,
                      loss: str = "ppo_clip", clip_eps_low: float = 0.2,
                      clip_eps_high: Optional[float] = None,
                      clip_ratio_c: float = 0.0) -> Tuple[Tensor, Tensor, Tensor]:
    """Per-token policy loss, ratio and clipped indicator, each [B, T].

    `ppo_clip`: -min(r A, clip(r, 1 - eps_low, 1 + eps_high) A) (Schulman et al. 2017,
    arXiv:1707.06347), eps_high > eps_low is DAPO's clip-higher (Yu et al. 2025,
    arXiv:2503.14476). `clip_ratio_c` > 1 adds the dual clip for A < 0: the loss is capped
    at -c A, so a huge ratio on a bad token cannot blow up the step (Ye et al. 2020,
    arXiv:1912.09729; verl's `clip_ratio_c`). `pg`: -r A with no clip, the plain policy
    gradient (on-policy r = 1, so its gradient is REINFORCE's A * grad log p).
    r = exp(lp - old_lp), log ratio clamped to [-20, 20]. `clipped` is 1.0 where a clip
    branch is the active one (the token then gets no gradient).
    """
    if advantages.dim() != 1 or advantages.shape[0] != logprobs.shape[0]:
        raise ValueError(f"advantages must be [B] = [{logprobs.shape[0]}] (one per sequence), "
                         f"got shape {tuple(advantages.shape)}")
    if loss not in LOSSES:
        raise ValueError(f"algorithm.loss = {loss!r} must be one of {list(LOSSES)}")
    high = clip_eps_low if clip_eps_high is None else clip_eps_high
    adv = advantages.to(torch.float32).unsqueeze(-1)
    log_ratio = (logprobs.to(torch.float32) - old_logprobs.to(torch.float32)).clamp(-20.0, 20.0)
    ratio = torch.exp(log_ratio)
    unclipped = -ratio * adv
    if loss == "pg":
        return unclipped, ratio, torch.zeros_like(ratio)
    clipped = -torch.clamp(ratio, 1.0 - clip_eps_low, 1.0 + high) * adv
    loss_tok = torch.maximum(unclipped, clipped)
    was_clipped = clipped > unclipped
    if clip_ratio_c > 0:
        if clip_ratio_c <= 1.0:
            raise ValueError(f"algorithm.clip_ratio_c = {clip_ratio_c} must be > 1 (or 0 = off)")
        cap = -clip_ratio_c * adv  # > 0 where A < 0
        dual = (adv < 0) & (loss_tok > cap)
        loss_tok = torch.where(dual, cap.expand_as(loss_tok), loss_tok)
        was_clipped = was_clipped | dual
    return loss_tok, ratio, was_clipped.to(torch.float32)


def kl_penalty(logprobs: Tensor, ref_logprobs: Tensor, estimator: str = "k3") -> Tensor:
    """Per-token estimate [B, T] of KL(policy || ref) from tokens sampled by the policy.

    With d = ref - lp (log ratio clamped to [-20, 20]): k1 = -d (unbiased, can be negative),
    k2 = d^2 / 2 (biased, >= 0), k3 = exp(d) - d - 1 (unbiased, >= 0); J. Schulman,
    "Approximating KL Divergence", 2020, http://joschu.net/blog/kl-approx.html.
    """
    d = (ref_logprobs.to(torch.float32) - logprobs.to(torch.float32)).clamp(-20.0, 20.0)
    if estimator == "k1":
        return -d
    if estimator == "k2":
        return 0.5 * d * d
    if estimator == "k3":
        return torch.exp(d) - d - 1.0
    raise ValueError(f"algorithm.kl_estimator = {estimator!r} must be one of {list(KL_ESTIMATORS)}")


def aggregation_weights(mask: Tensor, mode: str, global_tokens: float, global_sequences: float,
                        constant: float = 0.0) -> Tensor:
    """Per-token weights [B, T] so that sum(weights * loss_tok) is this shard's share of the
    global aggregate; summing the shares over micro-batches and ranks gives the loss of
    the whole batch, whatever the split (the counts are global, the per-sequence ones local).

    token_mean: 1 / N_tokens (DAPO, every token weighs the same). seq_mean_token_mean:
    1 / (B * n_b) (original GRPO, arXiv:2402.03300). seq_mean_token_sum: 1 / B.
    dr_grpo: 1 / (B * constant), Dr. GRPO's constant normaliser (arXiv:2503.20783; their
    constant is the generation budget, `rollout.max_new_tokens`). B = global sequence count,
    n_b = sequence b's response tokens (an empty response counts as a sequence of loss 0).
    """
    m = mask.to(torch.float32)
    if mode == "token_mean":
        return m / max(float(global_tokens), 1.0)
    seqs = max(float(global_sequences), 1.0)
    if mode == "seq_mean_token_mean":
        return m / m.sum(dim=1, keepdim=True).clamp(min=1.0) / seqs
    if mode == "seq_mean_token_sum":
        return m / seqs
    if mode == "dr_grpo":
        if constant <= 0:
            raise ValueError("algorithm.loss_agg = dr_grpo needs algorithm.loss_agg_constant > 0 "
                             "(the recipe loader sets it to rollout.max_new_tokens)")
        return m / (seqs * float(constant))
    raise ValueError(f"algorithm.loss_agg = {mode!r} must be one of {list(LOSS_AGGS)}")


def aggregate(loss_tok: Tensor, mask: Tensor, mode: str, constant: float = 0.0) -> Tensor:
    """Aggregate per-token values [B, T] of one whole batch into a scalar (see aggregation_weights)."""
    m = mask.to(torch.bool)
    w = aggregation_weights(mask, mode, float(m.sum()), float(mask.shape[0]), constant)
    return torch.where(m, loss_tok * w, torch.zeros_like(w)).sum()
