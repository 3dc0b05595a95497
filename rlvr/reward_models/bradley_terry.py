"""Bradley-Terry preference loss (pure tensor functions).

P(y+ preferred over y-) = sigmoid(r(y+) - r(y-)); the loss is its negative log-likelihood,
-log sigmoid(r+ - r-) = log(1 + exp(-(r+ - r-))), averaged over pairs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bt_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Mean -log sigmoid(chosen - rejected) over pairs; chosen, rejected [N] -> 0-dim."""
    if chosen.shape != rejected.shape or chosen.numel() == 0:
        raise ValueError(f"chosen {tuple(chosen.shape)} and rejected {tuple(rejected.shape)} must be "
                         "non-empty and of one shape")
    return -F.logsigmoid(chosen - rejected).mean()


def pairwise_accuracy(chosen: torch.Tensor, rejected: torch.Tensor) -> float:
    """Share of pairs with r(y+) > r(y-) (ties count as wrong); chosen, rejected [N]."""
    if chosen.shape != rejected.shape or chosen.numel() == 0:
        raise ValueError("chosen and rejected must be non-empty and of one shape")
    return (chosen > rejected).double().mean().item()
