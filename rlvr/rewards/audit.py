"""The pre-flight profile of an initial policy under a proxy reward (pure; no Ray, no I/O).

Before any RL, G samples per prompt from the initial policy, scored by both channels, say
what training will see: how often each prompt is solved (a prompt solved 0 or G times gives a
flat ground-truth group), how the proxy's errors fall (the 2x2 table, false-positive and
false-negative rates, error categories), and how well the proxy ranks the policy's own
samples (the paper's Section 4 metrics). Names are the ones training logs (`gt/accuracy`,
`reward/false_positive_rate`, ...), plus `audit/*` for what only the audit measures.

Ranking metrics use every within-prompt pair (y+, y-) with gt(y+) > gt(y-): Acc = share the
proxy ranks the same way; Acc-W weights pairs by pi(y+) pi(y-) (normalised); HAcc forgives a
misranking whose y- is below the prompt's mean proxy reward (it attracts nothing); HAcc-W is
HAcc with Acc-W's weights. None when no prompt has such a pair.
"""
from __future__ import annotations

from typing import Any, Dict, List

import torch
from torch import Tensor

from rlvr.rewards.categorize import CATEGORIES, categorize, reward_error_metrics
from rlvr.rewards.eval_metrics import acc, acc_w, hacc, hacc_w


def ranking_pairs(proxy: Tensor, gt: Tensor, seq_logprob: Tensor):
    """Within-prompt pairs with gt(y+) > gt(y-), as [N, 1] tensors (one pair per row):
    (proxy y+, proxy y-, logp y+, logp y-, the prompt's mean proxy [N]); None if N = 0."""
    rows: List[List[float]] = []
    mean_proxy = proxy.double().mean(dim=1)
    for p in range(proxy.shape[0]):
        for i in range(proxy.shape[1]):
            for j in range(proxy.shape[1]):
                if gt[p, i] > gt[p, j]:
                    rows.append([float(proxy[p, i]), float(proxy[p, j]), float(seq_logprob[p, i]),
                                 float(seq_logprob[p, j]), float(mean_proxy[p])])
    if not rows:
        return None
    t = torch.tensor(rows, dtype=torch.float64)
    return t[:, 0:1], t[:, 1:2], t[:, 2:3], t[:, 3:4], t[:, 4]


def audit_profile(proxy: Tensor, gt: Tensor, seq_logprob: Tensor, gt_pass: float = 1.0,
                  expected: Tensor | None = None, systematic: Tensor | None = None) -> Dict[str, Any]:
    """Profile of proxy [P, G], gt [P, G] and summed sample log-probs [P, G] (see module doc).
    expected / systematic [P, G]: the scored records' expected_proxy / systematic_proxy
    (rlvr.rewards.categorize.reward_channels); with them, error labels are on the systematic part
    and the noise metrics (reward/signal_scale, reward/noise_var, reward/snr) are shown.

    `audit/success_histogram[c]` = prompts with exactly c of G samples correct (gt >= gt_pass);
    `audit/error_counts` = samples per error category.
    """
    if proxy.shape != gt.shape or proxy.shape != seq_logprob.shape or proxy.dim() != 2:
        raise ValueError(f"proxy, gt and seq_logprob must be [P, G] of one shape, got {tuple(proxy.shape)}, "
                         f"{tuple(gt.shape)}, {tuple(seq_logprob.shape)}")
    P, G = proxy.shape
    correct = gt >= gt_pass
    solved = correct.sum(dim=1)
    profile: Dict[str, Any] = {
        "audit/prompts": P, "audit/samples_per_prompt": G,
        "gt/accuracy": correct.double().mean().item(),
        "gt/reward_mean": gt.double().mean().item(),
        "proxy/reward_mean": proxy.double().mean().item(),
        "audit/gt_variance": gt.double().var(correction=0).item(),
        "audit/proxy_variance": proxy.double().var(correction=0).item(),
        "audit/success_histogram": [int((solved == c).sum()) for c in range(G + 1)],
        "audit/prompts_never_solved": (solved == 0).double().mean().item(),
        "audit/prompts_always_solved": (solved == G).double().mean().item(),
        **reward_error_metrics(proxy, gt, gt_pass=gt_pass, expected=expected, systematic=systematic),
    }
    labels = [c for row in categorize(proxy if systematic is None else systematic, gt) for c in row]
    profile["audit/error_counts"] = {c: labels.count(c) for c in CATEGORIES if c != "none"}
    pairs = ranking_pairs(proxy, gt, seq_logprob)
    profile["audit/ranking_pairs"] = 0 if pairs is None else int(pairs[0].shape[0])
    for name in ("acc", "acc_w", "hacc", "hacc_w"):
        profile[f"audit/{name}"] = None
    if pairs is not None:
        chosen, rejected, lp_chosen, lp_rejected, mean_proxy = pairs
        profile.update({
            "audit/acc": acc(chosen, rejected).item(),
            "audit/acc_w": acc_w(chosen, rejected, lp_chosen, lp_rejected).item(),
            "audit/hacc": hacc(chosen, rejected, mean_proxy).item(),
            "audit/hacc_w": hacc_w(chosen, rejected, lp_chosen, lp_rejected, mean_proxy).item(),
        })
    return profile


# (key, label, format) of the console table; None values print as "-".
AUDIT_TABLE = [
    ("gt/accuracy", "gt accuracy (sampled)", "{:.3f}"), ("proxy/reward_mean", "proxy reward mean", "{:.3f}"),
    ("reward/false_positive_rate", "false-positive rate", "{:.3f}"),
    ("reward/false_negative_rate", "false-negative rate", "{:.3f}"),
    ("reward/zero_proxy_variance_groups", "groups with zero proxy variance", "{:.3f}"),
    ("audit/prompts_never_solved", "prompts never solved", "{:.3f}"),
    ("audit/prompts_always_solved", "prompts always solved", "{:.3f}"),
    ("reward/signal_scale", "signal scale (slope of E[proxy|y] on gt)", "{:.3f}"),
    ("reward/noise_var", "noise variance", "{:.4f}"), ("reward/snr", "within-group signal/noise", "{:.3f}"),
    ("reward/systematic_error_rate", "systematic error rate", "{:.3f}"),
    ("errors/harmful", "errors: harmful (heuristic)", "{:.3f}"), ("errors/benign", "errors: benign", "{:.3f}"),
    ("errors/beneficial", "errors: beneficial", "{:.3f}"),
    ("audit/acc", "Acc", "{:.3f}"), ("audit/acc_w", "Acc-W", "{:.3f}"), ("audit/hacc", "HAcc", "{:.3f}"),
    ("audit/hacc_w", "HAcc-W", "{:.3f}"),
]


def format_audit(profile: Dict[str, Any]) -> str:
    """Console table of a profile, with the 2x2 table and the success histogram."""
    width = max(len(label) for _, label, _ in AUDIT_TABLE)
    lines = [f"audit: {profile['audit/prompts']} prompts x {profile['audit/samples_per_prompt']} samples "
             "from the initial policy"]
    for key, label, fmt in AUDIT_TABLE:
        value = profile.get(key)
        lines.append(f"  {label.ljust(width)}  {'-' if value is None else fmt.format(value)}")
    lines.append("  2x2 (share of samples)   gt pass  gt fail")
    lines.append(f"    proxy pass             {profile['reward/table_pp_gp']:.3f}    {profile['reward/table_pp_gf']:.3f}")
    lines.append(f"    proxy fail             {profile['reward/table_pf_gp']:.3f}    {profile['reward/table_pf_gf']:.3f}")
    hist = profile["audit/success_histogram"]
    G = len(hist) - 1
    lines.append("  prompts by correct samples: " + "  ".join(f"{c}/{G}:{n}" for c, n in enumerate(hist)))
    return "\n".join(lines)
