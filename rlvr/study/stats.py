"""Statistics a study reports: intervals over seeds and paired comparisons against a control.

Pure functions on lists of floats; no I/O. Seeds are the unit of replication: each arm's
metric is one number per seed, and an arm is compared with the control *paired by seed*
(same data order and sampling seed), which removes the seed-to-seed variation both share.

- `summary`: mean, sample sd, standard error, 95% Student-t interval of the mean.
- `paired_comparison`: mean of (arm - control) per shared seed, its t-interval, a seeded
  percentile-bootstrap interval, and the exact two-sided sign-flip permutation p-value
  (under H0 each difference is as likely negative as positive; all 2^n sign patterns are
  enumerated, so with n pairs the smallest possible p is 2 / 2^n).
- `seeds_needed`: the n at which a paired t-interval with the observed sd would exclude 0
  for the observed mean difference.
"""
from __future__ import annotations

import itertools
import math
import random
from typing import Dict, List, Optional, Sequence, Tuple

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000
EXACT_PERMUTATION_MAX_N = 16  # 2^16 sign patterns; above that a seeded Monte Carlo sample
MONTE_CARLO_PATTERNS = 100_000


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


# ---- an arm against the control ---------------------------------------------------------------
def sign_flip_p_value(diffs: Sequence[float], seed: int = 0) -> float:
    """Two-sided p-value of mean(diffs) under random sign flips (H0: symmetric around 0).

    Exact (all 2^n patterns, the observed one included) for n <= EXACT_PERMUTATION_MAX_N, else a
    seeded Monte Carlo estimate. Ties count as extreme (>= with a 1e-12 tolerance).
    """
    xs = [float(d) for d in diffs]
    if not xs:
        raise ValueError("sign_flip_p_value: no differences")
    observed = abs(sum(xs))
    if len(xs) <= EXACT_PERMUTATION_MAX_N:
        patterns = itertools.product((1.0, -1.0), repeat=len(xs))
        count = total = 0
        for signs in patterns:
            total += 1
            count += abs(sum(s * x for s, x in zip(signs, xs))) >= observed - 1e-12
        return count / total
    rng = random.Random(seed)
    count = sum(abs(sum(x if rng.random() < 0.5 else -x for x in xs)) >= observed - 1e-12
                for _ in range(MONTE_CARLO_PATTERNS))
    return (count + 1) / (MONTE_CARLO_PATTERNS + 1)


def bootstrap_interval(diffs: Sequence[float], confidence: float = CONFIDENCE,
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> Optional[Tuple[float, float]]:
    """Percentile bootstrap interval of the mean (seeded: the same input gives the same interval)."""
    xs = [float(d) for d in diffs]
    if len(xs) < 2:
        return None
    rng = random.Random(seed)
    n = len(xs)
    means = sorted(sum(xs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    lo_index = int(math.floor((1.0 - confidence) / 2.0 * resamples))
    hi_index = int(math.ceil((1.0 + confidence) / 2.0 * resamples)) - 1
    return means[lo_index], means[min(hi_index, resamples - 1)]


def seeds_needed(diff_mean: float, diff_sd: float, confidence: float = CONFIDENCE,
                 limit: int = 10_000) -> Optional[int]:
    """Smallest n >= 2 whose paired t-interval, with this mean and sd, excludes 0; None if the
    mean is 0 or more than `limit` seeds would be needed."""
    if diff_mean == 0:
        return None
    if diff_sd == 0:
        return 2
    for n in range(2, limit + 1):
        if t_quantile(0.5 + confidence / 2.0, n - 1) * diff_sd / math.sqrt(n) < abs(diff_mean):
            return n
    return None


def paired_comparison(arm: Dict[str, Optional[float]], control: Dict[str, Optional[float]],
                      seed: int = 0) -> Dict[str, object]:
    """Arm minus control, paired by seed: `arm`/`control` map seed -> value (None = missing).

    Returns {n_pairs, diff_mean, diff_sd, ci95, ci95_bootstrap, p_value, separable,
    seeds_needed}; only seeds where both have a value are paired. `separable` is True when
    the t-interval excludes 0; figures that need 2 pairs are None below that.
    """
    seeds = [s for s in arm if s in control and arm[s] is not None and control[s] is not None]
    diffs = [float(arm[s]) - float(control[s]) for s in seeds]  # type: ignore[arg-type]
    out: Dict[str, object] = {"n_pairs": len(diffs), "diff_mean": None, "diff_sd": None, "ci95": None,
                              "ci95_bootstrap": None, "p_value": None, "separable": False,
                              "seeds_needed": None}
    if not diffs:
        return out
    out["diff_mean"] = sum(diffs) / len(diffs)
    out["p_value"] = sign_flip_p_value(diffs, seed)
    if len(diffs) >= 2:
        sd = _sd(diffs)
        ci = t_interval(diffs)
        out.update(diff_sd=sd, ci95=list(ci), ci95_bootstrap=list(bootstrap_interval(diffs, seed=seed)),
                   separable=bool(ci[0] > 0 or ci[1] < 0),
                   seeds_needed=seeds_needed(out["diff_mean"], sd))  # type: ignore[arg-type]
    return out
