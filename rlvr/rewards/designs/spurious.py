"""Spurious rewards (arXiv 2506.10947) and label-free majority vote. All replace the running proxy."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import List, Sequence, Tuple

from rlvr.rewards.designs import RewardDesign, check_rate, register_design
from rlvr.rewards.designs.classify import is_well_formed
from rlvr.rewards.seeded import seeded_uniform
from rlvr.rewards.types import ScoredSample


@register_design("random")
@dataclass(kw_only=True, eq=False)
class RandomReward(RewardDesign):
    """Bernoulli(p) reward, independent of the output: 1 if u < p, u = seeded uniform. Noise:
    E[proxy | y] = p for every output, a signal of scale 0."""

    errors = "stochastic"

    p: float = 0.5  # probability of reward 1
    seed: int = 0  # draws are a pure function of (seed, prompt id, sample index)

    def validate(self, where: str) -> None:
        self.p = check_rate(self.p, f"{where}.p")

    def transform(self, sample: ScoredSample, proxy: float) -> float:
        u = seeded_uniform(self.seed, sample.prompt_id, sample.sample_index, salt="random")
        return 1.0 if u < self.p else 0.0

    def expected_proxy(self, sample: ScoredSample, running: float, noisy: bool = False) -> float:
        return self.p

    def signal_map(self, inner: Tuple[float, float]) -> Tuple[float, float]:
        return (self.p, 0.0)


@register_design("incorrect_only")
@dataclass(kw_only=True, eq=False)
class IncorrectOnly(RewardDesign):
    """1 for a well-formed wrong answer (gt fails, an answer was extracted), else 0:
    rewards exactly the wrong answers, never a correct or answer-less one."""

    def transform(self, sample: ScoredSample, proxy: float) -> float:
        return 1.0 if sample.gt.score < 1.0 and is_well_formed(sample) else 0.0

    def signal_map(self, inner: Tuple[float, float]) -> Tuple[float, float]:
        return (0.0, 1.0)  # replaces the running proxy


@register_design("majority_vote")
@dataclass(kw_only=True, eq=False)
class MajorityVote(RewardDesign):
    """Pseudo-label = the group's most common extracted answer; proxy = 1 if a sample's answer
    equals it, else 0 (TTRL-style, no gold needed). Ties go to the answer that appears first
    in the group; samples without an answer get 0 and do not vote."""

    def apply(self, group: Sequence[ScoredSample], proxy: Sequence[float]) -> List[float]:
        votes = Counter(s.gt.answer for s in group if s.gt.answer is not None)
        if not votes:
            return [0.0] * len(group)
        label = max(votes, key=votes.__getitem__)  # max keeps the first-seen answer among ties
        return [1.0 if s.gt.answer == label else 0.0 for s in group]

    def expected_group(self, group: Sequence[ScoredSample], running: Sequence[float],
                       noisy: bool = False) -> List[float]:
        return self.apply(group, running)  # a function of the group's responses: systematic

    def signal_map(self, inner: Tuple[float, float]) -> Tuple[float, float]:
        return (0.0, 1.0)  # replaces the running proxy
