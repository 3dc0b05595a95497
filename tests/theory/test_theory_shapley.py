"""The exact Shapley effect of each error: by hand on two errors, and on a simulated instance."""
import math

import numpy as np
import pytest

from rlvr.theory.config import config_from_dict
from rlvr.theory.shapley import (add_one, coalition_proxies, config_effects, fix_one, log_steps, shapley_values,
                                 simulate_coalitions, verdict)


def test_two_errors_by_hand():
    # v(none) = 1, v({0}) = 4, v({1}) = 2, v({0, 1}) = 10 (bit i: error i kept)
    v = np.array([1.0, 4.0, 2.0, 10.0])
    # phi_0 = 1/2 [(v({0}) - v(none)) + (v({0,1}) - v({1}))] = 1/2 (3 + 8) = 5.5
    # phi_1 = 1/2 [(v({1}) - v(none)) + (v({0,1}) - v({0}))] = 1/2 (1 + 6) = 3.5
    np.testing.assert_allclose(shapley_values(v), [5.5, 3.5])
    assert shapley_values(v).sum() == pytest.approx(v[3] - v[0])  # efficiency
    np.testing.assert_allclose(fix_one(v), [10 - 2, 10 - 4])
    np.testing.assert_allclose(add_one(v), [4 - 1, 2 - 1])


def test_three_errors_symmetry_and_efficiency():
    rng = np.random.default_rng(0)
    v = rng.normal(size=8)
    phi = shapley_values(v)
    assert phi.sum() == pytest.approx(v[7] - v[0])
    additive = np.array([sum(c for i, c in enumerate((1.0, 2.0, 4.0)) if m >> i & 1) for m in range(8)])
    np.testing.assert_allclose(shapley_values(additive), [1, 2, 4])  # no interaction: the own effect


def test_verdict_tolerance_and_censoring():
    tol = math.log1p(0.05)
    assert verdict(tol * 1.01) == "harmful" and verdict(-tol * 1.01) == "beneficial" and verdict(tol * 0.99) == "benign"
    np.testing.assert_allclose(log_steps(np.array([0, 9, -1, 500]), 99), np.log1p([0, 9, 99, 99]))


def test_coalition_proxies():
    proxies = coalition_proxies(np.array([1.0, -1, 0.5]), np.array([1.0, 0.8, -1]), [1, 2])
    np.testing.assert_array_equal(proxies, [[1, 0.8, -1], [1, -1, -1], [1, 0.8, 0.5], [1, -1, 0.5]])


def test_simulated_two_error_instance_matches_the_formula_on_its_runs():
    # The paper's y_med error (beneficial) and an over-rewarded bad output (hacking), p* = 0.1.
    raw = {"initial_probs": [0.1, 0.5, 0.4 / 3, 0.4 / 3, 0.4 / 3], "gt_rewards": [1.0, 0.8, -1, -1, -1],
           "proxy_rewards": [1.0, -1, 1.5, -1, -1], "lr": 0.1, "steps": 3000, "threshold": 0.9}
    config = config_from_dict(raw, source="test")
    (runs,) = simulate_coalitions([config], [[1, 2]], [0.9], [3000])
    v = log_steps(runs["steps"][:, 0], 3000)
    effects = config_effects(config, [1, 2])
    y_med, bad = effects["errors"]["1"]["by_setting"][0], effects["errors"]["2"]["by_setting"][0]
    assert y_med["shapley"] == pytest.approx(0.5 * ((v[1] - v[0]) + (v[3] - v[2])))
    assert bad["shapley"] == pytest.approx(0.5 * ((v[2] - v[0]) + (v[3] - v[1])))
    assert y_med["verdict"] == "beneficial" and bad["verdict"] == "harmful"
    assert effects["runs"] == 4 and effects["errors"]["1"]["area"][0]["shapley"] > 0  # more area: beneficial
