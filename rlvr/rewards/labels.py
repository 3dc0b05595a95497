"""The one labeller of reward errors, shared by training (online, per sampled group), `rlvr audit`,
`rlvr score` and `rlvr theory` (static, exact bandit). Pure numpy, torch-free.

An error is an output y whose proxy r_P(y) differs from its ground truth r_G(y). `label_errors`
labels every output of a batch of "groups" from three arrays of the same shape [..., K]:

- r_G: the ground-truth reward of each output;
- r_P: the proxy's *systematic* part on the ground truth's scale (rlvr/rewards/designs: the
  expected proxy E[r_P | prompt, response] with the design's noise channel undone; for a
  deterministic design it is the proxy itself);
- weights: the policy's probability of each output. In theory these are pi_0(y) over the K
  outputs; online each of a group's G samples weighs 1/G (the group's samples stand in for the
  policy, and V = sum_y w(y) r(y) is the group mean).

y* is an optimal output: r_G(y) >= `best` (online: the gold answer's reward, 1.0, whether or not
the group holds one) or, with best None, an argmax of r_G over the K outputs (theory).

RULES maps a rule name to a function of the error's features giving its family; the default rule
(DEFAULT_RULE) was chosen by agreement with the exact Shapley effect of each error on random
bandit instances (`rlvr theory --random`, docs/labels.md), where it had the highest Cohen's kappa.

The default rule, "direction" (what the error does to the policy-gradient signal's direction):
- harmful: it over-rewards a suboptimal output or under-rewards an optimal one;
- beneficial: it under-rewards a suboptimal output or over-rewards an optimal one;
- benign: pi_0(y) < negligible_prob (theory only, 0.02 by default; online the cut is off).

Sub-labels (the label names; the family is the part before the first '_'):
- harmful_hacking: a suboptimal y over-rewarded to at least every optimal output's proxy;
- harmful_stalling: a suboptimal y over-rewarded, but below some optimal output's proxy;
- harmful_suppression: an optimal y under-rewarded to at most the mean proxy V_P (never attracts);
- harmful_slowdown: an optimal y under-rewarded but still above V_P (attracts more slowly);
- beneficial: a suboptimal y under-rewarded (the paper's y_med, generalised);
- beneficial_best: an optimal y over-rewarded (the ablations find it speeds learning; the old
  rule called it benign_best);
- benign_I: the error leaves y attracting no probability under either reward (only the
  comparison rules use it);
- benign_II: pi_0(y) is negligible (over a finite horizon nothing changes);
- harmful_other / beneficial_other: what a comparison rule calls an error of an unusual
  direction (e.g. the first-order rule on an under-rewarded suboptimal output).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional

import numpy as np

FAMILIES = ("harmful", "benign", "beneficial")
LABELS = ("harmful_hacking", "harmful_stalling", "harmful_suppression", "harmful_slowdown",
          "beneficial", "beneficial_best", "benign_I", "benign_II", "harmful_other", "beneficial_other")
# What the default rule can give online (benign_II needs pi_0; *_other and benign_I only other rules).
ONLINE_LABELS = ("harmful_hacking", "harmful_stalling", "harmful_suppression", "harmful_slowdown",
                 "beneficial", "beneficial_best")
NONE = "none"
CODES = (NONE, *LABELS)  # label codes: index into CODES (0 is "no error")
ATOL = 1e-6
# pi_0(y) below this is negligible (benign_II) in theory: 0.02 gave the default rule its best kappa
# with the Shapley verdict on seed 0 and held on seed 1 (docs/labels.md). Online it is 0: a sampled
# output's probability is not known from its group (1/G is a sample's weight, not pi(y)).
NEGLIGIBLE_PROB_THEORY = 0.02
NEGLIGIBLE_PROB = 0.0


def family(label: str) -> str:
    """'harmful_hacking' -> 'harmful', 'benign_I' -> 'benign', 'beneficial' -> 'beneficial'."""
    return label.split("_")[0]


@dataclass(frozen=True)
class ErrorFeatures:
    """What every rule may look at, per output; arrays of the inputs' shape [..., K]."""

    error: np.ndarray  # |r_P - r_G| > atol
    over: np.ndarray  # r_P > r_G
    optimal: np.ndarray  # y is a y*
    attracts_p: np.ndarray  # r_P(y) > V_P (its logit rises under the proxy, tabular case)
    attracts_g: np.ndarray  # r_G(y) > V_G
    negligible: np.ndarray  # weight < negligible_prob
    at_top: np.ndarray  # r_P(y) >= the proxy of every optimal output (True when none is given)
    first_order: np.ndarray  # the error's effect on d/dt E[r_G] at the given policy (tabular)


def error_features(gt, proxy, weights=None, best: Optional[float] = None, atol: float = ATOL,
                   negligible_prob: float = NEGLIGIBLE_PROB) -> ErrorFeatures:
    """Features of every output. gt, proxy [..., K]; weights [..., K] (None: uniform 1/K)."""
    gt, proxy = np.asarray(gt, dtype=np.float64), np.asarray(proxy, dtype=np.float64)
    if gt.shape != proxy.shape or gt.ndim == 0 or gt.shape[-1] == 0:
        raise ValueError(f"proxy {proxy.shape} and gt {gt.shape} must both be non-empty [..., K]")
    if weights is None:  # a group's samples: V is the group mean
        w = np.full_like(gt, 1.0 / gt.shape[-1])
        v_p, v_g = proxy.mean(axis=-1, keepdims=True), gt.mean(axis=-1, keepdims=True)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != gt.shape:
            raise ValueError(f"weights {w.shape} must have the rewards' shape {gt.shape}")
        w = w / w.sum(axis=-1, keepdims=True)
        v_p, v_g = (w * proxy).sum(axis=-1, keepdims=True), (w * gt).sum(axis=-1, keepdims=True)
    top = gt.max(axis=-1, keepdims=True) if best is None else best
    optimal = gt >= top - atol
    best_optimal_proxy = np.where(optimal, proxy, -np.inf).max(axis=-1, keepdims=True)
    # d/dt V_G = sum_z pi_z^2 A_G(z) A_P(z) under tabular gradient flow; it is linear in r_P, and
    # its derivative in r_P(y) is pi_y^2 A_G(y) - pi_y sum_z pi_z^2 A_G(z).
    a_g = gt - v_g
    slope = w * w * a_g - w * (w * w * a_g).sum(axis=-1, keepdims=True)
    return ErrorFeatures(
        error=np.abs(proxy - gt) > atol, over=proxy > gt, optimal=optimal,
        attracts_p=proxy > v_p + atol, attracts_g=gt > v_g + atol, negligible=w < negligible_prob,
        at_top=proxy >= best_optimal_proxy - atol, first_order=(proxy - gt) * slope)


# ---------------------------------------------------------------- rules: features -> family

def _family_array(f: ErrorFeatures, harmful, beneficial) -> np.ndarray:
    out = np.where(harmful, "harmful", np.where(beneficial, "beneficial", "benign")).astype(object)
    return np.where(f.error, out, NONE)


def rule_direction(f: ErrorFeatures) -> np.ndarray:
    """harmful: over-rewards a suboptimal or under-rewards an optimal output; benign: negligible
    pi_0(y); beneficial otherwise."""
    live = ~f.negligible
    harmful = live & (f.over != f.optimal)
    return _family_array(f, harmful, live & ~harmful)


def rule_theory_v1(f: ErrorFeatures) -> np.ndarray:
    """The static rule `rlvr theory` used before (attraction at pi_0, benign_best benign)."""
    live = ~f.negligible
    harmful = live & np.where(f.optimal, ~f.over, f.over & f.attracts_p)
    beneficial = live & ~f.optimal & ~f.over & f.attracts_g
    return _family_array(f, harmful, beneficial)


def rule_online_v1(f: ErrorFeatures) -> np.ndarray:
    """The online rule training used before: a suboptimal output that attracts under the proxy
    is harmful whatever the error's direction."""
    harmful = np.where(f.attracts_p, np.where(f.optimal, ~f.over, True), f.optimal & ~f.over)
    beneficial = ~f.attracts_p & ~f.optimal & f.attracts_g
    return _family_array(f, harmful, beneficial)


def rule_direction_attract(f: ErrorFeatures) -> np.ndarray:
    """The direction rule, but an over-reward that leaves y below V_P (it attracts nothing) and an
    under-reward of an output that attracts nothing under r_G either are benign."""
    live = ~f.negligible
    inert = np.where(f.over, ~f.attracts_p & ~f.optimal, ~f.attracts_g & ~f.optimal)
    harmful = live & (f.over != f.optimal) & ~inert
    return _family_array(f, harmful, live & ~harmful & ~inert)


def rule_first_order(f: ErrorFeatures, rel_tol: float = 1e-9) -> np.ndarray:
    """The sign of the error's first-order effect on d/dt E[r_G] at the given policy (tabular
    gradient flow); benign when it is zero."""
    harmful = f.first_order < -rel_tol
    return _family_array(f, harmful, f.first_order > rel_tol)


RULES: Dict[str, Callable[[ErrorFeatures], np.ndarray]] = {
    "direction": rule_direction,
    "direction_attract": rule_direction_attract,
    "theory_v1": rule_theory_v1,
    "online_v1": rule_online_v1,
    "first_order": rule_first_order,
}
DEFAULT_RULE = "direction"


def sublabels(f: ErrorFeatures, families: np.ndarray) -> np.ndarray:
    """Label names [..., K] (object array) from each error's family and shape."""
    harmful = np.where(f.optimal & ~f.over, np.where(f.attracts_p, "harmful_slowdown", "harmful_suppression"),
                       np.where(~f.optimal & f.over, np.where(f.at_top, "harmful_hacking", "harmful_stalling"),
                                "harmful_other"))
    beneficial = np.where(f.optimal & f.over, "beneficial_best",
                          np.where(~f.optimal & ~f.over, "beneficial", "beneficial_other"))
    benign = np.where(f.negligible, "benign_II", "benign_I")
    out = np.where(families == "harmful", harmful,
                   np.where(families == "beneficial", beneficial, np.where(families == "benign", benign, NONE)))
    return out.astype(object)


def label_errors(gt, proxy, weights=None, best: Optional[float] = None, rule: str = DEFAULT_RULE,
                 atol: float = ATOL, negligible_prob: float = NEGLIGIBLE_PROB) -> np.ndarray:
    """The label of every output: an object array [..., K] of names from CODES ("none" where
    r_P == r_G within atol). gt, proxy, weights [..., K]; see the module docstring."""
    if rule not in RULES:
        raise ValueError(f"unknown labelling rule {rule!r}; choose one of {sorted(RULES)}")
    f = error_features(gt, proxy, weights, best, atol, negligible_prob)
    return sublabels(f, RULES[rule](f))


def label_codes(gt, proxy, weights=None, best: Optional[float] = None, rule: str = DEFAULT_RULE,
                atol: float = ATOL, negligible_prob: float = NEGLIGIBLE_PROB) -> np.ndarray:
    """label_errors as int codes (indices into CODES). [..., K] -> [..., K] int64."""
    names = label_errors(gt, proxy, weights, best, rule, atol, negligible_prob)
    return np.array([_CODE[name] for name in names.ravel()], dtype=np.int64).reshape(names.shape)


_CODE = {name: i for i, name in enumerate(CODES)}


def label_group(gt, proxy, best: Optional[float] = 1.0, rule: str = DEFAULT_RULE, atol: float = ATOL) -> list:
    """Online labels of one group of G samples (each weighs 1/G; y* = gt >= best). [G] -> [G] names."""
    return list(label_errors(np.asarray(gt, dtype=np.float64)[None], np.asarray(proxy, dtype=np.float64)[None],
                             None, best, rule, atol)[0])
