"""The identity design, seeded flip noise and its backward correction (arXiv 2510.00915)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from rlvr.rewards.designs import RewardDesign, check_rate, register_design
from rlvr.rewards.errors import RewardConfigError
from rlvr.rewards.seeded import seeded_uniform
from rlvr.rewards.types import ScoredSample

PASS = 1.0  # a running proxy >= PASS counts as a pass for flip noise


@register_design("ground_truth")
@dataclass(kw_only=True, eq=False)
class GroundTruthDesign(RewardDesign):
    """proxy = gt score: the control arm of every study. Replaces the running proxy."""

    def transform(self, sample: ScoredSample, proxy: float) -> float:
        return float(sample.gt.score)

    def signal_map(self, inner: Tuple[float, float]) -> Tuple[float, float]:
        return (0.0, 1.0)  # replaces the running proxy with r_G itself


@register_design("flip")
@dataclass(kw_only=True, eq=False)
class FlipNoise(RewardDesign):
    """Binary flip noise on the running proxy (the gt score when used alone).

    A failing sample (running proxy < 1) gets 1 with prob fp_rate (rho0), else 0; a passing
    one gets 0 with prob fn_rate (rho1), else 1. So E[proxy | y] = rho0 + (1 - rho0 - rho1) r(y)
    for a binary r (arXiv 2510.00915 notation). The output is binary (0 or 1).

    Drawn per sample (the default) it is noise ("stochastic"): the ground truth's ranking at a
    smaller scale, plus variance, and no error of the theory's kind. With `persistent` the draw
    is a function of (prompt, answer), so its flips are systematic errors.
    """

    fp_rate: float = 0.0  # rho0 = P(proxy pass | gt fail)
    fn_rate: float = 0.0  # rho1 = P(proxy fail | gt pass)
    seed: int = 0  # noise seed; draws are a pure function of (seed, prompt id, sample index)
    persistent: bool = False  # draw once per (prompt, answer): the same wrong answer is always rewarded

    def validate(self, where: str) -> None:
        self.fp_rate = check_rate(self.fp_rate, f"{where}.fp_rate")
        self.fn_rate = check_rate(self.fn_rate, f"{where}.fn_rate")

    @property
    def errors(self) -> str:
        return "systematic" if self.persistent else "stochastic"

    def expected_proxy(self, sample: ScoredSample, running: float, noisy: bool = False) -> float:
        if self.persistent:
            return self.transform(sample, running)
        # P(running passes): thresholded when the running proxy is deterministic; its mean when it
        # is an earlier binary noise (flip after flip).
        q = min(max(running, 0.0), 1.0) if noisy else float(running >= PASS)
        return self.fp_rate + (1.0 - self.fp_rate - self.fn_rate) * q

    def signal_map(self, inner: Tuple[float, float]) -> Tuple[float, float]:
        if self.persistent:
            return inner
        scale = 1.0 - self.fp_rate - self.fn_rate
        return (self.fp_rate + scale * inner[0], scale * inner[1])

    def transform(self, sample: ScoredSample, proxy: float) -> float:
        if self.persistent:
            u = seeded_uniform(self.seed, sample.prompt_id, 0, salt=f"answer={sample.gt.answer}")
        else:
            u = seeded_uniform(self.seed, sample.prompt_id, sample.sample_index)
        if proxy >= PASS:
            return 0.0 if u < self.fn_rate else 1.0
        return 1.0 if u < self.fp_rate else 0.0


@register_design("backward_correction")
@dataclass(kw_only=True, eq=False)
class BackwardCorrection(RewardDesign):
    """Unbiased correction of flip noise with known rates: (r~ - rho0) / (1 - rho0 - rho1).

    Transforms the running proxy, so it goes after a `flip` inside `compose`:
    `{name: compose, designs: [{name: flip, fp_rate: .2, fn_rate: .1}, {name: backward_correction,
    fp_rate: .2, fn_rate: .1}]}`. Its rates may differ from the flip's (a misspecified
    correction). Corrected values lie outside [0, 1]: a flipped pass is (1 - rho0) / (1 - rho0 - rho1)
    and a fail is -rho0 / (1 - rho0 - rho1), so E[corrected | y] = r(y).
    """

    fp_rate: float = 0.0  # rho0 the correction assumes
    fn_rate: float = 0.0  # rho1 the correction assumes

    def validate(self, where: str) -> None:
        self.fp_rate = check_rate(self.fp_rate, f"{where}.fp_rate")
        self.fn_rate = check_rate(self.fn_rate, f"{where}.fn_rate")
        if self.fp_rate + self.fn_rate >= 1.0:
            raise RewardConfigError(
                f"{where}.fp_rate + {where}.fn_rate = {self.fp_rate + self.fn_rate} must be below 1 "
                "(the correction divides by 1 - fp_rate - fn_rate)")

    def transform(self, sample: ScoredSample, proxy: float) -> float:
        return (proxy - self.fp_rate) / (1.0 - self.fp_rate - self.fn_rate)

    def signal_map(self, inner: Tuple[float, float]) -> Tuple[float, float]:
        scale = 1.0 - self.fp_rate - self.fn_rate  # the same affine map as transform, on (a, b)
        return ((inner[0] - self.fp_rate) / scale, inner[1] / scale)
