"""Online error categorization and reward-error metrics on hand-derived groups."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlvr.rewards.categorize import (CATEGORIES, SUBCATEGORIES, categorize, categorize_group, category_codes,
                                     noise_metrics, reward_channels, reward_error_metrics)
from rlvr.rewards.labels import family

# Paper Section 3.3: y*, y_med and three bad outputs.
GT = [1.0, 0.8, -1.0, -1.0, -1.0]


def labels(proxy, gt=GT, fine=False):
    return categorize_group(torch.tensor(proxy), torch.tensor(gt), fine=fine)


def test_paper_pattern_y_med_error_is_beneficial():
    # V_P = -0.6, V_G = -0.04: y_med (gt 0.8, mediocre) gets proxy -1 <= V_P
    assert labels([1, -1, -1, -1, -1]) == ["none", "beneficial", "none", "none", "none"]
    assert labels([1, -1, -1, -1, -1], fine=True)[1] == "beneficial"


def test_high_proxy_on_a_bad_output_is_harmful_hacking():
    # V_P = -0.2: the bad output 2 gets the top proxy while gt -1 < V_G
    assert labels([1, -1, 1, -1, -1]) == ["none", "beneficial", "harmful", "none", "none"]
    assert labels([1, -1, 1, -1, -1], fine=True)[2] == "harmful_hacking"


def test_an_over_reward_below_the_mean_is_still_harmful():
    # V_P = -0.14: output 2's proxy -0.5 stays below the mean, but the direction rule (the best
    # predictor of the Shapley effect) calls every over-reward of a suboptimal output harmful
    assert labels([1, 0.8, -0.5, -1, -1]) == ["none", "none", "harmful", "none", "none"]
    assert labels([1, 0.8, -0.5, -1, -1], fine=True)[2] == "harmful_stalling"


def test_an_under_reward_is_never_hacking():
    # the case: gt 0.5, proxy 0.3 in a group whose mean proxy is 0.075 (the old online
    # rule: harmful_hacking; the theory: beneficial). Now beneficial everywhere.
    assert labels([0.3, 0.0, 0.0, 0.0], gt=[0.5, 0.0, 0.0, 0.0], fine=True) == ["beneficial", "none", "none", "none"]


def test_partial_credit_on_a_failing_output_is_stalling():
    # paper Section 5: 0.5 for one of two constraints; V_P = 0.375, the top proxy is 1
    assert labels([1, 0.5, 0, 0], gt=[1, 0, 0, 0], fine=True) == ["none", "harmful_stalling", "none", "none"]


def test_raising_a_mediocre_output_is_stalling_below_y_star_and_hacking_at_it():
    # V_P = 0.475 < 0.9 < proxy(y*) = 1: it attracts probability, but y* stays the proxy's best
    assert labels([1, 0.9, 0, 0], gt=[1, 0.8, 0, 0], fine=True)[1] == "harmful_stalling"
    # proxy(y_med) = proxy(y*): the policy may converge on y_med
    assert labels([1, 1, 0, 0], gt=[1, 0.8, 0, 0], fine=True)[1] == "harmful_hacking"
    # y* under-rewarded: the bad output 1 now beats every best output
    assert labels([0, 1, 0, 0], gt=[1, 0, 0, 0], fine=True) == [
        "harmful_suppression", "harmful_hacking", "none", "none"]


def test_a_best_output_kept_below_the_mean_is_harmful_suppression():
    assert labels([0, 0, 0, 0], gt=[1, 0, 0, 0], fine=True) == ["harmful_suppression", "none", "none", "none"]
    assert labels([0, 0, 0, 0], gt=[1, 0, 0, 0]) == ["harmful", "none", "none", "none"]


def test_bonus_on_a_best_output_is_beneficial():
    assert labels([1, 1.1, 0, 0], gt=[1, 1, 0, 0], fine=True) == ["none", "beneficial_best", "none", "none"]


def test_the_gold_answer_defines_y_star_in_flat_groups():
    # All wrong: a false positive gets a positive advantage on a wrong answer; that is hacking
    # even though no correct sample is in the group (the gold answer is y*).
    assert labels([1, 0, 0, 0], gt=[0, 0, 0, 0], fine=True) == ["harmful_hacking", "none", "none", "none"]
    # All right: a false negative pushes a correct answer down.
    assert labels([0, 1, 1, 1], gt=[1, 1, 1, 1], fine=True) == ["harmful_suppression", "none", "none", "none"]
    # All wrong and all rewarded alike: over-rewards of wrong answers, harmful by direction.
    assert labels([1, 1, 1, 1], gt=[0, 0, 0, 0]) == ["harmful"] * 4


def test_an_under_rewarded_optimal_output_still_above_the_mean_is_slowdown():
    # V_P = 0.3: y* at 0.9 < gt 1 still attracts, more slowly
    assert labels([0.9, 0.3, 0, 0], gt=[1, 0.3, 0, 0], fine=True) == ["harmful_slowdown", "none", "none", "none"]


def test_no_error_means_none():
    assert labels(GT) == ["none"] * 5


def test_vectorised_matches_per_group():
    torch.manual_seed(0)
    gt = torch.randint(0, 3, (64, 6)).double() / 2
    proxy = torch.where(torch.rand(64, 6) < 0.3, torch.randint(0, 3, (64, 6)).double() / 2, gt)
    codes, sub = category_codes(proxy, gt), category_codes(proxy, gt, fine=True)
    names, fine = categorize(proxy, gt), categorize(proxy, gt, fine=True)
    assert codes.shape == sub.shape == (64, 6)
    assert len(names) == 64 and all(len(row) == 6 for row in names)
    for p in range(64):
        assert names[p] == [CATEGORIES[c] for c in codes[p].tolist()] == categorize_group(proxy[p], gt[p])
        assert fine[p] == [SUBCATEGORIES[c] for c in sub[p].tolist()] == categorize_group(proxy[p], gt[p], fine=True)
        assert [family(f) for f in fine[p]] == names[p]
    assert ((codes == 0) == (proxy == gt)).all()
    assert {n for row in fine for n in row} >= {"none", "harmful_hacking", "harmful_suppression", "beneficial"}


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="must both be"):
        category_codes(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="must both be"):
        categorize_group(torch.zeros(2, 3), torch.zeros(2, 3))


# ----------------------------------------------------------------------------- metrics

METRIC_NAMES = {
    "reward/error_rate", "reward/false_positive_rate", "reward/false_negative_rate",
    "errors/harmful", "errors/benign", "errors/beneficial",
    "reward/table_pp_gp", "reward/table_pp_gf", "reward/table_pf_gp", "reward/table_pf_gf",
    "reward/proxy_std", "reward/gt_std", "reward/zero_proxy_variance_groups",
    "reward/gt_flat_proxy_varied_groups",
}


def test_reward_error_metrics_hand_computed():
    gt = torch.tensor([[1.0, 0.0, 0.0, 0.0],
                       [1.0, 1.0, 0.0, 0.0],
                       [0.0, 0.0, 0.0, 0.0]])
    proxy = torch.tensor([[1.0, 1.0, 0.0, 0.0],   # FP on sample 1: top proxy, gt < V_G -> hacking
                          [0.0, 1.0, 0.0, 0.0],   # FN on sample 0: best kept at V_P -> suppression
                          [0.0, 0.0, 0.0, 0.0]])  # clean, flat
    m = reward_error_metrics(proxy, gt)
    assert set(m) == METRIC_NAMES
    assert m["reward/error_rate"] == pytest.approx(2 / 12)
    assert m["reward/false_positive_rate"] == pytest.approx(1 / 9)  # 9 gt fails, 1 passes the proxy
    assert m["reward/false_negative_rate"] == pytest.approx(1 / 3)  # 3 gt passes, 1 fails the proxy
    assert m["errors/harmful"] == pytest.approx(2 / 12)
    assert m["errors/benign"] == m["errors/beneficial"] == 0.0
    assert m["reward/table_pp_gp"] == pytest.approx(2 / 12)
    assert m["reward/table_pp_gf"] == pytest.approx(1 / 12)
    assert m["reward/table_pf_gp"] == pytest.approx(1 / 12)
    assert m["reward/table_pf_gf"] == pytest.approx(8 / 12)
    # population stds: [0.5, sqrt(3)/4, 0] for the proxy and [sqrt(3)/4, 0.5, 0] for gt
    assert m["reward/proxy_std"] == pytest.approx((0.5 + 3 ** 0.5 / 4) / 3)
    assert m["reward/gt_std"] == pytest.approx((0.5 + 3 ** 0.5 / 4) / 3)
    assert m["reward/zero_proxy_variance_groups"] == pytest.approx(1 / 3)
    assert m["reward/gt_flat_proxy_varied_groups"] == 0.0

    fine = reward_error_metrics(proxy, gt, fine=True)
    assert fine["errors/harmful_hacking"] == fine["errors/harmful_suppression"] == pytest.approx(1 / 12)
    assert fine["errors/harmful_stalling"] == fine["errors/benign_I"] == fine["errors/beneficial_best"] == 0.0
    assert set(fine) - set(m) == {f"errors/{name}" for name in SUBCATEGORIES[1:] if name != "beneficial"}


def test_metrics_on_the_paper_pattern():
    m = reward_error_metrics(torch.tensor([[1, -1, -1, -1, -1.0]]), torch.tensor([GT]))
    assert m["errors/beneficial"] == pytest.approx(0.2)
    assert m["reward/error_rate"] == pytest.approx(0.2)
    # "pass" is full credit: y_med (0.8) is a gt fail, so the proxy's -1 is not a false negative
    assert m["reward/false_negative_rate"] == 0.0
    assert m["reward/false_positive_rate"] == 0.0


def test_rates_are_zero_when_nothing_is_conditioned_on():
    all_fail = reward_error_metrics(torch.ones(2, 3) * 0.5, torch.zeros(2, 3))
    assert all_fail["reward/false_negative_rate"] == 0.0  # no gt pass
    assert all_fail["reward/false_positive_rate"] == 0.0  # 0.5 partial credit is not a pass
    assert all_fail["reward/error_rate"] == 1.0
    all_pass = reward_error_metrics(torch.zeros(1, 2), torch.ones(1, 2))
    assert all_pass["reward/false_positive_rate"] == 0.0
    assert all_pass["reward/false_negative_rate"] == 1.0


def test_backward_corrected_values_pass_iff_the_flipped_reward_passed():
    rho0, rho1 = 0.2, 0.1
    corrected = [(r - rho0) / (1 - rho0 - rho1) for r in (1.0, 0.0, 1.0, 0.0)]
    m = reward_error_metrics(torch.tensor([corrected]), torch.tensor([[1.0, 0.0, 0.0, 1.0]]))
    assert m["reward/false_positive_rate"] == pytest.approx(0.5)
    assert m["reward/false_negative_rate"] == pytest.approx(0.5)


def test_gt_flat_proxy_varied_groups():
    gt = torch.zeros(4, 3)
    proxy = torch.tensor([[0, 0, 0], [1, 0, 0], [0.1, 0, 0], [1, 1, 1.0]])
    m = reward_error_metrics(proxy, gt)
    assert m["reward/gt_flat_proxy_varied_groups"] == pytest.approx(0.5)
    assert m["reward/zero_proxy_variance_groups"] == pytest.approx(0.5)
    # [1, 0, 0], [0.1, 0, 0] and [1, 1, 1]: over-rewarded wrong answers, all harmful
    assert m["errors/harmful"] == pytest.approx(5 / 12)
    assert m["errors/benign"] == 0.0


# ------------------------------------------------- the vectorised code against a per-sample reference

def _reference_label(proxy, gt, j, atol, gt_pass):
    """The direction rule for sample j of one group, written out (the reference)."""
    if abs(proxy[j] - gt[j]) <= atol:
        return "none"
    v_p = float(np.mean(np.array(proxy)))
    optimal = [g >= gt_pass - atol for g in gt]
    best = max([p for p, o in zip(proxy, optimal) if o], default=-float("inf"))
    if optimal[j]:
        if proxy[j] > gt[j]:
            return "beneficial_best"
        return "harmful_slowdown" if proxy[j] > v_p + atol else "harmful_suppression"
    if proxy[j] > gt[j]:
        return "harmful_hacking" if proxy[j] >= best - atol else "harmful_stalling"
    return "beneficial"


def _random_groups(seed):
    """Random [P, G] rewards mixing 0/1, partial credit, bonuses, corrected flips, continuous
    values and values within atol of each other and of the pass thresholds."""
    g = torch.Generator().manual_seed(seed)
    P, G = int(torch.randint(1, 20, (1,), generator=g)), int(torch.randint(1, 10, (1,), generator=g))
    grid = torch.tensor([0.0, 1.0, 0.5, 1.1, -1.0, -0.2 / 0.7, 0.8 / 0.7, 1 - 1e-7, 1 + 3e-7, 0.8, 2.0])

    def draw():
        picked = grid[torch.randint(0, len(grid), (P, G), generator=g)]
        smooth = torch.rand(P, G, generator=g, dtype=torch.float64) * 2 - 0.5
        return torch.where(torch.rand(P, G, generator=g) < 0.2, smooth, picked.double())

    gt = draw()
    nudged = gt + (torch.rand(P, G, generator=g, dtype=torch.float64) - 0.5) * 4e-6  # some within atol
    proxy = torch.where(torch.rand(P, G, generator=g) < 0.5, gt, draw())
    proxy = torch.where(torch.rand(P, G, generator=g) < 0.1, nudged, proxy)
    flat = torch.rand(P, 1, generator=g) < 0.2  # some groups all alike
    return proxy.where(~flat, proxy[:, :1]), gt.where(torch.rand(P, 1, generator=g) >= 0.2, gt[:, :1])


@pytest.mark.parametrize("seed", range(12))
def test_vectorised_codes_equal_the_reference(seed):
    proxy, gt = _random_groups(seed)
    atol, gt_pass = [(1e-6, 1.0), (1e-3, 1.0), (0.0, 0.8)][seed % 3]
    sub = category_codes(proxy, gt, fine=True, atol=atol, gt_pass=gt_pass)
    for p in range(proxy.shape[0]):
        row_p, row_g = proxy[p].tolist(), gt[p].tolist()
        want = [_reference_label(row_p, row_g, j, atol, gt_pass) for j in range(len(row_p))]
        assert [SUBCATEGORIES[c] for c in sub[p].tolist()] == want
    m = reward_error_metrics(proxy, gt, gt_pass=gt_pass, atol=atol, fine=True)
    n = proxy.numel()
    for fam in ("harmful", "benign", "beneficial"):
        count = sum(1 for c in sub.flatten().tolist() if c and family(SUBCATEGORIES[c]) == fam)
        assert m[f"errors/{fam}"] == pytest.approx(count / n)


# ------------------------------------------------------------- systematic error vs noise

def test_labels_follow_the_systematic_proxy_and_noise_metrics_by_hand():
    # flip fp 0.4, fn 0: E[r_P | y] = 0.4 + 0.6 gt; the systematic proxy (E - 0.4) / 0.6 is gt
    gt = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    proxy = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]])
    expected = 0.4 + 0.6 * gt
    m = reward_error_metrics(proxy, gt, expected=expected, systematic=gt)
    assert m["errors/harmful"] == m["errors/benign"] == m["errors/beneficial"] == 0.0
    assert m["reward/systematic_error_rate"] == 0.0 and m["reward/error_rate"] == pytest.approx(2 / 8)
    assert m["reward/signal_scale"] == pytest.approx(0.6)
    # residuals: row 0: 0, 0.6, -0.4, -0.4; row 1: 0, 0, 0.6, -0.4 -> squares sum 0.36*2 + 0.16*3 = 1.2
    assert m["reward/noise_var"] == pytest.approx(1.2 / 8)
    # within-group var of E: row 0: 0.36 * 3/16; row 1: 0.36 * 1/4
    signal = (0.36 * 3 / 16 + 0.36 / 4) / 2
    assert m["reward/signal_var"] == pytest.approx(signal)
    assert m["reward/snr"] == pytest.approx(signal / (1.2 / 8))
    # the realized proxy as if it were systematic: the old (misleading) picture, hacking everywhere
    assert reward_error_metrics(proxy, gt)["errors/harmful"] == pytest.approx(2 / 8)


def test_noise_metrics_edge_cases():
    gt = torch.zeros(2, 3)
    flat = noise_metrics(gt, gt, gt)
    assert math.isnan(flat["reward/signal_scale"]) and flat["reward/noise_var"] == 0.0 and math.isnan(flat["reward/snr"])
    gt = torch.tensor([[1.0, 0.0, 0.0]])
    assert noise_metrics(gt, gt, gt)["reward/snr"] == math.inf  # a noiseless design with signal
    # no group varies in gt, but the pooled samples do: the pooled slope
    pooled = noise_metrics(torch.tensor([[1.0, 1], [0, 0]]), torch.tensor([[1.0, 1], [0, 0]]),
                           torch.tensor([[0.8, 0.8], [0.2, 0.2]]))
    assert pooled["reward/signal_scale"] == pytest.approx(0.6)


def test_reward_channels_reads_scored_records():
    scored = [[{"proxy": 1.0, "gt": 0.0, "expected_proxy": 0.4, "systematic_proxy": 0.0},
               {"proxy": 0.0, "gt": 0.0}]]
    proxy, gt, expected, systematic = reward_channels(scored)
    assert proxy.tolist() == [[1.0, 0.0]] and expected.tolist() == [[0.4, 0.0]] and systematic.tolist() == [[0.0, 0.0]]
