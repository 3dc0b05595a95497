"""Run theory configs: each config, plus one ablation run per reward error, batched.

Rows that share an algorithm, a problem shape and a log interval are simulated in
one numpy loop, so a config with its ablations (or the whole paper set) costs
about as much as a single run. Returns JSON-ready result dicts; no file I/O.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlvr.theory import policy
from rlvr.theory.ablation import ablation_verdict, corrected_proxy
from rlvr.theory.categorize import categorize_errors, erroneous_outputs
from rlvr.theory.config import TheoryConfig, config_to_dict
from rlvr.theory.simulator import Trajectories, simulate


@dataclass(frozen=True)
class _Row:
    """One simulation of config `config_index` trained on `proxy_rewards`.

    kind: 'main' (the proxy as given), 'ablation' (only the error on `output`
    corrected), 'ground_truth' (every error corrected, i.e. trained on r_G), or
    'seed_proxy' / 'seed_ground_truth' (the proxy / r_G at another of the config's seeds).
    """

    config_index: int
    kind: str
    proxy_rewards: np.ndarray
    output: int | tuple[int, int] | None = None  # (prompt, output) with several prompts
    seed: int | None = None  # None: the config's own seed


def _steps_or_none(steps: int) -> int | None:
    return None if steps < 0 else int(steps)


def _simulate_rows(
    configs: list[TheoryConfig], rows: list[_Row], log_every: list[int | None]
) -> list[dict[str, Any]]:
    """Simulate every row, batching rows with identical algorithm, shape and log interval."""
    groups: dict[tuple, list[int]] = {}
    for i, row in enumerate(rows):
        cfg = configs[row.config_index]
        key = (cfg.algorithm, cfg.features.shape, log_every[row.config_index])
        groups.setdefault(key, []).append(i)
    out: list[dict[str, Any]] = [{} for _ in rows]
    for (algorithm, _, every), members in groups.items():
        cfgs = [configs[rows[i].config_index] for i in members]
        traj: Trajectories = simulate(
            features=np.stack([c.features for c in cfgs]),
            theta0=np.stack([c.theta0 for c in cfgs]),
            proxy_rewards=np.stack([rows[i].proxy_rewards for i in members]),
            gt_rewards=np.stack([c.gt_rewards for c in cfgs]),
            thresholds=np.array([c.threshold for c in cfgs]),
            algorithm=algorithm,
            seeds=np.array([c.seed if rows[i].seed is None else rows[i].seed for i, c in zip(members, cfgs)]),
            log_every=every,
        )
        for j, i in enumerate(members):
            out[i] = {
                "steps_to_threshold": _steps_or_none(traj.steps_to_threshold[j]),
                "final_gt_reward": float(traj.final_gt_reward[j]),
                "final_proxy_reward": float(traj.final_proxy_reward[j]),
                "final_probs": traj.final_probs[j].tolist(),
                "trajectory": {
                    "step": traj.logged_steps.tolist(),
                    "gt_reward": traj.gt_reward[j].tolist(),
                    "proxy_reward": traj.proxy_reward[j].tolist(),
                    "probs": traj.probs[j].tolist(),
                },
            }
    return out


def quartiles(steps: list[int | None]) -> list[int | float | None]:
    """25th, 50th, 75th percentiles (linear interpolation) of steps-to-threshold; a run that never
    reaches the threshold counts as infinitely slow, so a quartile touching one is None ('never')."""
    values = sorted(np.inf if s is None else float(s) for s in steps)
    out: list[int | float | None] = []
    for q in (0.25, 0.5, 0.75):
        pos = q * (len(values) - 1)
        lo, frac = int(np.floor(pos)), pos - np.floor(pos)
        hi = min(lo + 1, len(values) - 1)
        if values[lo] == np.inf or (frac > 0 and values[hi] == np.inf):
            out.append(None)
        else:
            value = values[lo] + frac * (values[hi] - values[lo]) if frac > 0 else values[lo]
            out.append(int(value) if float(value).is_integer() else float(value))
    return out


def _spread(steps: list[int | None]) -> dict[str, Any]:
    return {"steps_to_threshold": steps, "quartiles": quartiles(steps),
            "reached": sum(s is not None for s in steps)}


def _seed_spread(cfg: TheoryConfig, index: int, rows: list[_Row], simulated: list[dict[str, Any]],
                 result: dict[str, Any]) -> dict[str, Any]:
    """Steps-to-threshold of the proxy (and of r_G, when simulated) at every seed, with quartiles."""
    proxy = [result["steps_to_threshold"]]
    gt = [result["ground_truth_run"]["steps_to_threshold"]] if result["ground_truth_run"] else None
    for row, sim in zip(rows, simulated):
        if row.config_index == index and row.kind == "seed_proxy":
            proxy.append(sim["steps_to_threshold"])
        elif row.config_index == index and row.kind == "seed_ground_truth" and gt is not None:
            gt.append(sim["steps_to_threshold"])
    return {"seeds": list(cfg.seeds), "proxy": _spread(proxy),
            "ground_truth": _spread(gt) if gt is not None and len(gt) == len(proxy) else None}


def _categorization_basis(config: TheoryConfig) -> str:
    basis = "tabular theory at the initial policy (paper Section 3)"
    if config.num_prompts > 1 or config.features.ndim == 3:
        basis += ", per prompt; prompts share parameters, so trust the ablation where they disagree"
    elif not policy.is_orthonormal(config.features):
        basis += "; features are not orthonormal, so trust the ablation where they disagree"
    return basis


def _errors(config: TheoryConfig) -> list:
    """Erroneous outputs: ints y, or (prompt, y) pairs for a config with `prompts`."""
    if config.features.ndim == 2:
        return erroneous_outputs(config.proxy_rewards, config.gt_rewards)
    return [(p, y) for p in range(config.num_prompts)
            for y in erroneous_outputs(config.proxy_rewards[p], config.gt_rewards[p])]


def _categories(config: TheoryConfig) -> dict:
    """Static category per erroneous output (per prompt, at that prompt's initial policy)."""
    probs0 = config.initial_probs
    if config.features.ndim == 2:
        return categorize_errors(probs0, config.proxy_rewards, config.gt_rewards, config.negligible_prob)
    return {(p, y): c for p in range(config.num_prompts)
            for y, c in categorize_errors(probs0[p], config.proxy_rewards[p], config.gt_rewards[p],
                                          config.negligible_prob).items()}


def output_key(output: int | tuple[int, int]) -> str:
    """Result-dict key of an erroneous output: '3', or 'prompt:output' ('1:3') with several prompts."""
    return str(output) if isinstance(output, int) else f"{output[0]}:{output[1]}"


def run_configs(
    configs: list[TheoryConfig], ablate: bool = True, log_every: int | None = None
) -> list[dict[str, Any]]:
    """Simulate each config (and, if `ablate`, each single-error correction); one result dict per config.

    log_every overrides every config's own interval. Result keys: see rlvr/theory/command.py.
    """
    start = time.perf_counter()
    every = [log_every or c.log_every for c in configs]
    errors = [_errors(c) for c in configs]
    rows = [_Row(i, "main", c.proxy_rewards) for i, c in enumerate(configs)]
    if ablate:
        for i, c in enumerate(configs):
            rows += [_Row(i, "ablation", corrected_proxy(c.proxy_rewards, c.gt_rewards, y), y) for y in errors[i]]
            if len(errors[i]) > 1:  # with one error the ablation run already is the r_G run
                rows.append(_Row(i, "ground_truth", c.gt_rewards))
    for i, c in enumerate(configs):
        for seed in (c.seeds or ())[1:]:
            rows.append(_Row(i, "seed_proxy", c.proxy_rewards, seed=seed))
            if ablate and errors[i]:
                rows.append(_Row(i, "seed_ground_truth", c.gt_rewards, seed=seed))
    simulated = _simulate_rows(configs, rows, every)
    elapsed = time.perf_counter() - start

    results = []
    for i, cfg in enumerate(configs):
        main = simulated[i]
        probs0 = cfg.initial_probs
        categories = _categories(cfg)
        result: dict[str, Any] = {
            "name": cfg.name,
            "threshold": cfg.threshold,
            "steps_to_threshold": main["steps_to_threshold"],
            "final_gt_reward": main["final_gt_reward"],
            "final_proxy_reward": main["final_proxy_reward"],
            "final_probs": main["final_probs"],
            "initial_probs": probs0.tolist(),
            "initial_gt_reward": float(np.mean(policy.expected_reward(probs0, cfg.gt_rewards))),
            "initial_proxy_reward": float(np.mean(policy.expected_reward(probs0, cfg.proxy_rewards))),
            "erroneous_outputs": [y if isinstance(y, int) else list(y) for y in errors[i]],
            "categories": {output_key(y): c.category for y, c in categories.items()},
            "category_reasons": {output_key(y): c.reason for y, c in categories.items()},
            "categorization_basis": _categorization_basis(cfg),
            "ablation": None,
            "disagreements": [],
            "ground_truth_run": None,
            "seed_spread": None,
        }
        if ablate:
            gt_range = float(cfg.gt_rewards.max() - cfg.gt_rewards.min())
            ablation = {}
            for row, sim in zip(rows, simulated):
                if row.config_index != i or row.kind not in ("ablation", "ground_truth"):
                    continue
                if row.kind == "ground_truth" or len(errors[i]) == 1:
                    result["ground_truth_run"] = {
                        "steps_to_threshold": sim["steps_to_threshold"],
                        "final_gt_reward": sim["final_gt_reward"],
                    }
                if row.kind == "ground_truth":
                    continue
                y = row.output
                base, fixed = main["steps_to_threshold"], sim["steps_to_threshold"]
                verdict = ablation_verdict(
                    base, fixed, main["final_gt_reward"], sim["final_gt_reward"], gt_range, cfg.ablation_tolerance
                )
                ablation[output_key(y)] = {
                    "steps_to_threshold": fixed,
                    "delta_steps": None if base is None or fixed is None else fixed - base,
                    "final_gt_reward": sim["final_gt_reward"],
                    "verdict": verdict,
                }
                if verdict != categories[y].family:
                    result["disagreements"].append(
                        {"output": y if isinstance(y, int) else output_key(y), "category": categories[y].category,
                         "ablation_verdict": verdict}
                    )
            result["ablation"] = ablation
        if cfg.seeds:
            result["seed_spread"] = _seed_spread(cfg, i, rows, simulated, result)
        result["trajectory"] = main["trajectory"]
        result["config"] = config_to_dict(cfg)
        result["simulation_seconds"] = elapsed
        results.append(result)
    return results
