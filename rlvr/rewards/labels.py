"""The one vocabulary of reward-error labels, shared by `rlvr theory` (static, exact bandit)
and training (online, per sampled group). Torch-free so the theory tool can import it.

y* is an optimal output: in training, a sample the ground truth scores as correct
(gt >= 1, the gold answer), whether or not the group holds one; in theory, an argmax of r_G.

- harmful_hacking: a suboptimal y whose proxy is above the mean proxy reward (it attracts
  probability) and at least the proxy of every optimal output: the policy may converge on it.
- harmful_stalling: a suboptimal y over-rewarded above the mean but below the best optimal
  proxy: probability piles onto it for a while (the paper's harmful type II).
- harmful_suppression: an optimal y under-rewarded to at most the mean: it never attracts.
- harmful_slowdown: an optimal y under-rewarded but still above the mean: it attracts slower.
- beneficial: a mediocre y (mean gt < r_G(y) < optimal) the proxy keeps at or below the mean,
  so it cannot stall the policy (the paper's y_med). Binary (0/1) rewards have no mediocre
  outputs, so this label never fires with them.
- benign_I: the error leaves y attracting no probability (an over-reward at or below the
  mean, or an under-reward of an output that would not attract under r_G either).
- benign_II: pi_0(y) is negligible (theory only: needs the policy's probabilities).
- benign_best: an optimal y over-rewarded: it already attracts; the ablation finds no effect.

Online labels are a diagnostic heuristic computed from G samples (the group mean stands in for
the policy's expected reward); the causal answer is an ablation (`rlvr theory`) or a study arm
that corrects one error class.
"""
from __future__ import annotations

FAMILIES = ("harmful", "benign", "beneficial")
LABELS = ("harmful_hacking", "harmful_stalling", "harmful_suppression", "harmful_slowdown",
          "beneficial", "benign_I", "benign_II", "benign_best")
ONLINE_LABELS = tuple(label for label in LABELS if label != "benign_II")


def family(label: str) -> str:
    """'harmful_hacking' -> 'harmful', 'benign_I' -> 'benign', 'beneficial' -> 'beneficial'."""
    return label.split("_")[0]
