"""Bradley-Terry training of a scalar-head model on preference pairs (in-process, one device)."""
from __future__ import annotations

import random
from typing import Any, Callable, Dict, List, Mapping, Sequence

import torch

from rlvr.reward_models.bradley_terry import bt_loss, pairwise_accuracy
from rlvr.reward_models.model import forward_scores


def train_bradley_terry(model, tok, pairs: Sequence[Mapping[str, Any]], steps: int, batch_size: int, lr: float,
                        weight_decay: float = 0.0, seed: int = 0, max_length: int = 256, log_every: int = 10,
                        on_log: Callable[[Dict[str, Any]], None] = lambda row: None) -> List[Dict[str, Any]]:
    """Train `model` in place on pairs ({"prompt", "chosen", "rejected"}); batches are drawn
    without replacement per epoch. Returns the curve: every log_every steps (and the last),
    {"step", "loss", "accuracy"} averaged over the steps since the previous line."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    rng, order, curve, window = random.Random(f"rm-batches:{seed}"), [], [], []
    for step in range(1, steps + 1):
        batch = []
        while len(batch) < min(batch_size, len(pairs)):
            if not order:
                order = list(range(len(pairs)))
                rng.shuffle(order)
            batch.append(pairs[order.pop()])
        prompts = [p["prompt"] for p in batch]
        scores = forward_scores(model, tok, prompts + prompts, [p["chosen"] for p in batch]
                                + [p["rejected"] for p in batch], max_length)
        chosen, rejected = scores[:len(batch)], scores[len(batch):]
        loss = bt_loss(chosen, rejected)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        window.append((loss.item(), pairwise_accuracy(chosen.detach(), rejected.detach())))
        if step % log_every == 0 or step == steps:
            row = {"step": step, "loss": sum(w[0] for w in window) / len(window),
                   "accuracy": sum(w[1] for w in window) / len(window)}
            curve.append(row)
            on_log(row)
            window = []
    model.eval()
    return curve


@torch.no_grad()
def pair_accuracy(model, tok, pairs: Sequence[Mapping[str, Any]], batch_size: int = 128,
                  max_length: int = 256) -> float:
    """Share of pairs the model scores chosen above rejected (None-free: pairs must be non-empty)."""
    model.eval()
    correct = 0
    for i in range(0, len(pairs), batch_size):
        batch = pairs[i:i + batch_size]
        prompts = [p["prompt"] for p in batch]
        scores = forward_scores(model, tok, prompts + prompts,
                                [p["chosen"] for p in batch] + [p["rejected"] for p in batch], max_length)
        correct += int((scores[:len(batch)] > scores[len(batch):]).sum())
    return correct / len(pairs)
