"""A reward model: an HF sequence-classification model with one label (a scalar head on the
last non-pad token), read from a folder or a hub id, scoring (prompt, response) texts.

rlvr's tiny reward model is the tiny Llama policy (rlvr/models/tiny.py) with its LM head
replaced by a value head: `LlamaForSequenceClassification(num_labels=1)` over the same
backbone and character tokenizer, so the same code path serves the tiny model on CPU and a
real HF reward model on a GPU.

    rm = RewardModel.load("runs/rm/flip0.2")          # or a hub id
    rm.score(["12+34=", "12+34="], ["46;", "45;"])      # -> [2.1, -0.7]
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

INFO_FILE = "rlvr_reward_model.json"  # what rm-train wrote: task, knobs, measured flaws


def pick_device(device: str) -> torch.device:
    """'auto' = cuda when this process sees a GPU (a reward worker given a GPU share), else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_folder(path: str) -> str:
    """A local folder as is; a hub id resolved once into the HF cache (rlvr.models.resolve)."""
    if Path(path).expanduser().is_dir():
        return str(Path(path).expanduser())
    from rlvr.models.resolve import resolve_model_path

    folder, _ = resolve_model_path(path)
    return folder


def reward_model_info(folder: str) -> Dict:
    """rm-train's record of a folder (empty for a reward model rlvr did not train)."""
    info = Path(folder) / INFO_FILE
    return json.loads(info.read_text()) if info.is_file() else {}


def scalar_head_model(source: str, dtype: torch.dtype = torch.float32):
    """(model, tokenizer) with a one-label sequence-classification head from `source`: an
    existing reward model, or a causal LM whose backbone gets a fresh scalar head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(source)
    if tok.pad_token_id is None:  # pooling finds the last non-pad token: it needs a pad id
        tok.pad_token = tok.eos_token
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a causal LM's fresh head is expected: no load report for it
    try:
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, dtype=dtype)
    finally:
        hf_logging.set_verbosity(level)
    if model.config.num_labels != 1:
        raise ValueError(f"reward model {source}: {model.config.num_labels} labels; a reward model has one")
    model.config.pad_token_id = tok.pad_token_id
    return model, tok


def encode(tok, prompts: Sequence[str], responses: Sequence[str], max_length: int,
           device: torch.device) -> Dict[str, torch.Tensor]:
    """Left-padded input ids and mask [B, T] of prompt + response texts (truncated on the left,
    so the response and its last token, which the head reads, are kept)."""
    texts = [p + r for p, r in zip(prompts, responses)]
    side, tok.padding_side, tok.truncation_side = tok.padding_side, "left", "left"
    try:
        batch = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_length,
                    add_special_tokens=False)
    finally:
        tok.padding_side = side
    return {"input_ids": batch["input_ids"].to(device), "attention_mask": batch["attention_mask"].to(device)}


def forward_scores(model, tok, prompts: Sequence[str], responses: Sequence[str], max_length: int = 256
                   ) -> torch.Tensor:
    """Scalar rewards [B] (with grad when enabled) of B (prompt, response) pairs."""
    device = next(model.parameters()).device
    batch = encode(tok, prompts, responses, max_length, device)
    return model(**batch).logits[:, 0].float()


class RewardModel:
    """A loaded reward model in eval mode; `score` batches texts."""

    def __init__(self, model, tok, folder: str, batch_size: int = 64, max_length: int = 256):
        self.model, self.tok, self.folder = model.eval(), tok, folder
        self.batch_size, self.max_length = batch_size, max_length
        self.info = reward_model_info(folder)

    @classmethod
    def load(cls, path: str, device: str = "auto", batch_size: int = 64, max_length: int = 256,
             dtype: str = "float32") -> "RewardModel":
        folder = resolve_folder(path)
        model, tok = scalar_head_model(folder, getattr(torch, dtype))
        return cls(model.to(pick_device(device)), tok, folder, batch_size, max_length)

    @torch.no_grad()
    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> List[float]:
        """Rewards [B] of B (prompt, response) pairs, in batches of batch_size."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        out: List[float] = []
        for i in range(0, len(prompts), self.batch_size):
            out += forward_scores(self.model, self.tok, prompts[i:i + self.batch_size],
                                  responses[i:i + self.batch_size], self.max_length).tolist()
        return out


def task_prompt_lookup(info: Dict) -> Optional[Dict[str, tuple]]:
    """prompt id -> (prompt text, gold) of the task rm-train recorded (train and eval splits),
    or None when the folder records no task."""
    task = info.get("task")
    if not task:
        return None
    from rlvr.tasks.registry import get_task_prompts

    template = task.get("prompt_template", "{question}")
    out = {}
    for split, size in (("train", task.get("train_size", 0)), ("eval", task.get("eval_size", 0))):
        for p in get_task_prompts(task, split, int(size)):
            out[p.id] = (template.replace("{question}", p.text), p.gold)
    return out
