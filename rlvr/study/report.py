"""The study report: from run folders to one row per arm (mean, sd, standard error and 95%
t-interval over seeds, and each seed's value) and, for every arm but the control, its
difference from the control paired by seed (t and bootstrap intervals, exact sign-flip
p-value; rlvr/study/stats.py), written as study.json, study.csv and eval_gt_accuracy.png,
and console tables with a sentence per comparison.

`collect_runs` is the only function that reads files; `study_report`, `arm_report`,
`run_stats`, `csv_table` and `format_table` are pure. Only finished runs enter the figures;
the others are listed with their status and error.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from rlvr.study.spec import DEFAULT_LAST_K, run_name
from rlvr.study.stats import paired_comparison, summary
from rlvr.tracking.run_folder import read_metrics

EVAL = "eval/gt_accuracy"
# Per-step metrics averaged over a run's training steps (step >= 1).
STEP_MEANS = ("errors/harmful", "errors/beneficial", "errors/benign",
              "reward/false_positive_rate", "reward/false_negative_rate", "perf/step_s")
METRICS = ("initial_eval_gt_accuracy", "final_eval_gt_accuracy", "best_eval_gt_accuracy",
           "last_k_eval_gt_accuracy", "auc_eval_gt_accuracy", "steps_to_threshold", *STEP_MEANS)
# Outcome metrics compared with the control arm (paired by seed).
COMPARED = ("final_eval_gt_accuracy", "best_eval_gt_accuracy", "last_k_eval_gt_accuracy",
            "auc_eval_gt_accuracy", "steps_to_threshold")
HEADLINE = "final_eval_gt_accuracy"  # the comparison the report states in words
# The initial policy's audit under each arm's proxy (summary.json "audit"), averaged over seeds.
AUDIT_KEYS = (("gt/accuracy", "gt acc"), ("reward/false_positive_rate", "fp_rate"),
              ("reward/false_negative_rate", "fn_rate"), ("reward/zero_proxy_variance_groups", "flat_groups"),
              ("audit/acc", "Acc"), ("audit/acc_w", "Acc-W"), ("audit/hacc", "HAcc"), ("audit/hacc_w", "HAcc-W"))
PLOT_FILE = "eval_gt_accuracy.png"


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
    the last `last_k` evaluations after step 0 (fewer if the run has fewer)."""
    curve = eval_curve(rows, metric)
    accs = [acc for _, acc in curve]
    trained = [acc for step, acc in curve if step > 0][-last_k:]
    stats: Dict[str, Optional[float]] = {
        "initial_eval_gt_accuracy": curve[0][1] if curve and curve[0][0] == 0 else None,
        "final_eval_gt_accuracy": accs[-1] if accs else None,
        "best_eval_gt_accuracy": max(accs) if accs else None,
        "last_k_eval_gt_accuracy": sum(trained) / len(trained) if trained else None,
        "auc_eval_gt_accuracy": curve_area(curve),
        "steps_to_threshold": steps_to_threshold(curve, threshold) if threshold is not None else None,
    }
    train_rows = [r for r in rows if int(r.get("step", 0)) >= 1]
    for key in STEP_MEANS:
        values = [float(r[key]) for r in train_rows if r.get(key) is not None]
        stats[key] = sum(values) / len(values) if values else None
    return stats


# ---- one arm and the study ------------------------------------------------------------------
def arm_report(arm: str, overrides: Sequence[str], runs: Sequence[Mapping[str, Any]],
               threshold: Optional[float], last_k: int = DEFAULT_LAST_K, metric: str = EVAL) -> Dict[str, Any]:
    """One arm's row. `runs`: one dict per seed with seed, run_name, status, error, rows.

    metrics[m] = {mean, std, se, ci95, n, per_seed: {seed: value}} over the finished seeds; for
    steps_to_threshold also `reached` (seeds that got there), and mean/std only when all did
    (a mean over the seeds that happened to reach it would flatter the arm). curve = mean,
    min and max of eval/gt_accuracy over finished seeds at each evaluated step.
    """
    finished = [r for r in runs if r["status"] == "finished"]
    per_run = {r["seed"]: run_stats(r["rows"], threshold, last_k, metric) for r in finished}
    metrics: Dict[str, Dict[str, Any]] = {}
    for key in METRICS:
        values = {str(seed): stats[key] for seed, stats in per_run.items()}
        stats = summary(list(values.values()))
        entry: Dict[str, Any] = {"mean": stats["mean"], "std": stats["sd"], "se": stats["se"],
                                 "ci95": stats["ci95"], "n": stats["n"], "per_seed": values}
        if key == "steps_to_threshold":
            reached = sum(v is not None for v in values.values())
            entry["reached"] = reached
            if threshold is None or reached < len(values):
                entry["mean"] = entry["std"] = entry["se"] = entry["ci95"] = None
        metrics[key] = entry
    by_step: Dict[int, List[float]] = {}
    for r in finished:
        for step, acc in eval_curve(r["rows"], metric):
            by_step.setdefault(step, []).append(acc)
    steps = sorted(by_step)
    audits = [r["audit"] for r in finished if r.get("audit")]
    audit = {key: summary([a.get(key) for a in audits])["mean"] for key, _ in AUDIT_KEYS} if audits else None
    return {
        "arm": arm, "overrides": list(overrides), "n_seeds": len(runs), "n_finished": len(finished),
        "audit": audit,
        "runs": [{k: r.get(k) for k in ("seed", "run_name", "status", "error")} for r in runs],
        "metrics": metrics,
        "curve": {"step": steps,
                  "mean": [sum(by_step[s]) / len(by_step[s]) for s in steps],
                  "min": [min(by_step[s]) for s in steps],
                  "max": [max(by_step[s]) for s in steps]},
    }


def vs_control(arm: Mapping[str, Any], control: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """COMPARED metrics of `arm` minus `control` (two arm_report rows), paired by seed.
    steps_to_threshold pairs only seeds where both arms reached the threshold."""
    return {key: paired_comparison(arm["metrics"][key]["per_seed"], control["metrics"][key]["per_seed"])
            for key in COMPARED}


def study_report(name: str, output_dir: str, seeds: Sequence[int], threshold: Optional[float],
                 arms: Mapping[str, Sequence[str]],
                 runs: Mapping[str, Sequence[Mapping[str, Any]]], control: Optional[str] = None,
                 last_k: int = DEFAULT_LAST_K, metric: str = EVAL) -> Dict[str, Any]:
    """The whole report (what study.json holds): `runs[arm]` as arm_report takes them; every
    arm but `control` (default: the first arm) carries `vs_control`; accuracy figures are of
    `metric` (eval/gt_accuracy, or eval/gt_accuracy_sampled / eval/pass_at_k)."""
    control = control if control is not None else next(iter(arms))
    if control not in arms:
        raise ValueError(f"study {name}: control = {control!r} is not an arm; arms are {list(arms)}")
    rows = [arm_report(arm, overrides, runs[arm], threshold, last_k, metric) for arm, overrides in arms.items()]
    control_row = next(r for r in rows if r["arm"] == control)
    for row in rows:
        if row["arm"] != control:
            row["vs_control"] = vs_control(row, control_row)
    return {"study": name, "output_dir": output_dir, "seeds": list(seeds), "threshold": threshold,
            "control": control, "last_k": last_k, "eval_metric": metric, "metrics": list(METRICS), "compared": list(COMPARED),
            "arms": rows}


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
                summary = json.loads((folder / "summary.json").read_text())
                run["status"], run["error"] = summary.get("status", "unknown"), summary.get("error")
                run["audit"] = summary.get("audit")
            if run["status"] == "finished":  # a killed run can end in a half-written line
                run["rows"] = read_metrics(folder / "metrics.jsonl")
            out[arm].append(run)
    return out


# ---- outputs ----------------------------------------------------------------------------------
def csv_table(report: Mapping[str, Any]) -> Tuple[List[str], List[List[Any]]]:
    """(header, rows): per metric `<m>_mean`, `<m>_std`, `<m>_seed<s>`; then each seed's status."""
    seeds = report["seeds"]
    compared = report.get("compared", [])
    header = ["arm", "n_seeds", "n_finished"]
    for key in METRICS:
        header += [f"{key}_mean", f"{key}_std", f"{key}_ci95_lo", f"{key}_ci95_hi",
                   *(f"{key}_seed{s}" for s in seeds)]
    for key in compared:
        header += [f"{key}_vs_control_{part}" for part in ("diff", "ci95_lo", "ci95_hi", "p", "n_pairs")]
    header += [f"status_seed{s}" for s in seeds]
    rows = []
    for arm in report["arms"]:
        row: List[Any] = [arm["arm"], arm["n_seeds"], arm["n_finished"]]
        for key in METRICS:
            m = arm["metrics"][key]
            ci = m.get("ci95") or [None, None]
            row += [m["mean"], m["std"], *ci, *(m["per_seed"].get(str(s)) for s in seeds)]
        for key in compared:
            c = arm.get("vs_control", {}).get(key)
            ci = (c or {}).get("ci95") or [None, None]
            row += [c["diff_mean"], *ci, c["p_value"], c["n_pairs"]] if c else [None] * 5
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


def _cell(entry: Mapping[str, Any], fmt: str, key: str) -> str:
    if key == "steps_to_threshold" and entry["mean"] is None and entry["per_seed"]:
        return "never" if entry["reached"] == 0 else f"{entry['reached']}/{len(entry['per_seed'])} reached"
    if entry["mean"] is None:
        return "-"
    text = fmt.format(entry["mean"])
    return text if entry["std"] is None else f"{text}±{fmt.format(entry['std'])}"


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
    return f"{text} p={c['p_value']:.3g}"


def comparison_sentence(arm: Mapping[str, Any], control: str, key: str = HEADLINE) -> str:
    """One sentence: is the arm's difference from the control separable with the seeds run?"""
    c = arm["vs_control"][key]
    what = key.replace("_eval_gt_accuracy", " eval accuracy").replace("_", " ")
    if c["diff_mean"] is None:
        return f"{arm['arm']} vs {control}: no seed where both finished; nothing to compare."
    head = f"{arm['arm']} vs {control}: {what} {c['diff_mean']:+.3f}"
    if c["ci95"] is None:
        return f"{head} from one pair of seeds: not separable; run more seeds for an interval."
    head += (f" (95% CI [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}], bootstrap "
             f"[{c['ci95_bootstrap'][0]:+.3f}, {c['ci95_bootstrap'][1]:+.3f}], "
             f"sign-flip p = {c['p_value']:.3g}, {c['n_pairs']} pairs)")
    floor = 2.0 / 2 ** c["n_pairs"]
    if c["separable"]:
        note = "" if floor <= 0.05 else (f"; with {c['n_pairs']} pairs the exact permutation test "
                                          f"cannot go below p = {floor:.3g}, so add seeds to confirm")
        return f"{head}: separable from the control (the t-interval excludes 0){note}."
    need = c["seeds_needed"]
    more = (f"the observed paired sd would need about {need} seeds" if need is not None
            else "no realistic number of seeds would separate it")
    return f"{head}: not separable with {c['n_pairs']} seeds; {more}."


def format_table(report: Mapping[str, Any]) -> str:
    """Aligned console tables: one line per arm with `mean±sd` over finished seeds, then each
    arm against the control (paired difference [95% t-interval] and sign-flip p), then words."""
    columns = [c for c in _TABLE if c[0] != "steps_to_threshold" or report["threshold"] is not None]
    last_k = report.get("last_k", DEFAULT_LAST_K)
    header = ["arm", "runs"] + [title.format(thr=report["threshold"], k=last_k) for _, title, _ in columns]
    lines = [header]
    for arm in report["arms"]:
        lines.append([arm["arm"], f"{arm['n_finished']}/{arm['n_seeds']}"]
                     + [_cell(arm["metrics"][key], fmt, key) for key, _, fmt in columns])
    text = _aligned(lines)
    if report.get("eval_metric", EVAL) != EVAL:
        text.append(f"(initial/final/best/last/auc/steps are of {report['eval_metric']})")
    control = report.get("control")
    others = [arm for arm in report["arms"] if "vs_control" in arm]
    if control is not None and others:
        compared = [(key, title, fmt) for key, title, fmt in columns if key in report.get("compared", [])]
        lines = [["arm - " + control, "pairs"] + [title.format(thr=report["threshold"], k=last_k)
                                                 for _, title, _ in compared]]
        for arm in others:
            pairs = arm["vs_control"][HEADLINE]["n_pairs"]
            lines.append([arm["arm"], str(pairs)] + [_diff_cell(arm["vs_control"][key], fmt)
                                                     for key, _, fmt in compared])
        text += ["", f"paired by seed against the control ({control}): mean difference [95% t-interval], "
                 "exact sign-flip p", *_aligned(lines), ""]
        text += [comparison_sentence(arm, control) for arm in others]
    audited = [arm for arm in report["arms"] if arm.get("audit")]
    if audited:
        lines = [["initial policy under the proxy"] + [title for _, title in AUDIT_KEYS]]
        for arm in audited:
            lines.append([arm["arm"]] + ["-" if arm["audit"][key] is None else f"{arm['audit'][key]:.3f}"
                                         for key, _ in AUDIT_KEYS])
        text += ["", "audit before RL (eval.audit_prompts; mean over seeds):", *_aligned(lines)]
    failed = [f"  {arm['arm']} seed {r['seed']}: {r['status']}" + (f": {r['error']}" if r["error"] else "")
              for arm in report["arms"] for r in arm["runs"] if r["status"] != "finished"]
    if failed:
        text += ["not finished (left out of the figures):", *failed]
    return "\n".join(text)


def plot_eval_curves(report: Mapping[str, Any], path: Path) -> Path:
    """eval/gt_accuracy vs step per arm: mean over finished seeds, shaded min-max."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # files only; never a display
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, arm in enumerate(report["arms"]):
        curve = arm["curve"]
        if not curve["step"]:
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
