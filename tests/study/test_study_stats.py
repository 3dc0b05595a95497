"""Study statistics against hand-computed values: Student-t quantiles (table values),
t-intervals, paired differences, the sign-flip p-value (exact enumeration and its Monte Carlo
path), the noncentral-t power (published values, the central case, a simulation), seeds for
80% power, zero differences, Holm's correction, interactions."""
import itertools
import math
import random
import time

import numpy as np
import pytest

from rlvr.study import stats
from rlvr.study.stats import (compare_diffs, holm, interaction_comparison, noncentral_t_cdf, paired_comparison,
                              paired_t_p_value, power_paired_t, seeds_for_power, sign_flip_p_exact,
                              sign_flip_p_monte_carlo, sign_flip_p_value, summary, t_cdf, t_interval, t_quantile)


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


# ---- sign-flip test ----------------------------------------------------------------------------
def _enumerated(diffs):
    """The definition, pattern by pattern (small n only)."""
    observed = abs(sum(diffs))
    sums = [abs(sum(s * x for s, x in zip(signs, diffs))) for signs in itertools.product((1, -1), repeat=len(diffs))]
    return sum(v >= observed - 1e-9 for v in sums) / len(sums)


def test_exact_sign_flip_p_value_small_cases():
    # Three positive differences: only all-plus and all-minus are as extreme: 2 / 8.
    assert sign_flip_p_value([0.1, 0.2, 0.3]) == 0.25
    # [0.3, -0.1]: sums of sign patterns 0.2, 0.4, -0.4, -0.2; |.| >= 0.2 for all four.
    assert sign_flip_p_value([0.3, -0.1]) == 1.0
    # [0.5, 0.1, 0.1, 0.1]: |sum| >= 0.8 only for all-equal signs: 2 / 16.
    assert sign_flip_p_value([0.5, 0.1, 0.1, 0.1]) == 0.125
    # [0.5, 0.1, 0.1, -0.1] (observed 0.6): |sum| 0.8 (x2) and 0.6 (three ways to make one 0.1 negative, x2): 8/16
    assert sign_flip_p_value([0.5, 0.1, 0.1, -0.1]) == 0.5
    rng = random.Random(1)
    for n in (5, 8, 11):
        diffs = [rng.gauss(0.2, 1.0) for _ in range(n)]
        assert sign_flip_p_exact(diffs) == _enumerated(diffs)
    with pytest.raises(ValueError):
        sign_flip_p_value([])


@pytest.mark.parametrize("n", [17, 18, 19, 20])
def test_monte_carlo_sign_flip_is_two_sided_and_matches_the_exact_count(n):
    # Differences drawn so that p lands between 0.01 and 0.9; a one-sided count would give about half.
    rng = random.Random(100 + n)
    diffs = [rng.gauss(0.35, 1.0) for _ in range(n)]
    exact = sign_flip_p_exact(diffs)
    assert 0.005 < exact < 0.95
    mc = sign_flip_p_value(diffs, seed=4)  # n > 16: the Monte Carlo path
    assert mc == sign_flip_p_monte_carlo(diffs, seed=4)
    mc_error = math.sqrt(exact * (1 - exact) / stats.MONTE_CARLO_PATTERNS)
    assert abs(mc - exact) < 4.5 * mc_error + 1e-5, (mc, exact)
    # Symmetric: negating every difference leaves p unchanged (exactly, on both paths).
    negated = [-d for d in diffs]
    assert sign_flip_p_value(negated, seed=4) == mc
    assert sign_flip_p_exact(negated) == exact


def test_sign_flip_ties_and_float_residues():
    # All differences zero up to float residue: every pattern ties, p = 1 (not 0.5 on residue signs).
    assert sign_flip_p_value([-1.9e-17, -1.9e-17, 0.0]) == 1.0
    # 0.1 + 0.2 vs 0.3 differ in the last bit; the pattern (+0.1, +0.2, -0.3) must count as a tie of 0.
    assert sign_flip_p_exact([0.1, 0.2, -0.3]) == 1.0


# ---- paired t-test, power, plans ----------------------------------------------------------------
def test_paired_t_p_value_by_hand():
    # diffs 0.1, 0.2, 0.3: mean 0.2, sd 0.1, t = 0.2 / (0.1 / sqrt 3) = 3.4641, df 2;
    # two-sided p = 1 - 3.4641 / sqrt(2 + 3.4641^2) = 1 - 3.4641 / 3.7417 = 0.074180 (closed form for df = 2)
    assert paired_t_p_value([0.1, 0.2, 0.3]) == pytest.approx(1 - 3.464102 / math.sqrt(2 + 12), abs=1e-6)
    assert paired_t_p_value([0.1]) is None
    assert paired_t_p_value([0.2, 0.2]) == 0.0 and paired_t_p_value([0.0, 0.0]) == 1.0


@pytest.mark.parametrize("df", [1, 2, 5, 30])
def test_noncentral_t_with_zero_noncentrality_is_students_t(df):
    for t in (-3.0, -0.5, 0.0, 1.0, 4.0):
        assert noncentral_t_cdf(t, df, 0.0) == pytest.approx(t_cdf(t, df), abs=1e-9)


def test_noncentral_t_cdf_closed_form_at_zero():
    # P(T' <= 0) = P(Z + ncp <= 0) = Phi(-ncp) whatever df: S > 0 does not change the sign.
    for df, ncp in ((1, 1.0), (3, 2.5), (12, 0.3)):
        assert noncentral_t_cdf(0.0, df, ncp) == pytest.approx(0.5 * math.erfc(ncp / math.sqrt(2)), abs=1e-9)


def test_power_matches_published_values_and_a_simulation():
    # G*Power (one-sample / paired t, two-sided alpha 0.05): d = 0.5 -> n = 34, power 0.8078;
    # d = 1 -> n = 10, power 0.8031; Cohen's table: d = 0.8 -> 15, d = 0.2 -> 199.
    assert power_paired_t(0.5, 34) == pytest.approx(0.80778, abs=1e-4)
    assert power_paired_t(1.0, 10) == pytest.approx(0.80310, abs=1e-4)
    assert seeds_for_power(0.5, 1.0) == 34 and seeds_for_power(1.0, 1.0) == 10
    assert seeds_for_power(0.08, 0.1) == 15 and seeds_for_power(-0.02, 0.1) == 199
    # Large n: the normal approximation Phi(d sqrt(n) - 1.96) + Phi(-d sqrt(n) - 1.96).
    z = 1.959964
    approx = 0.5 * math.erfc(-(0.05 * 100 - z) / math.sqrt(2)) + 0.5 * math.erfc((0.05 * 100 + z) / math.sqrt(2))
    assert power_paired_t(0.05, 10_000) == pytest.approx(approx, abs=2e-3)
    # A simulation of the t-test itself at n = 5, d = 1 (400,000 draws: MC sd 0.0008).
    rng = np.random.default_rng(7)
    x = rng.normal(1.0, 1.0, size=(400_000, 5))
    t = x.mean(1) / (x.std(1, ddof=1) / math.sqrt(5))
    assert np.mean(np.abs(t) > t_quantile(0.975, 4)) == pytest.approx(power_paired_t(1.0, 5), abs=0.004)


def test_seeds_for_power_is_more_than_just_reaching_significance():
    # diff 0.1, sd 0.2 (d = 0.5): the old rule (the t-interval just excludes 0) said 18 seeds,
    # which gives about 50% power; 80% power needs 34.
    assert power_paired_t(0.5, 18) == pytest.approx(0.5, abs=0.05)
    assert seeds_for_power(0.1, 0.2) == 34
    assert seeds_for_power(0.0, 0.2) is None and seeds_for_power(-1.9e-17, 0.2) is None
    assert seeds_for_power(-0.1, 0.0) == 2
    assert seeds_for_power(1e-4, 1.0) is None  # beyond 10,000 seeds


def test_a_float_residue_difference_is_zero_and_fast():
    started = time.time()
    c = paired_comparison({"0": 0.3, "1": 0.1 + 0.2}, {"0": 0.3, "1": 0.3})  # 0.1 + 0.2 - 0.3 = 5.6e-17
    assert time.time() - started < 0.5
    assert c["diff_mean"] == 0.0 and c["diff_sd"] == 0.0 and c["separable"] is False
    assert c["seeds_for_80pct_power"] is None and c["p_value"] == 1.0 and c["p_t"] == 1.0


def test_paired_comparison_pairs_by_seed():
    arm = {"0": 0.40, "1": 0.35, "2": 0.42, "3": None}
    control = {"0": 0.55, "1": 0.50, "2": 0.54, "3": 0.60, "4": 0.1}
    c = paired_comparison(arm, control)
    # diffs -0.15, -0.15, -0.12: mean -0.14, sd 0.017321; half-width 4.3027 * 0.017321 / sqrt(3) = 0.043027
    assert c["n_pairs"] == 3
    assert c["diff_mean"] == pytest.approx(-0.14) and c["diff_sd"] == pytest.approx(0.0173205, abs=1e-6)
    assert c["ci95"] == [pytest.approx(-0.183027, abs=1e-5), pytest.approx(-0.096973, abs=1e-5)]
    assert c["separable"] is True and c["p_value"] == 0.25
    assert "ci95_bootstrap" not in c  # the percentile bootstrap covers ~76% at n = 3: not reported
    assert c["small_effect"] is False and c["excluded_beyond"] == pytest.approx(0.183027, abs=1e-5)
    # d = 0.14 / 0.017321 = 8.08: n = 2 gives power < 0.8 (t crit 12.7, ncp 11.4), n = 3 enough
    assert c["seeds_for_80pct_power"] == 3


def test_small_effect_gives_the_excluded_bound_not_a_seed_count():
    # The case: +0.001 [-0.046, +0.047] over 5 pairs once read "about 8809 seeds".
    diffs = [0.001 + 0.0469 * x for x in (-1, 1, 0.5, -0.5, 0)]
    c = compare_diffs(diffs)
    half = (c["ci95"][1] - c["ci95"][0]) / 2
    assert abs(c["diff_mean"]) < 0.5 * half and c["small_effect"] is True
    assert c["seeds_for_80pct_power"] is None
    assert c["excluded_beyond"] == pytest.approx(max(abs(c["ci95"][0]), abs(c["ci95"][1])))
    # Not small (|mean| >= half the half-width): a seed count, from the power calculation.
    c = compare_diffs([0.02, -0.01, 0.05, 0.0, 0.03])  # mean 0.018, sd 0.0239, half-width 0.0297
    assert c["small_effect"] is False and c["separable"] is False
    assert c["seeds_for_80pct_power"] == seeds_for_power(0.018, c["diff_sd"])


# ---- Holm and interactions ---------------------------------------------------------------------------
def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 (m = 3): 3 * 0.01 = 0.03; 2 * 0.03 = 0.06; 1 * 0.04 = 0.04 -> max(0.06, 0.04)
    assert holm([0.01, 0.04, 0.03]) == [pytest.approx(0.03), pytest.approx(0.06), pytest.approx(0.06)]
    assert holm([0.5, None, 0.6]) == [pytest.approx(1.0), None, pytest.approx(1.0)]  # capped at 1; None not counted
    assert holm([0.02]) == [0.02] and holm([]) == []


def test_interaction_is_a_difference_of_differences_by_seed():
    a = {"0": 0.5, "1": 0.6, "2": 0.7}
    b = {"0": 0.4, "1": 0.4, "2": 0.5}   # a - b: 0.1, 0.2, 0.2
    c = {"0": 0.3, "1": 0.3, "2": None}
    d = {"0": 0.3, "1": 0.2, "2": 0.2}   # c - d: 0.0, 0.1 (seed 2 missing)
    inter = interaction_comparison((a, b), (c, d))
    assert inter["n_pairs"] == 2 and inter["diff_mean"] == pytest.approx(0.1) and inter["diff_sd"] == 0.0
