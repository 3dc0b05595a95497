"""Checkpoints of a run and resuming from them: what a checkpoint folder holds, how it is
written (complete only once its loop state is), and which one a resume continues from."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Dict, List, NamedTuple

from rlvr.config import RecipeConfig, to_yaml
from rlvr.tracking.run_folder import RunFolder, checkpoint_problem
from rlvr.tracking.tracker import progress

RESUME_STATE = "rlvr_state.json"  # in a checkpoint folder: the loop's state at that step
PENDING_STATE = "rlvr_pending.json"  # in an overlap run's checkpoint: step+1's generations, made before this update
RESUME_KEYS = ("step", "evals", "initial_eval_gt_accuracy")  # what a resume reads from it
# Recipe keys a resumed run may change; anything else must match the run's config.yaml.
RESUME_MAY_CHANGE = {"resume", "steps", "output_dir", "run_name", "eval_every", "checkpoint_every",
                     "checkpoint_keep_last", "logging.wandb", "logging.console", "logging.log_samples_every",
                     "logging.wandb_group", "logging.wandb_tags",
                     "cluster.address", "cluster.num_cpus", "cluster.num_gpus", "cluster.colocate",
                     "cluster.placement_strategy", "cluster.custom_resources", "cluster.max_restarts", "cluster.restart_timeout_s",
                     "cluster.stage_timeout_s", "trainer.num_gpus_per_rank",
                     "rollout.num_gpus_per_worker", "rollout.tensor_parallel_size",
                     "reward.colocate", "reward.num_gpus_per_worker"}  # where samples are scored: the scores are the same


class RunError(RuntimeError):
    """A run failed for a reason the user can fix (e.g. a full disk); the CLI prints it in one line."""


def no_space(err: BaseException) -> bool:
    """True when `err` (or a remote error wrapping it, e.g. a trainer rank's) is a full disk."""
    import errno

    return ((isinstance(err, OSError) and err.errno == errno.ENOSPC)
            or "No space left on device" in str(err) or "[Errno 28]" in str(err))


def save_checkpoint(cfg: RecipeConfig, trainer, folder: RunFolder, state: Dict[str, Any], ahead=None) -> None:
    """HF weights + trainer state (optimizer included) + the loop's state; `ahead`: the next
    step's Rollout made before this update (overlap). rlvr_state.json is written last: a
    checkpoint without it is incomplete and never resumed from."""
    from rlvr.controller.step import generations_to_json

    path = folder.checkpoint_dir(state["step"])
    try:
        (path / RESUME_STATE).unlink(missing_ok=True)  # a folder being rewritten reads incomplete
        trainer.save_hf(str(path))
        trainer.save_training_state(str(path / "trainer"))
        if cfg.rollout.overlap and ahead is not None:
            pending = {"step": ahead.step, "prompt_ids": [p.id for p in ahead.prompts],
                       **generations_to_json(ahead.generated)}
            (path / PENDING_STATE).write_text(json.dumps(pending))
        (path / RESUME_STATE).write_text(json.dumps(state, indent=2))
    except Exception as err:
        if not no_space(err):
            raise
        try:
            (path / RESUME_STATE).unlink(missing_ok=True)
            free = f"{shutil.disk_usage(folder.path).free / 2**20:.0f} MiB free"
        except OSError:
            free = "free space unknown"
        raise RunError(f"no space left on device while saving checkpoint {path} ({free}): free "
                       "some space (or lower checkpoint_keep_last), then continue with resume=true "
                       "from the last complete checkpoint") from err
    for old in folder.prune_checkpoints(cfg.checkpoint_keep_last, RESUME_STATE):
        progress(f"deleted checkpoint {old.name} (checkpoint_keep_last = {cfg.checkpoint_keep_last})")


def pending_generations(checkpoint: Path, step: int, prompts) -> Dict[str, Any]:
    """Step `step`'s generations kept in an overlap checkpoint, checked against the step's
    prompts (as StepRunner.gather returns them; score them again with StepRunner.prepare)."""
    from rlvr.config.load import RecipeError
    from rlvr.controller.step import generations_from_json

    path = checkpoint / PENDING_STATE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RecipeError(f"resume: {path} is missing or unreadable ({err}); an overlap run resumes from "
                          "a checkpoint written with rollout.overlap = true") from None
    if data.get("step") != step or data.get("prompt_ids") != [p.id for p in prompts]:
        raise RecipeError(f"resume: {path} holds step {data.get('step')}'s generations for other prompts "
                          f"than step {step}'s: the checkpoint does not belong to this recipe")
    return generations_from_json(data)


class ResumePoint(NamedTuple):
    state: Dict[str, Any]  # the loop's state at the checkpoint (RESUME_STATE)
    checkpoint: Path  # the checkpoint folder
    skipped: List[Path]  # newer checkpoints found incomplete, newest first


def resume_point(cfg: RecipeConfig, folder: RunFolder) -> ResumePoint:
    """The run's latest complete checkpoint, after checking the recipe did not drift."""
    from rlvr.config.load import RecipeError, recipe_drift

    where = f"resume {folder.path}"
    done = sorted(p for p in folder.path.glob(f"checkpoints/step_*/{RESUME_STATE}") if p.parent.is_dir()
                  and not p.parent.name.endswith(".incomplete"))
    if not done:
        raise RecipeError(f"{where}: no complete checkpoint to resume from "
                          "(set checkpoint_every to save them during a run)")
    drift = recipe_drift((folder.path / "config.yaml").read_text(), to_yaml(cfg), ignore=RESUME_MAY_CHANGE)
    if drift:
        raise RecipeError(f"{where}: the recipe differs from the run's config.yaml: "
                          f"{'; '.join(drift)}. Only {sorted(RESUME_MAY_CHANGE)} may change.")
    # Newest first; a checkpoint whose files are missing or truncated is skipped with a
    # warning naming the file (checked here, before Ray or any actor starts).
    skipped: List[Path] = []
    problems = []
    for marker in reversed(done):
        problem = checkpoint_problem(marker.parent, RESUME_STATE, RESUME_KEYS)
        if problem is None and cfg.rollout.overlap and not (marker.parent / PENDING_STATE).is_file():
            problem = (f"{marker.parent / PENDING_STATE} is missing (an overlap checkpoint keeps the "
                       "next step's samples)")
        if problem is None:
            break
        problems.append(problem)
        skipped.append(marker.parent)
        progress(f"WARNING: checkpoint {marker.parent.name} is incomplete: {problem}")
    else:
        raise RecipeError(f"{where}: no complete checkpoint to resume from; {problems[0]}"
                          + (f" (and {len(problems) - 1} older checkpoint(s) broken too)" if len(problems) > 1 else ""))
    state = json.loads(marker.read_text())
    if skipped:
        progress(f"WARNING: resuming from the previous complete checkpoint {marker.parent.name} instead")
    if state["step"] >= cfg.steps:
        raise RecipeError(f"{where}: checkpoint step {state['step']} >= steps = {cfg.steps}: "
                          "raise steps to train further")
    return ResumePoint(state, marker.parent, skipped)


def set_aside(skipped: List[Path]) -> None:
    """Move incomplete checkpoints out of the way of pruning and of later resumes (kept to inspect)."""
    for bad in skipped:
        aside = bad.with_name(f"{bad.name}.incomplete")
        shutil.rmtree(aside, ignore_errors=True)
        bad.rename(aside)
        progress(f"moved the incomplete checkpoint {bad.name} to {aside.name}")
