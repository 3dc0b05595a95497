"""How often do the static categories predict the causal verdict? Seeded random families.

`rlvr theory --random N` draws N random bandit instances (K outputs, one optimal output with
r_G = 1, the others drawn from mediocre and bad values, a random initial policy, one to
`max_errors` reward errors), trains each with the exact gradient, and compares every error's
static category (rlvr.theory.categorize, at pi_0) with two causal verdicts
(rlvr.theory.ablation):

- fix-one: the proxy as given vs the proxy with only this error corrected;
- add-one: the ground truth vs the ground truth with only this error added.

With one error both ablations compare the same two runs. The comparison is repeated over
several thresholds and horizons (the verdict depends on both), and aggregated as a confusion
matrix (static family x verdict) and an agreement rate per static label.
"""
from __future__ import annotations

import random
from typing import Any, Dict, List, Sequence

from rlvr.rewards.labels import FAMILIES, LABELS, family
from rlvr.theory.ablation import ablation_verdict
from rlvr.theory.config import config_from_dict
from rlvr.theory.runner import run_configs

OTHER_GT = (0.8, 0.5, 0.0, -1.0, -1.0)  # values a non-optimal output's r_G is drawn from
PROXY_VALUES = (-1.0, 0.0, 0.5, 0.8, 1.0, 1.5)  # values an erroneous proxy is drawn from


def random_instances(n: int, seed: int, num_outputs: int = 5, max_errors: int = 2,
                     lr: float = 0.1) -> List[Dict[str, Any]]:
    """N seeded raw theory configs (without threshold and steps); output 0 is the optimal one."""
    rng = random.Random(seed)
    instances = []
    for i in range(n):
        gt = [1.0] + [rng.choice(OTHER_GT) for _ in range(num_outputs - 1)]
        weights = [rng.gammavariate(1.0, 1.0) for _ in range(num_outputs)]
        weights[0] = max(weights[0], 0.02 * sum(weights))  # y* not negligible: a threshold is reachable
        probs = [w / sum(weights) for w in weights]
        proxy = list(gt)
        for y in rng.sample(range(num_outputs), rng.randint(1, max_errors)):
            proxy[y] = rng.choice([v for v in PROXY_VALUES if v != gt[y]])
        instances.append({"name": f"random{seed}_{i}", "initial_probs": probs, "gt_rewards": gt,
                          "proxy_rewards": proxy, "lr": lr, "gradient": "exact"})
    return instances


def _verdicts(raws: Sequence[Dict[str, Any]], threshold: float, steps: int) -> List[Dict[str, Any]]:
    """Per error of every instance: its static label and its fix-one and add-one verdicts."""
    configs = [config_from_dict({**raw, "threshold": threshold, "steps": steps, "log_every": steps},
                                source=raw["name"]) for raw in raws]
    main = run_configs(configs, ablate=True, log_every=steps)
    # add-one: r_G with only error y added, and r_G itself, per instance
    add_raws, keys = [], []
    for k, (raw, result) in enumerate(zip(raws, main)):
        keys.append((k, None))
        add_raws.append({**raw, "proxy_rewards": raw["gt_rewards"], "name": raw["name"] + "_gt"})
        for y in result["erroneous_outputs"]:
            proxy = list(raw["gt_rewards"])
            proxy[y] = raw["proxy_rewards"][y]
            keys.append((k, y))
            add_raws.append({**raw, "proxy_rewards": proxy, "name": f"{raw['name']}_add{y}"})
    added = run_configs([config_from_dict({**r, "threshold": threshold, "steps": steps, "log_every": steps},
                                          source=r["name"]) for r in add_raws], ablate=False, log_every=steps)
    runs = dict(zip(keys, added))
    rows = []
    for k, (cfg, result) in enumerate(zip(configs, main)):
        gt_range = float(cfg.gt_rewards.max() - cfg.gt_rewards.min())
        gt_run = runs[(k, None)]
        for y in result["erroneous_outputs"]:
            add = runs[(k, y)]
            rows.append({
                "instance": k, "output": y, "label": result["categories"][str(y)],
                "fix_one": result["ablation"][str(y)]["verdict"],
                "add_one": ablation_verdict(add["steps_to_threshold"], gt_run["steps_to_threshold"],
                                            add["final_gt_reward"], gt_run["final_gt_reward"], gt_range,
                                            cfg.ablation_tolerance),
                "errors_in_instance": len(result["erroneous_outputs"]),
            })
    return rows


def confusion(rows: Sequence[Dict[str, Any]], verdict_key: str) -> Dict[str, Any]:
    """{matrix: {static family: {verdict: count}}, agreement, by_label: {label: {n, agree, verdicts}}}."""
    matrix = {f: {v: 0 for v in FAMILIES} for f in FAMILIES}
    by_label: Dict[str, Dict[str, Any]] = {}
    for row in rows:
        fam, verdict = family(row["label"]), row[verdict_key]
        matrix[fam][verdict] += 1
        entry = by_label.setdefault(row["label"], {"n": 0, "agree": 0, "verdicts": {v: 0 for v in FAMILIES}})
        entry["n"] += 1
        entry["agree"] += fam == verdict
        entry["verdicts"][verdict] += 1
    for entry in by_label.values():
        entry["agreement"] = entry["agree"] / entry["n"]
    total = sum(sum(r.values()) for r in matrix.values())
    agree = sum(matrix[f][f] for f in FAMILIES)
    return {"n": total, "agreement": agree / total if total else None, "matrix": matrix,
            "by_label": {label: by_label[label] for label in LABELS if label in by_label}}


def random_agreement(n: int, seed: int = 0, thresholds: Sequence[float] = (0.5, 0.9),
                     horizons: Sequence[int] = (2_000, 20_000), max_errors: int = 2) -> Dict[str, Any]:
    """Aggregate agreement of static labels with fix-one and add-one ablations, per (threshold,
    horizon) setting. Thresholds are on E[r_G] (r_G in [-1, 1], optimum 1)."""
    raws = random_instances(n, seed, max_errors=max_errors)
    settings = []
    for threshold in thresholds:
        for steps in horizons:
            rows = _verdicts(raws, threshold, steps)
            settings.append({"threshold": threshold, "steps": steps, "errors": len(rows),
                             "fix_one": confusion(rows, "fix_one"), "add_one": confusion(rows, "add_one"),
                             "single_error": confusion([r for r in rows if r["errors_in_instance"] == 1], "fix_one")})
    return {"instances": n, "seed": seed, "max_errors": max_errors, "settings": settings}


def format_agreement(report: Dict[str, Any]) -> str:
    """Console table: agreement per static label and overall, per setting and ablation kind."""
    labels = [label for label in LABELS if any(label in s[k]["by_label"] for s in report["settings"]
                                                 for k in ("fix_one", "add_one"))]
    head = ["threshold", "steps", "ablation", "errors", "overall"] + labels
    lines = [head]
    for s in report["settings"]:
        for kind in ("fix_one", "add_one"):
            c = s[kind]
            cells = [f"{c['by_label'][label]['agreement']:.2f} ({c['by_label'][label]['n']})"
                     if label in c["by_label"] else "-" for label in labels]
            lines.append([f"{s['threshold']:g}", str(s["steps"]), kind.replace("_", "-"), str(c["n"]),
                          "-" if c["agreement"] is None else f"{c['agreement']:.2f}", *cells])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(v.rjust(w) for v, w in zip(line, widths)) for line in lines]
    return (f"static category vs ablation verdict on {report['instances']} random instances "
            f"(seed {report['seed']}, up to {report['max_errors']} errors each): agreement (errors)\n"
            + "\n".join(text))
