"""The reward-model study (`kind: reward_models`): which reward-model metric predicts the
ground-truth gain RL reaches with it (the founding paper's Section 4; Razin et al. 2025 for
the reward's variance).

    # rlvr study recipes/studies/rm_metrics.yaml
    kind: reward_models
    recipe: ../quickstart.yaml           # relative to the study file
    output_dir: runs/studies/rm_metrics  # optional
    seeds: [0]                           # RL seeds per reward model
    overrides: [steps=40]                # every RL run (and the recipe rm-train/rm-eval read)
    rm_train: [rm.pairs=1500]            # rm-train knobs shared by every reward model
    design: {normalize: whiten}          # reward_model design keys of the RL runs and rm-eval
    eval_prompts: 64                     # rm-eval prompts (x rollout.samples_per_prompt samples)
    gain: last_k                         # outcome: last_k | final | best | auc eval accuracy minus the initial
    ground_truth_arm: true               # also train on the ground truth (a reference, not a point)
    reward_models:                       # name -> its own rm-train knobs
      clean: []
      flip0.2: [rm.flip_rate=0.2]

Steps: rm-train every reward model into `<output_dir>/reward_models/<name>/` (skipped when its
folder is complete and was trained with the same knobs), rm-eval each under the initial
policy (`rm_eval.json` there), then the RL runs as an ordinary study (arms = reward models,
run folders `<name>__seed<s>/`, resumable, `study.json` etc.), then the correlation report:
`rm_study.json`, `rm_study.csv` (one row per reward model) and `scatter_<metric>.png`.
"""
from __future__ import annotations

import csv
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import yaml

from rlvr.study.correlation import CORRELATIONS, RESAMPLES, correlation_difference, metric_correlations
from rlvr.study.spec import ARM_NAME, StudyError

KIND = "reward_models"
KEYS = ("kind", "recipe", "output_dir", "seeds", "overrides", "rm_train", "design", "eval_prompts", "gain",
        "ground_truth_arm", "last_k", "reward_models", "resamples")
GAINS = {"last_k": "last_k_eval_gt_accuracy", "final": "final_eval_gt_accuracy",
         "best": "best_eval_gt_accuracy", "auc": "auc_eval_gt_accuracy"}
# The predictors: Section 4's four ranking metrics and the reward's variance under the policy
# (rm-eval's names), plus two references: rm-train's held-out pairwise accuracy and the
# reward's correlation with the ground truth on the policy's samples.
PREDICTORS = {"Acc": "audit/acc", "Acc-W": "audit/acc_w", "HAcc": "audit/hacc", "HAcc-W": "audit/hacc_w",
              "variance": "reward/proxy_variance", "corr_gt": "reward/proxy_gt_correlation",
              "heldout_acc": "heldout/pairwise_accuracy"}
DIFFERENCES = (("HAcc", "Acc"), ("HAcc-W", "Acc-W"))
GT_ARM = "ground_truth"


def is_rm_study(path: Path) -> bool:
    """True when the study file declares `kind: reward_models`."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(raw, dict) and raw.get("kind") == KIND


class RMStudy:
    """A validated reward-model study file (see the module doc)."""

    def __init__(self, path: Path, out: Optional[str] = None):
        from rlvr.config import RecipeError, load_recipe
        from rlvr.reward_models.train_config import load_rm_config, split_overrides

        self.path, where = Path(path), f"study {Path(path).name}"
        raw = yaml.safe_load(self.path.read_text())
        unknown = sorted(set(raw) - set(KEYS))
        if unknown:
            raise StudyError(f"{where}: unknown key {unknown[0]!r}; reward-model study keys are {list(KEYS)}")
        self.name = self.path.stem
        recipe = raw.get("recipe")
        if not isinstance(recipe, str) or not (self.path.parent / recipe).is_file():
            raise StudyError(f"{where}: recipe must name a recipe YAML relative to the study file")
        self.recipe = (self.path.parent / recipe).resolve()
        self.output_dir = Path(out or raw.get("output_dir") or f"runs/studies/{self.name}").resolve()
        self.seeds = raw.get("seeds", [0])
        self.overrides = list(raw.get("overrides") or [])
        self.rm_train = list(raw.get("rm_train") or [])
        self.design = dict(raw.get("design") or {})
        self.eval_prompts = int(raw.get("eval_prompts", 64))
        self.gain = raw.get("gain", "last_k")
        self.ground_truth_arm = bool(raw.get("ground_truth_arm", True))
        self.last_k = int(raw.get("last_k", 3))
        self.resamples = int(raw.get("resamples", RESAMPLES))
        if self.gain not in GAINS:
            raise StudyError(f"{where}: gain = {self.gain!r} must be one of {list(GAINS)}")
        for key in ("path", "name"):
            if key in self.design:
                raise StudyError(f"{where}: design.{key} is set by the study (each reward model's folder)")
        models = raw.get("reward_models")
        if not isinstance(models, dict) or len(models) < 2:
            raise StudyError(f"{where}: reward_models must map at least two names to rm-train knob lists")
        try:  # the recipe rm-train and rm-eval read; its output_dir holds the shared initial policy
            self.cfg = load_recipe(str(self.recipe), self.overrides + [f"output_dir={self.output_dir}"])
        except RecipeError as err:
            raise StudyError(f"{where}: overrides: {err}") from None
        if not isinstance(self.seeds, list) or not self.seeds:
            raise StudyError(f"{where}: seeds must be a non-empty list of integers, e.g. [0, 1]")
        self.models: Dict[str, Any] = {}
        for name, knobs in models.items():
            if not isinstance(name, str) or not ARM_NAME.match(name) or name == GT_ARM:
                raise StudyError(f"{where}: reward model name {name!r} must be letters, digits and _ . + = - "
                                 f"(not {GT_ARM!r})")
            knobs = [k if k.startswith("rm.") else f"rm.{k}" for k in (knobs or [])]
            extra, rm_items = split_overrides(self.rm_train + knobs)
            if extra:
                raise StudyError(f"{where}: reward model {name!r}: {extra[0]!r} is not an rm.<knob>=value item")
            try:
                self.models[name] = load_rm_config(rm_items)
            except ValueError as err:
                raise StudyError(f"{where}: reward model {name!r}: {err}") from None

    def rm_dir(self, name: str) -> Path:
        return self.output_dir / "reward_models" / name

    def design_for(self, name: str) -> Dict[str, Any]:
        return {**self.design, "name": "reward_model", "path": str(self.rm_dir(name))}


def _flow(mapping: Mapping[str, Any]) -> str:
    """A design mapping as a one-line YAML flow mapping for a dotlist override."""
    return "{" + ", ".join(f"{k}: {json.dumps(v) if isinstance(v, str) else v}" for k, v in mapping.items()) + "}"


def say(message: str) -> None:
    print(f"[rlvr study] {message}", file=sys.stderr, flush=True)


def train_and_evaluate(study: RMStudy) -> Dict[str, Dict[str, Any]]:
    """rm-train and rm-eval every reward model not already done; name -> {train, eval} records."""
    from rlvr.reward_models.eval_command import evaluate_reward_model
    from rlvr.reward_models.model import INFO_FILE
    from rlvr.reward_models.train_command import train_reward_model

    records = {}
    for i, (name, rm) in enumerate(study.models.items(), 1):
        folder = study.rm_dir(name)
        info_path, eval_path = folder / INFO_FILE, folder / "rm_eval.json"
        info = json.loads(info_path.read_text()) if info_path.is_file() else None
        if info is None or info.get("rm") != asdict(rm):
            say(f"[rm {i}/{len(study.models)}] {name}: rm-train {' '.join(f'{k}={v}' for k, v in asdict(rm).items())}")
            eval_path.unlink(missing_ok=True)
            train_reward_model(study.cfg, rm, folder, str(study.recipe), [])
            info = json.loads(info_path.read_text())
        if not eval_path.is_file():
            say(f"[rm {i}/{len(study.models)}] {name}: rm-eval on {study.eval_prompts} prompts")
            result = evaluate_reward_model(study.cfg, str(folder), study.eval_prompts,
                                           design_keys=study.design_for(name))
            eval_path.write_text(json.dumps(result, indent=1) + "\n")
        records[name] = {"train": info, "eval": json.loads(eval_path.read_text())}
    return records


def rl_study_file(study: RMStudy) -> Path:
    """The ordinary study (one arm per reward model) the RL runs go through, written beside them."""
    arms = {GT_ARM: []} if study.ground_truth_arm else {}
    for name in study.models:
        arms[name] = [f"reward.design={_flow(study.design_for(name))}"]
    spec = {"recipe": str(study.recipe), "output_dir": str(study.output_dir), "seeds": study.seeds,
            "overrides": study.overrides, "last_k": study.last_k, "arms": arms}
    path = study.output_dir / "rl_study.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# written by rlvr study {study.path}: the RL arms of the reward-model study\n"
                    + yaml.safe_dump(spec, sort_keys=False))
    return path


def per_rm_rows(names: Sequence[str], records: Mapping[str, Mapping[str, Any]], arms: Sequence[Mapping[str, Any]],
                gain_key: str) -> List[Dict[str, Any]]:
    """One row per reward model: its predictors and the outcome (mean over finished seeds of
    `gain_key` minus the initial evaluation)."""
    by_arm = {a["arm"]: a for a in arms}
    rows = []
    for name in names:
        ev, tr = records[name]["eval"], records[name]["train"]
        row: Dict[str, Any] = {"reward_model": name}
        for label, key in PREDICTORS.items():
            row[label] = tr.get(key) if key.startswith("heldout/") else ev.get(key)
        measured = tr.get("pairs_measured", {})
        row.update(flip_share=measured.get("flip_share"), bias_rate=measured.get("bias_rate"),
                   class_share=measured.get("class_share"), knobs=tr.get("rm", {}))
        arm = by_arm.get(name)
        final = arm["metrics"][gain_key]["mean"] if arm else None
        initial = arm["metrics"]["initial_eval_gt_accuracy"]["mean"] if arm else None
        row["n_seeds_finished"] = arm["n_finished"] if arm else 0
        row["final"] = final
        row["gain"] = None if final is None or initial is None else final - initial
        rows.append(row)
    return rows


def correlation_report(rows: Sequence[Mapping[str, Any]], resamples: int = RESAMPLES, seed: int = 0
                       ) -> Dict[str, Any]:
    """Correlations of every predictor with the gain across reward models, their bootstrap
    intervals, and the differences HAcc - Acc and HAcc-W - Acc-W (paired bootstrap)."""
    outcome = [r["gain"] for r in rows]
    metrics = {label: [r.get(label) for r in rows] for label in PREDICTORS}
    table = metric_correlations(metrics, outcome, resamples, seed)
    diffs = {}
    for a, b in DIFFERENCES:
        keep = [i for i, r in enumerate(rows) if None not in (r.get(a), r.get(b), r["gain"])]
        diffs[f"{a} - {b}"] = {m: correlation_difference([rows[i][a] for i in keep], [rows[i][b] for i in keep],
                                                         [rows[i]["gain"] for i in keep], m, resamples, seed)
                               for m in CORRELATIONS}
    return {"correlations": table, "differences": diffs, "n_reward_models": len(rows),
            "n_with_gain": sum(g is not None for g in outcome), "resamples": resamples}


def _num(v: Optional[float], fmt: str = "{:+.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def _ci(ci) -> str:
    return "[-, -]" if not ci else f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"


def format_correlations(report: Mapping[str, Any]) -> str:
    lines = [f"reward-model study {report['study']}: {report['n_with_gain']} of {report['n_reward_models']} "
             f"reward models with a gain ({report['gain']} eval accuracy minus initial); 95% bootstrap "
             f"intervals over reward models ({report['resamples']} resamples)",
             f"  {'metric':<12} {'spearman':>8} {'interval':>16}   {'pearson':>8} {'interval':>16}"]
    for label, entry in report["correlations"].items():
        s, p = entry["spearman"], entry["pearson"]
        lines.append(f"  {label:<12} {_num(s['r']):>8} {_ci(s['ci95']):>16}   {_num(p['r']):>8} {_ci(p['ci95']):>16}")
    for label, entry in report["differences"].items():
        s, p = entry["spearman"], entry["pearson"]
        lines.append(f"  {label:<12} {_num(s['diff']):>8} {_ci(s['ci95']):>16}   {_num(p['diff']):>8} "
                     f"{_ci(p['ci95']):>16}   (difference of correlations)")
    lines.append(f"  {'reward model':<16} {'Acc':>6} {'Acc-W':>6} {'HAcc':>6} {'HAcc-W':>6} {'var':>6} {'gain':>7}")
    for r in report["reward_models"]:
        lines.append(f"  {r['reward_model']:<16} " + " ".join(_num(r.get(k), "{:.3f}").rjust(6) for k in
                                                             ("Acc", "Acc-W", "HAcc", "HAcc-W", "variance"))
                     + f" {_num(r['gain'], '{:+.3f}'):>7}")
    return "\n".join(lines)


def plot_scatter(rows: Sequence[Mapping[str, Any]], label: str, corr: Mapping[str, Any], path: Path,
                 gt_gain: Optional[float] = None) -> Path:
    """The gain against one metric, one point per reward model (named)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    pts = [(r[label], r["gain"], r["reward_model"]) for r in rows if r.get(label) is not None and r["gain"] is not None]
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=18)
    for x, y, name in pts:
        ax.annotate(name, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
    if gt_gain is not None:
        ax.axhline(gt_gain, color="grey", linestyle=":", linewidth=0.8, label="ground-truth reward")
        ax.legend(fontsize=7)
    s, p = corr["spearman"], corr["pearson"]
    ax.set_title(f"{label}: spearman {_num(s['r'])} {_ci(s['ci95'])}, pearson {_num(p['r'])}", fontsize=8)
    ax.set_xlabel(f"{label} (under the initial policy)")
    ax.set_ylabel("ground-truth gain after RL")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def write_rm_report(report: Mapping[str, Any], out_dir: Path) -> List[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "rm_study.json", out_dir / "rm_study.csv"]
    paths[0].write_text(json.dumps(report, indent=1) + "\n")
    columns = ["reward_model", *PREDICTORS, "flip_share", "bias_rate", "class_share", "n_seeds_finished",
               "final", "gain"]
    with open(paths[1], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in report["reward_models"]:
            writer.writerow([r.get(c) for c in columns])
    for label in ("Acc", "Acc-W", "HAcc", "HAcc-W", "variance"):
        paths.append(plot_scatter(report["reward_models"], label, report["correlations"][label],
                                  out_dir / f"scatter_{label.replace('-', '_')}.png", report.get("gt_gain")))
    return paths


def build_report(study: RMStudy, records: Mapping[str, Mapping[str, Any]], study_result: Mapping[str, Any]
                 ) -> Dict[str, Any]:
    rows = per_rm_rows(list(study.models), records, study_result["arms"], GAINS[study.gain])
    gt = next((a for a in study_result["arms"] if a["arm"] == GT_ARM), None)
    gt_gain = None
    if gt is not None:
        final, initial = (gt["metrics"][k]["mean"] for k in (GAINS[study.gain], "initial_eval_gt_accuracy"))
        gt_gain = None if final is None or initial is None else final - initial
    return {"study": study.name, "kind": KIND, "output_dir": str(study.output_dir), "seeds": study.seeds,
            "gain": study.gain, "gt_gain": gt_gain, "design": study.design, "reward_models": rows,
            **correlation_report(rows, study.resamples)}


def main(path: str, out: Optional[str] = None, dry_run: bool = False, report_only: bool = False) -> int:
    """`rlvr study STUDY.yaml` for a study file with kind: reward_models."""
    from rlvr.study import command

    try:
        study = RMStudy(Path(path), out)
    except StudyError as err:
        print(f"rlvr study: error: {err}", file=sys.stderr)
        return 2
    if dry_run:
        print(f"reward-model study {study.name}: {len(study.models)} reward models x {len(study.seeds)} seeds "
              f"(+ ground truth: {study.ground_truth_arm}) into {study.output_dir}")
        for name, rm in study.models.items():
            print(f"  {name}: flip_rate={rm.flip_rate} bias={rm.bias} bias_share={rm.bias_share} "
                  f"bias_rate={rm.bias_rate} pairs={rm.pairs} steps={rm.steps}")
        return 0
    records = train_and_evaluate(study) if not report_only else {
        name: {"train": json.loads((study.rm_dir(name) / "rlvr_reward_model.json").read_text()),
               "eval": json.loads((study.rm_dir(name) / "rm_eval.json").read_text())} for name in study.models}
    try:
        rl = command.load_study(rl_study_file(study))
        actions = [] if report_only else command.plan_runs(rl)
    except StudyError as err:
        print(f"rlvr study: error: {err}", file=sys.stderr)
        return 2
    if not report_only:
        command.run_study(rl, actions)
    result = command.report(rl)
    report = build_report(study, records, result)
    paths = write_rm_report(report, study.output_dir)
    print(format_correlations(report))
    print(f"report: {', '.join(str(p) for p in paths)}")
    unfinished = [r for arm in result["arms"] for r in arm["runs"] if r["status"] != "finished"]
    return 1 if unfinished and not report_only else 0
