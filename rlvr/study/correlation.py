"""Correlation across reward models, with bootstrap intervals over reward models (pure; no I/O).

The unit of replication is the reward model: each contributes one metric value (Acc, HAcc, the
reward's variance under the policy, ...) and one outcome (the ground-truth gain its RL runs
reached). A percentile bootstrap resamples reward models with replacement; resamples in which
a correlation is undefined (a constant column) are skipped and counted. With a dozen reward
models such intervals are wide and cover somewhat less than their nominal level: read them
as a guide to how much the ordering could change, not as exact tests.
"""
from __future__ import annotations

import math
import random
from typing import Callable, Dict, List, Optional, Sequence, Tuple

CONFIDENCE = 0.95
RESAMPLES = 2000

Correlation = Callable[[Sequence[float], Sequence[float]], Optional[float]]


def pearson(x: Sequence[float], y: Sequence[float]) -> Optional[float]:
    """Pearson's r of two equal-length lists; None below 2 points or when either is constant."""
    if len(x) != len(y):
        raise ValueError(f"{len(x)} x values but {len(y)} y values")
    n = len(x)
    if n < 2:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx <= 1e-300 or syy <= 1e-300:
        return None
    r = sum((a - mx) * (b - my) for a, b in zip(x, y)) / math.sqrt(sxx * syy)
    return max(-1.0, min(1.0, r))


def ranks(values: Sequence[float]) -> List[float]:
    """1-based ranks, ties given their average rank: [10, 30, 20, 20] -> [1, 4, 2.5, 2.5]."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> Optional[float]:
    """Spearman's rho: Pearson's r of the (average-tie) ranks."""
    return pearson(ranks(x), ranks(y))


CORRELATIONS: Dict[str, Correlation] = {"spearman": spearman, "pearson": pearson}


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile q in [0, 1] of a sorted list."""
    pos = q * (len(sorted_values) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _resample_indices(n: int, resamples: int, seed: int) -> List[List[int]]:
    rng = random.Random(f"rm-bootstrap:{seed}")
    return [[rng.randrange(n) for _ in range(n)] for _ in range(resamples)]


def bootstrap_statistic(stat: Callable[[List[int]], Optional[float]], n: int, resamples: int = RESAMPLES,
                        seed: int = 0, confidence: float = CONFIDENCE) -> Tuple[Optional[Tuple[float, float]], int]:
    """(percentile interval, resamples skipped) of stat(indices) over bootstrap resamples of n
    units; None when fewer than half the resamples give a value."""
    values = []
    for idx in _resample_indices(n, resamples, seed):
        v = stat(idx)
        if v is not None:
            values.append(v)
    skipped = resamples - len(values)
    if len(values) < resamples / 2:
        return None, skipped
    values.sort()
    alpha = (1 - confidence) / 2
    return (_percentile(values, alpha), _percentile(values, 1 - alpha)), skipped


def correlation_with_interval(x: Sequence[float], y: Sequence[float], method: str = "spearman",
                              resamples: int = RESAMPLES, seed: int = 0) -> Dict[str, object]:
    """{"r", "ci95", "n", "skipped"}: a correlation of x with y and its bootstrap interval."""
    fn = CORRELATIONS[method]
    ci, skipped = bootstrap_statistic(lambda idx: fn([x[i] for i in idx], [y[i] for i in idx]),
                                      len(x), resamples, seed)
    return {"r": fn(x, y), "ci95": list(ci) if ci else None, "n": len(x), "skipped": skipped}


def correlation_difference(a: Sequence[float], b: Sequence[float], y: Sequence[float], method: str = "spearman",
                           resamples: int = RESAMPLES, seed: int = 0) -> Dict[str, object]:
    """{"diff", "ci95", "n", "skipped"}: corr(a, y) - corr(b, y), with a paired bootstrap
    interval (both correlations on the same resampled reward models)."""
    fn = CORRELATIONS[method]

    def diff(idx: Sequence[int]) -> Optional[float]:
        ra = fn([a[i] for i in idx], [y[i] for i in idx])
        rb = fn([b[i] for i in idx], [y[i] for i in idx])
        return None if ra is None or rb is None else ra - rb

    ci, skipped = bootstrap_statistic(diff, len(y), resamples, seed)
    return {"diff": diff(range(len(y))), "ci95": list(ci) if ci else None, "n": len(y), "skipped": skipped}


def metric_correlations(metrics: Dict[str, Sequence[Optional[float]]], outcome: Sequence[Optional[float]],
                        resamples: int = RESAMPLES, seed: int = 0) -> Dict[str, Dict[str, object]]:
    """Per metric: {"spearman": ..., "pearson": ...} (correlation_with_interval) of the metric
    with the outcome over the reward models where both are defined."""
    out = {}
    for name, values in metrics.items():
        keep = [i for i, (v, o) in enumerate(zip(values, outcome)) if v is not None and o is not None]
        x, y = [float(values[i]) for i in keep], [float(outcome[i]) for i in keep]
        out[name] = {m: correlation_with_interval(x, y, m, resamples, seed) for m in CORRELATIONS}
    return out
