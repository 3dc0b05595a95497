"""A reward model measured under a policy (pure; no I/O): the paper's Section 4 ranking metrics
(the audit's code, rlvr/rewards/audit.py), the reward's variance under the policy, and its
correlation with the ground truth.

Inputs are the proxy (the reward model's, after the design's normalisation), the ground truth
and the summed log-probabilities of G samples on each of P prompts, all [P, G].
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch import Tensor

from rlvr.rewards.audit import audit_profile

# The Section 4 metrics, keyed by the names the audit (and training's summary) uses.
SECTION4 = {"Acc": "audit/acc", "Acc-W": "audit/acc_w", "HAcc": "audit/hacc", "HAcc-W": "audit/hacc_w",
            "variance": "reward/proxy_variance"}


def within_prompt_variance(proxy: Tensor) -> float:
    """Mean over prompts of the population variance of the proxy within a prompt; proxy [P, G]."""
    return proxy.double().var(dim=1, correction=0).mean().item()


def pearson(x: Tensor, y: Tensor) -> Optional[float]:
    """Pearson correlation of two equal-length vectors; None when either is constant."""
    x, y = x.double().flatten(), y.double().flatten()
    x, y = x - x.mean(), y - y.mean()
    denom = (x.pow(2).sum() * y.pow(2).sum()).sqrt()
    return None if denom.item() == 0 else (x @ y / denom).item()


def rm_eval_metrics(proxy: Tensor, gt: Tensor, seq_logprob: Tensor) -> Dict[str, Any]:
    """audit_profile(proxy, gt, seq_logprob) plus reward/proxy_variance (mean within-prompt
    variance) and reward/proxy_gt_correlation (Pearson over all P*G samples)."""
    profile = audit_profile(proxy, gt, seq_logprob)
    profile["reward/proxy_variance"] = within_prompt_variance(proxy)
    profile["reward/proxy_gt_correlation"] = pearson(proxy, gt)
    return profile


RM_EVAL_TABLE = [
    ("audit/acc", "Acc"), ("audit/acc_w", "Acc-W"), ("audit/hacc", "HAcc"), ("audit/hacc_w", "HAcc-W"),
    ("reward/proxy_variance", "variance under the policy (mean within-prompt)"),
    ("reward/proxy_std", "std under the policy (mean within-prompt)"),
    ("reward/proxy_gt_correlation", "correlation with the ground truth (Pearson)"),
    ("gt/accuracy", "gt accuracy of the samples"), ("proxy/reward_mean", "reward mean"),
    ("audit/ranking_pairs", "ranking pairs (gt(y+) > gt(y-))"),
]


def format_rm_eval(result: Dict[str, Any]) -> str:
    width = max(len(label) for _, label in RM_EVAL_TABLE)
    lines = [f"rm-eval: {result.get('rm_dir', '')} on {result['audit/prompts']} prompts x "
             f"{result['audit/samples_per_prompt']} samples of the initial policy"]
    for key, label in RM_EVAL_TABLE:
        value = result.get(key)
        text = "-" if value is None else (str(value) if isinstance(value, int) else f"{value:.4f}")
        lines.append(f"  {label.ljust(width)}  {text}")
    return "\n".join(lines)


def tensors(groups) -> tuple:
    """(proxy, gt, seq_logprob) [P, G] float64 from scored sample groups (rlvr.reward_models.sampling)."""
    return tuple(torch.tensor([[r[k] for r in g] for g in groups], dtype=torch.float64)
                 for k in ("proxy", "gt", "seq_logprob"))
