"""Ground truth for the synthetic arithmetic task: exact, and graded (for 'mediocre' outputs).

The graded scale (GroundTruth.score of `arithmetic_graded`; the grade name is in
details["grade"]):

    exact      1.0   the answer equals the gold
    close      0.5   wrong, but the right number of digits (same sign) AND the right last digit
    partial    0.25  wrong, with exactly one of: right number of digits (same sign), right last digit
    wrong      0.0   neither
    no_answer  0.0   no final answer ("<int>;") at the start of the response

details also carries "digits_match" and "last_digit_match" (bools; absent for no_answer).
The mediocre grades give the study the paper's y_med: outputs with middling ground truth
that a policy can stall on.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import re

from rlvr.rewards.types import GroundTruth

_ANSWER = re.compile(r"^\s*(-?\d+)\s*;")  # the arithmetic task's final answer: "<int>;" (rlvr/tasks/arithmetic.py)


def extract_answer(response: str) -> Optional[str]:
    """The integer before the first ';', or None when the response has no final answer."""
    m = _ANSWER.match(response)
    return str(int(m.group(1))) if m else None


def verify_arithmetic(response: str, gold: str) -> GroundTruth:
    """Exact match of the final answer; 1.0 correct, 0.0 otherwise."""
    answer = extract_answer(response)
    if answer is None:
        return GroundTruth(0.0, "no_answer", None)
    ok = answer == str(int(gold))
    return GroundTruth(1.0 if ok else 0.0, "ok" if ok else "wrong", answer)

GRADES = {"exact": 1.0, "close": 0.5, "partial": 0.25, "wrong": 0.0, "no_answer": 0.0}


def verify_exact(response: str, gold: str, meta: Optional[Mapping[str, Any]] = None) -> GroundTruth:
    """1.0 iff the final answer equals the gold (verify_arithmetic)."""
    return verify_arithmetic(response, gold)


def verify_graded(response: str, gold: str, meta: Optional[Mapping[str, Any]] = None) -> GroundTruth:
    """The graded ground truth above; reason is 'ok' only for an exact answer."""
    answer = extract_answer(response)
    if answer is None:
        return GroundTruth(0.0, "no_answer", None, {"grade": "no_answer"})
    gold = str(int(gold))
    if answer == gold:
        return GroundTruth(GRADES["exact"], "ok", answer,
                           {"grade": "exact", "digits_match": True, "last_digit_match": True})
    digits_match = (len(answer.lstrip("-")) == len(gold.lstrip("-"))
                    and answer.startswith("-") == gold.startswith("-"))
    last_digit_match = answer[-1] == gold[-1]
    grade = {2: "close", 1: "partial", 0: "wrong"}[digits_match + last_digit_match]
    return GroundTruth(GRADES[grade], "wrong", answer,
                       {"grade": grade, "digits_match": digits_match,
                        "last_digit_match": last_digit_match})
