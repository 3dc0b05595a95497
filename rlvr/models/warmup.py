"""SFT warm-up: teach the tiny model the task's answer format until a target accuracy.

The initial policy's accuracy is a measured output, not a hope: training stops at the first
check where greedy accuracy on a VALIDATION slice reaches `target_accuracy`. The slice is
carved from the training prompts (and left out of the SFT data), never taken from the
held-out eval split: selecting on the eval split would bias the run's step-0 eval accuracy
upward (the checkpoint that happened to score well there is the one kept).
"""
from __future__ import annotations

import random
import sys
import time
from typing import Callable, Dict, List, Sequence

import torch

from rlvr.rewards.types import GroundTruth
from rlvr.tasks import Prompt


def sft_batch(tokenizer, prompts: Sequence[Prompt], targets: Sequence[str]):
    """Right-padded input ids and labels (-100 on prompt and padding). Shapes [B, T]."""
    rows, labels = [], []
    for p, t in zip(prompts, targets):
        prompt_ids = tokenizer(p.text, add_special_tokens=False)["input_ids"]
        target_ids = tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(prompt_ids + target_ids)
        labels.append([-100] * len(prompt_ids) + target_ids)
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    label_ids = torch.tensor([lab + [-100] * (width - len(lab)) for lab in labels])
    return input_ids, (input_ids != pad).long() | (label_ids != -100).long(), label_ids


@torch.no_grad()
def greedy_accuracy(model, tokenizer, prompts: Sequence[Prompt],
                    verify: Callable[[str, str, dict], GroundTruth], max_new_tokens: int) -> float:
    """Fraction of prompts whose greedy completion the verifier scores 1.0."""
    model.eval()
    enc = tokenizer([p.text for p in prompts], return_tensors="pt", padding=True,
                    add_special_tokens=False)
    out = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    model.train()
    return sum(verify(t, p.gold, p.meta).score >= 1.0 for t, p in zip(texts, prompts)) / len(prompts)


def sft_warmup(model, tokenizer, train: List[Prompt], validation: List[Prompt],
               verify: Callable[[str, str, dict], GroundTruth], targets: Dict[str, str], *,
               steps: int, batch_size: int, lr: float, target_accuracy: float,
               check_every: int, seed: int, max_new_tokens: int, log=print) -> Dict[str, float]:
    """Train in place on `train` until greedy accuracy on `validation` >= target_accuracy or
    `steps` run out. `validation` must not be the eval split (see the module docstring).

    `targets` maps prompt id -> completion text (the eos token is appended here).
    Returns {"steps", "validation_accuracy", "seconds"}: where SFT stopped and why.
    """
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    start, accuracy, step = time.time(), greedy_accuracy(model, tokenizer, validation, verify, max_new_tokens), 0
    log(f"warm-up: step 0 validation greedy accuracy {accuracy:.3f} (target {target_accuracy:.2f})")
    while step < steps and accuracy < target_accuracy:
        batch = rng.sample(train, min(batch_size, len(train)))
        input_ids, attention_mask, labels = sft_batch(tokenizer, batch, [targets[p.id] for p in batch])
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % check_every == 0 or step == steps:
            accuracy = greedy_accuracy(model, tokenizer, validation, verify, max_new_tokens)
            log(f"warm-up: step {step} loss {loss.item():.3f} validation greedy accuracy {accuracy:.3f}")
            sys.stdout.flush()
    return {"steps": step, "validation_accuracy": accuracy, "seconds": time.time() - start}
