"""The causal effect of each reward error on ground-truth progress, as a signed number.

For an instance with k errors, every coalition S of them (2^k proxies: the errors in S kept,
the others corrected to r_G) is trained with the exact simulator, and a value v(S) is read off:

- log steps: log(1 + steps until E[r_G] first reaches a threshold), censored at the horizon H
  (a run that never reaches it within H counts as reaching it at H); one value per (threshold, H);
- area: the mean of E[r_G] over steps 1..H (the normalised area under the learning curve).

An error's effect is its exact Shapley value over the instance's errors,
phi_i = sum_{S not containing i} |S|! (k - |S| - 1)! / k! [v(S + i) - v(S)],
which splits v(all) - v(none) among the errors (overdetermined and interacting errors share
it), beside fix-one (v(all) - v(all - i)) and add-one (v({i}) - v(none)). A positive effect on
log steps slows learning: the three-way verdict is harmful when phi > log(1 + tolerance),
beneficial when phi < -log(1 + tolerance), else benign (tolerance 0.05: a 5% change in steps).
Exact Shapley needs 2^k runs, so instances are capped at MAX_ERRORS errors.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from rlvr.theory.config import TheoryConfig
from rlvr.theory.simulator import simulate

MAX_ERRORS = 8  # 2^8 = 256 runs per instance
TOLERANCE = 0.05


def shapley_values(v: np.ndarray) -> np.ndarray:
    """Exact Shapley values. v [..., 2^k], indexed by coalition bitmask (bit i: error i present)
    -> phi [..., k]."""
    v = np.asarray(v, dtype=np.float64)
    k = int(round(math.log2(v.shape[-1])))
    if 2 ** k != v.shape[-1]:
        raise ValueError(f"v has {v.shape[-1]} coalitions, not a power of 2")
    phi = np.zeros(v.shape[:-1] + (k,))
    for i in range(k):
        bit = 1 << i
        for mask in range(2 ** k):
            if mask & bit:
                continue
            size = bin(mask).count("1")
            weight = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
            phi[..., i] += weight * (v[..., mask | bit] - v[..., mask])
    return phi


def fix_one(v: np.ndarray) -> np.ndarray:
    """v(all) - v(all without i). v [..., 2^k] -> [..., k]."""
    v = np.asarray(v, dtype=np.float64)
    full = v.shape[-1] - 1
    k = full.bit_length()
    return np.stack([v[..., full] - v[..., full ^ (1 << i)] for i in range(k)], axis=-1)


def add_one(v: np.ndarray) -> np.ndarray:
    """v({i}) - v(none). v [..., 2^k] -> [..., k]."""
    v = np.asarray(v, dtype=np.float64)
    k = (v.shape[-1] - 1).bit_length()
    return np.stack([v[..., 1 << i] - v[..., 0] for i in range(k)], axis=-1)


def verdict(effect: float, tolerance: float = TOLERANCE) -> str:
    """Three-way verdict from an effect on log steps: > log(1 + tol) harmful, < -log(1 + tol)
    beneficial, else benign."""
    tol = math.log1p(tolerance)
    return "harmful" if effect > tol else "beneficial" if effect < -tol else "benign"


def coalition_proxies(proxy: np.ndarray, gt: np.ndarray, errors: Sequence[Any]) -> np.ndarray:
    """The 2^k proxies: coalition mask keeps errors[i] when bit i is set, else r_G there.
    proxy, gt [...] (K,) or (P, K); errors: indices into them -> [2^k, ...]."""
    k = len(errors)
    out = np.repeat(np.asarray(gt, dtype=np.float64)[None], 2 ** k, axis=0)
    for mask in range(2 ** k):
        for i, y in enumerate(errors):
            if mask >> i & 1:
                out[(mask,) + (tuple(y) if isinstance(y, tuple) else (y,))] = proxy[y]
    return out


def log_steps(steps: np.ndarray, horizon: int) -> np.ndarray:
    """log(1 + steps) censored at the horizon (never, or later than it, counts as the horizon)."""
    steps = np.asarray(steps)
    return np.log1p(np.where((steps < 0) | (steps > horizon), horizon, steps))


def simulate_coalitions(configs: Sequence[TheoryConfig], errors: Sequence[Sequence[Any]],
                        thresholds: Sequence[float], horizons: Sequence[int]) -> List[Dict[str, np.ndarray]]:
    """Train every coalition of every config for max(horizons) steps (batched by algorithm and
    shape). Per config: {"steps": [2^k, M] int (-1: never), "area": [2^k, H], "initial_gt": float}."""
    horizons = sorted(int(h) for h in horizons)
    steps = horizons[-1]
    rows: List[Tuple[int, int]] = []
    proxies: List[np.ndarray] = []
    for c, (cfg, errs) in enumerate(zip(configs, errors)):
        if len(errs) > MAX_ERRORS:
            raise ValueError(f"{cfg.name}: {len(errs)} errors; the exact Shapley value is capped at {MAX_ERRORS} "
                             f"(2^{MAX_ERRORS} runs)")
        for mask, proxy in enumerate(coalition_proxies(cfg.proxy_rewards, cfg.gt_rewards, errs)):
            rows.append((c, mask))
            proxies.append(proxy)
    groups: Dict[tuple, List[int]] = {}
    for r, (c, _) in enumerate(rows):
        cfg = configs[c]
        groups.setdefault((dataclasses.replace(cfg.algorithm, steps=steps), cfg.features.shape), []).append(r)
    out = [{"steps": np.zeros((2 ** len(e), len(thresholds)), dtype=np.int64),
            "area": np.zeros((2 ** len(e), len(horizons)))} for e in errors]
    for (algorithm, _), members in groups.items():
        cfgs = [configs[rows[r][0]] for r in members]
        traj = simulate(features=np.stack([c.features for c in cfgs]), theta0=np.stack([c.theta0 for c in cfgs]),
                        proxy_rewards=np.stack([proxies[r] for r in members]),
                        gt_rewards=np.stack([c.gt_rewards for c in cfgs]),
                        thresholds=np.array([c.threshold for c in cfgs]), algorithm=algorithm,
                        seeds=np.array([c.seed for c in cfgs]), log_every=steps,
                        track_thresholds=np.asarray(thresholds, dtype=np.float64), track_horizons=horizons)
        for j, r in enumerate(members):
            c, mask = rows[r]
            out[c]["steps"][mask] = traj.steps_to_thresholds[j]
            out[c]["area"][mask] = traj.gt_area[j]
            out[c]["initial_gt"] = float(traj.gt_reward[j, 0])
    return out


def error_effects(runs: Dict[str, np.ndarray], thresholds: Sequence[float], horizons: Sequence[int],
                  tolerance: float = TOLERANCE) -> List[Dict[str, Any]]:
    """Per error i of one instance (simulate_coalitions' entry): {"by_setting": [{threshold, horizon,
    shapley, fix_one, add_one (effects on log steps), verdict, fix_one_verdict, add_one_verdict,
    determined}], "area": [{horizon, shapley, fix_one, add_one}]}. `determined` is False when the
    instance starts at the threshold or no coalition reaches it within the horizon (every effect
    is then 0 by construction)."""
    horizons = sorted(int(h) for h in horizons)
    k = (runs["steps"].shape[0] - 1).bit_length()
    effects: List[Dict[str, Any]] = [{"by_setting": [], "area": []} for _ in range(k)]
    for m, threshold in enumerate(thresholds):
        for horizon in horizons:
            steps = runs["steps"][:, m]
            v = log_steps(steps, horizon)
            reached = (steps >= 0) & (steps <= horizon)
            determined = bool(reached.any()) and not bool((steps == 0).all())
            phi, fix, add = shapley_values(v), fix_one(v), add_one(v)
            for i in range(k):
                effects[i]["by_setting"].append({
                    "threshold": float(threshold), "horizon": horizon, "shapley": float(phi[i]),
                    "fix_one": float(fix[i]), "add_one": float(add[i]), "verdict": verdict(phi[i], tolerance),
                    "fix_one_verdict": verdict(fix[i], tolerance), "add_one_verdict": verdict(add[i], tolerance),
                    "determined": determined})
    for h, horizon in enumerate(horizons):
        v = runs["area"][:, h]
        phi, fix, add = shapley_values(v), fix_one(v), add_one(v)
        for i in range(k):
            effects[i]["area"].append({"horizon": horizon, "shapley": float(phi[i]), "fix_one": float(fix[i]),
                                       "add_one": float(add[i])})
    return effects


def config_effects(config: TheoryConfig, errors: Sequence[Any], thresholds: Sequence[float] | None = None,
                   horizons: Sequence[int] | None = None) -> Dict[str, Any]:
    """The `shapley` entry of `rlvr theory CONFIG`'s result: {"thresholds", "horizons", "tolerance",
    "runs", "errors": {output key: error_effects entry}}, or {"skipped": why} above MAX_ERRORS."""
    from rlvr.theory.runner import output_key

    thresholds = list(thresholds or [config.threshold])
    horizons = sorted(set(horizons or [config.algorithm.steps]))
    if not errors:
        return {"errors": {}}
    if len(errors) > MAX_ERRORS:
        return {"skipped": f"{len(errors)} errors: the exact Shapley value is capped at {MAX_ERRORS} errors "
                           f"(2^{MAX_ERRORS} runs)"}
    (runs,) = simulate_coalitions([config], [list(errors)], thresholds, horizons)
    effects = error_effects(runs, thresholds, horizons, config.ablation_tolerance)
    return {"thresholds": thresholds, "horizons": horizons, "tolerance": config.ablation_tolerance,
            "runs": 2 ** len(errors), "errors": {output_key(y): e for y, e in zip(errors, effects)}}
