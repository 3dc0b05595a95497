"""The study report: from run folders to one row per arm (mean, sd, standard error and 95%
t-interval over seeds, and each seed's value) and, for every planned comparison (each arm
against its block's control, or the study's `compare` pairs, and any `interaction`), the
difference paired by seed (t-interval, paired t and sign-flip p-values, a seeds-for-80%-power
plan or the effects the interval excludes; rlvr/study/stats.py), with Holm's correction over
the primary metric's comparisons. Written as study.json, study.csv and eval_gt_accuracy.png,
and console tables (one per block) with a sentence per comparison. docs/statistics.md says
what each number means.

`collect_runs` is the only function that reads run folders; the others are pure.
`study_report` builds the report from runs; `report_from_values` rebuilds it from the
per-seed values a study.json keeps (no run folders needed). Only finished runs enter the
figures; the others are listed with their status and error.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from rlvr.study.spec import COMPARED, DEFAULT_LAST_K, ONE_BLOCK, plan_comparisons, run_name
from rlvr.study.stats import (ALPHA, EXACT_PERMUTATION_MAX_N, SEEDS_LIMIT, holm, interaction_comparison,
                              paired_comparison, summary)
from rlvr.tracking.run_folder import read_metrics

EVAL = "eval/gt_accuracy"
# Per-step metrics averaged over a run's training steps (step >= 1).
STEP_MEANS = ("errors/harmful", "errors/beneficial", "errors/benign",
              "reward/false_positive_rate", "reward/false_negative_rate", "perf/step_s")
METRICS = ("initial_eval_gt_accuracy", "final_eval_gt_accuracy", "best_eval_gt_accuracy",
           "last_k_eval_gt_accuracy", "auc_eval_gt_accuracy", "steps_to_threshold", "threshold_reached",
           *STEP_MEANS)
HEADLINE = "final_eval_gt_accuracy"  # the comparison stated in words when no primary_metric is declared
# The initial policy's audit under each arm's proxy (summary.json "audit"), averaged over seeds.
AUDIT_KEYS = (("gt/accuracy", "gt acc"), ("reward/false_positive_rate", "fp_rate"),
              ("reward/false_negative_rate", "fn_rate"), ("reward/zero_proxy_variance_groups", "flat_groups"),
              ("audit/acc", "Acc"), ("audit/acc_w", "Acc-W"), ("audit/hacc", "HAcc"), ("audit/hacc_w", "HAcc-W"))
PLOT_FILE = "eval_gt_accuracy.png"
Plan = List[Tuple[str, str, str]]  # (block, arm, reference)
Interactions = List[Tuple[str, Tuple[str, str], Tuple[str, str]]]  # (text, (a, b), (c, d))


# ---- one run ------------------------------------------------------------------------------
def eval_curve(rows: Sequence[Mapping[str, Any]], metric: str = EVAL) -> List[Tuple[int, float]]:
    """[(step, metric)] of the rows that carry an evaluation, in step order."""
    return sorted((int(r["step"]), float(r[metric])) for r in rows if r.get(metric) is not None)


def steps_to_threshold(curve: Sequence[Tuple[int, float]], threshold: float) -> Optional[int]:
    """The first evaluated step with accuracy >= threshold (0: the initial policy already is);
    None if never. Resolution is the recipe's eval_every."""
    return next((step for step, acc in curve if acc >= threshold), None)


def curve_area(curve: Sequence[Tuple[int, float]]) -> Optional[float]:
    """Area under the eval curve (trapezoids) divided by its step span: the run's average
    accuracy over training, less noisy than one final evaluation. None below 2 points."""
    if len(curve) < 2 or curve[-1][0] == curve[0][0]:
        return None
    area = sum((s1 - s0) * (a0 + a1) / 2 for (s0, a0), (s1, a1) in zip(curve, curve[1:]))
    return area / (curve[-1][0] - curve[0][0])


def run_stats(rows: Sequence[Mapping[str, Any]], threshold: Optional[float],
              last_k: int = DEFAULT_LAST_K, metric: str = EVAL) -> Dict[str, Optional[float]]:
    """The report's figures (METRICS) for one run's metrics.jsonl rows; None where undefined.
    The *_eval_gt_accuracy figures are of `metric` (the study's eval_metric); last_k averages
    the last `last_k` evaluations after step 0 (fewer if the run has fewer).
    steps_to_threshold is censored at the horizon: a run that never reached the threshold
    counts its last evaluated step (threshold_reached 0.0 says so), so no seed is dropped."""
    curve = eval_curve(rows, metric)
    accs = [acc for _, acc in curve]
    trained = [acc for step, acc in curve if step > 0][-last_k:]
    reached = steps_to_threshold(curve, threshold) if threshold is not None and curve else None
    stats: Dict[str, Optional[float]] = {
        "initial_eval_gt_accuracy": curve[0][1] if curve and curve[0][0] == 0 else None,
        "final_eval_gt_accuracy": accs[-1] if accs else None,
        "best_eval_gt_accuracy": max(accs) if accs else None,
        "last_k_eval_gt_accuracy": sum(trained) / len(trained) if trained else None,
        "auc_eval_gt_accuracy": curve_area(curve),
        "steps_to_threshold": None if threshold is None or not curve else
        (reached if reached is not None else curve[-1][0]),
        "threshold_reached": None if threshold is None or not curve else float(reached is not None),
    }
    train_rows = [r for r in rows if int(r.get("step", 0)) >= 1]
    for key in STEP_MEANS:
        values = [float(r[key]) for r in train_rows if r.get(key) is not None]
        stats[key] = sum(values) / len(values) if values else None
    return stats


# ---- one arm ----------------------------------------------------------------------------------
def metric_entry(key: str, per_seed: Mapping[str, Optional[float]],
                 reached: Optional[Mapping[str, Optional[float]]] = None) -> Dict[str, Any]:
    """{mean, std, se, ci95, n, per_seed} of one metric over seeds; steps_to_threshold also
    carries `reached` (seeds that got there; the others count the horizon) and `censored`."""
    stats = summary(list(per_seed.values()))
    entry: Dict[str, Any] = {"mean": stats["mean"], "std": stats["sd"], "se": stats["se"],
                             "ci95": stats["ci95"], "n": stats["n"], "per_seed": dict(per_seed)}
    if key == "steps_to_threshold":
        flags = [v for s, v in (reached or {}).items() if per_seed.get(s) is not None and v is not None]
        entry["reached"] = int(sum(v >= 0.5 for v in flags))
        entry["censored"] = len(flags) - entry["reached"]
    return entry


def arm_row(arm: str, overrides: Sequence[str], per_seed: Mapping[str, Mapping[str, Optional[float]]],
            runs: Sequence[Mapping[str, Any]], curve: Optional[Mapping[str, List[float]]] = None,
            audit: Optional[Mapping[str, Optional[float]]] = None, block: str = ONE_BLOCK) -> Dict[str, Any]:
    """One arm's row from its per-seed values: per_seed[metric] = {seed: value}."""
    metrics = {key: metric_entry(key, per_seed.get(key, {}), per_seed.get("threshold_reached"))
               for key in METRICS}
    return {"arm": arm, "block": block, "overrides": list(overrides), "n_seeds": len(runs),
            "n_finished": sum(r.get("status") == "finished" for r in runs), "audit": audit,
            "runs": [{k: r.get(k) for k in ("seed", "run_name", "status", "error")} for r in runs],
            "metrics": metrics, "curve": curve or {"step": [], "mean": [], "min": [], "max": []}}


def arm_report(arm: str, overrides: Sequence[str], runs: Sequence[Mapping[str, Any]],
               threshold: Optional[float], last_k: int = DEFAULT_LAST_K, metric: str = EVAL,
               block: str = ONE_BLOCK) -> Dict[str, Any]:
    """One arm's row. `runs`: one dict per seed with seed, run_name, status, error, rows.

    metrics[m] = {mean, std, se, ci95, n, per_seed: {seed: value}} over the finished seeds
    (steps_to_threshold: never = the horizon, with reached/censored counts). curve = mean,
    min and max of the eval metric over finished seeds at each evaluated step.
    """
    finished = [r for r in runs if r["status"] == "finished"]
    per_run = {str(r["seed"]): run_stats(r["rows"], threshold, last_k, metric) for r in finished}
    per_seed = {key: {seed: stats[key] for seed, stats in per_run.items()} for key in METRICS}
    by_step: Dict[int, List[float]] = {}
    for r in finished:
        for step, acc in eval_curve(r["rows"], metric):
            by_step.setdefault(step, []).append(acc)
    steps = sorted(by_step)
    curve = {"step": steps, "mean": [sum(by_step[s]) / len(by_step[s]) for s in steps],
             "min": [min(by_step[s]) for s in steps], "max": [max(by_step[s]) for s in steps]}
    audits = [r["audit"] for r in finished if r.get("audit")]
    audit = {key: summary([a.get(key) for a in audits])["mean"] for key, _ in AUDIT_KEYS} if audits else None
    return arm_row(arm, overrides, per_seed, runs, curve, audit, block)


# ---- comparisons --------------------------------------------------------------------------------
def _values(rows: Mapping[str, Mapping[str, Any]], arm: str, key: str) -> Mapping[str, Optional[float]]:
    return rows[arm]["metrics"][key]["per_seed"]


def compare_rows(rows: Sequence[Mapping[str, Any]], plan: Plan, interactions: Interactions = (),
                 primary_metric: Optional[str] = None) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """(comparisons, interactions) of the report: every COMPARED metric of each planned
    (block, arm, reference) pair and each interaction, paired by seed. The primary metric's
    entries (comparisons and interactions together form its family) gain `p_holm` (sign-flip)
    and `p_t_holm` (t-test), Holm-adjusted, `family_size` and `separable_holm` (p_t_holm < 0.05)."""
    by_arm = {r["arm"]: r for r in rows}
    comparisons = [{"block": block, "arm": arm, "reference": ref,
                    "metrics": {key: paired_comparison(_values(by_arm, arm, key), _values(by_arm, ref, key))
                                for key in COMPARED}}
                   for block, arm, ref in plan]
    inter = [{"name": text, "first": list(first), "second": list(second),
              "metrics": {key: interaction_comparison((_values(by_arm, first[0], key), _values(by_arm, first[1], key)),
                                                      (_values(by_arm, second[0], key), _values(by_arm, second[1], key)))
                          for key in COMPARED}}
             for text, first, second in interactions]
    if primary_metric is not None:
        family = [c["metrics"][primary_metric] for c in comparisons + inter]
        size = sum(e["p_t"] is not None for e in family)
        for entry, p_holm, p_t_holm in zip(family, holm([e["p_value"] for e in family]),
                                           holm([e["p_t"] for e in family])):
            entry.update(p_holm=p_holm, p_t_holm=p_t_holm, family_size=size,
                         separable_holm=p_t_holm is not None and p_t_holm < ALPHA)
    return comparisons, inter


def build_report(settings: Mapping[str, Any], rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The whole report (what study.json holds) from the arm rows and the study's settings
    (study, output_dir, seeds, threshold, last_k, eval_metric, primary_metric, blocks, control,
    comparisons = [(block, arm, reference)], interactions = [(text, (a, b), (c, d))])."""
    primary = settings.get("primary_metric")
    comparisons, inter = compare_rows(rows, settings["comparisons"], settings.get("interactions", []), primary)
    by_arm = {r["arm"]: r for r in rows}
    for c in comparisons:  # the arm's comparison with its block's control, as before blocks existed
        if settings["control"] and c["reference"] == _control_of(settings["control"], c["block"]):
            by_arm[c["arm"]]["vs_control"] = c["metrics"]
    blocks = settings["blocks"]
    return {"study": settings["study"], "output_dir": settings["output_dir"], "seeds": list(settings["seeds"]),
            "threshold": settings["threshold"], "control": settings["control"],
            "blocks": {b: list(m) for b, m in blocks.items()}, "primary_metric": primary,
            "last_k": settings.get("last_k", DEFAULT_LAST_K), "eval_metric": settings.get("eval_metric", EVAL),
            "metrics": list(METRICS), "compared": list(COMPARED), "arms": rows,
            "comparisons": comparisons, "interactions": inter}


def _control_of(control: Any, block: str) -> Optional[str]:
    return control.get(block) if isinstance(control, dict) else control


def study_report(name: str, output_dir: str, seeds: Sequence[int], threshold: Optional[float],
                 arms: Mapping[str, Sequence[str]],
                 runs: Mapping[str, Sequence[Mapping[str, Any]]], control: Any = None,
                 last_k: int = DEFAULT_LAST_K, metric: str = EVAL, blocks: Optional[Mapping[str, List[str]]] = None,
                 comparisons: Optional[Plan] = None, interactions: Interactions = (),
                 primary_metric: Optional[str] = None) -> Dict[str, Any]:
    """The report from run folders' contents: `runs[arm]` as arm_report takes them. Without
    `comparisons`, each arm is compared with its block's control (`control`: an arm or block ->
    arm; default the first arm of each block); accuracy figures are of `metric`
    (eval/gt_accuracy, eval/gt_reward_mean, eval/gt_accuracy_sampled or eval/pass_at_k)."""
    where = f"study {name}"
    if not comparisons:  # None, or a study whose blocks hold one arm each
        if control is None:
            control = next(iter(arms)) if blocks is None else {b: m[0] for b, m in blocks.items()}
        blocks_, controls, plan = plan_comparisons(list(arms), control, blocks, None, where)
    else:  # explicit pairs: checked to stay inside a block
        blocks_, controls, _ = plan_comparisons(list(arms), control, blocks,
                                                [f"{a} - {r}" for _, a, r in comparisons], where)
        plan = list(comparisons)
    block_of = {a: b for b, members in blocks_.items() for a in members}
    rows = [arm_report(arm, overrides, runs[arm], threshold, last_k, metric, block_of[arm])
            for arm, overrides in arms.items()]
    settings = {"study": name, "output_dir": output_dir, "seeds": seeds, "threshold": threshold,
                "last_k": last_k, "eval_metric": metric, "primary_metric": primary_metric, "blocks": blocks_,
                "control": _stored_control(controls), "comparisons": plan, "interactions": list(interactions)}
    return build_report(settings, rows)


def _stored_control(controls: Mapping[str, str]) -> Any:
    """One arm (a one-block study), block -> arm, or None (explicit compare pairs only)."""
    if not controls:
        return None
    return controls[ONE_BLOCK] if list(controls) == [ONE_BLOCK] else dict(controls)


def settings_of(stored: Mapping[str, Any]) -> Dict[str, Any]:
    """The study settings recorded in a study.json (older files: one block, one control)."""
    arms = [a["arm"] for a in stored["arms"]]
    control = stored.get("control", None if stored.get("blocks") else arms[0])
    if "comparisons" in stored:
        plan = [(c["block"], c["arm"], c["reference"]) for c in stored["comparisons"]]
        blocks = stored.get("blocks") or {ONE_BLOCK: arms}
    else:  # a hand-written study.json: the plan follows from blocks and control
        blocks, controls, plan = plan_comparisons(arms, control, stored.get("blocks"), None,
                                                  f"study {stored.get('study', '?')}")
        control = _stored_control(controls)
    return {"study": stored.get("study", "study"), "output_dir": stored.get("output_dir", ""),
            "seeds": stored["seeds"], "threshold": stored.get("threshold"), "last_k": stored.get("last_k", DEFAULT_LAST_K),
            "eval_metric": stored.get("eval_metric", EVAL), "primary_metric": stored.get("primary_metric"),
            "blocks": blocks, "control": control, "comparisons": plan,
            "interactions": [(i["name"], tuple(i["first"]), tuple(i["second"])) for i in stored.get("interactions", [])]}


def report_from_values(stored: Mapping[str, Any]) -> Dict[str, Any]:
    """The report rebuilt from a study.json's per-seed values alone (arms[].metrics[m].per_seed;
    runs, curve and audit kept if present): every mean, interval, p-value and plan recomputed."""
    settings = settings_of(stored)
    block_of = {a: b for b, members in settings["blocks"].items() for a in members}
    rows = []
    for arm in stored["arms"]:
        per_seed = {key: {str(s): v for s, v in arm.get("metrics", {}).get(key, {}).get("per_seed", {}).items()}
                    for key in METRICS}
        seeds_with_values = sorted({s for values in per_seed.values() for s, v in values.items() if v is not None})
        runs = arm.get("runs") or [{"seed": s, "run_name": run_name(arm["arm"], s), "status": "finished",
                                    "error": None} for s in seeds_with_values]
        rows.append(arm_row(arm["arm"], arm.get("overrides", []), per_seed, runs, arm.get("curve"), arm.get("audit"),
                            block_of.get(arm["arm"], ONE_BLOCK)))
    return build_report(settings, rows)


def collect_runs(output_dir: Path, arms: Sequence[str], seeds: Sequence[int]) -> Dict[str, List[Dict[str, Any]]]:
    """Read `<output_dir>/<arm>__seed<s>/` for every arm and seed: status ("missing": no folder;
    "incomplete": a folder without summary.json; else summary.json's status), error, rows."""
    out: Dict[str, List[Dict[str, Any]]] = {}
    for arm in arms:
        out[arm] = []
        for seed in seeds:
            folder = Path(output_dir) / run_name(arm, seed)
            run: Dict[str, Any] = {"seed": seed, "run_name": run_name(arm, seed), "status": "missing",
                                   "error": None, "rows": [], "audit": None}
            if folder.is_dir():
                run["status"] = "incomplete"
            if (folder / "summary.json").is_file():
                summary_ = json.loads((folder / "summary.json").read_text())
                run["status"], run["error"] = summary_.get("status", "unknown"), summary_.get("error")
                run["audit"] = summary_.get("audit")
            if run["status"] == "finished":  # a killed run can end in a half-written line
                run["rows"] = read_metrics(folder / "metrics.jsonl")
            out[arm].append(run)
    return out


# ---- outputs ----------------------------------------------------------------------------------
CSV_PARTS = ("diff", "ci95_lo", "ci95_hi", "p", "p_t", "n_pairs")


def csv_table(report: Mapping[str, Any]) -> Tuple[List[str], List[List[Any]]]:
    """(header, rows), one row per arm: block; per metric `<m>_mean`, `_std`, `_ci95_lo/hi`
    and `<m>_seed<s>` (every seed's value); the arm's comparison with its block's control
    (`reference` names it); then each seed's status."""
    seeds = report["seeds"]
    compared = report.get("compared", [])
    header = ["arm", "n_seeds", "n_finished", "block"]
    for key in METRICS:
        header += [f"{key}_mean", f"{key}_std", f"{key}_ci95_lo", f"{key}_ci95_hi",
                   *(f"{key}_seed{s}" for s in seeds)]
    header.append("reference")
    for key in compared:
        header += [f"{key}_vs_control_{part}" for part in CSV_PARTS]
    header += [f"status_seed{s}" for s in seeds]
    rows = []
    for arm in report["arms"]:
        row: List[Any] = [arm["arm"], arm["n_seeds"], arm["n_finished"], arm.get("block", ONE_BLOCK)]
        for key in METRICS:
            m = arm["metrics"][key]
            ci = m.get("ci95") or [None, None]
            row += [m["mean"], m["std"], *ci, *(m["per_seed"].get(str(s)) for s in seeds)]
        mine = next((c for c in report.get("comparisons", []) if c["arm"] == arm["arm"]), None)
        row.append(mine["reference"] if mine else None)
        for key in compared:
            c = mine["metrics"].get(key) if mine else None
            ci = (c or {}).get("ci95") or [None, None]
            row += [c["diff_mean"], *ci, c["p_value"], c["p_t"], c["n_pairs"]] if c else [None] * len(CSV_PARTS)
        status = {r["seed"]: r["status"] for r in arm["runs"]}
        row += [status.get(s, "missing") for s in seeds]
        rows.append(["" if v is None else v for v in row])
    return header, rows


# (metric, column title, format); steps_to_threshold is shown only when the study has a threshold.
_TABLE = [
    ("initial_eval_gt_accuracy", "initial", "{:.3f}"), ("final_eval_gt_accuracy", "final", "{:.3f}"),
    ("best_eval_gt_accuracy", "best", "{:.3f}"), ("last_k_eval_gt_accuracy", "last{k}", "{:.3f}"),
    ("auc_eval_gt_accuracy", "auc", "{:.3f}"), ("steps_to_threshold", "steps>={thr}", "{:.1f}"),
    ("errors/harmful", "harmful", "{:.3f}"), ("errors/beneficial", "beneficial", "{:.3f}"),
    ("errors/benign", "benign", "{:.3f}"), ("reward/false_positive_rate", "fp_rate", "{:.3f}"),
    ("reward/false_negative_rate", "fn_rate", "{:.3f}"), ("perf/step_s", "s/step", "{:.2f}"),
]
_WORDS = {"final_eval_gt_accuracy": "final", "best_eval_gt_accuracy": "best",
          "last_k_eval_gt_accuracy": "mean of the last {k} evaluations of",
          "auc_eval_gt_accuracy": "area under the curve of",
          "steps_to_threshold": "steps to {thr} (restricted mean, never = the horizon) of"}


def _cell(entry: Mapping[str, Any], fmt: str, key: str) -> str:
    if entry["mean"] is None:
        return "-"
    if key == "steps_to_threshold" and entry.get("reached") == 0:
        return f"never (0/{entry['n']})"
    text = fmt.format(entry["mean"])
    text = text if entry["std"] is None else f"{text}±{fmt.format(entry['std'])}"
    if key == "steps_to_threshold" and entry.get("censored"):
        text += f" ({entry['reached']}/{entry['n']})"
    return text


def _aligned(lines: List[List[str]]) -> List[str]:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(line, widths))).rstrip()
            for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return text


def _diff_cell(c: Optional[Mapping[str, Any]], fmt: str) -> str:
    if not c or c["diff_mean"] is None:
        return "-"
    sign = "+" if c["diff_mean"] >= 0 else ""
    text = f"{sign}{fmt.format(c['diff_mean'])}"
    if c["ci95"] is not None:
        text += f" [{fmt.format(c['ci95'][0])}, {fmt.format(c['ci95'][1])}]"
    text += f" p={c['p_value']:.3g}"
    if c.get("p_t_holm") is not None:
        text += f" holm={c['p_t_holm']:.3g}"
    return text


def plan_text(c: Mapping[str, Any], fmt: str = "{:.3f}") -> str:
    """What more seeds would buy: the seeds for 80% power at the observed effect and paired sd,
    or, when the effect is small against its interval, the effects the interval excludes."""
    if c.get("ci95") is None:
        return "run more seeds for an interval"
    if c["diff_sd"] == 0:
        return ("the same difference on every seed" if c["diff_mean"] != 0
                else "no difference on any seed")
    bound = fmt.format(c["excluded_beyond"])
    if c["small_effect"]:
        return (f"the observed difference is small against its interval: effects larger than {bound} "
                "(either sign) are excluded")
    need = c["seeds_for_80pct_power"]
    if need is None:
        return f"more than {SEEDS_LIMIT} seeds for 80% power; effects larger than {bound} are excluded"
    return f"seeds for 80% power at the observed effect and sd: {need}"


def comparison_sentence(arm: str, reference: Optional[str], c: Mapping[str, Any], what: str,
                        primary: bool = False) -> str:
    """One sentence: is the arm's difference from its reference (None: `arm` names an
    interaction) separable with the seeds run?"""
    label = f"{arm} vs {reference}" if reference else f"interaction {arm}"
    if c["diff_mean"] is None:
        return f"{label}: no seed where every arm finished; nothing to compare."
    head = f"{label}: {what} {c['diff_mean']:+.3f}"
    if c["ci95"] is None:
        return f"{head} from one pair of seeds: not separable; run more seeds for an interval."
    head += (f" (95% t-interval [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}], t-test p = {c['p_t']:.3g}, "
             f"sign-flip p = {c['p_value']:.3g}, {c['n_pairs']} pairs)")
    if primary and c.get("p_t_holm") is not None:
        head += (f"; Holm over {c['family_size']} primary comparisons: t-test p = {c['p_t_holm']:.3g}, "
                 f"sign-flip p = {c['p_holm']:.3g}")
        verdict = ("separable after Holm's correction" if c["separable_holm"] else
                   "the interval excludes 0 but not after Holm's correction" if c["separable"] else
                   f"not separable with {c['n_pairs']} seeds")
    else:
        verdict = ("separable (the t-interval excludes 0)" if c["separable"]
                   else f"not separable with {c['n_pairs']} seeds")
    floor = 2.0 / 2 ** c["n_pairs"] if c["n_pairs"] <= EXACT_PERMUTATION_MAX_N else 0.0
    note = (f"; with {c['n_pairs']} pairs the sign-flip test cannot go below p = {floor:.3g}"
            if c["separable"] and floor > ALPHA else "")
    return f"{head}: {verdict}{note}; {plan_text(c)}."


def _what(key: str, report: Mapping[str, Any]) -> str:
    text = _WORDS[key].format(k=report.get("last_k", DEFAULT_LAST_K), thr=report["threshold"])
    return f"{text} {report.get('eval_metric', EVAL)}"


def format_table(report: Mapping[str, Any]) -> str:
    """Aligned console tables: one line per arm with `mean±sd` over finished seeds; then, per
    block, each comparison (paired difference [95% t-interval], sign-flip p, Holm-adjusted t-test
    p on the primary metric), the interactions, and a sentence per comparison."""
    columns = [c for c in _TABLE if c[0] != "steps_to_threshold" or report["threshold"] is not None]
    last_k = report.get("last_k", DEFAULT_LAST_K)
    titles = {key: title.format(thr=report["threshold"], k=last_k) for key, title, _ in columns}
    header = ["arm", "runs"] + list(titles.values())
    lines = [header]
    for arm in report["arms"]:
        lines.append([arm["arm"], f"{arm['n_finished']}/{arm['n_seeds']}"]
                     + [_cell(arm["metrics"][key], fmt, key) for key, _, fmt in columns])
    text = _aligned(lines)
    if report.get("eval_metric", EVAL) != EVAL:
        text.append(f"(initial/final/best/last/auc/steps are of {report['eval_metric']})")
    if report["threshold"] is not None:
        text.append("(steps: mean over every seed, a seed that never reached the threshold counting the "
                    "last evaluated step; (k/n): reached in k of n seeds)")
    primary = report.get("primary_metric")
    comparisons, inter = report.get("comparisons", []), report.get("interactions", [])
    compared = [(key, fmt) for key, _, fmt in columns if key in report.get("compared", [])]
    if comparisons or inter:
        text += ["", f"primary metric: {primary} (* below; t-test p Holm-adjusted over its "
                     f"{len(comparisons) + len(inter)} comparisons); the other columns are exploratory"
                 if primary else "no primary_metric declared: every p-value below is uncorrected and exploratory"]
        heads = [titles[key] + ("*" if key == primary else "") for key, _ in compared]
        blocks = report.get("blocks") or {ONE_BLOCK: [a["arm"] for a in report["arms"]]}
        for block in blocks:
            mine = [c for c in comparisons if c["block"] == block]
            if not mine:
                continue
            refs = sorted({c["reference"] for c in mine})
            against = (f"the control ({refs[0]})" if refs == [_control_of(report.get("control"), block)]
                       else ", ".join(refs))
            where = "" if block == ONE_BLOCK else f"block {block}: "
            text += ["", f"{where}paired by seed against {against}: mean difference [95% t-interval], "
                         "sign-flip p" + (", holm = t-test p Holm-adjusted" if primary else ""), *_aligned([["arm - reference", "pairs", *heads]] + [
                             [f"{c['arm']} - {c['reference']}", str(c["metrics"][compared[0][0]]["n_pairs"])]
                             + [_diff_cell(c["metrics"][key], fmt) for key, fmt in compared] for c in mine])]
        if inter:
            text += ["", "interactions (difference of differences, paired by seed)", *_aligned(
                [["interaction", "pairs", *heads]] + [[i["name"], str(i["metrics"][compared[0][0]]["n_pairs"])]
                                                       + [_diff_cell(i["metrics"][key], fmt) for key, fmt in compared]
                                                       for i in inter])]
        key = primary or HEADLINE
        text.append("")
        text += [comparison_sentence(c["arm"], c["reference"], c["metrics"][key], _what(key, report), bool(primary))
                 for c in comparisons]
        text += [comparison_sentence(i["name"], None, i["metrics"][key], _what(key, report), bool(primary))
                 for i in inter]
    audited = [arm for arm in report["arms"] if arm.get("audit")]
    if audited:
        lines = [["initial policy under the proxy"] + [title for _, title in AUDIT_KEYS]]
        for arm in audited:
            lines.append([arm["arm"]] + ["-" if arm["audit"].get(key) is None else f"{arm['audit'][key]:.3f}"
                                         for key, _ in AUDIT_KEYS])
        text += ["", "audit before RL (eval.audit_prompts; mean over seeds):", *_aligned(lines)]
    failed = [f"  {arm['arm']} seed {r['seed']}: {r['status']}" + (f": {r['error']}" if r["error"] else "")
              for arm in report["arms"] for r in arm["runs"] if r["status"] != "finished"]
    if failed:
        text += ["not finished (left out of the figures):", *failed]
    return "\n".join(text)


def plot_eval_curves(report: Mapping[str, Any], path: Path) -> Path:
    """The eval metric vs step per arm: mean over finished seeds, shaded min-max."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # files only; never a display
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, arm in enumerate(report["arms"]):
        curve = arm.get("curve") or {}
        if not curve.get("step"):
            continue
        color = f"C{i % 10}"
        ax.plot(curve["step"], curve["mean"], color=color, marker="o", markersize=3,
                label=f"{arm['arm']} ({arm['n_finished']} seed{'s' if arm['n_finished'] != 1 else ''})")
        ax.fill_between(curve["step"], curve["min"], curve["max"], color=color, alpha=0.2, linewidth=0)
    if report["threshold"] is not None:
        ax.axhline(report["threshold"], color="grey", linewidth=0.8, linestyle=":",
                   label=f"threshold {report['threshold']:g}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("RL step")
    ax.set_ylabel(f"{report.get('eval_metric', EVAL)} (held-out)")
    ax.set_title(f"study {report['study']}: mean over seeds, shaded min-max")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return Path(path)


def write_report(report: Mapping[str, Any], out_dir: Path) -> List[Path]:
    """study.json, study.csv and eval_gt_accuracy.png in out_dir; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out_dir / "study.json", out_dir / "study.csv"
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    header, rows = csv_table(report)
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return [json_path, csv_path, plot_eval_curves(report, out_dir / PLOT_FILE)]
