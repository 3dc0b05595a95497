"""`rlvr plan RECIPE [key=value ...]`: print the per-GPU memory plan; exit 1 when it does not fit."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="rlvr plan",
        description="Per-GPU memory plan of a recipe (trainer states, reference, activations, logits, "
                    "engine share, sync buffers) against the card; reads the model's config only.")
    parser.add_argument("recipe", help="recipe YAML (see recipes/)")
    parser.add_argument("overrides", nargs="*",
                        help="dotlist overrides, e.g. cluster.gpu_memory_gb=40 model.path=Qwen/Qwen2.5-7B")
    args = parser.parse_args(argv)
    from rlvr.config import RecipeError, load_recipe
    from rlvr.plan.check import asks_for_gpus, plan_recipe
    from rlvr.plan.model_shape import ModelShapeError

    try:
        cfg = load_recipe(args.recipe, args.overrides)
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    where = f"recipe {Path(args.recipe).name}"
    if not asks_for_gpus(cfg):
        print(f"{where}: no actor asks for a GPU (trainer.num_gpus_per_rank and "
              "rollout.num_gpus_per_worker are 0): nothing to plan")
        return 0
    try:
        plan = plan_recipe(cfg)
    except ModelShapeError as err:
        print(f"error: {where}: {err}", file=sys.stderr)
        return 2
    print(f"{where}: memory plan")
    print(plan.table())
    problems = plan.problems(where)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0
