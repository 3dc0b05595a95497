"""A study file: one base recipe, trained once per arm (a named set of dotlist overrides) and seed.

    # rlvr study recipes/studies/flip_noise.yaml
    recipe: ../quickstart.yaml          # relative to the study file
    output_dir: runs/studies/flip_noise # optional; default runs/studies/<study file stem>
    seeds: [0, 1]                       # optional; default [0]; applied as `seed=<s>`
    overrides: [steps=60]               # optional; applied to every arm, before the arm's own
    threshold: 0.4                      # optional; report steps until eval/gt_accuracy >= this
    control: ground_truth               # optional; the arm others are compared with (paired by seed);
                                        # default: the arm named ground_truth, else the first arm
    last_k: 3                           # optional; "last k" metric = mean of the last k evaluations
    eval_metric: eval/gt_accuracy       # optional; or eval/gt_accuracy_sampled, eval/pass_at_k
                                        # (those need eval.samples_per_prompt > 0 in every arm)
    arms:
      ground_truth: []
      flip_fp0.2: [reward.design.name=flip, reward.design.fp_rate=0.2]

`load_study` checks everything before any run starts: every (arm, seed) recipe is loaded
with `load_recipe`, so a bad key fails naming the study file, the arm and the key.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import yaml

from rlvr.config import RecipeConfig, RecipeError, load_recipe

STUDY_KEYS = ("recipe", "output_dir", "seeds", "overrides", "threshold", "control", "last_k", "eval_metric",
              "arms")
DEFAULT_LAST_K = 3
EVAL_METRICS = ("eval/gt_accuracy", "eval/gt_accuracy_sampled", "eval/pass_at_k")
# Keys the study sets itself; an arm or the study's overrides may not set them.
RESERVED = {"seed": "the study's `seeds` list", "run_name": "the study ({arm}__seed{s})",
            "output_dir": "the study's `output_dir` (or --out)"}
ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")


class StudyError(ValueError):
    """A study file is invalid; the message names the study file (and the arm and key)."""


@dataclass(frozen=True)
class StudyRun:
    """One training run of the study: an arm at a seed, with its validated recipe."""

    arm: str
    seed: int
    run_name: str  # {arm}__seed{seed}
    overrides: List[str]  # what load_recipe got: study overrides, arm overrides, seed=<s>
    cfg: RecipeConfig  # run_name and output_dir set to the study's


@dataclass
class Study:
    path: Path  # the study file
    name: str  # its stem
    recipe: Path  # resolved against the study file's folder
    output_dir: Path  # run folders go in here (and the shared warm-up cache, _models/)
    seeds: List[int]
    overrides: List[str]
    arms: Dict[str, List[str]]  # arm name -> its overrides, in file order
    threshold: Optional[float] = None
    control: str = ""  # the arm every other arm is compared with, paired by seed
    last_k: int = DEFAULT_LAST_K  # evaluations averaged by the last-k metric
    eval_metric: str = EVAL_METRICS[0]  # the held-out metric the accuracy figures are of
    runs: List[StudyRun] = field(default_factory=list)  # seed-major: every arm at seeds[0] first


def run_name(arm: str, seed: int) -> str:
    return f"{arm}__seed{seed}"


def load_study(path: Union[str, Path], out: Optional[Union[str, Path]] = None) -> Study:
    """The validated study; `out` (--out) replaces its output_dir. Raises StudyError."""
    path = Path(path)
    where = f"study {path.name}"
    if not path.is_file():
        raise StudyError(f"study file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise StudyError(f"{where}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise StudyError(f"{where}: must be a mapping with keys {list(STUDY_KEYS)}")
    unknown = sorted(set(raw) - set(STUDY_KEYS), key=str)
    if unknown:
        raise StudyError(f"{where}: unknown key {unknown[0]!r}; study keys are {list(STUDY_KEYS)}")

    recipe_value = raw.get("recipe")
    if not isinstance(recipe_value, str) or not recipe_value:
        raise StudyError(f"{where}: recipe must be the path of a recipe YAML (relative to the study file)")
    recipe = (path.parent / recipe_value).resolve()
    if not recipe.is_file():
        raise StudyError(f"{where}: recipe {recipe_value} -> {recipe} does not exist")

    output_dir = raw.get("output_dir")
    if output_dir is not None and not isinstance(output_dir, str):
        raise StudyError(f"{where}: output_dir = {output_dir!r} must be a path string")
    output_dir = Path(out if out is not None else output_dir or f"runs/studies/{path.stem}")

    seeds = raw.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds
            or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds)):
        raise StudyError(f"{where}: seeds must be a non-empty list of integers, e.g. [0, 1]")
    if len(set(seeds)) != len(seeds):
        raise StudyError(f"{where}: seeds {seeds} repeat a seed")

    threshold = raw.get("threshold")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise StudyError(f"{where}: threshold = {threshold!r} must be a number within [0, 1] "
                             "(an eval/gt_accuracy)")
        threshold = float(threshold)

    overrides = _dotlist(raw.get("overrides"), f"{where}: overrides")
    arms_raw = raw.get("arms")
    if not isinstance(arms_raw, dict) or not arms_raw:
        raise StudyError(f"{where}: arms must map arm names to override lists, e.g. "
                         "{ground_truth: [], flip: [reward.design.name=flip, reward.design.fp_rate=0.2]}")
    arms: Dict[str, List[str]] = {}
    for arm, value in arms_raw.items():
        if not isinstance(arm, str) or not ARM_NAME.match(arm):
            raise StudyError(f"{where}: arm name {arm!r} must be letters, digits and _ . + = - "
                             "(it names a run folder)")
        arms[arm] = _dotlist(value, f"{where}: arm {arm!r}")

    control = raw.get("control", "ground_truth" if "ground_truth" in arms else next(iter(arms)))
    if control not in arms:
        raise StudyError(f"{where}: control = {control!r} is not an arm; arms are {list(arms)}")
    last_k = raw.get("last_k", DEFAULT_LAST_K)
    if isinstance(last_k, bool) or not isinstance(last_k, int) or last_k < 1:
        raise StudyError(f"{where}: last_k = {last_k!r} must be an integer >= 1 (evaluations averaged)")

    eval_metric = raw.get("eval_metric", EVAL_METRICS[0])
    if eval_metric not in EVAL_METRICS:
        raise StudyError(f"{where}: eval_metric = {eval_metric!r} must be one of {list(EVAL_METRICS)}")

    study = Study(path=path, name=path.stem, recipe=recipe, output_dir=output_dir, seeds=list(seeds),
                  overrides=overrides, arms=arms, threshold=threshold, control=control, last_k=last_k,
                  eval_metric=eval_metric)
    _load(study, overrides, f"{where}: overrides")  # a bad shared override is named as such
    for seed in study.seeds:
        for arm, arm_overrides in arms.items():
            full = [*overrides, *arm_overrides, f"seed={seed}"]
            cfg = _load(study, full, f"{where}: arm {arm!r}")
            if eval_metric != EVAL_METRICS[0] and cfg.eval.samples_per_prompt < 1:
                raise StudyError(f"{where}: arm {arm!r}: eval_metric = {eval_metric} needs "
                                 "eval.samples_per_prompt >= 1 (add it to the study's overrides)")
            cfg = replace(cfg, run_name=run_name(arm, seed), output_dir=str(output_dir),
                          logging=replace(cfg.logging, wandb_group=cfg.logging.wandb_group or study.name,
                                          wandb_tags=cfg.logging.wandb_tags or wandb_tags(arm, arm_overrides)))
            study.runs.append(StudyRun(arm=arm, seed=seed, run_name=run_name(arm, seed),
                                       overrides=full, cfg=cfg))
    return study


def wandb_tags(arm: str, overrides: List[str]) -> List[str]:
    """wandb tags of an arm: arm=<name> and its axis values (wandb caps a tag at 64 characters)."""
    return [tag[:64] for tag in (f"arm={arm}", *overrides)]


def _dotlist(value: Any, where: str) -> List[str]:
    """A list of `key=value` strings (None = empty), none of them setting a reserved key."""
    if value is None:
        return []
    if not isinstance(value, list) or any(not isinstance(v, str) for v in value):
        raise StudyError(f"{where}: must be a list of key=value strings, e.g. [reward.design.name=flip] "
                         "(quote values that contain ': ')")
    for item in value:
        key = item.split("=", 1)[0].strip()
        if "=" not in item or not key:
            raise StudyError(f"{where}: override {item!r} must look like key=value")
        if key in RESERVED:
            raise StudyError(f"{where}: {key} is set by {RESERVED[key]}; remove {item!r}")
    return list(value)


def _load(study: Study, overrides: List[str], where: str) -> RecipeConfig:
    try:
        return load_recipe(str(study.recipe), overrides)
    except RecipeError as err:
        raise StudyError(f"{where}: {err}") from None
