"""Transforms of the running proxy: affine maps and composition of designs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

from rlvr.rewards.designs import RewardDesign, build_design, register_design
from rlvr.rewards.errors import RewardConfigError
from rlvr.rewards.types import ScoredSample


@register_design("affine")
@dataclass(kw_only=True, eq=False)
class Affine(RewardDesign):
    """scale * running proxy + shift (e.g. scale 2, shift -1 maps {0, 1} to {-1, 1})."""

    scale: float = 1.0  # multiplies the running proxy
    shift: float = 0.0  # added after scaling

    def transform(self, sample: ScoredSample, proxy: float) -> float:
        return self.scale * proxy + self.shift

    def signal_map(self, inner: Tuple[float, float]) -> Tuple[float, float]:
        # a rescaling keeps the ranking: labels undo it (when scale > 0) like a flip's scale
        return (self.shift + self.scale * inner[0], self.scale * inner[1])


@register_design("compose")
@dataclass(kw_only=True, eq=False)
class Compose(RewardDesign):
    """Applies designs in order, each to the previous one's output: [d1, d2, d3] gives
    d3(d2(d1(gt))). The first design sees the gt score as its running proxy; a design that
    replaces the running proxy (e.g. random) discards what came before it."""

    designs: List[Dict[str, Any]]  # design specs, applied first to last

    def validate(self, where: str) -> None:
        if not self.designs:
            raise RewardConfigError(f"{where}.designs must list at least one design")
        self._designs = [build_design(spec, f"{where}.designs[{i}]") for i, spec in enumerate(self.designs)]

    @property
    def errors(self) -> str:
        return "stochastic" if any(d.errors == "stochastic" for d in self._designs) else "systematic"

    def apply(self, group: Sequence[ScoredSample], proxy: Sequence[float]) -> List[float]:
        # tracked, so a correct_errors inside sees the systematic part of the designs before it
        return self.apply_tracked(group, proxy, proxy, (0.0, 1.0), False)[0]

    def expected_group(self, group: Sequence[ScoredSample], running: Sequence[float],
                       noisy: bool = False) -> List[float]:
        out = [float(r) for r in running]
        for design in self._designs:
            out = design.expected_group(group, out, noisy)
            noisy = noisy or design.errors == "stochastic"
        return out

    def signal_map(self, inner: Tuple[float, float]) -> Tuple[float, float]:
        for design in self._designs:
            inner = design.signal_map(inner)
        return inner

    def apply_tracked(self, group, proxy, expected, signal, noisy):
        proxy, expected = [float(p) for p in proxy], [float(e) for e in expected]
        for design in self._designs:
            proxy, expected, signal, noisy = design.apply_tracked(group, proxy, expected, signal, noisy)
        return proxy, expected, signal, noisy
