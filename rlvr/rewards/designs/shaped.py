"""Shaped rewards: partial credit, format-only, length bias and keyword bonus."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple, Union

from rlvr.rewards.designs import RewardDesign, check_regex, register_design
from rlvr.rewards.designs.classify import is_well_formed
from rlvr.rewards.errors import RewardConfigError
from rlvr.rewards.types import ScoredSample

# Reasoning phrases rewarded by the keyword "reasoning pattern" reward of arXiv 2505.22653.
REASONING_KEYWORDS = ["first", "then", "wait", "let me", "check", "verify", "therefore"]


@register_design("partial_credit")
@dataclass(kw_only=True, eq=False)
class PartialCredit(RewardDesign):
    """Credit short of full correctness. Replaces the running proxy.

    A passing sample (gt >= 1) gets `correct_score`. A failing one gets
    sum_i constraint_weights[i] * constraints_held[i] (from the constraints verifier's
    details["constraints_held"]; paper Section 5 uses 0.5 each) plus `format_score` if it is
    well-formed (a final answer was extracted; TinyZero gives 0.1 to well-formed but wrong).
    """

    constraint_weights: Optional[Union[float, List[float]]] = None  # credit per held constraint (one number: same for each)
    format_score: float = 0.0  # credit for a well-formed but wrong answer
    correct_score: float = 1.0  # reward of a passing sample

    def validate(self, where: str) -> None:
        self._key = f"{where}.constraint_weights"

    def signal_map(self, inner: Tuple[float, float]) -> Tuple[float, float]:
        return (0.0, 1.0)  # replaces the running proxy

    def transform(self, sample: ScoredSample, proxy: float) -> float:
        if sample.gt.score >= 1.0:
            return self.correct_score
        credit = self.format_score if is_well_formed(sample) else 0.0
        if self.constraint_weights is not None:
            held = sample.gt.details.get("constraints_held")
            if held is None:
                raise RewardConfigError(
                    f"{self._key} needs a verifier that reports details['constraints_held'] "
                    f"(the constraints verifier); prompt {sample.prompt_id!r} has none")
            weights = self.constraint_weights
            if isinstance(weights, list):
                if len(weights) != len(held):
                    raise RewardConfigError(
                        f"{self._key} has {len(weights)} weights but prompt {sample.prompt_id!r} "
                        f"has {len(held)} constraints")
            else:
                weights = [weights] * len(held)
            credit += sum(w for w, h in zip(weights, held) if h)
        return credit


@register_design("format_only")
@dataclass(kw_only=True, eq=False)
class FormatOnly(RewardDesign):
    """1 if the response is well-formed, else 0, whatever the answer (arXiv 2506.10947).
    Replaces the running proxy. Well-formed: the verifier extracted an answer, or the
    response matches `pattern` when one is given."""

    pattern: Optional[str] = None  # regex (re.search) defining the format; None: gt.answer is not None

    def validate(self, where: str) -> None:
        self._regex = check_regex(self.pattern, f"{where}.pattern") if self.pattern is not None else None

    def signal_map(self, inner: Tuple[float, float]) -> Tuple[float, float]:
        return (0.0, 1.0)  # replaces the running proxy

    def transform(self, sample: ScoredSample, proxy: float) -> float:
        if self._regex is not None:
            return 1.0 if self._regex.search(sample.response) else 0.0
        return 1.0 if is_well_formed(sample) else 0.0


@register_design("length_bias")
@dataclass(kw_only=True, eq=False)
class LengthBias(RewardDesign):
    """Adds per_token * num_tokens to the running proxy, clipped to [-max_bonus, max_bonus]
    (a negative per_token rewards brevity)."""

    per_token: float = 0.01  # bonus per response token
    max_bonus: Optional[float] = None  # cap on the bonus's magnitude (None: no cap)

    def validate(self, where: str) -> None:
        if self.max_bonus is not None and self.max_bonus < 0:
            raise RewardConfigError(f"{where}.max_bonus = {self.max_bonus} must be >= 0")

    def transform(self, sample: ScoredSample, proxy: float) -> float:
        bonus = self.per_token * sample.num_tokens
        if self.max_bonus is not None:
            bonus = max(-self.max_bonus, min(self.max_bonus, bonus))
        return proxy + bonus


@register_design("keyword_bonus")
@dataclass(kw_only=True, eq=False)
class KeywordBonus(RewardDesign):
    """Adds `bonus` to the running proxy for each distinct keyword found in the response
    (case-insensitive substring unless case_sensitive), capped at max_bonus."""

    keywords: List[str] = field(default_factory=lambda: list(REASONING_KEYWORDS))  # phrases to reward
    bonus: float = 0.1  # reward per distinct keyword present
    max_bonus: Optional[float] = None  # cap on the total bonus (None: no cap)
    case_sensitive: bool = False  # match keywords case-sensitively

    def validate(self, where: str) -> None:
        if not self.keywords or any(not k for k in self.keywords):
            raise RewardConfigError(f"{where}.keywords = {self.keywords!r} must be a non-empty list of non-empty strings")
        if self.max_bonus is not None and self.max_bonus < 0:
            raise RewardConfigError(f"{where}.max_bonus = {self.max_bonus} must be >= 0")
        self._needles = self.keywords if self.case_sensitive else [k.lower() for k in self.keywords]

    def transform(self, sample: ScoredSample, proxy: float) -> float:
        text = sample.response if self.case_sensitive else sample.response.lower()
        bonus = self.bonus * sum(1 for k in dict.fromkeys(self._needles) if k in text)
        if self.max_bonus is not None:
            bonus = min(bonus, self.max_bonus)
        return proxy + bonus
