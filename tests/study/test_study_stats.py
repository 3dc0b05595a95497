"""Study statistics against hand-computed values: Student-t quantiles (table values),
t-intervals, paired differences, the exact sign-flip p-value, the bootstrap, seeds needed."""
import math

import pytest

from rlvr.study.stats import (bootstrap_interval, paired_comparison, seeds_needed, sign_flip_p_value, summary,
                              t_cdf, t_interval, t_quantile)


@pytest.mark.parametrize("df, q975", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (29, 2.0452)])
def test_t_quantile_matches_the_table(df, q975):
    assert t_quantile(0.975, df) == pytest.approx(q975, abs=1e-4)
    assert t_quantile(0.025, df) == pytest.approx(-q975, abs=1e-4)
    assert t_cdf(q975, df) == pytest.approx(0.975, abs=1e-5)


def test_t_interval_and_summary_by_hand():
    # mean 0.55, sd 0.05, se 0.05 / sqrt(3); half-width t(0.975, 2) * se = 4.3027 * 0.028868 = 0.12421
    s = summary([0.5, 0.55, 0.6, None])
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.55) and s["sd"] == pytest.approx(0.05)
    assert s["se"] == pytest.approx(0.05 / math.sqrt(3))
    assert s["ci95"] == [pytest.approx(0.55 - 0.12421, abs=1e-5), pytest.approx(0.55 + 0.12421, abs=1e-5)]
    assert t_interval([0.7]) is None
    assert summary([0.7]) == {"n": 1, "mean": 0.7, "sd": None, "se": None, "ci95": None}
    assert summary([])["mean"] is None


def test_exact_sign_flip_p_value_small_cases():
    # Three positive differences: only all-plus and all-minus are as extreme: 2 / 8.
    assert sign_flip_p_value([0.1, 0.2, 0.3]) == 0.25
    # [0.3, -0.1]: sums of sign patterns 0.2, 0.4, -0.4, -0.2; |.| >= 0.2 for all four.
    assert sign_flip_p_value([0.3, -0.1]) == 1.0
    # [0.5, 0.1, 0.1, 0.1]: |sum| >= 0.8 only for all-equal signs: 2 / 16.
    assert sign_flip_p_value([0.5, 0.1, 0.1, 0.1]) == 0.125
    # [0.5, 0.1, 0.1, -0.1] (observed 0.6): +-(0.5+0.1+0.1+0.1) = 0.8 and the observed pattern's
    # mirror images: patterns with |sum| >= 0.6 are 0.8, 0.6 (three ways to flip one 0.1 to -), each x2 -> 8/16
    assert sign_flip_p_value([0.5, 0.1, 0.1, -0.1]) == 0.5
    with pytest.raises(ValueError):
        sign_flip_p_value([])


def test_paired_comparison_pairs_by_seed():
    arm = {"0": 0.40, "1": 0.35, "2": 0.42, "3": None}
    control = {"0": 0.55, "1": 0.50, "2": 0.54, "3": 0.60, "4": 0.1}
    c = paired_comparison(arm, control)
    # diffs -0.15, -0.15, -0.12: mean -0.14, sd 0.017321; half-width 4.3027 * 0.017321 / sqrt(3) = 0.043027
    assert c["n_pairs"] == 3
    assert c["diff_mean"] == pytest.approx(-0.14) and c["diff_sd"] == pytest.approx(0.0173205, abs=1e-6)
    assert c["ci95"] == [pytest.approx(-0.183027, abs=1e-5), pytest.approx(-0.096973, abs=1e-5)]
    assert c["separable"] is True and c["p_value"] == 0.25
    lo, hi = c["ci95_bootstrap"]
    assert -0.15 - 1e-12 <= lo <= hi <= -0.12 + 1e-12  # a bootstrap mean lies within the data's range
    assert c["seeds_needed"] == 3  # already separable at n = 3 (t(0.975, 1) * sd / sqrt(2) = 0.156 > 0.14)


def test_seeds_needed_by_hand():
    # diff 0.1, sd 0.2: need t(0.975, n-1) * 0.2 / sqrt(n) < 0.1, i.e. t / sqrt(n) < 0.5:
    # n = 18: 2.1098 / 4.2426 = 0.4973 < 0.5; n = 17: 2.1199 / 4.1231 = 0.5142
    assert seeds_needed(0.1, 0.2) == 18
    assert seeds_needed(0.0, 0.2) is None
    assert seeds_needed(-0.1, 0.0) == 2


def test_bootstrap_is_seeded_and_brackets_the_mean():
    diffs = [0.1, -0.05, 0.2, 0.03, 0.0]
    a, b = bootstrap_interval(diffs, seed=3), bootstrap_interval(diffs, seed=3)
    assert a == b and a[0] < sum(diffs) / len(diffs) < a[1]
    assert bootstrap_interval([0.1]) is None
