"""Ground-truth verifiers: (response, gold, meta) -> GroundTruth, by name.

    arithmetic         exact final answer of the synthetic arithmetic task ("46;")
    arithmetic_graded  the same, with graded partial values for mediocre answers
                       (scale in rlvr.rewards.verifiers.arithmetic)
    math               an explicit final answer (boxed, ####, "the answer is", a final display,
                       "<answer>;", or just the answer; else no_answer) compared by math-verify,
                       plus fixes for its known misses, numbers in words, choice statements
                       ("the correct option is (B)"); hedges ("(B) or (C)") are never credited
                       (rlvr.rewards.verifiers.math_answers, docs/verifiers.md)
    constraints        IFBench-style: 1.0 iff every constraint in meta["constraints"] holds
                       (rlvr.rewards.verifiers.constraints)

Run verifiers through a VerifierPool: it applies the per-sample timeout and memory cap.
Verifiers flagged `in_process` (regexes and string checks whose cost is linear in the
response) run in the caller's process for speed; `math` always runs in killable processes.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional

from rlvr.rewards.errors import RewardConfigError
from rlvr.rewards.types import GroundTruth

Verifier = Callable[[str, str, Optional[Mapping[str, Any]]], GroundTruth]


@dataclass(frozen=True)
class VerifierEntry:
    target: str  # "module:function", imported on first use (math-verify takes ~1 s to import)
    in_process: bool  # cheap and safe: linear-time string work, no timeout needed


VERIFIERS: Dict[str, VerifierEntry] = {
    "arithmetic": VerifierEntry("rlvr.rewards.verifiers.arithmetic:verify_exact", True),
    "arithmetic_graded": VerifierEntry("rlvr.rewards.verifiers.arithmetic:verify_graded", True),
    "math": VerifierEntry("rlvr.rewards.verifiers.math_answers:verify_math", False),
    "constraints": VerifierEntry("rlvr.rewards.verifiers.constraints:verify_constraints", True),
}


def register_verifier(name: str, in_process: bool = False):
    """Function decorator: register `fn(response, gold, meta) -> GroundTruth` as verifier `name`
    (a plug-in's, see rlvr/plugins.py). in_process=False runs it in killable processes with the
    per-sample timeout and memory cap; True only for cheap, linear-time string checks."""

    def wrap(fn):
        target = f"{fn.__module__}:{fn.__qualname__}"
        known = VERIFIERS.get(name)
        if known is not None and known.target != target:
            raise RewardConfigError(f"{fn.__module__}: verifier name {name!r} is already registered by "
                                    f"{known.target}: choose another name")
        VERIFIERS[name] = VerifierEntry(target, in_process)
        return fn

    return wrap


def _entry(name: str) -> VerifierEntry:
    if name not in VERIFIERS:
        raise RewardConfigError(
            f"reward.verifier = {name!r} is not a verifier; choose one of {sorted(VERIFIERS)}")
    return VERIFIERS[name]


def get_verifier(name: str) -> Verifier:
    """The verifier function registered under `name`, or named by a "module:function" target
    (how verifier processes receive it, so a plug-in's needs no registry there)."""
    module, function = (name if ":" in name else _entry(name).target).split(":")
    return getattr(importlib.import_module(module), function)


def verifier_target(name: str) -> str:
    """The "module:function" a verifier name stands for."""
    return _entry(name).target


def runs_in_process(name: str) -> bool:
    """Whether VerifierPool runs this verifier in the caller's process by default."""
    return _entry(name).in_process


from rlvr.rewards.verifiers.pool import VerifierPool  # noqa: E402

__all__ = ["VERIFIERS", "Verifier", "VerifierPool", "get_verifier", "runs_in_process"]
