"""The initial policy of a run: a given HF folder, or the tiny model built and warmed up here.

Built models are cached under `<output_dir>/_models/<hash of model+warm-up+task config>`, so
the arms of a study (and reruns) start from the very same weights without re-training; a run
writing elsewhere also uses a model cached under the default `runs/_models`.
Runs started together in one output_dir may build the same cache: one builds it (in its own
`<hash>.building-<pid>` folder, renamed into place under an flock on `<hash>.lock`) while the
others wait on the lock and then use it. A cached folder missing any file is rebuilt.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from rlvr.config.schema import RecipeConfig
from rlvr.tasks import Prompt

WARMUP_INFO = "rlvr_warmup.json"
# Bumped when the warm-up procedure changes what a config builds (2: select on a validation
# slice of the training prompts, not on the eval split), so old cached models are not reused.
WARMUP_VERSION = 2


def policy_cache_key(cfg: RecipeConfig) -> str:
    # max_new_tokens bounds the warm-up's greedy accuracy checks, so it shapes where SFT stops.
    # Only task keys the task reads: one it ignores must not force a new warm-up.
    from rlvr.tasks.registry import keys_read

    blob = json.dumps([asdict(cfg.model), asdict(cfg.warmup), keys_read(cfg.task), cfg.rollout.max_new_tokens,
                       WARMUP_VERSION], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def cache_dirs(cfg: RecipeConfig) -> List[Path]:
    """Folders searched for a cached built model, in order: `<output_dir>/_models` (where a
    build goes), then the default output_dir's (runs/_models), so a study or a run writing
    elsewhere starts from a model the quickstart's runs already warmed up."""
    own, shared = Path(cfg.output_dir) / "_models", Path(RecipeConfig().output_dir) / "_models"
    return [own] if own.absolute() == shared.absolute() else [own, shared]


def find_cached_policy(cfg: RecipeConfig) -> Optional[Tuple[Path, Dict]]:
    """(folder, warm-up info) of a complete cached model for the recipe, or None."""
    key = policy_cache_key(cfg)
    for folder in cache_dirs(cfg):
        info = cached_policy(folder / key)
        if info is not None:
            return folder / key, info
    return None


def warmup_validation_size(cfg: RecipeConfig, num_train: int) -> int:
    """How many of the first training prompts form the warm-up's validation slice."""
    if cfg.warmup.validation_size is not None:
        return cfg.warmup.validation_size
    return max(1, min(128, num_train // 4))


def cached_policy(folder: Path) -> Optional[Dict]:
    """The warm-up info of a complete cached model folder; None if any file is missing or broken."""
    weights = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
    if not (folder / "config.json").is_file() or not any((folder / w).is_file() for w in weights):
        return None
    if not (folder / "tokenizer.json").is_file() or not (folder / "tokenizer_config.json").is_file():
        return None
    try:
        info = json.loads((folder / WARMUP_INFO).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


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
    found = find_cached_policy(cfg)
    if found is not None:
        log(f"initial policy: cached tiny model {found[0]}")
        return str(found[0]), found[1]
    folder = cache_dirs(cfg)[0] / policy_cache_key(cfg)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"initial policy: another run is building {folder}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the builder finishes or dies
        info = cached_policy(folder)  # built by the run we waited for
        if info is not None:
            log(f"initial policy: cached tiny model {folder}")
            return str(folder), info
        if folder.exists():
            log(f"initial policy: {folder} is incomplete; rebuilding it")
            shutil.rmtree(folder)
        for stale in folder.parent.glob(folder.name + ".building*"):  # left by a run that died
            shutil.rmtree(stale, ignore_errors=True)
        tmp = folder.with_name(f"{folder.name}.building-{os.getpid()}")
        info = _build_policy(cfg, tmp, train, held_out, verify, log, final=folder)
        tmp.rename(folder)  # atomic: readers see no folder or a complete one
        log(f"initial policy: built tiny model {folder}")
    return str(folder), info


def _build_policy(cfg: RecipeConfig, tmp: Path, train: List[Prompt], held_out: List[Prompt],
                  verify: Callable, log: Callable[[str], None], final: Optional[Path] = None) -> Dict:
    """Build the tiny model and warm it up in `tmp` (renamed to `final` by the caller, the
    folder the messages name); WARMUP_INFO is written last."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.models.tiny import build_tiny_model
    from rlvr.models.warmup import greedy_accuracy, sft_warmup

    m = cfg.model
    build_tiny_model(tmp, hidden_size=m.hidden_size, num_layers=m.num_layers, num_heads=m.num_heads,
                     intermediate_size=m.intermediate_size, seed=cfg.warmup.seed)
    log(f"building tiny model {final or tmp}")
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
    return info
