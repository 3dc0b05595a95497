"""One labeller: the same cases through every entry point (training's online categorization,
`rlvr audit`'s profile, `rlvr score`'s category, `rlvr theory`'s static category) give one answer."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rlvr.rewards.audit import audit_profile
from rlvr.rewards.categorize import categorize_group, reward_error_metrics
from rlvr.rewards.labels import family, label_errors
from rlvr.rewards.score_command import label_categories
from rlvr.theory.categorize import categorize_errors

# (gt, proxy, expected label per output): uniform weights, so group mean = E under pi_0.
CASES = [
    # paper Section 3.3: y*, y_med, three bad outputs; the proxy's only error is y_med
    ([1.0, 0.8, -1, -1, -1], [1.0, -1, -1, -1, -1], ["none", "beneficial", "none", "none", "none"]),
    # the disagreement: graded gt 0.5, proxy 0.3, group mean 0.075 -> an under-reward
    ([0.5, 0.0, 0.0, 0.0, 1.0], [0.3, 0.0, 0.0, 0.0, 1.0], ["beneficial", "none", "none", "none", "none"]),
    # hacking: a wrong output rewarded like the best one
    ([1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], ["none", "harmful_hacking", "none", "none"]),
    # stalling: partial credit below the best output's proxy
    ([1.0, 0.0, 0.0, 0.0], [1.0, 0.5, 0.0, 0.0], ["none", "harmful_stalling", "none", "none"]),
    # suppression: the optimal output kept at the mean
    ([1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], ["harmful_suppression", "none", "none", "none"]),
    # slowdown: the optimal output under-rewarded but above the mean
    ([1.0, 0.3, 0.0, 0.0], [0.9, 0.3, 0.0, 0.0], ["harmful_slowdown", "none", "none", "none"]),
    # beneficial_best: a bonus on the optimal output
    ([1.0, 0.0, 0.0, 0.0], [1.5, 0.0, 0.0, 0.0], ["beneficial_best", "none", "none", "none"]),
    # an under-reward of a bad output: beneficial
    ([1.0, 0.8, -1, -1], [1.0, 0.8, -2, -1], ["none", "none", "beneficial", "none"]),
]


@pytest.mark.parametrize("gt, proxy, want", CASES)
def test_every_entry_point_gives_the_same_label(gt, proxy, want):
    families = [w if w == "none" else family(w) for w in want]
    # the labeller itself, online (best = the gold 1.0) and as theory calls it (best = max r_G)
    assert list(label_errors([gt], [proxy], best=1.0)[0]) == want
    k = len(gt)
    probs = np.full(k, 1.0 / k)
    theory = categorize_errors(probs, np.array(proxy), np.array(gt))
    assert {y: c.category for y, c in theory.items()} == {y: w for y, w in enumerate(want) if w != "none"}
    # training: the online categorization and its metrics
    assert categorize_group(torch.tensor(proxy), torch.tensor(gt), fine=True) == want
    m = reward_error_metrics(torch.tensor([proxy]), torch.tensor([gt]))
    for fam in ("harmful", "benign", "beneficial"):
        assert m[f"errors/{fam}"] == pytest.approx(families.count(fam) / k)
    # rlvr audit
    profile = audit_profile(torch.tensor([proxy]), torch.tensor([gt]), torch.zeros(1, k))
    assert profile["audit/error_counts"] == {fam: families.count(fam) for fam in ("harmful", "benign", "beneficial")}
    # rlvr score
    records = [{"prompt_id": "p", "sample_index": j, "gt": g, "proxy": p, "systematic_proxy": p}
               for j, (g, p) in enumerate(zip(gt, proxy))]
    label_categories(records)
    assert [r["category"] for r in records] == families


def test_theory_alone_marks_negligible_outputs_benign():
    # online a sampled output is never negligible; in theory pi_0(y) < 0.02 is benign_II
    gt, proxy = np.array([1.0, 0.0, 0.0]), np.array([1.0, 1.0, 0.0])
    theory = categorize_errors(np.array([0.5, 0.01, 0.49]), proxy, gt)
    assert theory[1].category == "benign_II"
    assert categorize_group(torch.tensor(proxy), torch.tensor(gt), fine=True)[1] == "harmful_hacking"
