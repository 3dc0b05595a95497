"""Statistics a study reports: intervals over seeds and paired comparisons between arms.

Pure functions on lists of floats; no I/O. Seeds are the unit of replication: each arm's
metric is one number per seed, and an arm is compared with its reference *paired by seed*
(same data order and sampling seed), which removes the seed-to-seed variation both share.

- `summary`: mean, sample sd, standard error, 95% Student-t interval of the mean.
- `paired_comparison`: mean of (arm - reference) per shared seed, its t-interval (the
  headline interval), the paired t-test p-value (agrees with the interval) and the two-sided
  sign-flip permutation p-value (distribution-free; exact up to 16 pairs, so with n pairs it
  cannot go below 2 / 2^n), and a plan: the seeds a study needs for 80% power at the observed
  effect, or, when the observed effect is small against its interval, the largest effect the
  interval still allows.
- `power_paired_t` / `seeds_for_power`: power of the two-sided paired t-test from the
  noncentral t distribution (numerical integration; no scipy).
- `holm`: Holm's step-down adjustment of a family of p-values.

No percentile bootstrap: at seed counts (3-8) it covers far less than its nominal 95% (about
0.76 at n = 3, 0.84 at n = 5, 0.88 at n = 8 on normal data; at n = 2 it is [min, max]).
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

CONFIDENCE = 0.95
ALPHA = 1.0 - CONFIDENCE
POWER = 0.80  # the power a "seeds for 80% power" plan is for
EXACT_PERMUTATION_MAX_N = 16  # 2^16 sign patterns; above that a seeded Monte Carlo sample
MONTE_CARLO_PATTERNS = 100_000
# A difference (or sd) within this of 0, relative to the size of the values, is 0: float sums
# of equal numbers leave ~1e-17 residues that must not read as effects.
ZERO_TOLERANCE = 1e-9
# The plan reads "effects larger than X are excluded" instead of "seeds for 80% power" when
# |mean difference| < SMALL_EFFECT * (half-width of its t-interval).
SMALL_EFFECT = 0.5
SEEDS_LIMIT = 10_000


def is_zero(x: float, scale: float = 1.0) -> bool:
    """|x| within ZERO_TOLERANCE of 0, relative to `scale` (at least 1)."""
    return abs(x) <= ZERO_TOLERANCE * max(1.0, abs(scale))


# ---- Student's t ----------------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * _incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (bisection on t_cdf; |error| < 1e-10)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_quantile: p = {p} must be within (0, 1)")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


# ---- noncentral t and power -------------------------------------------------------------------
_QUADRATURE_POINTS = 4001  # Simpson nodes over the scaled chi variable (odd)


def noncentral_t_cdf(t: float, df: float, ncp: float) -> float:
    """P(T' <= t) for the noncentral t with `df` degrees of freedom and noncentrality `ncp`.

    T' = (Z + ncp) / S with Z standard normal and S = sqrt(chi2_df / df), so
    P(T' <= t) = E_S[Phi(t S - ncp)]: Simpson's rule over S's density
    f(s) = 2 (df/2)^(df/2) s^(df-1) exp(-df s^2 / 2) / Gamma(df/2), on 1 +- 12 sds of S.
    """
    if df <= 0:
        raise ValueError(f"noncentral_t_cdf: df = {df} must be > 0")
    spread = 12.0 / math.sqrt(2.0 * df) + (6.0 if df < 4 else 0.0)  # S's sd ~ 1/sqrt(2 df)
    lo, hi = max(0.0, 1.0 - spread), 1.0 + spread
    s = np.linspace(lo, hi, _QUADRATURE_POINTS)
    log_front = math.log(2.0) + (df / 2.0) * math.log(df / 2.0) - math.lgamma(df / 2.0)
    positive = s > 0
    density = np.zeros_like(s)
    density[positive] = np.exp(log_front + (df - 1.0) * np.log(s[positive]) - df * s[positive] ** 2 / 2.0)
    if not positive[0] and df == 1.0:  # s^0 at s = 0: the half-normal's finite peak
        density[0] = math.exp(log_front)
    normal_cdf = 0.5 * _erfc(-(t * s - ncp) / math.sqrt(2.0))
    weights = np.ones_like(s)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    step = (hi - lo) / (_QUADRATURE_POINTS - 1)
    return float(min(1.0, max(0.0, np.sum(weights * density * normal_cdf) * step / 3.0)))


_erfc = np.vectorize(math.erfc, otypes=[float])


def power_paired_t(effect: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test at level `alpha` with n pairs, when the true mean
    difference is `effect` paired sds (Cohen's d_z): P(|T'| > t_crit), T' noncentral t with
    df = n - 1 and noncentrality effect * sqrt(n)."""
    if n < 2:
        raise ValueError(f"power_paired_t: n = {n} pairs; the t-test needs at least 2")
    df, ncp = n - 1, abs(effect) * math.sqrt(n)
    crit = t_quantile(1.0 - alpha / 2.0, df)
    return 1.0 - noncentral_t_cdf(crit, df, ncp) + noncentral_t_cdf(-crit, df, ncp)


def seeds_for_power(diff_mean: float, diff_sd: float, power: float = POWER, alpha: float = ALPHA,
                    limit: int = SEEDS_LIMIT) -> Optional[int]:
    """Smallest n >= 2 at which the two-sided paired t-test at level `alpha` has `power` when
    the true difference is `diff_mean` with paired sd `diff_sd`; None if the difference is 0
    (within ZERO_TOLERANCE) or more than `limit` seeds would be needed. A zero sd gives 2."""
    if is_zero(diff_mean, diff_sd) or diff_sd < 0:
        return None
    if is_zero(diff_sd, diff_mean):
        return 2
    effect = abs(diff_mean) / diff_sd
    if power_paired_t(effect, 2, alpha) >= power:
        return 2
    if power_paired_t(effect, limit, alpha) < power:
        return None
    lo, hi = 2, limit  # power(lo) < power <= power(hi); power rises with n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power_paired_t(effect, mid, alpha) >= power else (mid, hi)
    return hi


# ---- one arm --------------------------------------------------------------------------------
def _clean(values: Sequence[Optional[float]]) -> List[float]:
    return [float(v) for v in values if v is not None]


def t_interval(values: Sequence[Optional[float]], confidence: float = CONFIDENCE) -> Optional[Tuple[float, float]]:
    """Student-t interval of the mean of the non-None values; None with fewer than 2."""
    xs = _clean(values)
    if len(xs) < 2:
        return None
    mean, sd = sum(xs) / len(xs), _sd(xs)
    half = t_quantile(0.5 + confidence / 2.0, len(xs) - 1) * sd / math.sqrt(len(xs))
    return mean - half, mean + half


def _sd(xs: Sequence[float]) -> float:
    mean = sum(xs) / len(xs)
    return math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))


def summary(values: Sequence[Optional[float]]) -> Dict[str, Optional[float]]:
    """{n, mean, sd, se, ci95} of the non-None values (sd, se, ci95 None below 2 values)."""
    xs = _clean(values)
    out: Dict[str, object] = {"n": len(xs), "mean": sum(xs) / len(xs) if xs else None,
                              "sd": None, "se": None, "ci95": None}
    if len(xs) >= 2:
        out["sd"] = _sd(xs)
        out["se"] = out["sd"] / math.sqrt(len(xs))
        out["ci95"] = list(t_interval(xs))
    return out  # type: ignore[return-value]


# ---- the sign-flip test -------------------------------------------------------------------------
def _tie_tolerance(xs: np.ndarray) -> float:
    """Sums within this of the observed one count as ties (float sums of the same numbers in
    another order differ in the last bits; differences of ~1e-17 are all ties, p = 1)."""
    return ZERO_TOLERANCE * max(1.0, float(np.sum(np.abs(xs))))


def sign_flip_p_exact(diffs: Sequence[float]) -> float:
    """Two-sided exact sign-flip p-value: the share of all 2^n sign patterns (the observed one
    included) whose |sum| is at least the observed |sum|. n up to about 24 (2^n sums in memory)."""
    xs = np.asarray([float(d) for d in diffs])
    if xs.size == 0:
        raise ValueError("sign_flip_p_exact: no differences")
    if xs.size > 26:
        raise ValueError(f"sign_flip_p_exact: {xs.size} differences are 2^{xs.size} patterns; "
                         "use sign_flip_p_value (Monte Carlo above 16)")
    sums = np.zeros(1)
    for x in xs:  # every pattern's sum, built one difference at a time
        sums = np.concatenate([sums + x, sums - x])
    observed = abs(float(np.sum(xs)))
    return float(np.mean(np.abs(sums) >= observed - _tie_tolerance(xs)))


def sign_flip_p_monte_carlo(diffs: Sequence[float], seed: int = 0, patterns: int = MONTE_CARLO_PATTERNS) -> float:
    """Two-sided sign-flip p-value from `patterns` seeded random sign patterns: (count + 1) /
    (patterns + 1), counting |flipped sum| >= |observed sum|. The sign draws do not depend on
    the data, so negating every difference gives the same p."""
    xs = np.asarray([float(d) for d in diffs])
    if xs.size == 0:
        raise ValueError("sign_flip_p_monte_carlo: no differences")
    rng = np.random.default_rng(seed)
    observed, tol = abs(float(np.sum(xs))), _tie_tolerance(xs)
    count, left = 0, patterns
    chunk = max(1, 2_000_000 // xs.size)  # bounds memory at ~16 MB of signs
    while left > 0:
        rows = min(chunk, left)
        signs = rng.integers(0, 2, size=(rows, xs.size)) * 2 - 1
        count += int(np.sum(np.abs(signs @ xs) >= observed - tol))
        left -= rows
    return (count + 1) / (patterns + 1)


def sign_flip_p_value(diffs: Sequence[float], seed: int = 0) -> float:
    """Two-sided p-value of mean(diffs) under random sign flips (H0: symmetric around 0):
    exact for n <= EXACT_PERMUTATION_MAX_N, else seeded Monte Carlo."""
    if len(diffs) == 0:
        raise ValueError("sign_flip_p_value: no differences")
    if len(diffs) <= EXACT_PERMUTATION_MAX_N:
        return sign_flip_p_exact(diffs)
    return sign_flip_p_monte_carlo(diffs, seed)


def paired_t_p_value(diffs: Sequence[float]) -> Optional[float]:
    """Two-sided p-value of the paired t-test (H0: mean difference 0); None below 2 pairs.
    A zero sd gives 1.0 for a zero mean and 0.0 otherwise."""
    xs = _clean(diffs)
    if len(xs) < 2:
        return None
    mean, sd = sum(xs) / len(xs), _sd(xs)
    scale = max(abs(x) for x in xs)
    if is_zero(mean, scale):
        return 1.0
    if is_zero(sd, scale):
        return 0.0
    t = mean / (sd / math.sqrt(len(xs)))
    return 2.0 * t_cdf(-abs(t), len(xs) - 1)


# ---- multiplicity -------------------------------------------------------------------------------
def holm(p_values: Sequence[Optional[float]]) -> List[Optional[float]]:
    """Holm's step-down adjusted p-values, in the input's order (None stays None and is not
    counted in the family): sorted p_(1) <= ... <= p_(m), adjusted p_(i) =
    max over j <= i of min(1, (m - j + 1) p_(j))."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(present)
    out: List[Optional[float]] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


# ---- an arm against its reference -------------------------------------------------------------
def paired_diffs(arm: Mapping[str, Optional[float]], reference: Mapping[str, Optional[float]]) -> Dict[str, float]:
    """{seed: arm - reference} over the seeds where both have a value, in `arm`'s order."""
    return {s: float(arm[s]) - float(reference[s]) for s in arm  # type: ignore[arg-type]
            if s in reference and arm[s] is not None and reference[s] is not None}


def compare_diffs(diffs: Sequence[float], seed: int = 0) -> Dict[str, object]:
    """The figures of one paired comparison from its per-seed differences.

    Returns {n_pairs, diff_mean, diff_sd, ci95, p_value (sign-flip), p_t (paired t-test),
    separable (the t-interval excludes 0), small_effect (|mean| < SMALL_EFFECT x half-width),
    seeds_for_80pct_power (None when small_effect, zero or beyond SEEDS_LIMIT),
    excluded_beyond (the interval's larger absolute bound: larger effects, of either sign,
    are excluded at 95%)}; figures that need 2 pairs are None below that.
    """
    xs = [float(d) for d in diffs]
    out: Dict[str, object] = {"n_pairs": len(xs), "diff_mean": None, "diff_sd": None, "ci95": None,
                              "p_value": None, "p_t": None, "separable": False, "small_effect": None,
                              "seeds_for_80pct_power": None, "excluded_beyond": None}
    if not xs:
        return out
    scale = max(abs(x) for x in xs)
    mean = sum(xs) / len(xs)
    out["diff_mean"] = 0.0 if is_zero(mean, scale) else mean
    out["p_value"] = sign_flip_p_value(xs, seed)
    if len(xs) < 2:
        return out
    sd = _sd(xs)
    sd = 0.0 if is_zero(sd, scale) else sd
    half = t_quantile(0.5 + CONFIDENCE / 2.0, len(xs) - 1) * sd / math.sqrt(len(xs))
    lo, hi = out["diff_mean"] - half, out["diff_mean"] + half  # type: ignore[operator]
    small = abs(out["diff_mean"]) < SMALL_EFFECT * half  # type: ignore[arg-type]
    out.update(diff_sd=sd, ci95=[lo, hi], p_t=paired_t_p_value(xs),
               separable=bool(lo > 0 or hi < 0), small_effect=bool(small),
               excluded_beyond=max(abs(lo), abs(hi)),
               seeds_for_80pct_power=None if small else seeds_for_power(out["diff_mean"], sd))  # type: ignore[arg-type]
    return out


def paired_comparison(arm: Mapping[str, Optional[float]], reference: Mapping[str, Optional[float]],
                      seed: int = 0) -> Dict[str, object]:
    """Arm minus reference, paired by seed: `arm`/`reference` map seed -> value (None =
    missing); only seeds where both have a value are paired. See compare_diffs."""
    return compare_diffs(list(paired_diffs(arm, reference).values()), seed)


def interaction_comparison(first: Tuple[Mapping[str, Optional[float]], Mapping[str, Optional[float]]],
                           second: Tuple[Mapping[str, Optional[float]], Mapping[str, Optional[float]]],
                           seed: int = 0) -> Dict[str, object]:
    """Difference of differences paired by seed: (a - b) - (c - d) for `first` = (a, b) and
    `second` = (c, d), over the seeds where all four have a value. See compare_diffs."""
    d1, d2 = paired_diffs(*first), paired_diffs(*second)
    return compare_diffs([d1[s] - d2[s] for s in d1 if s in d2], seed)
