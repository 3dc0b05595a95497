"""`rlvr rm-train RECIPE [key=value ...] [rm.<knob>=value ...] --out DIR`: a Bradley-Terry reward
model trained on preference pairs built from the task's ground truth and a policy's samples,
with controlled flaws (rm.flip_rate, rm.bias, rm.bias_share, rm.bias_rate; see pairs.py and
train_config.py for every knob).

Plain key=value items override the recipe (task, model, warm-up, rollout sampling, output_dir
for the initial-policy cache); rm.* items are the knobs. Runs in-process (no Ray).

DIR gets: the model (config.json, model.safetensors, tokenizer files: what
`reward.design.path` loads), curve.jsonl (loss and batch accuracy every rm.log_every steps),
heldout.json (held-out pairwise accuracy on eval-split prompts, labelled by the ground truth),
pairs.jsonl (the training pairs) and rlvr_reward_model.json (recipe, knobs, the flaws the
pairs measurably have, the task for prompt lookup). Exit status: 0, 2 for bad input.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List

from rlvr.reward_models.model import INFO_FILE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlvr rm-train", description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", help="recipe YAML (its task, verifier and initial policy)")
    parser.add_argument("overrides", nargs="*", help="recipe overrides key=value, and rm.<knob>=value")
    parser.add_argument("--out", required=True, help="folder for the reward model and its records")
    return parser


def class_accuracy(model, tok, prompts, bias: str, answer_format: str, seed: int, max_length: int):
    """Share of (gold, class answer) pairs on `prompts` ranked gold first; None for non-integer golds."""
    from rlvr.reward_models.pairs import class_response, gold_response
    from rlvr.reward_models.training import pair_accuracy

    rng = random.Random(f"rm-class:{bias}:{seed}")
    try:
        pairs = [{"prompt": p.text, "chosen": gold_response(p.gold, answer_format),
                  "rejected": class_response(p.gold, bias, rng, answer_format)} for p in prompts]
    except ValueError:
        return None
    return pair_accuracy(model, tok, pairs, max_length=max_length) if pairs else None


def train_reward_model(cfg, rm, out: Path, recipe: str = "", overrides: List[str] = ()) -> Dict[str, Any]:
    """Sample, build pairs, train, write DIR (see the module doc); returns heldout.json's dict."""
    import torch

    from rlvr.reward_models.model import pick_device, scalar_head_model
    from rlvr.reward_models.pairs import build_pairs, candidate_pairs, measure_pairs
    from rlvr.controller.prompts import seeded_choice, task_prompts
    from rlvr.reward_models.sampling import log, policy_folder, scored_samples
    from rlvr.reward_models.training import pair_accuracy, train_bradley_terry

    started = time.time()
    train_prompts, eval_prompts = task_prompts(cfg)
    model_dir, policy_info = policy_folder(cfg, rm.policy)
    device = str(pick_device(rm.device))
    chosen_prompts = seeded_choice(train_prompts, rm.prompts, rm.seed)
    heldout_prompts = seeded_choice(eval_prompts, rm.heldout_prompts, rm.seed)
    log(f"sampling {rm.samples_per_prompt} answers on {len(chosen_prompts)} + {len(heldout_prompts)} prompts "
        f"from {model_dir}")
    groups = scored_samples(cfg, model_dir, chosen_prompts, rm.samples_per_prompt, seed=rm.seed, device=device)
    heldout_groups = scored_samples(cfg, model_dir, heldout_prompts, rm.samples_per_prompt,
                                    seed=rm.seed + 10_000, device=device)
    golds = {p.id: p.gold for p in chosen_prompts}
    pairs = build_pairs(groups, golds, rm.pairs, flip_rate=rm.flip_rate, bias=rm.bias, bias_share=rm.bias_share,
                        bias_rate=rm.bias_rate, seed=rm.seed, answer_format=rm.answer_format)
    measured = measure_pairs(pairs)
    heldout_pairs = candidate_pairs(heldout_groups)
    log(f"{len(pairs)} training pairs (flip share {measured['flip_share']}, class share {measured['class_share']}, "
        f"bias rate {measured['bias_rate']}), {len(heldout_pairs)} held-out pairs")

    torch.manual_seed(rm.seed)  # the fresh head's init
    if rm.model_path or rm.init == "policy":
        model, tok = scalar_head_model(rm.model_path or model_dir)
    else:
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForSequenceClassification.from_config(
            AutoConfig.from_pretrained(model_dir, num_labels=1, pad_token_id=tok.pad_token_id))
    model.to(device)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "curve.jsonl", "w") as curve_file:
        def on_log(row):
            curve_file.write(json.dumps(row) + "\n")
            curve_file.flush()
            log(f"step {row['step']}/{rm.steps}: loss {row['loss']:.4f}, batch accuracy {row['accuracy']:.3f}")

        train_bradley_terry(model, tok, pairs, rm.steps, rm.batch_size, rm.lr, rm.weight_decay, rm.seed,
                            rm.max_length, rm.log_every, on_log)
    heldout = {
        "heldout/pairwise_accuracy": (pair_accuracy(model, tok, heldout_pairs, max_length=rm.max_length)
                                      if heldout_pairs else None),
        "heldout/pairs": len(heldout_pairs),
        "heldout/prompts": len(heldout_prompts),
        "train/pair_label_accuracy": pair_accuracy(model, tok, pairs, max_length=rm.max_length),
        **{f"heldout/{b}_accuracy": class_accuracy(model, tok, heldout_prompts, b, rm.answer_format, rm.seed,
                                                   rm.max_length) for b in ("off_by_one", "longer")},
    }
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    with open(out / "pairs.jsonl", "w") as f:
        for p in pairs:
            f.write(json.dumps(p) + "\n")
    (out / "heldout.json").write_text(json.dumps(heldout, indent=1) + "\n")
    info = {"recipe": recipe, "overrides": list(overrides), "rm": asdict(rm), "policy": model_dir,
            "policy_info": policy_info, "pairs_measured": measured, **heldout,
            "task": asdict(cfg.task), "verifier": cfg.reward.verifier, "seconds": round(time.time() - started, 1)}
    (out / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n")
    acc = heldout["heldout/pairwise_accuracy"]
    log(f"reward model in {out}: held-out pairwise accuracy {'-' if acc is None else f'{acc:.3f}'} "
        f"({time.time() - started:.0f} s)")
    return heldout


def main(argv: List[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    from rlvr.config import RecipeError, load_recipe
    from rlvr.reward_models.train_config import load_rm_config, split_overrides

    recipe_overrides, rm_overrides = split_overrides(args.overrides)
    try:
        cfg = load_recipe(args.recipe, recipe_overrides)
        rm = load_rm_config(rm_overrides)
    except (RecipeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        train_reward_model(cfg, rm, Path(args.out), args.recipe, args.overrides)
    except ValueError as err:  # e.g. no rankable pairs, a bias that needs integer golds
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
