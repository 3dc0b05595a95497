"""The initial policy of a run: a given HF folder, or the tiny model built and warmed up here.

Built models are cached under `<output_dir>/_models/<hash of model+warm-up+task config>`, so
the arms of a study (and reruns) start from the very same weights without re-training.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Dict, List, Tuple

from rlvr.config.schema import RecipeConfig
from rlvr.tasks import Prompt

WARMUP_INFO = "rlvr_warmup.json"


def policy_cache_key(cfg: RecipeConfig) -> str:
    # max_new_tokens bounds the warm-up's greedy accuracy checks, so it shapes where SFT stops.
    blob = json.dumps([asdict(cfg.model), asdict(cfg.warmup), asdict(cfg.task), cfg.rollout.max_new_tokens],
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def prepare_policy(cfg: RecipeConfig, train: List[Prompt], held_out: List[Prompt],
                   verify: Callable, log: Callable[[str], None]) -> Tuple[str, Dict]:
    """(model folder, warm-up info). info["accuracy"] is the measured initial greedy accuracy.

    A given model.path (local folder or hub id) is resolved to an absolute local folder once
    here; actors and checkpoints only ever see that folder."""
    if cfg.model.path:
        from rlvr.models.resolve import resolve_model_path

        folder, info = resolve_model_path(cfg.model.path)
        log(f"initial policy: {folder}" + (f" (hub {info['hub_id']} @ {info['revision'][:12]})"
                                           if "hub_id" in info else ""))
        return folder, info
    folder = Path(cfg.output_dir) / "_models" / policy_cache_key(cfg)
    info_file = folder / WARMUP_INFO
    if info_file.is_file():
        log(f"initial policy: cached tiny model {folder}")
        return str(folder), json.loads(info_file.read_text())
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.models.tiny import build_tiny_model
    from rlvr.models.warmup import sft_warmup

    tmp = folder.with_name(folder.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    m = cfg.model
    build_tiny_model(tmp, hidden_size=m.hidden_size, num_layers=m.num_layers, num_heads=m.num_heads,
                     intermediate_size=m.intermediate_size, seed=cfg.warmup.seed)
    log(f"built tiny model in {tmp}")
    info: Dict = {"source": "tiny", "steps": 0, "accuracy": None}
    if cfg.warmup.enabled:
        torch.set_num_threads(1)
        tok = AutoTokenizer.from_pretrained(tmp)
        model = AutoModelForCausalLM.from_pretrained(tmp)
        w = cfg.warmup
        targets = {p.id: p.meta.get("sft_target", f"{p.gold};") for p in train}
        info.update(sft_warmup(model, tok, train, held_out, verify, targets, steps=w.steps,
                               batch_size=w.batch_size, lr=w.lr, target_accuracy=w.target_accuracy,
                               check_every=w.check_every, seed=w.seed,
                               max_new_tokens=cfg.rollout.max_new_tokens, log=log))
        model.save_pretrained(tmp, safe_serialization=True)
    (tmp / WARMUP_INFO).write_text(json.dumps(info, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return str(folder), info
