"""The batched training loop: hand-derived steps, estimator identities, seeding, batching."""

import numpy as np

from rlvr.theory import policy
from rlvr.theory.simulator import Algorithm, _sample_weights, _surrogate_gradient, log_schedule, simulate

GT = np.array([1.0, 0.8, -1, -1, -1])
PROXY = np.array([1.0, -1, -1, -1, -1])


def _run(proxy, probs, algorithm, gt=GT, threshold=0.9, features=None, seed=0, log_every=None):
    k = len(probs)
    features = np.eye(k) if features is None else features
    theta0, _ = policy.theta_for_log_probs(features, np.log(probs))
    return simulate(features[None], theta0[None], np.asarray(proxy)[None], np.asarray(gt)[None],
                    np.array([threshold]), algorithm, seeds=np.array([seed]), log_every=log_every)


def test_one_sgd_step_by_hand():
    probs = np.array([0.05, 0.5, 0.15, 0.15, 0.15])
    traj = _run(PROXY, probs, Algorithm(lr=0.1, steps=1), log_every=1)
    theta1 = np.log(probs) + 0.1 * np.array([0.095, -0.05, -0.015, -0.015, -0.015])
    np.testing.assert_allclose(traj.final_probs[0], policy.softmax(theta1), rtol=1e-14)
    assert traj.logged_steps.tolist() == [0, 1]
    np.testing.assert_allclose(traj.gt_reward[0, 0], 0.05 + 0.4 - 0.45, atol=1e-15)


def test_steps_to_threshold_counts_updates_and_is_zero_at_start():
    probs = np.array([0.05, 0.5, 0.15, 0.15, 0.15])
    assert _run(PROXY, probs, Algorithm(lr=0.1, steps=10), threshold=-0.5).steps_to_threshold[0] == 0
    assert _run(PROXY, probs, Algorithm(lr=0.1, steps=100), threshold=0.99).steps_to_threshold[0] == -1
    full = _run(PROXY, probs, Algorithm(lr=0.1, steps=400), log_every=1)
    first = int(np.argmax(full.gt_reward[0] >= 0.9))
    assert full.steps_to_threshold[0] == first == 168
    # one step earlier is below the threshold, and training that many steps reaches it exactly
    assert _run(PROXY, probs, Algorithm(lr=0.1, steps=first)).final_gt_reward[0] >= 0.9
    assert _run(PROXY, probs, Algorithm(lr=0.1, steps=first - 1)).final_gt_reward[0] < 0.9


def test_batched_run_equals_single_runs_exact_and_sampled():
    probs = [np.array([p, 0.5] + [(0.5 - p) / 3] * 3) for p in (0.05, 0.15)]
    for algorithm in (Algorithm(lr=0.1, steps=300), Algorithm(lr=0.1, steps=300, gradient="sampled",
                                                              samples_per_step=3, baseline="mean")):
        singles = [_run(r, p, algorithm, seed=s) for p, r, s in [(probs[0], PROXY, 1), (probs[1], GT, 2)]]
        theta0 = np.log(np.stack(probs))
        batch = simulate(np.stack([np.eye(5)] * 2), theta0, np.stack([PROXY, GT]), np.stack([GT, GT]),
                         np.array([0.9, 0.9]), algorithm, seeds=np.array([1, 2]))
        for b, single in enumerate(singles):
            np.testing.assert_allclose(batch.gt_reward[b], single.gt_reward[0], rtol=1e-12)
            assert batch.steps_to_threshold[b] == single.steps_to_threshold[0]


def test_sampled_runs_are_seeded():
    probs = np.array([0.1, 0.5, 0.4 / 3, 0.4 / 3, 0.4 / 3])
    algorithm = Algorithm(lr=0.1, steps=200, gradient="sampled")
    a, b, c = (_run(PROXY, probs, algorithm, seed=s) for s in (0, 0, 1))
    np.testing.assert_array_equal(a.gt_reward, b.gt_reward)
    assert not np.array_equal(a.gt_reward, c.gt_reward)


def test_reinforce_weights_are_unbiased_for_the_exact_gradient():
    rng = np.random.default_rng(0)
    features, theta = rng.normal(size=(5, 3)), rng.normal(size=3)
    probs = policy.policy_probs(features, theta)
    freq, adv = _sample_weights(probs[None], rng.random((1, 400_000)), PROXY[None], Algorithm(lr=1, steps=1,
                                gradient="sampled"))
    estimate = policy.score_weighted_sum(features, probs, (freq * adv)[0])
    np.testing.assert_allclose(estimate, policy.policy_gradient(features, theta, PROXY), atol=5e-3)


def test_mean_baseline_with_one_sample_gives_no_signal():
    probs = np.full((1, 4), 0.25)
    freq, adv = _sample_weights(probs, np.array([[0.6]]), np.array([[1.0, 0, 0, 0]]),
                                Algorithm(lr=1, steps=1, gradient="sampled", baseline="mean"))
    assert np.all(freq * adv == 0)


def test_normalize_std_divides_exact_gradient_by_reward_std():
    probs = np.array([0.05, 0.5, 0.15, 0.15, 0.15])
    plain = _run(PROXY, probs, Algorithm(lr=1e-3, steps=1))
    normed = _run(PROXY, probs, Algorithm(lr=1e-3, steps=1, normalize_std="detached"))
    std = policy.reward_std(probs, PROXY)  # sqrt(0.05 * 0.95) * 2
    np.testing.assert_allclose(std, 2 * np.sqrt(0.05 * 0.95))
    # log pi moves by the theta step up to a constant (the log-normaliser): compare centred steps
    step_plain = np.log(plain.final_probs[0]) - np.log(probs)
    step_normed = np.log(normed.final_probs[0]) - np.log(probs)
    np.testing.assert_allclose(step_normed - step_normed.mean(),
                               (step_plain - step_plain.mean()) / (std + 1e-8), rtol=1e-9)


def test_ppo_clipping_hand_numbers():
    # old pi = [0.5, 0.5], current pi = [0.7, 0.3]: ratios 1.4 and 0.6, advantages +1 and -1.
    features = np.eye(2)[None]
    theta = np.log([[0.7, 0.3]])
    old = np.array([[0.5, 0.5]])
    adv = np.array([[1.0, -1.0]])
    ref = np.log(old)
    clipped = _surrogate_gradient(features, theta, old, old, adv, ref, Algorithm(lr=1, steps=1, clip_eps=0.2))
    np.testing.assert_allclose(clipped, 0.0, atol=1e-15)  # both ratios left [0.8, 1.2] the way A pushes
    loose = _surrogate_gradient(features, theta, old, old, adv, ref, Algorithm(lr=1, steps=1, clip_eps=0.5))
    # weights w = q * ratio * A = [0.7, -0.3]; grad = w - pi * sum(w) = [0.7 - 0.28, -0.3 - 0.12]
    np.testing.assert_allclose(loose, [[0.42, -0.42]], atol=1e-15)


def test_first_inner_epoch_is_plain_policy_gradient():
    probs = np.array([0.05, 0.5, 0.15, 0.15, 0.15])
    plain = _run(PROXY, probs, Algorithm(lr=0.1, steps=1))
    clipped = _run(PROXY, probs, Algorithm(lr=0.1, steps=1, clip_eps=0.2, inner_epochs=1))
    np.testing.assert_allclose(clipped.final_probs, plain.final_probs, rtol=1e-14)


def test_kl_regularised_training_converges_to_tilted_initial_policy():
    # argmax_pi E_pi[r] - beta KL(pi || pi0) = pi0 exp(r / beta) / Z (tabular, reachable)
    probs = np.array([0.05, 0.5, 0.15, 0.15, 0.15])
    beta = 2.0
    traj = _run(GT, probs, Algorithm(lr=0.5, steps=3000, kl_coef=beta))
    np.testing.assert_allclose(traj.final_probs[0], policy.softmax(np.log(probs) + GT / beta), atol=1e-8)


def test_adam_first_step_moves_every_parameter_by_lr():
    probs = np.array([0.05, 0.5, 0.15, 0.15, 0.15])
    traj = _run(PROXY, probs, Algorithm(lr=0.01, steps=1, optimizer="adam"))
    step = np.log(traj.final_probs[0]) - np.log(probs)
    expected = 0.01 * np.sign([0.095, -0.05, -0.015, -0.015, -0.015])
    np.testing.assert_allclose(step - step.mean(), expected - expected.mean(), rtol=1e-6)


def test_log_schedule():
    assert np.flatnonzero(log_schedule(10, 4)).tolist() == [0, 4, 8, 10]
    auto = np.flatnonzero(log_schedule(50_000, None))
    assert auto[0] == 0 and auto[-1] == 50_000 and {1, 2, 3, 50, 100} <= set(auto.tolist())


def test_independent_plain_python_implementation_agrees(load_tool):
    check = load_tool("theory_independent_check.py")
    rng = np.random.default_rng(5)
    features = rng.normal(size=(4, 2))
    proxy, gt = np.array([1.0, 0.3, -0.2, 0.0]), np.array([1.0, -1.0, 0.0, 0.0])
    theta0 = np.array([-1.0, 0.5])
    ours = simulate(features[None], theta0[None], proxy[None], gt[None], np.array([0.7]),
                    Algorithm(lr=0.2, steps=3000))
    steps, _ = check.steps_to_threshold(features.tolist(), theta0.tolist(), proxy.tolist(), gt.tolist(),
                                        0.2, 3000, 0.7)
    assert steps is not None and ours.steps_to_threshold[0] == steps
