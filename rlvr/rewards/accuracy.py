"""A policy's ground-truth accuracy from sampled answers (pure functions, no I/O).

`correct` is a [P, k] boolean tensor: sample j of prompt i was scored correct (gt >= 1).
Greedy evaluation gives one answer per prompt and a standard error of about
sqrt(a (1 - a) / P); k sampled answers per prompt average out the sampling noise of each
prompt, which makes curves smoother and arms easier to separate.
"""
from __future__ import annotations

import math
from typing import Dict

import torch
from torch import Tensor


def _check(correct: Tensor) -> None:
    if correct.dim() != 2 or correct.numel() == 0:
        raise ValueError(f"correct must be a non-empty [prompts, samples] tensor, got shape {tuple(correct.shape)}")


def per_prompt_success(correct: Tensor) -> Tensor:
    """[P] fraction of each prompt's k samples that are correct."""
    _check(correct)
    return correct.to(torch.float64).mean(dim=1)


def pass_at_k(correct: Tensor, k: int) -> float:
    """Unbiased pass@k from n >= k samples per prompt (Chen et al. 2021, arXiv:2107.03374):
    mean over prompts of 1 - C(n - c, k) / C(n, k), c = correct samples of the prompt."""
    _check(correct)
    n = correct.shape[1]
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: k = {k} must be within [1, {n}] (the samples per prompt)")
    values = []
    for c in correct.sum(dim=1).tolist():
        values.append(1.0 if n - c < k else 1.0 - math.comb(n - int(c), k) / math.comb(n, k))
    return sum(values) / len(values)


def sampled_eval_metrics(correct: Tensor) -> Dict[str, float]:
    """`eval/gt_accuracy_sampled` (mean over every sample) and `eval/pass_at_k` (k = samples
    per prompt) of a [P, k] correctness tensor."""
    return {"eval/gt_accuracy_sampled": float(per_prompt_success(correct).mean()),
            "eval/pass_at_k": pass_at_k(correct, correct.shape[1])}
