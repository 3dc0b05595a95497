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
# Bumped when the warm-up procedure changes what a config builds (2: select on a validation
# slice of the training prompts, not on the eval split), so old cached models are not reused.
WARMUP_VERSION = 2


def policy_cache_key(cfg: RecipeConfig) -> str:
    # max_new_tokens bounds the warm-up's greedy accuracy checks, so it shapes where SFT stops.
    blob = json.dumps([asdict(cfg.model), asdict(cfg.warmup), asdict(cfg.task), cfg.rollout.max_new_tokens,
                       WARMUP_VERSION], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def warmup_validation_size(cfg: RecipeConfig, num_train: int) -> int:
    """How many of the first training prompts form the warm-up's validation slice."""
    if cfg.warmup.validation_size is not None:
        return cfg.warmup.validation_size
    return max(1, min(128, num_train // 4))


def prepare_policy(cfg: RecipeConfig, train: List[Prompt], held_out: List[Prompt],
                   verify: Callable, log: Callable[[str], None]) -> Tuple[str, Dict]:
    """(model folder, warm-up info).

    A given model.path (local folder or hub id) is resolved to an absolute local folder once
    here; actors and checkpoints only ever see that folder. A built tiny model: SFT trains on
    `train` minus its first `warmup.validation_size` prompts and stops on greedy accuracy over
    those; `held_out` (the eval split) is only measured once at the end, so info holds both
    `validation_accuracy` (what selected the policy) and `eval_accuracy`.
    """
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
    from rlvr.models.warmup import greedy_accuracy, sft_warmup

    tmp = folder.with_name(folder.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    m = cfg.model
    build_tiny_model(tmp, hidden_size=m.hidden_size, num_layers=m.num_layers, num_heads=m.num_heads,
                     intermediate_size=m.intermediate_size, seed=cfg.warmup.seed)
    log(f"built tiny model in {tmp}")
    info: Dict = {"source": "tiny", "steps": 0, "validation_accuracy": None, "eval_accuracy": None}
    if cfg.warmup.enabled:
        torch.set_num_threads(1)
        tok = AutoTokenizer.from_pretrained(tmp)
        model = AutoModelForCausalLM.from_pretrained(tmp)
        w = cfg.warmup
        n_val = warmup_validation_size(cfg, len(train))
        validation, sft_prompts = list(train[:n_val]), list(train[n_val:])
        targets = {p.id: p.meta.get("sft_target", f"{p.gold};") for p in sft_prompts}
        info.update(sft_warmup(model, tok, sft_prompts, validation, verify, targets, steps=w.steps,
                               batch_size=w.batch_size, lr=w.lr, target_accuracy=w.target_accuracy,
                               check_every=w.check_every, seed=w.seed,
                               max_new_tokens=cfg.rollout.max_new_tokens, log=log))
        info["validation_size"] = len(validation)
        info["eval_accuracy"] = greedy_accuracy(model, tok, held_out, verify, cfg.rollout.max_new_tokens)
        log(f"warm-up: validation greedy accuracy {info['validation_accuracy']:.3f}, "
            f"held-out eval greedy accuracy {info['eval_accuracy']:.3f} (measured, not selected on)")
        model.save_pretrained(tmp, safe_serialization=True)
    (tmp / WARMUP_INFO).write_text(json.dumps(info, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return str(folder), info
