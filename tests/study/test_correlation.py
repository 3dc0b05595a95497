"""Correlations across reward models and their bootstrap intervals (hand values)."""
import math

import pytest

from rlvr.study.correlation import (correlation_difference, correlation_with_interval, metric_correlations,
                                    pearson, ranks, spearman)


def test_pearson_and_spearman_by_hand():
    x, y = [1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]
    # deviations x: -1.5 -0.5 0.5 1.5, y: -1.5 0.5 -0.5 1.5: cov sum 2.25 - 0.25 - 0.25 + 2.25 = 4; Sxx = Syy = 5
    assert pearson(x, y) == pytest.approx(4.0 / 5.0)
    assert spearman(x, [10.0, 1000.0, 100.0, 10000.0]) == pytest.approx(0.8)  # ranks 1 3 2 4
    assert spearman(x, [v ** 3 for v in x]) == pytest.approx(1.0)
    assert pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None and pearson([1.0], [2.0]) is None


def test_ranks_average_ties():
    assert ranks([10, 30, 20, 20]) == [1, 4, 2.5, 2.5]


def test_bootstrap_interval_contains_the_estimate_and_is_deterministic():
    x = [0.1, 0.4, 0.35, 0.8, 0.7, 0.95, 0.2, 0.5]
    y = [0.0, 0.3, 0.4, 0.6, 0.9, 0.8, 0.1, 0.45]
    a = correlation_with_interval(x, y, "pearson", resamples=500, seed=3)
    assert a == correlation_with_interval(x, y, "pearson", resamples=500, seed=3)
    lo, hi = a["ci95"]
    assert lo <= a["r"] <= hi <= 1.0 and a["n"] == 8


def test_a_perfect_predictor_beats_a_useless_one_and_the_interval_excludes_zero():
    y = [float(i) for i in range(12)]
    good = [v + 0.01 * (-1) ** i for i, v in enumerate(y)]
    useless = [math.sin(7 * i) for i in range(12)]
    d = correlation_difference(good, useless, y, "spearman", resamples=500)
    assert d["diff"] == pytest.approx(spearman(good, y) - spearman(useless, y))
    assert d["ci95"][0] > 0


def test_metric_correlations_skip_reward_models_without_a_value():
    table = metric_correlations({"Acc": [0.1, None, 0.3, 0.5], "var": [1.0, 2.0, 3.0, 4.0]},
                                [0.0, 0.5, 0.2, 0.4], resamples=100)
    assert table["Acc"]["spearman"]["n"] == 3 and table["var"]["pearson"]["n"] == 4
    assert table["Acc"]["spearman"]["r"] == pytest.approx(1.0)
