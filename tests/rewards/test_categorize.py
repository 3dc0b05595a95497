"""Online error categorization and reward-error metrics on hand-derived groups."""
from __future__ import annotations

import pytest
import torch

from rlvr.rewards.categorize import (CATEGORIES, SUBCATEGORIES, categorize, categorize_group,
                                     category_codes, family, reward_error_metrics)

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


def test_below_mean_error_on_a_bad_output_is_benign():
    # V_P = -0.14: output 2's proxy -0.5 is an error but stays below the mean
    assert labels([1, 0.8, -0.5, -1, -1]) == ["none", "none", "benign", "none", "none"]
    assert labels([1, 0.8, -0.5, -1, -1], fine=True)[2] == "benign_I"


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


def test_bonus_on_a_best_output_is_benign():
    assert labels([1, 1.1, 0, 0], gt=[1, 1, 0, 0], fine=True) == ["none", "benign_best", "none", "none"]


def test_the_gold_answer_defines_y_star_in_flat_groups():
    # All wrong: a false positive gets a positive advantage on a wrong answer; that is hacking
    # even though no correct sample is in the group (the gold answer is y*).
    assert labels([1, 0, 0, 0], gt=[0, 0, 0, 0], fine=True) == ["harmful_hacking", "none", "none", "none"]
    # All right: a false negative pushes a correct answer down.
    assert labels([0, 1, 1, 1], gt=[1, 1, 1, 1], fine=True) == ["harmful_suppression", "none", "none", "none"]
    # All wrong and all rewarded alike: nothing attracts, the errors are benign.
    assert labels([1, 1, 1, 1], gt=[0, 0, 0, 0]) == ["benign"] * 4


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
    assert {n for row in fine for n in row} >= {"none", "harmful_hacking", "benign_I", "beneficial"}


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
    assert fine["errors/harmful_stalling"] == fine["errors/benign_I"] == fine["errors/benign_best"] == 0.0
    assert set(fine) - set(m) == {"errors/harmful_hacking", "errors/harmful_stalling", "errors/harmful_suppression",
                                  "errors/harmful_slowdown", "errors/benign_I", "errors/benign_best"}


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
    # [1, 0, 0] and [0.1, 0, 0]: a wrong answer above the mean is hacking; [1, 1, 1]: benign
    assert m["errors/harmful"] == pytest.approx(2 / 12)
    assert m["errors/benign"] == pytest.approx(3 / 12)


# ------------------------------------------------- the vectorised code against the old one

def _reference_codes(proxy, gt, atol, gt_pass):
    """Sub-label codes as the masked-assignment implementation computed them (the reference)."""
    sub = SUBCATEGORIES.index
    v_p, v_g = proxy.mean(dim=1, keepdim=True), gt.mean(dim=1, keepdim=True)
    error = (proxy - gt).abs() > atol
    attracts, optimal, above_vg = proxy > v_p + atol, gt >= gt_pass - atol, gt > v_g + atol
    best_proxy = torch.where(optimal, proxy, torch.full_like(proxy, -torch.inf)).max(dim=1, keepdim=True).values
    code = torch.full(proxy.shape, sub("benign_I"), dtype=torch.long)
    code[attracts & optimal & (proxy > gt)] = sub("benign_best")
    code[attracts & optimal & (proxy < gt)] = sub("harmful_slowdown")
    code[attracts & ~optimal] = sub("harmful_stalling")
    code[attracts & ~optimal & (proxy >= best_proxy - atol)] = sub("harmful_hacking")
    code[~attracts & optimal & (proxy < gt)] = sub("harmful_suppression")
    code[~attracts & ~optimal & above_vg] = sub("beneficial")
    code[~error] = sub("none")
    return code


def _reference_metrics(proxy, gt, proxy_pass, gt_pass, atol):
    """reward_error_metrics as the one-.item()-per-metric implementation computed it."""
    sub = _reference_codes(proxy, gt, atol, gt_pass)
    cat = torch.tensor([CATEGORIES.index(family(s)) for s in SUBCATEGORIES])[sub]
    n = float(proxy.numel())
    pp, gp = proxy >= proxy_pass - atol, gt >= gt_pass - atol
    gt_fail, gt_passes = (~gp).sum().item(), gp.sum().item()
    proxy_std, gt_std = proxy.std(dim=1, correction=0), gt.std(dim=1, correction=0)
    proxy_flat, gt_flat = proxy_std <= atol, gt_std <= atol
    metrics = {
        "reward/error_rate": ((proxy - gt).abs() > atol).sum().item() / n,
        "reward/false_positive_rate": (pp & ~gp).sum().item() / gt_fail if gt_fail else 0.0,
        "reward/false_negative_rate": (~pp & gp).sum().item() / gt_passes if gt_passes else 0.0,
        "errors/harmful": (cat == CATEGORIES.index("harmful")).sum().item() / n,
        "errors/benign": (cat == CATEGORIES.index("benign")).sum().item() / n,
        "errors/beneficial": (cat == CATEGORIES.index("beneficial")).sum().item() / n,
        "reward/table_pp_gp": (pp & gp).sum().item() / n,
        "reward/table_pp_gf": (pp & ~gp).sum().item() / n,
        "reward/table_pf_gp": (~pp & gp).sum().item() / n,
        "reward/table_pf_gf": (~pp & ~gp).sum().item() / n,
        "reward/proxy_std": proxy_std.mean().item(),
        "reward/gt_std": gt_std.mean().item(),
        "reward/zero_proxy_variance_groups": proxy_flat.double().mean().item(),
        "reward/gt_flat_proxy_varied_groups": (gt_flat & ~proxy_flat).double().mean().item(),
    }
    for i, name in enumerate(SUBCATEGORIES):
        if family(name) in ("harmful", "benign"):
            metrics[f"errors/{name}"] = (sub == i).sum().item() / n
    return metrics


def _random_groups(seed):
    """Random [P, G] rewards mixing 0/1, partial credit, bonuses, corrected flips, continuous
    values and values within atol of each other and of the pass thresholds."""
    g = torch.Generator().manual_seed(seed)
    P, G = int(torch.randint(1, 40, (1,), generator=g)), int(torch.randint(1, 12, (1,), generator=g))
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


@pytest.mark.parametrize("seed", range(40))
def test_vectorised_codes_and_metrics_equal_the_reference_exactly(seed):
    proxy, gt = _random_groups(seed)
    atol, proxy_pass, gt_pass = [(1e-6, 1.0, 1.0), (1e-3, 0.5, 1.0), (0.0, 1.0, 0.8)][seed % 3]
    ref = _reference_codes(proxy, gt, atol, gt_pass)
    assert torch.equal(category_codes(proxy, gt, fine=True, atol=atol, gt_pass=gt_pass), ref)
    coarse = torch.tensor([CATEGORIES.index(family(s)) for s in SUBCATEGORIES])[ref]
    assert torch.equal(category_codes(proxy, gt, atol=atol, gt_pass=gt_pass), coarse)
    if gt_pass == 1.0:
        assert categorize(proxy, gt, fine=True, atol=atol) == [[SUBCATEGORIES[c] for c in row] for row in ref.tolist()]
        assert categorize(proxy, gt, atol=atol) == [[CATEGORIES[c] for c in row] for row in coarse.tolist()]
    got = reward_error_metrics(proxy, gt, proxy_pass=proxy_pass, gt_pass=gt_pass, fine=True, atol=atol)
    want = _reference_metrics(proxy, gt, proxy_pass, gt_pass, atol)
    assert list(got) == list(want)  # same keys in the same order (metrics.jsonl columns)
    assert {k: v.hex() for k, v in got.items()} == {k: float(v).hex() for k, v in want.items()}
    coarse_metrics = reward_error_metrics(proxy, gt, proxy_pass=proxy_pass, gt_pass=gt_pass, atol=atol)
    assert coarse_metrics == {k: v for k, v in got.items() if k in METRIC_NAMES}


def test_random_groups_reach_every_label():
    seen = set()
    for seed in range(40):
        seen |= set(_reference_codes(*_random_groups(seed), 1e-6, 1.0).flatten().tolist())
    assert seen == set(range(len(SUBCATEGORIES)))
