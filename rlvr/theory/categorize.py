"""Static categorization of reward errors relative to the initial policy (paper Section 3).

An error is an output y with r_P(y) != r_G(y). The label comes from the one labeller that
training, `rlvr audit` and `rlvr score` use too (rlvr/rewards/labels.py, its default rule), fed
the exact initial policy: weights pi_0(y), y* = an argmax of r_G, V = E_pi0[r]. The module
docstring there lists the labels and the rule; `rlvr theory --random` measures how well each
candidate rule predicts the exact Shapley effect of an error (rlvr/theory/shapley.py).

The names are the ones training's online categorization uses. The ablations and the Shapley
effect are the causal check; disagreements are reported, not hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlvr.rewards.labels import (DEFAULT_RULE, FAMILIES, LABELS, NEGLIGIBLE_PROB_THEORY, error_features, family,
                                 label_errors)
from rlvr.theory import policy

CATEGORIES = LABELS
__all__ = ["CATEGORIES", "FAMILIES", "ErrorCategory", "categorize_error", "categorize_errors", "erroneous_outputs",
           "family"]
_REWARD_ATOL = 1e-12

REASONS = {
    "harmful_hacking": "over-rewards a suboptimal output to at least every optimal output's proxy",
    "harmful_stalling": "over-rewards a suboptimal output (below the best optimal proxy): probability piles onto it",
    "harmful_suppression": "under-rewards an optimal output to at most V_P0: it never attracts",
    "harmful_slowdown": "under-rewards an optimal output: it attracts probability more slowly",
    "beneficial": "under-rewards a suboptimal output: it cannot stall the policy",
    "beneficial_best": "over-rewards an optimal output: it attracts probability faster",
    "benign_I": "y attracts probability under neither reward",
    "benign_II": "pi0(y) is negligible: no effect over a finite horizon",
    "harmful_other": "the rule judges this error harmful",
    "beneficial_other": "the rule judges this error beneficial",
}


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
    negligible_prob: float = NEGLIGIBLE_PROB_THEORY,
    rule: str = DEFAULT_RULE,
) -> ErrorCategory:
    """Category of the error on `output` at the initial policy. initial_probs, rewards (K,)."""
    return categorize_errors(initial_probs, proxy_rewards, gt_rewards, negligible_prob, rule, outputs=[output])[output]


def categorize_errors(
    initial_probs: np.ndarray,
    proxy_rewards: np.ndarray,
    gt_rewards: np.ndarray,
    negligible_prob: float = NEGLIGIBLE_PROB_THEORY,
    rule: str = DEFAULT_RULE,
    outputs: list[int] | None = None,
) -> dict[int, ErrorCategory]:
    """Category of every erroneous output (or of `outputs`), keyed by output index. (K,), (K,), (K,)."""
    probs = np.asarray(initial_probs, dtype=np.float64)
    proxy, gt = np.asarray(proxy_rewards, dtype=np.float64), np.asarray(gt_rewards, dtype=np.float64)
    names = label_errors(gt, proxy, probs, best=None, rule=rule, atol=_REWARD_ATOL, negligible_prob=negligible_prob)
    v_p, v_g = float(policy.expected_reward(probs, proxy)), float(policy.expected_reward(probs, gt))
    out = {}
    for y in (erroneous_outputs(proxy, gt) if outputs is None else outputs):
        name = str(names[y])
        values = f"r_P={proxy[y]:g}, r_G={gt[y]:g}, V_P0={v_p:.4g}, V_G0={v_g:.4g}, pi0={probs[y]:.3g}"
        out[y] = ErrorCategory(y, name, f"{REASONS.get(name, name)} ({values})")
    return out


def label_features(initial_probs: np.ndarray, proxy_rewards: np.ndarray, gt_rewards: np.ndarray,
                   negligible_prob: float = NEGLIGIBLE_PROB_THEORY):
    """The labeller's features of every output at pi_0 (rlvr.rewards.labels.ErrorFeatures)."""
    return error_features(gt_rewards, proxy_rewards, initial_probs, None, _REWARD_ATOL, negligible_prob)
