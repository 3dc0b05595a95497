"""Errors on a declared class of outputs: systematic false positives / negatives and a table.

Classes come from `classify_output` (rlvr/rewards/designs/classify.py): correct, partial,
unformatted_correct, no_answer, off_by_one, wrong.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Dict, List, Optional, Tuple

from rlvr.rewards.designs import RewardDesign, check_rate, check_regex, register_design
from rlvr.rewards.designs.classify import FAILING_CLASSES, OUTPUT_CLASSES, PASSING_CLASSES, classify_output
from rlvr.rewards.errors import RewardConfigError
from rlvr.rewards.seeded import seeded_uniform
from rlvr.rewards.types import ScoredSample


@dataclass(kw_only=True, eq=False)
class _SystematicError(RewardDesign):
    """Shared by the two systematic designs: select a class of outputs, set their proxy."""

    classes: Optional[List[str]] = None  # output classes the error hits (None: every class on its side)
    answers: Optional[List[str]] = None  # only these extracted answers (e.g. a given wrong answer "41")
    response_regex: Optional[str] = None  # only responses matching this regex (re.search)
    rate: float = 1.0  # probability the error hits a selected sample (seeded per sample)
    seed: int = 0  # draws are a pure function of (seed, prompt id, sample index)
    value: float = 0.0  # proxy given to a hit sample

    _side: ClassVar[Tuple[str, ...]] = ()  # the classes this error may hit (set per subclass)
    _side_word: ClassVar[str] = ""

    def validate(self, where: str) -> None:
        self.rate = check_rate(self.rate, f"{where}.rate")
        for i, c in enumerate(self.classes or []):
            if c not in self._side:
                raise RewardConfigError(
                    f"{where}.classes[{i}] = {c!r} is not a {self._side_word} output class; "
                    f"{self.name} applies to {list(self._side)} (all classes: {list(OUTPUT_CLASSES)})")
        if self.answers is not None:
            self.answers = [str(a).strip() for a in self.answers]
        self._regex = (check_regex(self.response_regex, f"{where}.response_regex")
                       if self.response_regex is not None else None)

    def selects(self, sample: ScoredSample) -> bool:
        """Whether the sample is in the declared class (all given selectors must hold)."""
        cls = classify_output(sample)
        if cls not in self._side or (self.classes is not None and cls not in self.classes):
            return False
        if self.answers is not None and (sample.gt.answer or "").strip() not in self.answers:
            return False
        return self._regex is None or self._regex.search(sample.response) is not None

    @property
    def errors(self) -> str:
        return "stochastic" if self.rate < 1.0 else "systematic"  # rate < 1: drawn per sample

    def expected_proxy(self, sample: ScoredSample, running: float, noisy: bool = False) -> float:
        if not self.selects(sample):
            return running
        return self.rate * self.value + (1.0 - self.rate) * running

    def transform(self, sample: ScoredSample, proxy: float) -> float:
        if not self.selects(sample):
            return proxy
        if self.rate < 1.0 and seeded_uniform(self.seed, sample.prompt_id, sample.sample_index,
                                              salt=self.name) >= self.rate:
            return proxy
        return self.value


@register_design("systematic_false_positive")
@dataclass(kw_only=True, eq=False)
class SystematicFalsePositive(_SystematicError):
    """Rewards a declared class of failing outputs (e.g. classes [off_by_one], answers ["41"],
    or classes [unformatted_correct]); other samples keep the running proxy."""

    value: float = 1.0  # proxy given to a hit sample
    _side = FAILING_CLASSES
    _side_word = "failing"


@register_design("systematic_false_negative")
@dataclass(kw_only=True, eq=False)
class SystematicFalseNegative(_SystematicError):
    """Denies reward to a declared class of correct outputs (e.g. correct responses matching
    response_regex "\\n" or with trailing text); other samples keep the running proxy."""

    value: float = 0.0  # proxy given to a hit sample
    _side = PASSING_CLASSES
    _side_word = "passing"


@register_design("table")
@dataclass(kw_only=True, eq=False)
class ClassTable(RewardDesign):
    """An explicit proxy per output class, e.g. values {correct: 1, off_by_one: 1, wrong: 0,
    no_answer: -1}. Classes not listed get `default`, or keep the running proxy if it is None."""

    values: Dict[str, float]  # output class -> proxy reward
    default: Optional[float] = None  # proxy for unlisted classes (None: keep the running proxy)

    def validate(self, where: str) -> None:
        for c in self.values:
            if c not in OUTPUT_CLASSES:
                raise RewardConfigError(
                    f"{where}.values.{c} is not an output class; choose from {list(OUTPUT_CLASSES)}")

    def signal_map(self, inner: Tuple[float, float]) -> Tuple[float, float]:
        return inner if self.default is None else (0.0, 1.0)  # with a default every class is replaced

    def transform(self, sample: ScoredSample, proxy: float) -> float:
        value = self.values.get(classify_output(sample))
        if value is not None:
            return value
        return proxy if self.default is None else self.default
