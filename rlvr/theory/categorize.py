"""Static categorization of reward errors relative to the initial policy (paper Section 3).

An error is an output y with r_P(y) != r_G(y). What it does to learning depends on
which outputs attract probability: in the tabular case the logit of y rises iff
r(y) > V(theta), and V_P only grows under gradient flow on r_P. Categories:

- harmful_hacking  (harmful, type I): the proxy over-rewards a suboptimal output
  above the mean and at least as high as every optimal output, so the policy
  converges onto it.
- harmful_stalling (harmful, type II): a suboptimal output is over-rewarded above
  the mean but below the best proxy reward (it attracts probability for a while,
  the policy concentrates on a suboptimal output).
- harmful_suppression: an optimal output under-rewarded to at most the mean: it
  never attracts probability.
- harmful_slowdown: an optimal output under-rewarded but still above the mean: it
  attracts probability more slowly.
- benign_I: the error leaves y attracting no probability under r_P: an
  over-reward that stays at or below V_P(theta_0), or an under-reward of a
  suboptimal output that attracts nothing under r_G either (r_G(y) <= V_G(theta_0)).
- benign_II: pi_0(y) < negligible_prob; benign only over a finite horizon.
- beneficial: a suboptimal output that would attract probability under r_G
  (r_G(y) > V_G(theta_0), a "mediocre" output that causes stalling) gets a lower
  proxy reward, steering probability to y*.
- benign_best: an optimal output over-rewarded: it attracts probability either way
  (the ablation finds no effect).

The names are the ones training's online categorization uses (rlvr/rewards/labels.py).

This is the tabular theory at theta_0; the ablation (rlvr.theory.ablation) is the
causal check, and disagreements are reported, not hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlvr.rewards.labels import FAMILIES, LABELS, family
from rlvr.theory import policy

CATEGORIES = LABELS
__all__ = ["CATEGORIES", "FAMILIES", "ErrorCategory", "categorize_error", "categorize_errors", "erroneous_outputs",
           "family"]
_REWARD_ATOL = 1e-12


@dataclass(frozen=True)
class ErrorCategory:
    """The static category of the error on one output, with the reason in words."""

    output: int
    category: str
    reason: str

    @property
    def family(self) -> str:
        return family(self.category)


def erroneous_outputs(proxy_rewards: np.ndarray, gt_rewards: np.ndarray) -> list[int]:
    """Indices y with r_P(y) != r_G(y). (K,), (K,) -> list of ints."""
    return [int(i) for i in np.flatnonzero(~np.isclose(proxy_rewards, gt_rewards, rtol=0, atol=_REWARD_ATOL))]


def categorize_error(
    output: int,
    initial_probs: np.ndarray,
    proxy_rewards: np.ndarray,
    gt_rewards: np.ndarray,
    negligible_prob: float = 1e-4,
) -> ErrorCategory:
    """Category of the error on `output` at the initial policy. initial_probs, rewards (K,)."""
    y = output
    r_p, r_g = float(proxy_rewards[y]), float(gt_rewards[y])
    v_p = float(policy.expected_reward(initial_probs, proxy_rewards))
    v_g = float(policy.expected_reward(initial_probs, gt_rewards))
    best_gt = float(gt_rewards.max())
    optimal = np.isclose(gt_rewards, best_gt, rtol=0, atol=_REWARD_ATOL)
    is_optimal = bool(optimal[y])
    over = r_p > r_g
    attracts_p, attracts_g = r_p > v_p, r_g > v_g
    values = f"r_P={r_p:g}, r_G={r_g:g}, V_P0={v_p:.4g}, V_G0={v_g:.4g}, pi0={initial_probs[y]:.3g}"

    def verdict(category: str, why: str) -> ErrorCategory:
        return ErrorCategory(y, category, f"{why} ({values})")

    if initial_probs[y] < negligible_prob:
        return verdict("benign_II", f"pi0(y) < {negligible_prob:g}: negligible probability over a finite horizon")
    if is_optimal:
        if over:
            return verdict("benign_best", "over-rewards an optimal output: it attracts probability either way")
        if not attracts_p:
            return verdict("harmful_suppression", "under-rewards an optimal output below V_P0: it never attracts")
        return verdict("harmful_slowdown", "under-rewards an optimal output: it attracts probability more slowly")
    if over:
        if not attracts_p:
            return verdict("benign_I", "r_P(y) < V_P0: y never attracts probability")
        best_optimal_proxy = float(proxy_rewards[optimal].max())
        if r_p >= best_optimal_proxy:
            return verdict("harmful_hacking", "high r_P on a suboptimal output, >= r_P of every optimal output")
        return verdict("harmful_stalling", "r_P(y) > V_P0 on a suboptimal output: the policy piles onto it for a while")
    if attracts_g:
        return verdict("beneficial", "low r_P on a mediocre output (r_G(y) > V_G0) that would stall the policy")
    return verdict("benign_I", "under-rewards an output that attracts no probability under r_G either")


def categorize_errors(
    initial_probs: np.ndarray,
    proxy_rewards: np.ndarray,
    gt_rewards: np.ndarray,
    negligible_prob: float = 1e-4,
) -> dict[int, ErrorCategory]:
    """Category of every erroneous output, keyed by output index. (K,), (K,), (K,)."""
    return {
        y: categorize_error(y, initial_probs, proxy_rewards, gt_rewards, negligible_prob)
        for y in erroneous_outputs(proxy_rewards, gt_rewards)
    }
