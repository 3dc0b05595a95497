"""The official code's other modes: reward-std normalisation through the std, KL to a uniform
reference, forward KL, softmax temperature, and sampled runs over a list of seeds."""

import math

import numpy as np
import pytest

from rlvr.theory import paper, policy
from rlvr.theory.config import TheoryConfigError, config_from_dict
from rlvr.theory.runner import quartiles, run_configs
from rlvr.theory.simulator import Algorithm, kl_weights, official_std_weights, simulate

P = np.array([0.8, 0.2])  # two outputs, identity features: theta0 = log P (times the temperature)
R = np.array([1.0, 0.0])


def _one_step(algorithm, probs=P, rewards=R, theta0=None, features=None):
    features = np.eye(len(probs)) if features is None else features
    theta0 = np.log(probs) if theta0 is None else theta0
    traj = simulate(features[None], theta0[None], rewards[None], rewards[None], np.array([2.0]), algorithm)
    return traj.final_probs[0]


def _probs_after(logit_step, probs=P):
    return policy.softmax(np.log(probs) + np.asarray(logit_step))


def test_official_std_one_step_by_hand():
    # pi = [0.8, 0.2], r = [1, 0]: V = 0.8, std = 0.4, J = V / std = sqrt(p / (1 - p)) with p = pi(y0).
    # dJ/dp = 25 / (2 * 2) = 6.25 and dp/dz0 = p (1 - p) = 0.16: dJ/dz = [+1, -1].
    official = _one_step(Algorithm(lr=0.1, steps=1, normalize_std="official"))
    np.testing.assert_allclose(official, _probs_after([0.1, -0.1]), rtol=1e-7)
    # detached: pi (r - V) / std = [0.16, -0.16] / 0.4 = [0.4, -0.4]
    detached = _one_step(Algorithm(lr=0.1, steps=1, normalize_std="detached"))
    np.testing.assert_allclose(detached, _probs_after([0.04, -0.04]), rtol=1e-7)


def _official_objective(features, theta, rewards, freq=None):
    """The official code's objective written out: E_pi[r] / (std + 1e-8) or sum freq r / (std + 1e-8) log pi."""
    log_pi = policy.log_softmax(features @ theta)
    pi = np.exp(log_pi)
    mean = float(pi @ rewards)
    scaled = rewards / (math.sqrt(float(pi @ (rewards - mean) ** 2)) + 1e-8)
    return float(pi @ scaled) if freq is None else float(freq @ (scaled * log_pi))


@pytest.mark.parametrize("sampled", [False, True])
def test_official_std_gradient_matches_finite_differences(sampled):
    rng = np.random.default_rng(3 + sampled)
    features, theta, rewards = rng.normal(size=(4, 3)), rng.normal(size=3), np.array([1.0, 0.3, -1.0, 0.0])
    freq = np.array([0.0, 0.5, 0.25, 0.25]) if sampled else None
    log_pi = policy.log_softmax(features @ theta)
    pi = np.exp(log_pi)
    weights = official_std_weights(pi[None], log_pi[None], (pi if freq is None else freq)[None], rewards[None],
                                   sampled)
    grad = policy.score_weighted_sum(features, pi, weights[0])
    h = 1e-6
    numeric = [(_official_objective(features, theta + h * e, rewards, freq)
                - _official_objective(features, theta - h * e, rewards, freq)) / (2 * h) for e in np.eye(3)]
    np.testing.assert_allclose(grad, numeric, atol=1e-7)
    # detaching the std (the GRPO-style mode) is a different direction
    detached = policy.score_weighted_sum(features, pi, (pi if freq is None else freq)
                                         * (rewards - (pi @ rewards if freq is None else 0.0))
                                         / (policy.reward_std(pi, rewards) + 1e-8))
    assert not np.allclose(detached, grad, atol=1e-3)


def test_official_std_on_the_paper_proxy_takes_61_steps_detached_92():
    probs, gt, proxy = (np.array(x) for x in (paper.initial_probs(0.10), paper.GT_REWARDS, paper.PROXY_REWARDS))
    steps = {mode: simulate(np.eye(5)[None], np.log(probs)[None], proxy[None], gt[None], np.array([0.9]),
                            Algorithm(lr=0.1, steps=200, normalize_std=mode)).steps_to_threshold[0]
             for mode in ("none", "detached", "official")}
    assert steps == {"none": 120, "detached": 92, "official": 61}


def test_reverse_kl_to_uniform_one_step_by_hand():
    beta = 0.5
    # reward part pi (r - V) = [0.16, -0.16]; KL part pi (l - KL), l = log pi - log(1/2)
    log_ratio = [math.log(1.6), math.log(0.4)]
    kl = 0.8 * log_ratio[0] + 0.2 * log_ratio[1]
    grad = [0.16 - beta * 0.8 * (log_ratio[0] - kl), -0.16 - beta * 0.2 * (log_ratio[1] - kl)]
    got = _one_step(Algorithm(lr=1.0, steps=1, kl_coef=beta, kl_reference="uniform"))
    np.testing.assert_allclose(got, _probs_after(grad), rtol=1e-12)
    # against the initial policy the reverse KL has no gradient at the start
    np.testing.assert_allclose(_one_step(Algorithm(lr=1.0, steps=1, kl_coef=beta)), _probs_after([0.16, -0.16]),
                               rtol=1e-12)


def test_forward_kl_to_uniform_one_step_by_hand():
    # -beta grad KL(u || pi) = beta (u - pi) = 0.5 ([0.5, 0.5] - [0.8, 0.2]) = [-0.15, 0.15]
    got = _one_step(Algorithm(lr=1.0, steps=1, kl_coef=0.5, kl_reference="uniform", kl_direction="forward"))
    np.testing.assert_allclose(got, _probs_after([0.16 - 0.15, -0.16 + 0.15]), rtol=1e-12)


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_kl_weights_match_finite_differences(direction):
    rng = np.random.default_rng(11)
    features, theta = rng.normal(size=(3, 2)), rng.normal(size=2)
    ref = policy.log_softmax(rng.normal(size=3))

    def kl(t):
        log_pi = policy.log_softmax(features @ t)
        if direction == "reverse":
            return float(np.exp(log_pi) @ (log_pi - ref))
        return float(np.exp(ref) @ (ref - log_pi))

    log_pi = policy.log_softmax(features @ theta)
    algorithm = Algorithm(lr=1, steps=1, kl_coef=2.0, kl_direction=direction)
    grad = policy.score_weighted_sum(features, np.exp(log_pi), kl_weights(np.exp(log_pi)[None], log_pi[None],
                                                                          ref[None], algorithm)[0])
    h = 1e-6
    numeric = [-2.0 * (kl(theta + h * e) - kl(theta - h * e)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(grad, numeric, atol=1e-8)


def test_kl_to_uniform_converges_to_tilted_uniform():
    # argmax E_pi[r] - beta KL(pi || u) = softmax(r / beta) (tabular)
    r = np.array([1.0, 0.3, -0.5])
    traj = simulate(np.eye(3)[None], np.log([[0.1, 0.6, 0.3]]), r[None], r[None], np.array([2.0]),
                    Algorithm(lr=0.5, steps=3000, kl_coef=0.7, kl_reference="uniform"))
    np.testing.assert_allclose(traj.final_probs[0], policy.softmax(r / 0.7), atol=1e-8)


def test_temperature_one_step_by_hand():
    # tau = 2: theta0 = 2 log P keeps pi_0 = P; grad_theta E[r] = pi (r - V) / tau = [0.08, -0.08];
    # the logits Phi theta / tau then move by lr * [0.04, -0.04].
    got = _one_step(Algorithm(lr=1.0, steps=1, temperature=2.0), theta0=2 * np.log(P))
    np.testing.assert_allclose(got, _probs_after([0.04, -0.04]), rtol=1e-12)
    raw = {"initial_probs": [0.8, 0.2], "proxy_rewards": [1, 0], "gt_rewards": [1, 0], "lr": 1.0, "steps": 1,
           "threshold": 2.0, "temperature": 2.0}
    config = config_from_dict(raw)
    np.testing.assert_allclose(config.theta0 - config.theta0.mean(), 2 * (np.log(P) - np.log(P).mean()))
    np.testing.assert_allclose(config.initial_probs, P, rtol=1e-12)
    result = run_configs([config], ablate=False)[0]
    np.testing.assert_allclose(result["final_probs"], _probs_after([0.04, -0.04]), rtol=1e-12)


def test_mode_config_keys_and_legacy_booleans():
    base = {"initial_probs": [0.8, 0.2], "proxy_rewards": [1, 0], "gt_rewards": [1, 0], "lr": 1.0, "steps": 1,
            "threshold": 0.9}
    assert config_from_dict({**base, "normalize_std": True}).algorithm.normalize_std == "detached"
    assert config_from_dict({**base, "normalize_std": False}).algorithm.normalize_std == "none"
    assert config_from_dict({**base, "normalize_std": "official"}).algorithm.normalize_std == "official"
    for key, value in [("normalize_std", "std"), ("kl_reference", "init"), ("kl_direction", "both"),
                       ("temperature", 0)]:
        with pytest.raises(TheoryConfigError, match=key):
            config_from_dict({**base, key: value})
    with pytest.raises(TheoryConfigError, match="inner_epochs 1"):
        config_from_dict({**base, "normalize_std": "official", "clip_eps": 0.2})
    with pytest.raises(TheoryConfigError, match="seeds.*gradient: sampled"):
        config_from_dict({**base, "seeds": [0, 1]})
    with pytest.raises(TheoryConfigError, match="seed"):
        config_from_dict({**base, "gradient": "sampled", "seeds": [0, 1], "seed": 3})


def test_quartiles_by_hand():
    assert quartiles([5, 1, 3, 2, 4]) == [2, 3, 4]
    assert quartiles([10, 20, 30, 40]) == [17.5, 25, 32.5]
    # never-reached runs are slower than any number: the quartiles touching them are None
    assert quartiles([10, 20, None, None]) == [17.5, None, None]


def test_seeds_report_the_spread_of_single_seed_runs():
    raw = {"initial_probs": paper.initial_probs(0.15), "proxy_rewards": paper.PROXY_REWARDS,
           "gt_rewards": paper.GT_REWARDS, "lr": 0.1, "steps": 400, "threshold": 0.9, "gradient": "sampled"}
    seeds = [4, 1, 2, 3]
    spread = run_configs([config_from_dict({**raw, "seeds": seeds})])[0]["seed_spread"]
    singles = [run_configs([config_from_dict({**raw, "seed": s})])[0] for s in seeds]
    assert spread["seeds"] == seeds
    assert spread["proxy"]["steps_to_threshold"] == [r["steps_to_threshold"] for r in singles]
    assert spread["ground_truth"]["steps_to_threshold"] == [r["ground_truth_run"]["steps_to_threshold"]
                                                            for r in singles]
    assert spread["proxy"]["quartiles"] == quartiles(spread["proxy"]["steps_to_threshold"])
    assert len(set(spread["proxy"]["steps_to_threshold"])) > 1  # seeds differ
