"""Records that cross the reward boundary: a ground-truth verdict and a sample a design scores."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional


@dataclass(frozen=True)
class GroundTruth:
    """A verifier's verdict on one response."""

    score: float  # ground-truth reward: 1.0 correct, 0.0 wrong; graded verifiers may lie between
    reason: str  # ok | wrong | no_answer | timeout | parse_error
    answer: Optional[str] = None  # the extracted final answer, normalised; None if there is none
    details: Dict[str, Any] = field(default_factory=dict)  # verifier-specific (e.g. constraints held)


@dataclass(frozen=True)
class ScoredSample:
    """What a reward design sees: one response with its ground-truth verdict."""

    prompt_id: str
    sample_index: int
    response: str
    gold: str
    num_tokens: int
    gt: GroundTruth
    prompt: str = ""  # the prompt text when the record carried it ("" otherwise); learned rewards read it
