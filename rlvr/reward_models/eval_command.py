"""`rlvr rm-eval RM_DIR RECIPE [key=value ...] [--out FILE] [--prompts N] [--normalize MODE]`:
a reward model measured on the recipe's initial policy's own samples.

G = rollout.samples_per_prompt answers on N training prompts (--prompts, default
eval.audit_prompts, else 64; chosen as `rlvr audit` chooses them), scored by the ground truth
and by the reward model as the `reward_model` design (the recipe's reward.design keys when it is
one, with path = RM_DIR; --normalize overrides its normalisation). Prints Acc, Acc-W, HAcc,
HAcc-W, the reward's variance under the policy and its correlation with the ground truth
(rlvr/reward_models/metrics.py), and writes them as JSON with --out. In-process, no Ray.
Exit status: 0, 2 for bad input.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional



def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlvr rm-eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("rm_dir", help="reward model folder (rm-train --out) or hub id")
    parser.add_argument("recipe", help="recipe YAML (its task, verifier and initial policy)")
    parser.add_argument("overrides", nargs="*", help="recipe overrides key=value")
    parser.add_argument("--out", help="also write the metrics as JSON here")
    parser.add_argument("--prompts", type=int, help="training prompts (default eval.audit_prompts, else 64)")
    parser.add_argument("--normalize", choices=("none", "whiten", "affine"), help="the design's normalisation")
    return parser


def evaluate_reward_model(cfg, rm_dir: str, num_prompts: int, normalize: Optional[str] = None,
                          policy: str = "initial", design_keys: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """rm_eval_metrics of the reward model on `num_prompts` x G samples of the policy. The design
    is the recipe's reward_model keys (if it has one), then `design_keys`, then `normalize`."""
    from rlvr.reward_models.metrics import rm_eval_metrics, tensors
    from rlvr.controller.evaluation import AUDIT_SEED
    from rlvr.controller.prompts import seeded_choice, task_prompts
    from rlvr.reward_models.sampling import policy_folder, scored_samples

    design = dict(cfg.reward.design) if cfg.reward.design.get("name") == "reward_model" else {}
    design.update(design_keys or {})
    design.update(name="reward_model", path=str(rm_dir))
    if normalize:
        design["normalize"] = normalize
    from rlvr.rewards.designs import build_design

    build_design(design, "rm-eval design")  # a bad key fails before any sampling
    train_prompts, _ = task_prompts(cfg)
    model_dir, _ = policy_folder(cfg, policy)
    prompts = seeded_choice(train_prompts, num_prompts, AUDIT_SEED)
    groups = scored_samples(cfg, model_dir, prompts, cfg.rollout.samples_per_prompt, design=design,
                            seed=AUDIT_SEED)
    return {"rm_dir": str(rm_dir), "design": design, "policy": model_dir, **rm_eval_metrics(*tensors(groups))}


def main(argv: List[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    from rlvr.controller.audit_command import recipe_and_prompt_count
    from rlvr.reward_models.metrics import format_rm_eval
    from rlvr.rewards.errors import RewardConfigError

    loaded = recipe_and_prompt_count(args.recipe, args.overrides, args.prompts)
    if loaded is None:
        return 2
    cfg, num_prompts = loaded
    try:
        result = evaluate_reward_model(cfg, args.rm_dir, num_prompts, args.normalize)
    except (RewardConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = {"recipe": str(args.recipe), "overrides": list(args.overrides), **result}
    print(format_rm_eval(result))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print(f"rm-eval: {args.out}")
    return 0
