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
    eval_metric: eval/gt_accuracy       # optional; or eval/gt_reward_mean (graded ground truth),
                                        # eval/gt_accuracy_sampled, eval/pass_at_k (those two need
                                        # eval.samples_per_prompt > 0 in every arm)
    primary_metric: last_k_eval_gt_accuracy  # optional; the confirmatory comparison (Holm-corrected
                                        # over every comparison); the other metrics are exploratory
    arms:
      ground_truth: []
      flip_fp0.2: [reward.design.name=flip, reward.design.fp_rate=0.2]

A study over several axes (e.g. initial policies x reward designs) declares blocks, and every
comparison stays inside a block (an arm is never compared with another block's control):

    blocks: {easy: [binary_easy, partial_easy], rare: [binary_rare, partial_rare]}
    control: {easy: binary_easy, rare: binary_rare}   # per block; default: each block's first arm
    compare: [partial_easy - binary_easy]             # optional explicit pairs (arm - reference),
                                                      # instead of every arm against its control
    interaction: ["(partial_rare - binary_rare) - (partial_easy - binary_easy)"]
                                                      # optional; difference of differences by seed

`load_study` checks everything before any run starts: every (arm, seed) recipe is loaded
with `load_recipe`, so a bad key fails naming the study file, the arm and the key.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import yaml

from rlvr.config import RecipeConfig, RecipeError, load_recipe

STUDY_KEYS = ("recipe", "output_dir", "seeds", "overrides", "threshold", "control", "last_k", "eval_metric",
              "primary_metric", "blocks", "compare", "interaction", "arms")
DEFAULT_LAST_K = 3
EVAL_METRICS = ("eval/gt_accuracy", "eval/gt_reward_mean", "eval/gt_accuracy_sampled", "eval/pass_at_k")
SAMPLED_EVAL_METRICS = ("eval/gt_accuracy_sampled", "eval/pass_at_k")  # need eval.samples_per_prompt >= 1
# Outcome metrics compared between arms (paired by seed); primary_metric is one of them.
COMPARED = ("final_eval_gt_accuracy", "best_eval_gt_accuracy", "last_k_eval_gt_accuracy",
            "auc_eval_gt_accuracy", "steps_to_threshold")
ONE_BLOCK = "all"  # the block name of a study that declares no blocks
_PAIR = re.compile(r"^\s*(\S+)\s+-\s+(\S+)\s*$")
_INTERACTION = re.compile(r"^\s*\(\s*(\S+)\s+-\s+(\S+)\s*\)\s+-\s+\(\s*(\S+)\s+-\s+(\S+)\s*\)\s*$")
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
    control: str = ""  # without blocks: the arm every other arm is compared with, paired by seed
    last_k: int = DEFAULT_LAST_K  # evaluations averaged by the last-k metric
    eval_metric: str = EVAL_METRICS[0]  # the held-out metric the accuracy figures are of
    primary_metric: Optional[str] = None  # one of COMPARED; None: every comparison exploratory
    blocks: Dict[str, List[str]] = field(default_factory=dict)  # block -> its arms ({"all": arms} without blocks)
    controls: Dict[str, str] = field(default_factory=dict)  # block -> its control arm (none with `compare`)
    comparisons: List[Tuple[str, str, str]] = field(default_factory=list)  # (block, arm, reference)
    interactions: List[Tuple[str, Tuple[str, str], Tuple[str, str]]] = field(default_factory=list)
    # (its text, (a, b), (c, d)): (a - b) - (c - d) per seed
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

    blocks, controls, comparisons = plan_comparisons(list(arms), raw.get("control"), raw.get("blocks"),
                                                     raw.get("compare"), where)
    interactions = parse_interactions(raw.get("interaction"), blocks, where)
    primary_metric = raw.get("primary_metric")
    if primary_metric is not None and primary_metric not in COMPARED:
        raise StudyError(f"{where}: primary_metric = {primary_metric!r} must be one of {list(COMPARED)} "
                         "(figures of the study's eval_metric)")
    if primary_metric == "steps_to_threshold" and threshold is None:
        raise StudyError(f"{where}: primary_metric = steps_to_threshold needs a threshold")
    last_k = raw.get("last_k", DEFAULT_LAST_K)
    if isinstance(last_k, bool) or not isinstance(last_k, int) or last_k < 1:
        raise StudyError(f"{where}: last_k = {last_k!r} must be an integer >= 1 (evaluations averaged)")

    eval_metric = raw.get("eval_metric", EVAL_METRICS[0])
    if eval_metric not in EVAL_METRICS:
        raise StudyError(f"{where}: eval_metric = {eval_metric!r} must be one of {list(EVAL_METRICS)}")

    study = Study(path=path, name=path.stem, recipe=recipe, output_dir=output_dir, seeds=list(seeds),
                  overrides=overrides, arms=arms, threshold=threshold,
                  control=controls.get(ONE_BLOCK, "") if list(blocks) == [ONE_BLOCK] else "",
                  last_k=last_k, eval_metric=eval_metric, primary_metric=primary_metric, blocks=blocks,
                  controls=controls, comparisons=comparisons, interactions=interactions)
    _load(study, overrides, f"{where}: overrides")  # a bad shared override is named as such
    for seed in study.seeds:
        for arm, arm_overrides in arms.items():
            full = [*overrides, *arm_overrides, f"seed={seed}"]
            cfg = _load(study, full, f"{where}: arm {arm!r}")
            if eval_metric in SAMPLED_EVAL_METRICS and cfg.eval.samples_per_prompt < 1:
                raise StudyError(f"{where}: arm {arm!r}: eval_metric = {eval_metric} needs "
                                 "eval.samples_per_prompt >= 1 (add it to the study's overrides)")
            cfg = replace(cfg, run_name=run_name(arm, seed), output_dir=str(output_dir),
                          logging=replace(cfg.logging, wandb_group=cfg.logging.wandb_group or study.name,
                                          wandb_tags=cfg.logging.wandb_tags or wandb_tags(arm, arm_overrides)))
            study.runs.append(StudyRun(arm=arm, seed=seed, run_name=run_name(arm, seed),
                                       overrides=full, cfg=cfg))
    return study


def plan_comparisons(arms: Sequence[str], control: Any = None, blocks: Any = None, compare: Any = None,
                     where: str = "study") -> Tuple[Dict[str, List[str]], Dict[str, str], List[Tuple[str, str, str]]]:
    """(blocks, controls, comparisons) of a study: block -> arms, block -> control arm and the
    (block, arm, reference) pairs to compare, each inside one block. Without `blocks` the study
    is one block ("all"); without `compare` every arm is compared with its block's control
    (`control`: an arm, or a mapping block -> arm; default: ground_truth if it is an arm of a
    one-block study, else each block's first arm). Raises StudyError naming the key."""
    arms = list(arms)
    if blocks is None:
        blocks = {ONE_BLOCK: arms}
    else:
        if not isinstance(blocks, dict) or not blocks or any(
                not isinstance(v, list) or not v or any(not isinstance(a, str) for a in v) for v in blocks.values()):
            raise StudyError(f"{where}: blocks must map block names to non-empty lists of arms, e.g. "
                             "{easy: [binary_easy, partial_easy], rare: [binary_rare, partial_rare]}")
        blocks = {str(name): list(members) for name, members in blocks.items()}
        seen: Dict[str, str] = {}
        for name, members in blocks.items():
            for arm in members:
                if arm not in arms:
                    raise StudyError(f"{where}: blocks.{name}: {arm!r} is not an arm; arms are {arms}")
                if arm in seen:
                    raise StudyError(f"{where}: arm {arm!r} is in blocks {seen[arm]} and {name}; "
                                     "an arm belongs to one block")
                seen[arm] = name
        missing = [a for a in arms if a not in seen]
        if missing:
            raise StudyError(f"{where}: arm {missing[0]!r} is in no block; add it to one of {list(blocks)}")
    block_of = {arm: name for name, members in blocks.items() for arm in members}

    controls: Dict[str, str] = {}
    if isinstance(control, dict):
        if set(control) != set(blocks):
            raise StudyError(f"{where}: control must name one arm per block {list(blocks)}, "
                             f"got blocks {list(control)}")
        for name, arm in control.items():
            if arm not in blocks[name]:
                raise StudyError(f"{where}: control.{name} = {arm!r} is not an arm of block {name} "
                                 f"{blocks[name]}; an arm is compared only within its block")
        controls = {name: control[name] for name in blocks}
    elif control is not None:
        if not isinstance(control, str) or control not in arms:
            raise StudyError(f"{where}: control = {control!r} is not an arm; arms are {arms}")
        if len(blocks) > 1:
            raise StudyError(f"{where}: control = {control!r} names one arm but the study has blocks "
                             f"{list(blocks)}; give one per block, e.g. control: "
                             + "{" + ", ".join(f"{b}: {m[0]}" for b, m in blocks.items()) + "}")
        controls = {block_of[control]: control}
    elif compare is None:
        controls = {name: "ground_truth" if len(blocks) == 1 and "ground_truth" in members else members[0]
                    for name, members in blocks.items()}

    if compare is None:
        comparisons = [(name, arm, controls[name]) for name, members in blocks.items()
                       for arm in members if arm != controls[name]]
        return blocks, controls, comparisons
    if not isinstance(compare, list) or not compare:
        raise StudyError(f"{where}: compare must be a list of 'arm - reference' strings, e.g. "
                         "['partial_easy - binary_easy']")
    comparisons = []
    for item in compare:
        arm, reference = _pair(item, arms, f"{where}: compare")
        if block_of[arm] != block_of[reference]:
            raise StudyError(f"{where}: compare {item!r}: {arm} is in block {block_of[arm]}, {reference} in "
                             f"block {block_of[reference]}; compare within a block (or use an interaction)")
        comparisons.append((block_of[arm], arm, reference))
    return blocks, controls, comparisons


def _pair(item: Any, arms: Sequence[str], where: str) -> Tuple[str, str]:
    """'a - b' -> (a, b), both arms and different."""
    match = _PAIR.match(item) if isinstance(item, str) else None
    if not match:
        raise StudyError(f"{where}: {item!r} must read 'arm - reference' (spaces around the minus)")
    arm, reference = match.groups()
    for name in (arm, reference):
        if name not in arms:
            raise StudyError(f"{where}: {item!r}: {name!r} is not an arm; arms are {list(arms)}")
    if arm == reference:
        raise StudyError(f"{where}: {item!r} compares an arm with itself")
    return arm, reference


def parse_interactions(value: Any, blocks: Dict[str, List[str]],
                       where: str = "study") -> List[Tuple[str, Tuple[str, str], Tuple[str, str]]]:
    """`interaction` entries '(a - b) - (c - d)' -> (text, (a, b), (c, d)); each inner pair
    inside one block."""
    if value is None:
        return []
    if not isinstance(value, list) or not value:
        raise StudyError(f"{where}: interaction must be a list of '(a - b) - (c - d)' strings")
    arms = [a for members in blocks.values() for a in members]
    block_of = {arm: name for name, members in blocks.items() for arm in members}
    out = []
    for item in value:
        match = _INTERACTION.match(item) if isinstance(item, str) else None
        if not match:
            raise StudyError(f"{where}: interaction {item!r} must read '(a - b) - (c - d)', e.g. "
                             "'(partial_rare - binary_rare) - (partial_easy - binary_easy)'")
        a, b, c, d = match.groups()
        first = _pair(f"{a} - {b}", arms, f"{where}: interaction")
        second = _pair(f"{c} - {d}", arms, f"{where}: interaction")
        for x, y in (first, second):
            if block_of[x] != block_of[y]:
                raise StudyError(f"{where}: interaction {item!r}: {x} - {y} crosses blocks "
                                 f"{block_of[x]} and {block_of[y]}; each inner difference stays in a block")
        out.append((f"({a} - {b}) - ({c} - {d})", first, second))
    return out


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
