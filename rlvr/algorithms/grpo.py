"""GRPO math as pure functions: tensors in, tensors out; no Ray, no I/O, no model.

Shapes: P prompts, G samples per prompt (the group), B sequences, T token positions,
V vocabulary. Per-token tensors are [B, T]; `mask` is 1.0 at the positions that count.

GRPO (Shao et al. 2024, "DeepSeekMath", arXiv:2402.03300): the advantage of a sample is its
reward minus the mean reward of its group, optionally divided by the group std; the policy
loss is PPO's clipped surrogate (Schulman et al. 2017, arXiv:1707.06347) with that one
advantage broadcast over every response token. Dr. GRPO (Liu et al. 2025, arXiv:2503.20783)
drops the std division (`normalize_std=False`).
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple

import torch
from torch import Tensor

AdvantageEstimator = Callable[..., Tensor]
_ADVANTAGE_ESTIMATORS: Dict[str, AdvantageEstimator] = {}


def register_advantage(name: str) -> Callable[[AdvantageEstimator], AdvantageEstimator]:
    """Register `fn(rewards[P, G], **options) -> advantages[P, G]` under `name`."""

    def decorator(fn: AdvantageEstimator) -> AdvantageEstimator:
        if name in _ADVANTAGE_ESTIMATORS:
            raise ValueError(f"advantage estimator {name!r} is already registered")
        _ADVANTAGE_ESTIMATORS[name] = fn
        return fn

    return decorator


def get_advantage_estimator(name: str) -> AdvantageEstimator:
    """The estimator registered as `name` (e.g. algorithm.name = "grpo")."""
    try:
        return _ADVANTAGE_ESTIMATORS[name]
    except KeyError:
        known = ", ".join(sorted(_ADVANTAGE_ESTIMATORS))
        raise KeyError(f"algorithm.name = {name!r} is not a registered advantage estimator; "
                       f"choose one of: {known}") from None


@register_advantage("grpo")
def group_advantages(rewards: Tensor, normalize_std: bool = True, eps: float = 1e-6) -> Tensor:
    """GRPO advantages [P, G] from rewards [P, G]: (r - group mean) / (group std + eps).

    The std is the *unbiased* sample std (Bessel's correction, divide by G - 1), as in
    torch.std's default and in TRL's and verl's GRPO: rewards [1, 0, 0, 1] give std
    sqrt(1/3) and advantages +-0.5 / sqrt(1/3) = +-0.866. A group whose rewards are all
    equal (including G = 1) gets exactly zero advantage, not a rounding residue or NaN.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [prompts, group_size], got shape {tuple(rewards.shape)}")
    r = rewards.to(torch.float32)
    centered = r - r.mean(dim=1, keepdim=True)
    if normalize_std:
        if r.shape[1] > 1:
            std = r.std(dim=1, keepdim=True, correction=1)
        else:
            std = torch.zeros_like(r[:, :1])
        centered = centered / (std + eps)
    constant = (r.amax(dim=1, keepdim=True) == r.amin(dim=1, keepdim=True))
    return torch.where(constant, torch.zeros_like(centered), centered)


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of `values` over positions where `mask` is 1 (same shape); 0 for an empty mask.

    Uses where() rather than multiplication so NaN/inf at masked-out positions cannot leak.
    """
    m = mask.to(torch.bool)
    total = torch.where(m, values, torch.zeros_like(values)).sum()
    return total / m.sum().clamp(min=1)


def masked_sum(values: Tensor, mask: Tensor) -> Tensor:
    """Sum of `values` over positions where `mask` is 1 (NaN-safe, see masked_mean)."""
    return torch.where(mask.to(torch.bool), values, torch.zeros_like(values)).sum()


def token_logprobs(logits: Tensor, targets: Tensor) -> Tensor:
    """log p(targets) under softmax(logits), in float32: logits [..., V], targets [...] -> [...]."""
    logp = torch.log_softmax(logits.to(torch.float32), dim=-1)
    return logp.gather(-1, targets.unsqueeze(-1).to(torch.long)).squeeze(-1)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy (nats) of softmax(logits) per position, in float32: [..., V] -> [...]."""
    x = logits.to(torch.float32)
    logp = torch.log_softmax(x, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


# fp32 elements of one chunk of logits: 64 MiB, about 110 rows of a 150k vocabulary.
DEFAULT_CHUNK_ELEMENTS = 1 << 24


class _ChunkedLogprobEntropy(torch.autograd.Function):
    """Log-prob of the target and entropy per row of 2-D logits [N, V], chunk by chunk.

    Only one chunk of rows is ever upcast to float32; backward keeps the logits as given
    (their own dtype) plus two floats per row, and recomputes the softmax per chunk.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, targets: Tensor, chunk_rows: int):
        n = logits.shape[0]
        logprobs = torch.empty(n, dtype=torch.float32, device=logits.device)
        entropy = torch.empty(n, dtype=torch.float32, device=logits.device)
        lse_all = torch.empty(n, dtype=torch.float32, device=logits.device)
        for lo in range(0, n, chunk_rows):
            hi = min(n, lo + chunk_rows)
            x = logits[lo:hi].to(torch.float32, copy=True)  # copy: edited in place below
            lse = torch.logsumexp(x, dim=-1)
            logprobs[lo:hi] = x.gather(-1, targets[lo:hi].unsqueeze(-1)).squeeze(-1) - lse
            x.sub_(lse.unsqueeze(-1))  # x is now log p
            entropy[lo:hi] = -(x.exp() * x).sum(dim=-1)
            lse_all[lo:hi] = lse
        ctx.save_for_backward(logits, targets, lse_all, entropy)
        ctx.chunk_rows = chunk_rows
        ctx.set_materialize_grads(False)
        return logprobs, entropy

    @staticmethod
    def backward(ctx, grad_logprobs: Tensor, grad_entropy: Tensor):
        logits, targets, lse_all, entropy = ctx.saved_tensors
        grad = torch.empty_like(logits)
        n = logits.shape[0]
        for lo in range(0, n, ctx.chunk_rows):
            hi = min(n, lo + ctx.chunk_rows)
            logp = logits[lo:hi].to(torch.float32, copy=True).sub_(lse_all[lo:hi].unsqueeze(-1))
            p = logp.exp()  # two float32 chunks are all the scratch backward needs
            if grad_entropy is not None:  # dH / dx = -p * (log p + H)
                ge = grad_entropy[lo:hi].to(torch.float32).unsqueeze(-1)
                g = logp.add_(entropy[lo:hi].unsqueeze(-1)).mul_(p).mul_(-ge)
                if grad_logprobs is not None:
                    g.sub_(p.mul_(grad_logprobs[lo:hi].to(torch.float32).unsqueeze(-1)))
            else:
                g = p.mul_(-grad_logprobs[lo:hi].to(torch.float32).unsqueeze(-1))
            if grad_logprobs is not None:  # d log p_t / dx = onehot(t) - p
                gl = grad_logprobs[lo:hi].to(torch.float32).unsqueeze(-1)
                g.scatter_add_(-1, targets[lo:hi].unsqueeze(-1), gl)
            grad[lo:hi] = g.to(grad.dtype)
        return grad, None, None


def token_logprobs_and_entropy(logits: Tensor, targets: Tensor,
                               chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> Tuple[Tensor, Tensor]:
    """(log p(targets), entropy) of softmax(logits) in float32: [..., V], [...] -> [...], [...].

    Same values as `token_logprobs` and `entropy_from_logits`, but rows (all leading dims
    flattened: batch x time) are processed `chunk_elements // V` at a time, so no float32
    [B, T, V] copy exists in forward or backward: a 150k vocabulary costs one chunk of
    float32 scratch on top of the logits themselves. Pass contiguous logits (a non-contiguous
    view is copied once by reshape). Differentiable in both outputs.
    """
    vocab = logits.shape[-1]
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets shape {tuple(targets.shape)} must equal logits shape "
                         f"{tuple(logits.shape)} without its last (vocabulary) dim")
    chunk_rows = max(1, int(chunk_elements) // max(1, vocab))
    flat_lp, flat_ent = _ChunkedLogprobEntropy.apply(
        logits.reshape(-1, vocab), targets.reshape(-1).to(torch.long), chunk_rows)
    return flat_lp.view(targets.shape), flat_ent.view(targets.shape)


def truncated_is_weights(trainer_logprobs: Tensor, engine_logprobs: Tensor, cap: float) -> Tensor:
    """Truncated importance-sampling weights [B, T] = min(pi_trainer / pi_engine, cap), no grad.

    Corrects for the rollout engine sampling from slightly different numerics than the
    trainer's policy (TIS: Yao et al. 2025, "Your Efficient RL Framework Secretly Brings You
    Off-Policy RL Training"; verl's `tis_imp_ratio_cap`). Log ratio clamped to [-20, 20].
    """
    log_ratio = (trainer_logprobs.to(torch.float32) - engine_logprobs.to(torch.float32))
    return torch.exp(log_ratio.clamp(-20.0, 20.0)).clamp(max=cap).detach()


def kl_estimator(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Per-token estimate of KL(policy || ref) from samples of the policy: the "k3" estimator.

    k3 = exp(ref - lp) - (ref - lp) - 1, unbiased and always >= 0 (J. Schulman,
    "Approximating KL Divergence", 2020, http://joschu.net/blog/kl-approx.html). The log
    ratio is clamped to [-20, 20] so one outlier token cannot overflow exp.
    """
    log_ratio = (ref_logprobs.to(torch.float32) - logprobs.to(torch.float32)).clamp(-20.0, 20.0)
    return torch.exp(log_ratio) - log_ratio - 1.0


def clipped_policy_loss_terms(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor,
                              clip_eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    """Per-token PPO clipped surrogate loss, ratio and clipped indicator, each [B, T].

    loss = -min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A), ratio = exp(lp - old_lp),
    with the per-sequence advantage A [B] broadcast over tokens. `clipped` is 1.0 where the
    clipped branch is the smaller one (the token then gets no gradient).
    """
    if advantages.dim() != 1 or advantages.shape[0] != logprobs.shape[0]:
        raise ValueError(f"advantages must be [B] = [{logprobs.shape[0]}] (one per sequence), "
                         f"got shape {tuple(advantages.shape)}")
    adv = advantages.to(torch.float32).unsqueeze(-1)
    log_ratio = (logprobs.to(torch.float32) - old_logprobs.to(torch.float32)).clamp(-20.0, 20.0)
    ratio = torch.exp(log_ratio)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv
    loss = -torch.minimum(unclipped, clipped)
    was_clipped = (clipped < unclipped).to(torch.float32)
    return loss, ratio, was_clipped


def clipped_policy_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor,
                        clip_eps: float) -> Tuple[Tensor, Dict[str, Tensor]]:
    """PPO clipped surrogate, token-mean over `mask`: ([B, T], [B, T], [B], [B, T]) -> scalar.

    Aggregation is the token-mean over every masked token of the batch (DAPO's "token-level"
    loss, arXiv:2503.14476): each token weighs the same, so long responses are not
    down-weighted as in GRPO's original per-sequence mean. Stats (detached scalars):
    `clip_fraction` (share of tokens in the clipped branch) and `ratio_mean`.
    """
    loss_tok, ratio, was_clipped = clipped_policy_loss_terms(logprobs, old_logprobs, advantages,
                                                             clip_eps)
    loss = masked_mean(loss_tok, mask)
    stats = {
        "clip_fraction": masked_mean(was_clipped, mask).detach(),
        "ratio_mean": masked_mean(ratio, mask).detach(),
    }
    return loss, stats
