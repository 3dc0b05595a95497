"""Causal arms at LM scale: correct exactly one class of another design's errors, online, and
its matched control.

`correct_errors` goes last inside `compose`: it labels the errors of the designs before it in
each group with the one labeller (rlvr/rewards/labels.py), on their *systematic* part (the
expected proxy with a noise channel undone: plain flip noise has no such errors, so correcting
"hacking" under it corrects nothing), and sets the proxy back to the ground truth on the errors
whose label is in `labels` (optionally only in groups of one kind). A study with the design
alone and the design with one class corrected, against a ground-truth control, measures that
class's effect on ground-truth accuracy:

    reward.design: {name: compose, designs: [{name: flip, fp_rate: 0.4, persistent: true},
                    {name: correct_errors, labels: [harmful_hacking], groups: all_wrong}]}

Correcting errors also means *fewer errors*. With `matched_random: true` the same design counts
the errors it would correct in each group (so per step, too) and corrects that many errors chosen
at random (seeded per sample) among all the group's labelled errors instead: the arm pair
separates "this class" from "fewer errors". Either arm changes the corrected sample's reward and
with it its group's mean and std, hence every advantage in the group (docs/labels.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence

from rlvr.rewards.designs import RewardDesign, register_design
from rlvr.rewards.errors import RewardConfigError
from rlvr.rewards.labels import NONE, ONLINE_LABELS
from rlvr.rewards.seeded import seeded_uniform
from rlvr.rewards.types import ScoredSample

GROUP_KINDS = ("any", "all_wrong", "mixed", "all_right")
RENAMED = {"benign_best": "beneficial_best"}


def group_kind(gts: Sequence[float], gt_pass: float = 1.0) -> str:
    """'all_wrong' (no sample passes the ground truth), 'all_right', or 'mixed'."""
    passes = [g >= gt_pass for g in gts]
    return "all_right" if all(passes) else "all_wrong" if not any(passes) else "mixed"


@register_design("correct_errors")
@dataclass(kw_only=True, eq=False)
class CorrectErrors(RewardDesign):
    """Restore gt on the running proxy's errors of the given online labels (or, with
    matched_random, on as many randomly chosen errors). Labels are computed on the systematic part
    of the designs before it, before any correction, so it goes last in compose."""

    labels: List[str] = field(default_factory=list)  # online labels to correct, e.g. [harmful_hacking]
    groups: str = "any"  # only in groups that are: any | all_wrong | mixed | all_right (by ground truth)
    matched_random: bool = False  # correct as many errors as `labels` selects, chosen at random among all errors
    seed: int = 0  # matched_random's draws: a pure function of (seed, prompt id, sample index)

    def validate(self, where: str) -> None:
        if not self.labels:
            raise RewardConfigError(f"{where}.labels is empty; name the labels to correct, from {list(ONLINE_LABELS)}")
        for i, label in enumerate(self.labels):
            if label not in ONLINE_LABELS:
                hint = f" (renamed {RENAMED[label]!r})" if label in RENAMED else ""
                raise RewardConfigError(f"{where}.labels[{i}] = {label!r} is not an online label{hint}; "
                                        f"choose from {list(ONLINE_LABELS)}")
        if self.groups not in GROUP_KINDS:
            raise RewardConfigError(f"{where}.groups = {self.groups!r} must be one of {list(GROUP_KINDS)}")

    def chosen(self, group: Sequence[ScoredSample], systematic: Sequence[float]) -> List[bool]:
        """Which samples of the group [G] this arm corrects, given their systematic proxy [G]."""
        from rlvr.rewards.labels import label_group

        gts = [float(s.gt.score) for s in group]
        if self.groups != "any" and group_kind(gts) != self.groups:
            return [False] * len(group)
        names = label_group(gts, systematic)
        picked = [name in self.labels for name in names]
        if not self.matched_random:
            return picked
        errors = [j for j, name in enumerate(names) if name != NONE]
        draws = {j: seeded_uniform(self.seed, group[j].prompt_id, group[j].sample_index, salt="matched_random")
                 for j in errors}
        keep = set(sorted(errors, key=draws.__getitem__)[:sum(picked)])
        return [j in keep for j in range(len(group))]

    def apply(self, group: Sequence[ScoredSample], proxy: Sequence[float]) -> List[float]:
        """Alone (outside compose) the running proxy counts as its own systematic part."""
        return self.apply_tracked(group, proxy, proxy, (0.0, 1.0), False)[0]

    def apply_tracked(self, group, proxy, expected, signal, noisy):
        if len(group) != len(proxy) or len(group) != len(expected):
            raise ValueError(f"{len(group)} samples but {len(proxy)} running proxy values")
        a, b = signal
        systematic = [(e - a) / b for e in expected] if b > 0 else list(expected)
        fix = self.chosen(group, systematic)
        gts = [float(s.gt.score) for s in group]
        # A corrected sample gets r_G; its expected proxy becomes a + b r_G, so its systematic
        # error is gone, and any gap to the channel's scale counts as noise.
        return ([g if f else float(p) for g, p, f in zip(gts, proxy, fix)],
                [a + b * g if f and b > 0 else (g if f else float(e)) for g, e, f in zip(gts, expected, fix)],
                signal, noisy)

    def expected_group(self, group, running, noisy=False):
        return self.apply_tracked(group, running, running, (0.0, 1.0), noisy)[1]

