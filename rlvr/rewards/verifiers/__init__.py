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


def _entry(name: str) -> VerifierEntry:
    if name not in VERIFIERS:
        raise RewardConfigError(
            f"reward.verifier = {name!r} is not a verifier; choose one of {sorted(VERIFIERS)}")
    return VERIFIERS[name]


def get_verifier(name: str) -> Verifier:
    """The verifier function registered under `name` (RewardConfigError if there is none)."""
    module, function = _entry(name).target.split(":")
    return getattr(importlib.import_module(module), function)


def runs_in_process(name: str) -> bool:
    """Whether VerifierPool runs this verifier in the caller's process by default."""
    return _entry(name).in_process


from rlvr.rewards.verifiers.pool import VerifierPool  # noqa: E402

__all__ = ["VERIFIERS", "Verifier", "VerifierPool", "get_verifier", "runs_in_process"]
