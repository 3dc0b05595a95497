"""Static error categories (paper Section 3) and the ablation verdicts that check them."""

import numpy as np
import pytest

from rlvr.theory.ablation import ablation_verdict, corrected_proxy
from rlvr.theory.categorize import categorize_error, categorize_errors, erroneous_outputs, family
from rlvr.theory.config import config_from_dict
from rlvr.theory.runner import run_configs

GT = np.array([1.0, 0.8, -1, -1, -1])
PAPER_PROBS = np.array([0.05, 0.5, 0.15, 0.15, 0.15])  # V_G0 = 0


def _category(proxy, probs=PAPER_PROBS, gt=GT, output=None, negligible_prob=1e-4):
    proxy = np.asarray(proxy, dtype=float)
    output = erroneous_outputs(proxy, gt)[0] if output is None else output
    return categorize_error(output, np.asarray(probs), proxy, gt, negligible_prob).category


def test_erroneous_outputs():
    assert erroneous_outputs(np.array([1.0, -1, -1]), np.array([1.0, 0.8, -1])) == [1]
    assert erroneous_outputs(GT, GT) == []


def test_paper_y_med_error_is_beneficial():
    categories = categorize_errors(PAPER_PROBS, np.array([1.0, -1, -1, -1, -1]), GT)
    assert list(categories) == [1]
    assert categories[1].category == "beneficial" and categories[1].family == "beneficial"
    assert "under-rewards a suboptimal output" in categories[1].reason


def test_high_proxy_on_a_bad_output_is_hacking():
    assert _category([1.0, 0.8, 1.0, -1, -1]) == "harmful_hacking"
    assert _category([1.0, 0.8, 2.0, -1, -1]) == "harmful_hacking"


def test_mediocre_proxy_on_a_bad_output_above_the_mean_is_stalling():
    # V_P0 = 0.05 + 0.4 + 0.15 * 0.5 - 0.3 = 0.225 < 0.5 < r_P(y*) = 1
    assert _category([1.0, 0.8, 0.5, -1, -1]) == "harmful_stalling"


def test_direction_decides_below_the_mean_too():
    # r_P(y2) = -0.5 < V_P0 = 0.075: over-rewarded, though below the mean (the old rule: benign_I)
    assert _category([1.0, 0.8, -0.5, -1, -1]) == "harmful_stalling"
    # under-rewarding a bad output (the old rule: benign_I)
    assert _category([1.0, 0.8, -2.0, -1, -1]) == "beneficial"
    # the old rule is still there for comparison
    assert categorize_error(2, PAPER_PROBS, np.array([1.0, 0.8, -2.0, -1, -1]), GT, rule="theory_v1").category == (
        "benign_I")


def test_negligible_probability_is_benign_type_ii():
    probs = np.array([0.2, 0.5, 0.29999, 0.00001, 0.0])
    probs[4] = 1 - probs[:4].sum()
    assert _category([1.0, 0.8, -1, 5.0, -1], probs=probs, output=3) == "benign_II"
    assert _category([1.0, 0.8, -1, 5.0, -1], probs=probs, output=3, negligible_prob=0) == "harmful_hacking"


def test_errors_on_the_optimal_output():
    assert _category([1.5, 0.8, -1, -1, -1]) == "beneficial_best"
    assert _category([-0.5, 0.8, -1, -1, -1]) == "harmful_suppression"  # below V_P0 = 0.3 - 0.025: never attracts
    assert _category([0.9, 0.8, -1, -1, -1]) == "harmful_slowdown"


def test_family():
    assert [family(c) for c in ("harmful_hacking", "harmful_stalling", "benign_I", "benign_II", "beneficial")] == [
        "harmful", "harmful", "benign", "benign", "beneficial"]


def test_theory_and_training_share_one_vocabulary():
    from rlvr.rewards.categorize import SUBCATEGORIES
    from rlvr.theory.categorize import CATEGORIES

    assert set(SUBCATEGORIES) - {"none"} == set(CATEGORIES)


def test_corrected_proxy_fixes_one_output_only():
    proxy = np.array([1.0, -1, 0.5, -1, -1])
    np.testing.assert_array_equal(corrected_proxy(proxy, GT, 1), [1.0, 0.8, 0.5, -1, -1])
    np.testing.assert_array_equal(proxy, [1.0, -1, 0.5, -1, -1])


@pytest.mark.parametrize(
    "base, fixed, base_gt, fixed_gt, verdict",
    [
        (200, 100, 0.9, 0.9, "harmful"),
        (100, 200, 0.9, 0.9, "beneficial"),
        (100, 104, 0.9, 0.9, "benign"),  # within 5%
        (None, 100, 0.5, 0.9, "harmful"),
        (100, None, 0.9, 0.5, "beneficial"),
        (None, None, 0.5, 0.8, "harmful"),
        (None, None, 0.8, 0.5, "beneficial"),
        (None, None, 0.8, 0.81, "benign"),
    ],
)
def test_ablation_verdict(base, fixed, base_gt, fixed_gt, verdict):
    assert ablation_verdict(base, fixed, base_gt, fixed_gt, gt_range=2.0, tolerance=0.05) == verdict


def _config(proxy, probs, steps=3000, gt=GT):
    return config_from_dict({"initial_probs": list(probs), "proxy_rewards": list(proxy), "gt_rewards": list(gt),
                             "lr": 0.1, "steps": steps, "threshold": 0.9}, source="test")


def test_ablation_confirms_static_categories_on_small_runs():
    p15 = [0.15, 0.5] + [0.35 / 3] * 3
    no_mediocre = [1.0, -1, -1, -1, -1]
    p_stall = [0.1, 0.15, 0.45, 0.15, 0.15]
    hacking, stalling, two_errors = run_configs([
        _config([1.0, 0.8, 1.2, -1, -1], p15),
        _config([1.0, -1, 0.5, -1, -1], p_stall, gt=no_mediocre),  # the error makes y2 a mediocre attractor
        _config([1.0, -1, -1.5, -1, -1], PAPER_PROBS),  # y_med (beneficial) and an under-rewarded bad output
    ])
    assert hacking["categories"] == {"2": "harmful_hacking"} and hacking["steps_to_threshold"] is None
    assert hacking["ablation"]["2"]["verdict"] == "harmful" and hacking["ablation"]["2"]["steps_to_threshold"] == 1393
    assert stalling["categories"] == {"2": "harmful_stalling"}
    assert stalling["ablation"]["2"]["verdict"] == "harmful"
    assert stalling["ablation"]["2"]["steps_to_threshold"] < stalling["steps_to_threshold"] / 2
    assert two_errors["categories"] == {"1": "beneficial", "2": "beneficial"}
    assert two_errors["ablation"]["1"]["verdict"] == "beneficial"
    assert two_errors["ablation"]["1"]["steps_to_threshold"] is None  # fixing y_med: stalls like r_G
    assert two_errors["ablation"]["2"]["verdict"] == "benign"
    assert abs(two_errors["ablation"]["2"]["delta_steps"]) <= 0.05 * two_errors["steps_to_threshold"]
    assert two_errors["ground_truth_run"]["steps_to_threshold"] is None
    assert hacking["disagreements"] == stalling["disagreements"] == []
    # the direction rule calls every under-reward of a suboptimal output beneficial; here it is not
    assert two_errors["disagreements"] == [{"output": 2, "category": "beneficial", "ablation_verdict": "benign"}]


def test_ablation_finds_errors_the_static_rule_calls_benign_when_ground_truth_stalls():
    # With p* = 0.15, r_G itself stalls on y_med; lifting a bad output's proxy reward (still
    # below V_P0; the direction rule calls it harmful) slows the pile-up on y_med and speeds learning.
    (result,) = run_configs([_config([1.0, 0.8, -0.5, -1, -1], [0.15, 0.5] + [0.35 / 3] * 3)])
    assert result["categories"] == {"2": "harmful_stalling"}
    assert result["ablation"]["2"]["verdict"] == "beneficial"
    assert result["disagreements"] == [{"output": 2, "category": "harmful_stalling", "ablation_verdict": "beneficial"}]


def test_disagreements_are_reported():
    # Partial credit with compositional features (Section 5): pi_0 < 0.02 makes both errors
    # benign_II statically (with negligible_prob 0: harmful_stalling), but the ablation finds them beneficial.
    features = [[1, 1], [1, 0], [0, 1], [0, 0]]
    raw = {"features": features, "initial_probs": [0.0002, 0.0098, 0.0198, 0.9702],
           "proxy_rewards": [1.0, 0.5, 0.5, 0.0], "gt_rewards": [1.0, 0, 0, 0],
           "lr": 0.1, "steps": 5000, "threshold": 0.9}
    (result,) = run_configs([config_from_dict(raw, source="test")])
    assert result["categories"] == {"1": "benign_II", "2": "benign_II"}
    (strict,) = run_configs([config_from_dict({**raw, "negligible_prob": 0}, source="test")])
    assert strict["categories"] == {"1": "harmful_stalling", "2": "harmful_stalling"}
    assert {d["output"] for d in result["disagreements"]} == {1, 2}
    assert all(d["ablation_verdict"] == "beneficial" for d in result["disagreements"])
    assert "not orthonormal" in result["categorization_basis"]
    assert result["steps_to_threshold"] < 5000 and result["ground_truth_run"]["steps_to_threshold"] is None
