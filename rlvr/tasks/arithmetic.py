"""Synthetic arithmetic: "12+34=" -> "46;". The answer ends with ';' (the final-answer format).

Prompts are a pure function of (seed, split, index): train and eval splits never share a
problem, and every run of a study sees the same prompts.
"""
from __future__ import annotations

import random
from typing import List, Sequence

from rlvr.tasks import Prompt

ANSWER_END = ";"
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def make_problem(rng: random.Random, num_digits: int, operations: Sequence[str]):
    low = 10 ** (num_digits - 1) if num_digits > 1 else 0
    a, b = rng.randint(low, 10**num_digits - 1), rng.randint(low, 10**num_digits - 1)
    op = rng.choice(list(operations))
    return a, op, b, _OPS[op](a, b)


def _eval_problems(seed: int, num_digits: int, operations: Sequence[str]) -> List[tuple]:
    """A fixed reservation of eval problems, independent of the train size."""
    capacity = (10**num_digits) ** 2 * len(operations)
    rng, keys = random.Random(f"arith-eval:{seed}"), {}
    while len(keys) < min(512, capacity // 4):
        keys.setdefault(make_problem(rng, num_digits, operations)[:3], None)
    return list(keys)


def arithmetic_prompts(seed: int, split: str, count: int, num_digits: int = 2,
                       operations: Sequence[str] = ("+",)) -> List[Prompt]:
    """`count` distinct problems of one split; the splits never share a problem."""
    for op in operations:
        if op not in _OPS:
            raise ValueError(f"task.operations: {op!r} is not one of {sorted(_OPS)}")
    reserved = _eval_problems(seed, num_digits, operations)
    if split == "eval":
        if count > len(reserved):
            raise ValueError(f"task.eval_size = {count} exceeds the {len(reserved)} eval problems")
        return [Prompt(f"eval-{i}", f"{a}{op}{b}=", str(_OPS[op](a, b)))
                for i, (a, op, b) in enumerate(reserved[:count])]
    if split != "train":
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    capacity = (10**num_digits) ** 2 * len(operations) - len(reserved)
    if count > capacity // 2:
        raise ValueError(f"task.train_size = {count} is more than half of the {capacity} distinct problems")
    rng, taken, out = random.Random(f"arith:{seed}"), set(reserved), []
    while len(out) < count:
        a, op, b, answer = make_problem(rng, num_digits, operations)
        if (a, op, b) not in taken:
            taken.add((a, op, b))
            out.append(Prompt(f"train-{len(out)}", f"{a}{op}{b}=", str(answer)))
    return out
