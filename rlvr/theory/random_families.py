"""How often does a static labelling rule predict an error's causal effect? Seeded random families.

`rlvr theory --random N` draws N random bandit instances (K outputs, one optimal output with
r_G = 1, the others drawn from mediocre and bad values, a random initial policy, one to
`max_errors` reward errors), trains every coalition of each instance's errors with the exact
gradient (rlvr/theory/shapley.py) and compares, per threshold and horizon, every static rule's
family (rlvr/rewards/labels.py RULES, at pi_0) with the error's Shapley verdict: agreement and
Cohen's kappa, beside the constant "always harmful" and the fix-one / add-one verdicts.

Errors whose instance starts at the threshold, or where no coalition reaches it within the
horizon, have no measurable effect on steps by construction: they are counted ("undetermined")
and left out of the agreement.
"""
from __future__ import annotations

import random
from typing import Any, Dict, List, Sequence

from rlvr.rewards.labels import DEFAULT_RULE, FAMILIES, LABELS, NEGLIGIBLE_PROB_THEORY, RULES, family
from rlvr.theory.categorize import erroneous_outputs, label_features
from rlvr.theory.config import config_from_dict
from rlvr.theory.shapley import TOLERANCE, error_effects, simulate_coalitions

OTHER_GT = (0.8, 0.5, 0.0, -1.0, -1.0)  # values a non-optimal output's r_G is drawn from
PROXY_VALUES = (-1.0, 0.0, 0.5, 0.8, 1.0, 1.5)  # values an erroneous proxy is drawn from
BASELINE = "always_harmful"
# (rule, negligible_prob) pairs compared: today's rules as they were, the direction rule with the
# old 1e-4 and the new 0.02 negligible-probability cut (chosen on seed 0, checked on seed 1).
RULE_VARIANTS = (("theory_v1", 1e-4), ("online_v1", 0.0), ("direction", 1e-4), ("direction", 0.02),
                 ("direction_attract", 0.02), ("first_order", 0.0))


def variant_name(rule: str, negligible_prob: float) -> str:
    return f"{rule}@{negligible_prob:g}"


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


def cohen_kappa(a: Sequence[str], b: Sequence[str], classes: Sequence[str] = FAMILIES):
    """(agreement, Cohen's kappa) of two label sequences; kappa None when chance agreement is 1."""
    n = len(a)
    if n == 0:
        return None, None
    p_o = sum(x == y for x, y in zip(a, b)) / n
    p_e = sum((sum(x == c for x in a) / n) * (sum(y == c for y in b) / n) for c in classes)
    return p_o, (None if p_e >= 1 else (p_o - p_e) / (1 - p_e))


def error_rows(raws: Sequence[Dict[str, Any]], thresholds: Sequence[float], horizons: Sequence[int],
               rules: Sequence[tuple] = RULE_VARIANTS) -> List[Dict[str, Any]]:
    """Per error of every instance: each rule's family and label at pi_0, and its effects."""
    steps = max(horizons)
    configs = [config_from_dict({**raw, "threshold": thresholds[0], "steps": steps, "log_every": steps},
                                source=raw["name"]) for raw in raws]
    errors = [erroneous_outputs(c.proxy_rewards, c.gt_rewards) for c in configs]
    runs = simulate_coalitions(configs, errors, thresholds, horizons)
    rows = []
    for k, (cfg, errs, run) in enumerate(zip(configs, errors, runs)):
        families = {}
        for rule, eps in rules:
            features = label_features(cfg.initial_probs, cfg.proxy_rewards, cfg.gt_rewards, eps)
            families[variant_name(rule, eps)] = RULES[rule](features)
        effects = error_effects(run, thresholds, horizons, TOLERANCE)
        for i, y in enumerate(errs):
            rows.append({"instance": k, "output": y, "errors_in_instance": len(errs),
                         "rules": {name: str(fams[y]) for name, fams in families.items()},
                         "label": str(_default_label(cfg, y)), **effects[i]})
    return rows


def _default_label(cfg, y):
    from rlvr.theory.categorize import categorize_error

    return categorize_error(y, cfg.initial_probs, cfg.proxy_rewards, cfg.gt_rewards, cfg.negligible_prob).category


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


def setting_report(rows: Sequence[Dict[str, Any]], index: int, rules: Sequence[str]) -> Dict[str, Any]:
    """rules: the variant names of the rows' "rules" entries."""
    """Agreement and kappa of every rule (and the baseline, fix-one, add-one) with the Shapley
    verdict at setting `index` of each row's by_setting list."""
    first = rows[0]["by_setting"][index] if rows else {"threshold": None, "horizon": None}
    determined = [r for r in rows if r["by_setting"][index]["determined"]]
    shapley = [r["by_setting"][index]["verdict"] for r in determined]
    scores = {}
    for rule in rules:
        agreement, kappa = cohen_kappa([r["rules"][rule] for r in determined], shapley)
        scores[rule] = {"agreement": agreement, "kappa": kappa}
    agreement, kappa = cohen_kappa(["harmful"] * len(determined), shapley)
    scores[BASELINE] = {"agreement": agreement, "kappa": kappa}
    for kind in ("fix_one", "add_one"):
        agreement, kappa = cohen_kappa([r["by_setting"][index][f"{kind}_verdict"] for r in determined], shapley)
        scores[f"{kind}_ablation"] = {"agreement": agreement, "kappa": kappa}
    default_rows = [{"label": r["label"], "verdict": r["by_setting"][index]["verdict"]} for r in determined]
    return {"threshold": first["threshold"], "steps": first["horizon"], "errors": len(rows),
            "undetermined": len(rows) - len(determined),
            "verdicts": {v: shapley.count(v) for v in FAMILIES}, "scores": scores,
            "default_rule_by_label": confusion(default_rows, "verdict")}


def random_agreement(n: int, seed: int = 0, thresholds: Sequence[float] = (0.5, 0.9),
                     horizons: Sequence[int] = (2_000, 20_000), max_errors: int = 2,
                     rules: Sequence[tuple] = RULE_VARIANTS) -> Dict[str, Any]:
    """Every rule's agreement and kappa with the Shapley verdict, per (threshold, horizon).
    Thresholds are on E[r_G] (r_G in [-1, 1], optimum 1)."""
    raws = random_instances(n, seed, max_errors=max_errors)
    rows = error_rows(raws, thresholds, horizons, rules)
    names = [variant_name(rule, eps) for rule, eps in rules]
    settings = [setting_report(rows, i, names) for i in range(len(rows[0]["by_setting"]))] if rows else []
    return {"instances": n, "seed": seed, "max_errors": max_errors,
            "default_rule": variant_name(DEFAULT_RULE, NEGLIGIBLE_PROB_THEORY), "tolerance": TOLERANCE,
            "rules": names, "settings": settings}


def format_agreement(report: Dict[str, Any]) -> str:
    """Console table: agreement and kappa per rule and setting."""
    columns = report["rules"] + [BASELINE, "fix_one_ablation", "add_one_ablation"]
    head = ["threshold", "steps", "errors", "undetermined"] + columns
    lines = [head]
    for s in report["settings"]:
        cells = []
        for col in columns:
            score = s["scores"][col]
            kappa = "-" if score["kappa"] is None else f"{score['kappa']:.2f}"
            cells.append("-" if score["agreement"] is None else f"{score['agreement']:.2f} k={kappa}")
        lines.append([f"{s['threshold']:g}", str(s["steps"]), str(s["errors"]), str(s["undetermined"]), *cells])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(v.rjust(w) for v, w in zip(line, widths)) for line in lines]
    return (f"static rule vs exact Shapley verdict (tolerance {report['tolerance']:g} on steps) on "
            f"{report['instances']} random instances (seed {report['seed']}, up to {report['max_errors']} errors "
            f"each): agreement and Cohen's kappa; default rule {report['default_rule']!r}\n" + "\n".join(text))
