"""The paper's scaling claim as a fitted exponent: `rlvr theory --sweep`.

On the Section 3.3 problem (y*, y_med, three bad outputs; exact-gradient SGD), ground-truth
training can take a super-linear power of 1 / pi_0(y*) steps, while the proxy that gives y_med
a low reward takes about a linear one. The sweep trains both over a grid of p* = pi_0(y*) (and
over a grid of pi_0(y_med) at fixed p*), and fits steps ~ C x^a on a log-log scale by least
squares, with a t-interval on the slope a. Pure functions plus one batched simulation per sweep.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from rlvr.study.stats import t_quantile  # noqa: F401 - also this module's public name
from rlvr.theory import paper
from rlvr.theory.simulator import Algorithm, simulate

P_STAR_GRID = (0.10, 0.12, 0.15, 0.19, 0.24)
P_MED_GRID = (0.30, 0.50, 0.65)  # pi_0(y_med); 0.5 is the paper's
SWEEP_STEPS = 50_000


def fit_power_law(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> Dict[str, Any]:
    """Least-squares fit of log y = log C + a log x; a's standard error and t-interval (n - 2 df).

    x, y: (n,) positive numbers, n >= 3. Returns {exponent, low, high, stderr, prefactor, n}.
    """
    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    n = len(lx)
    if n < 3:
        raise ValueError(f"fit_power_law needs at least 3 points with finite steps, got {n}")
    dx = lx - lx.mean()
    slope = float(dx @ (ly - ly.mean()) / (dx @ dx))
    intercept = float(ly.mean() - slope * lx.mean())
    residuals = ly - (intercept + slope * lx)
    stderr = float(math.sqrt(residuals @ residuals / (n - 2) / (dx @ dx)))
    half = t_quantile(0.5 + confidence / 2, n - 2) * stderr
    return {"exponent": slope, "low": slope - half, "high": slope + half, "stderr": stderr,
            "prefactor": math.exp(intercept), "n": n, "confidence": confidence}


def _initial_probs(p_star: float, p_med: float) -> List[float]:
    rest = (1.0 - p_star - p_med) / 3
    return [p_star, p_med, rest, rest, rest]


def sweep_steps(probs: Sequence[Sequence[float]], steps: int = SWEEP_STEPS, lr: float = paper.LR) -> Dict[str, list]:
    """Steps-to-threshold (E[r_G] >= 0.9) of exact-gradient SGD on r_G and on the proxy, one
    batched run that stops once every run has arrived. probs: (n, 5) initial policies ->
    {"ground_truth": [n], "proxy": [n]} (None: not within `steps`)."""
    probs = np.asarray(probs, dtype=float)
    n = len(probs)
    theta0 = np.log(np.concatenate([probs, probs]))
    gt, proxy = np.array(paper.GT_REWARDS), np.array(paper.PROXY_REWARDS)
    traj = simulate(np.broadcast_to(np.eye(5), (2 * n, 5, 5)), theta0,
                    np.stack([gt] * n + [proxy] * n), np.stack([gt] * (2 * n)),
                    np.full(2 * n, paper.THRESHOLD), Algorithm(lr=lr, steps=steps), log_every=steps,
                    stop_when_reached=True)
    found = [None if s < 0 else int(s) for s in traj.steps_to_threshold]
    return {"ground_truth": found[:n], "proxy": found[n:]}


def _fit_reached(x: Sequence[float], steps: Sequence[Optional[int]]) -> Optional[Dict[str, Any]]:
    points = [(a, s) for a, s in zip(x, steps) if s]
    return fit_power_law(*zip(*points)) if len(points) >= 3 else None


def run_sweep(p_stars: Sequence[float] = P_STAR_GRID, p_meds: Sequence[float] = P_MED_GRID,
              steps: int = SWEEP_STEPS) -> Dict[str, Any]:
    """Sweep p* at each pi_0(y_med) (the three bad outputs share what is left) and fit
    steps ~ C (1 / p*)^a for ground truth and proxy; all runs in one batched simulation."""
    for p_med in p_meds:
        for p_star in p_stars:
            if not (0 < p_star and 0 < p_med and p_star + p_med < 1):
                raise ValueError(f"--sweep: p* = {p_star} and pi_0(y_med) = {p_med} must be > 0 and sum to < 1 "
                                 "(the three bad outputs share the rest)")
    probs = [_initial_probs(p, q) for q in p_meds for p in p_stars]
    found = sweep_steps(probs, steps)
    x = [1 / p for p in p_stars]
    sweeps = []
    for i, p_med in enumerate(p_meds):
        part = {kind: found[kind][i * len(p_stars):(i + 1) * len(p_stars)] for kind in found}
        sweeps.append({"p_med": p_med, "p_stars": list(p_stars), "x": x, "steps": part,
                       "fit": {kind: _fit_reached(x, part[kind]) for kind in part}})
    return {"threshold": paper.THRESHOLD, "lr": paper.LR, "max_steps": steps, "x": "1 / pi_0(y*)",
            "sweeps": sweeps}


def _fmt_fit(fit: Optional[Dict[str, Any]]) -> str:
    if fit is None:
        return "too few points reached the threshold"
    return (f"{fit['exponent']:.2f} [{fit['low']:.2f}, {fit['high']:.2f}] "
            f"({fit['confidence']:.0%} t-interval, {fit['n']} points)")


def format_sweep(report: Dict[str, Any]) -> str:
    """Console table of steps per grid point and the fitted exponents."""
    lines = []
    for sweep in report["sweeps"]:
        lines.append(f"pi_0(y_med) = {sweep['p_med']:g}: steps to E[r_G] >= {report['threshold']} "
                     f"(exact gradient, lr {report['lr']}, at most {report['max_steps']})")
        for p, gt, proxy in zip(sweep["p_stars"], sweep["steps"]["ground_truth"], sweep["steps"]["proxy"]):
            lines.append(f"  p* = {p:.3f}: ground truth {gt if gt is not None else 'never'}, "
                         f"proxy {proxy if proxy is not None else 'never'}")
        for kind, fit in sweep["fit"].items():
            lines.append(f"  steps ~ (1/p*)^a, {kind}: a = {_fmt_fit(fit)}")
    return "\n".join(lines)
