"""What a trainer rank writes and reads: the whole HF weights (rank 0), DeepSpeed's training
state (every rank: ZeRO shards, optimizer, step counters), and a digest of the parameters."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Dict, Optional

import torch
from torch import Tensor

from rlvr.trainer.deepspeed_setup import whole_parameters

# Files a HF model folder holds besides weights and config (copied by save_hf).
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".index.json")
_MODEL_FILES = ("config.json", "generation_config.json")
_STATE_TAG = "deepspeed"  # sub-folder of a checkpoint's trainer state


def full_state_dict(module: torch.nn.Module, rank: int, zero_stage: int) -> Optional[Dict[str, Tensor]]:
    """Whole CPU state dict with HF names on rank 0 (None elsewhere); all ranks must call.

    Same keys as the HF model's `state_dict()` (tied weights appear under both names and
    share one tensor), so `load_state_dict` and vLLM's weight loader accept it.
    """
    result = None
    with whole_parameters(module, zero_stage):
        if rank == 0:
            copies: Dict[int, Tensor] = {}
            result = {}
            for name, tensor in module.state_dict().items():
                key = tensor.data_ptr()
                if key not in copies:
                    copies[key] = tensor.detach().to("cpu", copy=True)
                result[name] = copies[key]
    return result


def state_digest(module: torch.nn.Module, zero_stage: int) -> str:
    """sha256 of the full parameters (gathered under ZeRO-3); all ranks must call."""
    h = hashlib.sha256()
    with whole_parameters(module, zero_stage):
        for name, p in sorted(module.named_parameters()):
            h.update(name.encode())
            h.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def save_hf(module: torch.nn.Module, state: Optional[Dict[str, Tensor]], model_dir: str, out_dir: str) -> str:
    """Write a HF safetensors folder of `state` (+ the tokenizer files of model_dir); rank 0 only."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    module.save_pretrained(str(out), state_dict=state, safe_serialization=True)
    for src in Path(model_dir).iterdir():
        if (src.is_file() and src.name not in _MODEL_FILES
                and not src.name.endswith(_WEIGHT_SUFFIXES)
                and not (out / src.name).exists()):
            shutil.copy2(src, out / src.name)
    return str(out)


def save_training_state(engine, out_dir: str) -> None:
    """DeepSpeed checkpoint of weights, optimizer and step counters (ZeRO shards are written
    per rank: multi-node runs need `out_dir` on shared storage); all ranks call."""
    engine.save_checkpoint(str(out_dir), tag=_STATE_TAG)


def load_training_state(engine, in_dir: str) -> None:
    """Restore what save_training_state wrote (the reference model stays the initial one)."""
    path, _ = engine.load_checkpoint(str(in_dir), tag=_STATE_TAG, load_optimizer_states=True,
                                     load_lr_scheduler_states=True)
    if path is None:
        raise FileNotFoundError(f"no trainer state under {in_dir}/{_STATE_TAG}")
