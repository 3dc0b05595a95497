"""Several prompts sharing one parameter vector: an error on one prompt moves another."""

import math

import numpy as np
import pytest

from rlvr.theory import policy
from rlvr.theory.config import TheoryConfigError, config_from_dict
from rlvr.theory.runner import run_configs
from rlvr.theory.simulator import Algorithm, official_std_weights, simulate

# features [style, b_good]. Prompt A: a0 plain (correct), a1 styled (wrong). Prompt B: b0 correct.
A = [[0.0, 0.0], [1.0, 0.0]]
B_STYLED_GOOD = [[1.0, 1.0], [0.0, 0.0]]  # B's correct output carries the style
B_STYLED_BAD = [[0.0, 1.0], [1.0, 0.0]]  # B's wrong output carries the style
GT = [[1.0, 0.0], [1.0, 0.0]]
PROXY = [[1.0, 1.0], [1.0, 0.0]]  # one error: prompt A over-rewards its styled wrong output a1


def _one_step_pi_b(b_features, rewards):
    features = np.array([[A, b_features]])
    traj = simulate(features, np.zeros((1, 2)), np.array([rewards]), np.array([GT]), np.array([2.0]),
                    Algorithm(lr=1.0, steps=1))
    return traj.final_probs[0, 1, 0]


def test_an_error_on_one_prompt_transfers_through_a_shared_feature():
    # theta0 = 0: every prompt uniform. Gradient = mean over prompts of Phi_p^T pi_p (r_p - V_p):
    # A on the proxy [1, 1]: 0; A on r_G: a0 * 0.25 + a1 * (-0.25) = [-0.25, 0]; B: b0 * 0.25 - b1 * 0.25.
    # Styled-good B: B term [0.25, 0.25]; theta1 = [0.125, 0.125] (proxy) or [0, 0.125] (r_G):
    # B's logit gap b0 - b1 = 0.25 (proxy) vs 0.125 (r_G): A's error helps B.
    sigmoid = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    assert math.isclose(_one_step_pi_b(B_STYLED_GOOD, PROXY), sigmoid(0.25), rel_tol=1e-12)
    assert math.isclose(_one_step_pi_b(B_STYLED_GOOD, GT), sigmoid(0.125), rel_tol=1e-12)
    # Styled-bad B: B term [-0.25, 0.25]; theta1 = [-0.125, 0.125] (proxy) or [-0.25, 0.125] (r_G):
    # gap b0 - b1 = theta_2 - theta_1 = 0.25 (proxy) vs 0.375 (r_G): the same error now hurts B.
    assert math.isclose(_one_step_pi_b(B_STYLED_BAD, PROXY), sigmoid(0.25), rel_tol=1e-12)
    assert math.isclose(_one_step_pi_b(B_STYLED_BAD, GT), sigmoid(0.375), rel_tol=1e-12)


def _config(b_features, proxy=PROXY):
    prompts = [{"features": A, "initial_probs": [0.5, 0.5], "proxy_rewards": proxy[0], "gt_rewards": GT[0]},
               {"features": b_features, "initial_probs": [0.3, 0.7], "proxy_rewards": proxy[1],
                "gt_rewards": GT[1]}]
    return config_from_dict({"prompts": prompts, "lr": 1.0, "steps": 200, "threshold": 0.8, "name": "two"})


def test_two_prompt_config_solves_one_shared_theta_and_reports_per_prompt_errors():
    config = _config(B_STYLED_GOOD)
    assert config.features.shape == (2, 2, 2) and config.theta0.shape == (2,)
    np.testing.assert_allclose(config.initial_probs, [[0.5, 0.5], [0.3, 0.7]], rtol=1e-10)
    result = run_configs([config])[0]
    assert result["erroneous_outputs"] == [[0, 1]] and set(result["categories"]) == {"0:1"}
    assert np.array(result["final_probs"]).shape == (2, 2)
    traj = result["trajectory"]
    # E[r_G] is the mean over prompts
    np.testing.assert_allclose(traj["gt_reward"][-1], np.mean(np.array(result["final_probs"])[:, 0]))
    # The ablation of A's error sees its effect through both prompts.
    assert set(result["ablation"]) == {"0:1"}
    assert result["ground_truth_run"] is not None


def test_one_prompt_as_a_prompt_list_equals_the_plain_config():
    rng = np.random.default_rng(2)
    features, theta0, rewards = rng.normal(size=(4, 3)), rng.normal(size=3), np.array([1.0, 0.2, -0.5, 0.0])
    for algorithm in (Algorithm(lr=0.3, steps=50), Algorithm(lr=0.3, steps=50, gradient="sampled",
                                                             samples_per_step=2, normalize_std="official")):
        plain = simulate(features[None], theta0[None], rewards[None], rewards[None], np.array([2.0]), algorithm)
        listed = simulate(features[None, None], theta0[None], rewards[None, None], rewards[None, None],
                          np.array([2.0]), algorithm)
        np.testing.assert_allclose(listed.final_probs[0, 0], plain.final_probs[0], rtol=1e-12)


@pytest.mark.parametrize("sampled", [False, True])
def test_official_std_over_two_prompts_matches_finite_differences(sampled):
    # The official code shares the mean m = mean_p V_p and the scale s = mean_p std_p(r - m) over prompts.
    rng = np.random.default_rng(7)
    features, theta = rng.normal(size=(2, 3, 2)), rng.normal(size=2)
    rewards = np.array([[1.0, 0.0, -0.5], [0.3, 1.0, 0.0]])
    freq = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])

    def objective(t):
        log_pi = np.stack([policy.log_softmax(features[p] @ t) for p in range(2)])
        pi = np.exp(log_pi)
        mean = (pi * rewards).sum(-1).mean()
        scale = np.sqrt((pi * (rewards - mean) ** 2).sum(-1)).mean() + 1e-8
        return ((freq * rewards * log_pi).sum(-1) if sampled else (pi * rewards).sum(-1)).mean() / scale

    log_pi = np.stack([policy.log_softmax(features[p] @ theta) for p in range(2)])
    pi = np.exp(log_pi)
    weights = official_std_weights(pi, log_pi, freq if sampled else pi, rewards, sampled, prompts=2)
    grad = np.mean([policy.score_weighted_sum(features[p], pi[p], weights[p]) for p in range(2)], axis=0)
    h = 1e-6
    numeric = [(objective(theta + h * e) - objective(theta - h * e)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(grad, numeric, atol=1e-7)


def test_prompt_config_errors_name_the_prompt():
    with pytest.raises(TheoryConfigError, match=r"prompts\[1\].*gt_rewards"):
        config_from_dict({"prompts": [{"initial_probs": [0.5, 0.5], "proxy_rewards": [1, 0], "gt_rewards": [1, 0]},
                                      {"initial_probs": [0.5, 0.5], "proxy_rewards": [1, 0]}],
                          "lr": 1, "steps": 1, "threshold": 0.5})
    with pytest.raises(TheoryConfigError, match="same number of outputs"):
        config_from_dict({"prompts": [{"initial_probs": [0.5, 0.5], "proxy_rewards": [1, 0], "gt_rewards": [1, 0]},
                                      {"initial_probs": [0.2, 0.3, 0.5], "proxy_rewards": [1, 0, 0],
                                       "gt_rewards": [1, 0, 0]}], "lr": 1, "steps": 1, "threshold": 0.5})
    with pytest.raises(TheoryConfigError, match="inside each entry"):
        config_from_dict({"prompts": [], "proxy_rewards": [1, 0], "lr": 1, "steps": 1, "threshold": 0.5})


def test_shipped_two_prompt_recipe_shows_the_transfer():
    from pathlib import Path

    from rlvr.theory.config import load_config

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "theory" / "example_two_prompts_shared_style.yaml"
    result = run_configs([load_config(recipe)])[0]
    assert result["steps_to_threshold"] is None and result["final_gt_reward"] < 0.55
    final = np.array(result["final_probs"])
    assert final[0, 1] > 0.95 and final[1, 0] > 0.95  # A ends on its styled wrong output, B on its styled right one
    assert result["categories"] == {"0:1": "harmful_hacking"}  # the direction rule (the old rule: benign_I)
    assert result["disagreements"] == []
    assert result["ablation"]["0:1"]["verdict"] == "harmful" and result["ground_truth_run"]["steps_to_threshold"] == 25


def test_two_prompt_config_round_trips():
    from rlvr.theory.config import config_to_dict

    config = _config(B_STYLED_BAD)
    again = config_from_dict(config_to_dict(config))
    np.testing.assert_allclose(again.initial_probs, config.initial_probs, rtol=1e-10)
    np.testing.assert_array_equal(again.features, config.features)
    assert again.algorithm == config.algorithm
