"""A learned reward model as the proxy: a scalar-head model scores (prompt, response).

    reward:
      design: {name: reward_model, path: runs/rm/flip0.2, normalize: whiten}
      num_gpus_per_worker: 0      # 0.25: each RewardWorker holds a quarter of a GPU

The model is loaded once per process on first use (a RewardWorker actor, or `rlvr score`)
and scores every sample of a scoring call in batches. Its errors are a function of
(prompt, response): a systematic design.

The prompt text comes from the sample record ("prompt"); a record without one (a caller that
passes only prompt ids) is looked up in the task rm-train recorded in the model folder, and
the lookup's gold answer must match the sample's.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

from rlvr.rewards.designs import RewardDesign, register_design
from rlvr.rewards.errors import RewardConfigError
from rlvr.rewards.types import ScoredSample

NORMALIZE = ("none", "whiten", "affine")
WHITEN_EPS = 1e-6  # std floor of whitening: a batch of equal scores maps to zeros


def whiten(values: Sequence[float]) -> List[float]:
    """(v - mean) / std over the batch (population std, floored at WHITEN_EPS)."""
    n = len(values)
    if n == 0:
        return []
    mean = sum(values) / n
    std = (sum((v - mean) ** 2 for v in values) / n) ** 0.5
    return [(v - mean) / max(std, WHITEN_EPS) for v in values]


@register_design("reward_model")
@dataclass(kw_only=True, eq=False)
class RewardModelDesign(RewardDesign):
    """proxy = a learned reward model's score of (prompt, response), optionally normalised.
    Replaces the running proxy. Inside `compose` each group is scored (and whitened) alone."""

    errors: typing.ClassVar[str] = "systematic"  # its errors are a function of (prompt, response)
    reads_prompt: typing.ClassVar[bool] = True  # scored records must carry the prompt text

    path: str  # reward model folder (rm-train's --out, or any HF one-label sequence-classification model) or hub id
    normalize: str = "none"  # none | whiten (per scoring call: (s - mean) / std over its samples) | affine (scale * s + shift)
    scale: float = 1.0  # normalize=affine: multiplies the score
    shift: float = 0.0  # normalize=affine: added after scaling
    batch_size: int = 64  # sequences per forward pass
    max_length: int = 256  # tokens of prompt + response the model reads (prompt truncated on the left)
    device: str = "auto"  # auto (cuda when the worker holds a GPU share, else cpu) | cpu | cuda
    dtype: str = "float32"  # float32 | bfloat16 weights

    def validate(self, where: str) -> None:
        if self.normalize not in NORMALIZE:
            raise RewardConfigError(f"{where}.normalize = {self.normalize!r} must be one of {list(NORMALIZE)}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise RewardConfigError(f"{where}.device = {self.device!r} must be auto, cpu or cuda")
        if self.dtype not in ("float32", "bfloat16"):
            raise RewardConfigError(f"{where}.dtype = {self.dtype!r} must be float32 or bfloat16")
        for key in ("batch_size", "max_length"):
            if getattr(self, key) < 1:
                raise RewardConfigError(f"{where}.{key} = {getattr(self, key)} must be >= 1")
        from rlvr.models.resolve import is_hub_id

        if not Path(self.path).expanduser().is_dir() and not is_hub_id(self.path):
            raise RewardConfigError(f"{where}.path = {self.path!r} is neither a folder nor a hub id: "
                                    "train one with `rlvr rm-train RECIPE --out DIR` and give DIR")
        self._where, self._model, self._prompts = where, None, None

    # ---------------------------------------------------------------- scoring

    def _rm(self):
        if self._model is None:
            from rlvr.reward_models.model import RewardModel

            self._model = RewardModel.load(self.path, device=self.device, batch_size=self.batch_size,
                                           max_length=self.max_length, dtype=self.dtype)
        return self._model

    def _prompt_text(self, sample: ScoredSample) -> str:
        if sample.prompt:
            return sample.prompt
        if self._prompts is None:
            from rlvr.reward_models.model import task_prompt_lookup

            self._prompts = task_prompt_lookup(self._rm().info) or {}
        found = self._prompts.get(sample.prompt_id)
        if found is None or str(found[1]) != str(sample.gold):
            raise RewardConfigError(
                f"{self._where}: sample of prompt {sample.prompt_id!r} carries no prompt text and the task "
                f"recorded in {self.path} does not give it (gold {sample.gold!r} vs "
                f"{None if found is None else found[1]!r}): pass records with a 'prompt' field")
        return found[0]

    def raw_scores(self, samples: Sequence[ScoredSample]) -> List[float]:
        """The model's scores [N] of N samples, one batched pass."""
        if not samples:
            return []
        return self._rm().score([self._prompt_text(s) for s in samples], [s.response for s in samples])

    def normalized(self, scores: List[float]) -> List[float]:
        if self.normalize == "whiten":
            return whiten(scores)
        if self.normalize == "affine":
            return [self.scale * s + self.shift for s in scores]
        return scores

    def score_batch(self, groups: Sequence[Sequence[ScoredSample]]) -> List[List[float]]:
        flat = self.normalized(self.raw_scores([s for g in groups for s in g]))
        out, start = [], 0
        for g in groups:
            out.append(flat[start:start + len(g)])
            start += len(g)
        return out

    def apply(self, group: Sequence[ScoredSample], proxy: Sequence[float]) -> List[float]:
        if len(group) != len(proxy):
            raise ValueError(f"{len(group)} samples but {len(proxy)} running proxy values")
        return self.score_batch([group])[0]
