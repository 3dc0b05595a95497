"""Task registry: the recipe's task section -> the prompts of one split.

    arithmetic   synthetic "a+b=" problems (rlvr.tasks.arithmetic); verifier arithmetic or
                 arithmetic_graded
    constraints  two-constraint instruction prompts (rlvr.tasks.constraints_task); verifier
                 constraints
    gsm8k, math  a local JSONL (or .json array, or .parquet) file at task.path, fields named by
                 task.question_key / task.answer_key (rlvr.tasks.loaders); verifier math

File-backed splits: if task.path contains "{split}" it is formatted with the split name
(data/gsm8k_{split}.jsonl). Otherwise one file serves both splits: its records are shuffled
with task.seed, the first task.eval_size form the eval split and the rest the train split.
"""
from __future__ import annotations

import dataclasses
import random
from typing import Any, Callable, Dict, List, Mapping, Tuple

from rlvr.tasks import Prompt

def _get(task_cfg: Any, key: str, default: Any = None) -> Any:
    if dataclasses.is_dataclass(task_cfg):
        return getattr(task_cfg, key, default)
    if isinstance(task_cfg, Mapping) or hasattr(task_cfg, "get"):
        value = task_cfg.get(key, default)
        return default if value is None else value
    raise TypeError(f"task config must be a mapping or a TaskConfig, got {type(task_cfg).__name__}")


def _arithmetic(task_cfg, split: str, count: int) -> List[Prompt]:
    from rlvr.tasks.arithmetic import arithmetic_prompts

    return arithmetic_prompts(int(_get(task_cfg, "seed", 0)), split, count,
                              num_digits=int(_get(task_cfg, "num_digits", 2)),
                              operations=list(_get(task_cfg, "operations", ["+"])))


def _constraints(task_cfg, split: str, count: int) -> List[Prompt]:
    from rlvr.tasks.constraints_task import constraint_prompts

    # task.sft_both_rate: fraction of warm-up targets meeting both constraints (else the first).
    # task.constraint_names (optional): restrict the constraint pool.
    names = _get(task_cfg, "constraint_names", None)
    return constraint_prompts(int(_get(task_cfg, "seed", 0)), split, count,
                              names=list(names) if names else None,
                              sft_both_rate=float(_get(task_cfg, "sft_both_rate", 1.0)))


def _file_backed(kind: str) -> Callable[[Any, str, int], List[Prompt]]:
    def load(task_cfg, split: str, count: int) -> List[Prompt]:
        from rlvr.tasks.loaders import TaskDataError, load_jsonl_qa

        path = _get(task_cfg, "path")
        if not path:
            raise ValueError(f"task.path must name a JSONL file for task.name = {kind!r}")
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        keys = {"question_key": str(_get(task_cfg, "question_key", "question")),
                "answer_key": str(_get(task_cfg, "answer_key", "answer")), "kind": kind}
        if "{split}" in str(path):
            source = str(path).format(split=split)
            prompts, note = load_jsonl_qa(source, **keys), ""
        else:
            source, everything = str(path), load_jsonl_qa(str(path), **keys)
            random.Random(f"{kind}:{_get(task_cfg, 'seed', 0)}").shuffle(everything)
            eval_size = int(_get(task_cfg, "eval_size", 128))
            if eval_size >= len(everything):
                raise TaskDataError(
                    f"{source}: {len(everything)} records, but task.eval_size = {eval_size} leaves none "
                    f"for the train split; lower task.eval_size below {len(everything)} or use a larger file")
            prompts = everything[:eval_size] if split == "eval" else everything[eval_size:]
            note = f" ({len(everything)} in the file minus task.eval_size = {eval_size})" if split == "train" else ""
        if count > len(prompts):
            raise TaskDataError(
                f"{source}: {count} {split} prompts requested (task.{split}_size) but the {split} split has "
                f"{len(prompts)} records{note}; lower task.{split}_size to at most {len(prompts)} or use a "
                f"larger file")
        return prompts[:count]

    return load


TASKS: Dict[str, Callable[[Any, str, int], List[Prompt]]] = {
    "arithmetic": _arithmetic,
    "constraints": _constraints,
    "gsm8k": _file_backed("gsm8k"),
    "math": _file_backed("math"),
}


# The task section's keys each task reads (TaskConfig is one dataclass shared by all tasks);
# a new task adds its entry here. Every task reads COMMON_TASK_KEYS (the controller does).
COMMON_TASK_KEYS: Tuple[str, ...] = ("name", "seed", "train_size", "eval_size", "prompt_template",
                                     "apply_chat_template")
TASK_KEYS: Dict[str, Tuple[str, ...]] = {
    "arithmetic": ("num_digits", "operations"),
    "constraints": ("constraint_names", "sft_both_rate"),
    "gsm8k": ("path", "question_key", "answer_key"),
    "math": ("path", "question_key", "answer_key"),
}


def unused_task_keys(task_cfg: Any) -> List[str]:
    """Keys of the task section (a TaskConfig) set away from the schema default that its task
    does not read; [] for a task without a TASK_KEYS entry."""
    from rlvr.config.schema import TaskConfig

    reads = TASK_KEYS.get(task_cfg.name)
    if reads is None:
        return []
    default = TaskConfig()
    return [f.name for f in dataclasses.fields(TaskConfig) if f.name not in COMMON_TASK_KEYS
            and f.name not in reads and getattr(task_cfg, f.name) != getattr(default, f.name)]


def keys_read(task_cfg: Any) -> Dict[str, Any]:
    """The task section as a dict with every key its task does not read at the schema default:
    what may enter a hash of the task (rlvr.models.prepare.policy_cache_key)."""
    from rlvr.config.schema import TaskConfig

    values, default = dataclasses.asdict(task_cfg), dataclasses.asdict(TaskConfig())
    for key in unused_task_keys(task_cfg):
        values[key] = default[key]
    return values


def get_task_prompts(task_cfg: Any, split: str, count: int) -> List[Prompt]:
    """`count` prompts of `split` ('train' | 'eval') for the task named by task_cfg["name"].

    task_cfg: the recipe's task section (a mapping, DictConfig or TaskConfig).
    """
    name = _get(task_cfg, "name", "arithmetic")
    if name not in TASKS:
        raise ValueError(f"task.name = {name!r} is not a task; choose one of {sorted(TASKS)}")
    return TASKS[name](task_cfg, split, int(count))
