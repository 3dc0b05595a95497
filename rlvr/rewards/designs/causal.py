"""Causal arms at LM scale: correct exactly one class of another design's errors, online.

`correct_errors` goes last inside `compose`: it labels the running proxy's errors in each
group with the online categories (rlvr/rewards/categorize.py) and sets the proxy back to the
ground truth on the errors whose label is in `labels` (and, optionally, only in groups of one
kind). A study with the design alone and the design with one class corrected, against a
ground-truth control, measures that class's causal effect on ground-truth accuracy:

    reward.design: {name: compose, designs: [{name: flip, fp_rate: 0.4},
                    {name: correct_errors, labels: [harmful_hacking], groups: all_wrong}]}
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence

from rlvr.rewards.designs import RewardDesign, register_design
from rlvr.rewards.errors import RewardConfigError
from rlvr.rewards.labels import ONLINE_LABELS
from rlvr.rewards.types import ScoredSample

GROUP_KINDS = ("any", "all_wrong", "mixed", "all_right")


def group_kind(gts: Sequence[float], gt_pass: float = 1.0) -> str:
    """'all_wrong' (no sample passes the ground truth), 'all_right', or 'mixed'."""
    passes = [g >= gt_pass for g in gts]
    return "all_right" if all(passes) else "all_wrong" if not any(passes) else "mixed"


@register_design("correct_errors")
@dataclass(kw_only=True, eq=False)
class CorrectErrors(RewardDesign):
    """Restore gt on the running proxy's errors of the given online labels. Transforms the
    running proxy (labels are computed on it before any correction), so it goes last in compose."""

    labels: List[str] = field(default_factory=list)  # online labels to correct, e.g. [harmful_hacking]
    groups: str = "any"  # only in groups that are: any | all_wrong | mixed | all_right (by ground truth)

    def validate(self, where: str) -> None:
        if not self.labels:
            raise RewardConfigError(f"{where}.labels is empty; name the labels to correct, from {list(ONLINE_LABELS)}")
        for i, label in enumerate(self.labels):
            if label not in ONLINE_LABELS:
                raise RewardConfigError(f"{where}.labels[{i}] = {label!r} is not an online label; "
                                        f"choose from {list(ONLINE_LABELS)}")
        if self.groups not in GROUP_KINDS:
            raise RewardConfigError(f"{where}.groups = {self.groups!r} must be one of {list(GROUP_KINDS)}")

    def apply(self, group: Sequence[ScoredSample], proxy: Sequence[float]) -> List[float]:
        import torch

        from rlvr.rewards.categorize import SUBCATEGORIES, category_codes

        if len(group) != len(proxy):
            raise ValueError(f"{len(group)} samples but {len(proxy)} running proxy values")
        gts = [float(s.gt.score) for s in group]
        if self.groups != "any" and group_kind(gts) != self.groups:
            return [float(p) for p in proxy]
        codes = category_codes(torch.tensor([list(proxy)], dtype=torch.float64),
                               torch.tensor([gts], dtype=torch.float64), fine=True)[0].tolist()
        fix = {SUBCATEGORIES.index(label) for label in self.labels}
        return [g if c in fix else float(p) for g, p, c in zip(gts, proxy, codes)]
