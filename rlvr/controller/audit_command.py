"""`rlvr audit RECIPE [key=value ...] [--out AUDIT.json] [--prompts N]`: profile a recipe's
initial policy under its proxy reward before any RL (rlvr/rewards/audit.py).

It builds (or finds cached) the same initial policy `rlvr train` would start from, starts the
recipe's rollout and reward actors, samples G answers on N training prompts and prints the
profile; nothing is trained and no run folder is written. Exit status: 0, 2 for a bad recipe.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional, Tuple


def recipe_and_prompt_count(recipe: str, overrides: List[str], prompts: Optional[int]) -> Optional[Tuple]:
    """(loaded recipe, training prompts to profile: --prompts, else eval.audit_prompts, else 64),
    or None once the error is printed (rlvr audit and rlvr rm-eval)."""
    from rlvr.config import RecipeError, load_recipe

    try:
        cfg = load_recipe(recipe, overrides)
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return None
    num_prompts = prompts or cfg.eval.audit_prompts or 64
    if num_prompts < 1:
        print(f"error: --prompts = {num_prompts} must be >= 1", file=sys.stderr)
        return None
    return cfg, num_prompts


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="rlvr audit",
                                     description="Profile a recipe's initial policy under its proxy reward.")
    parser.add_argument("recipe", help="recipe YAML")
    parser.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. reward.design.fp_rate=0.2")
    parser.add_argument("--out", help="also write the profile as JSON here")
    parser.add_argument("--prompts", type=int, help="training prompts to profile (default: eval.audit_prompts, "
                                                    "else 64)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    loaded = recipe_and_prompt_count(args.recipe, args.overrides, args.prompts)
    if loaded is None:
        return 2
    cfg, num_prompts = loaded
    if args.out:
        out = Path(args.out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            print(f"error: --out {out}: {err.strerror}", file=sys.stderr)
            return 2

    from rlvr.controller.loop import Controller
    from rlvr.rewards.audit import format_audit

    controller = Controller(cfg)
    try:
        train_prompts, _, model_dir, warmup = controller.inputs()
        controller.actors.wait_ready(model_dir)
        profile = controller.audit(train_prompts, min(num_prompts, len(train_prompts)))
    finally:
        controller.end_cluster()
    profile = {"recipe": str(args.recipe), "overrides": list(args.overrides), "model_dir": model_dir,
               "warmup": warmup, "reward_design": dict(cfg.reward.design), **profile}
    print(format_audit(profile))
    if args.out:
        Path(args.out).write_text(json.dumps(profile, indent=1) + "\n")
        print(f"audit: {args.out}")
    return 0
