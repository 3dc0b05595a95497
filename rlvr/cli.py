"""`rlvr` console script: train | submit | plan | score | theory | study | build-model.

Each subcommand parses its own arguments; this file only dispatches.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

USAGE = """usage: rlvr <command> [args]

commands:
  train RECIPE.yaml [key=value ...]   run an RLVR training run (writes a run folder); --dry-run checks only
  submit RECIPE.yaml [key=value ...]  run `train` as a job on a running Ray cluster (--wait, --address)
  plan RECIPE.yaml [key=value ...]    per-GPU memory plan (trainer, reference, activations, engine) vs the card
  cluster up|down [--dir DIR]         a one-machine Ray head beside other clusters (for submit)
  score IN.jsonl --verifier NAME ...  score responses offline with a verifier + reward design
  theory CONFIG.yaml --out DIR        exact log-linear policy-gradient simulator (paper Sec. 3);
         --paper | --sweep | --random N  the paper's set, the p* scaling fit, static labels vs ablations
  study STUDY.yaml [--out DIR]        train a recipe per arm and seed, then compare the arms
  audit RECIPE.yaml [key=value ...]   profile the initial policy under the recipe's proxy (no training)
  rm-train RECIPE.yaml [k=v] --out DIR  train a Bradley-Terry reward model with controlled flaws (rm.<knob>=v)
  rm-eval RM_DIR RECIPE.yaml [k=v]    Acc, Acc-W, HAcc, HAcc-W, variance of a reward model under the initial policy
  report STUDY_DIR                    rewrite a study's report (intervals vs the control) from its folder
  build-model RECIPE.yaml [key=value]  build (or find cached) the tiny model + SFT warm-up only

`rlvr <command> --help` for details.
"""


def _load_recipe_or_none(recipe: str, overrides: List[str]):
    """The validated recipe, or None after printing the error (exit status 2)."""
    from rlvr.config import RecipeError, load_recipe

    try:
        return load_recipe(recipe, overrides)
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return None


def train_main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="rlvr train", description="Run one RLVR training run.")
    parser.add_argument("recipe", help="recipe YAML (see recipes/)")
    parser.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. trainer.lr=1e-4")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved recipe and exit without starting anything")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the recipe, its data, model, resources and wandb; start nothing")
    args = parser.parse_intermixed_args(argv)  # options may come between the overrides
    cfg = _load_recipe_or_none(args.recipe, args.overrides)
    if cfg is None:
        return 2
    if args.print_config:
        from rlvr.config import to_yaml

        print(to_yaml(cfg), end="")
        return 0
    from rlvr.plan.check import asks_for_gpus

    if asks_for_gpus(cfg):  # what each GPU will hold, before anything starts (rlvr plan)
        from rlvr.plan import plan_recipe
        from rlvr.plan.model_shape import ModelShapeError

        try:
            print(plan_recipe(cfg).table(), file=sys.stderr)
        except ModelShapeError as err:
            print(f"memory plan: skipped ({err})", file=sys.stderr)
    from rlvr.controller.preflight import Where, report, run_checks

    problems = run_checks(cfg, Where(query_cluster=args.dry_run))  # before Ray and before the run folder
    if problems:
        print(report(problems, args.recipe), file=sys.stderr)
        return 2
    if args.dry_run:
        print(f"dry run: recipe {args.recipe} passed every check (recipe, data, model, resources, wandb, "
              "run folder); nothing was started")
        return 0
    import dataclasses

    from rlvr.config import RecipeError
    from rlvr.controller.checkpoint import RunError
    from rlvr.controller.loop import default_run_name, train

    from rlvr.rewards.errors import RewardConfigError
    from rlvr.tasks.loaders import TaskDataError

    if cfg.run_name is None:  # named here so that a stop can print the command that resumes it
        cfg = dataclasses.replace(cfg, run_name=default_run_name(cfg))
    again = " ".join(["rlvr", "train", args.recipe,
                      *[o for o in args.overrides if o.split("=", 1)[0] not in ("run_name", "resume")],
                      f"run_name={cfg.run_name}", "resume=true"])
    try:
        summary = train(cfg)
    except (RecipeError, RewardConfigError, TaskDataError) as err:  # bad input: a message, not a traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RunError as err:  # a cause the user can fix (disk full): the message; summary.json has the traceback
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:  # a second Ctrl-C, or one during start-up: no traceback
        print(f"aborted ({err or 'SIGINT'}); if the run saved a checkpoint, continue it with: {again}",
              file=sys.stderr)
        return 130
    if summary.get("status") == "stopped":
        print(f"stopped after step {summary['steps']}; continue with: {again}", file=sys.stderr)
        return 130
    return 0 if summary.get("status") == "finished" else 1


def build_model_main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="rlvr build-model",
                                     description="Build the tiny model and SFT warm-up it for a recipe's task.")
    parser.add_argument("recipe", help="recipe YAML whose model/warmup/task sections to use")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    cfg = _load_recipe_or_none(args.recipe, args.overrides)
    if cfg is None:
        return 2
    from rlvr.controller.loop import Controller

    controller = Controller(cfg)
    folder, info = controller.initial_policy(*controller.prompts())
    print(f"{folder} {info}")
    return 0


OUT_COMMANDS = ("score", "study", "audit", "theory", "rm-train", "rm-eval")  # commands whose --out names a file or folder


def out_problem(args: List[str]) -> Optional[str]:
    """One-line error when the `--out` of a command's arguments cannot be written, else None."""
    from rlvr.tracking.run_folder import unwritable

    for i, arg in enumerate(args):
        value = args[i + 1] if arg == "--out" and i + 1 < len(args) else (
            arg.split("=", 1)[1] if arg.startswith("--out=") else None)
        if value:
            problem = unwritable(value)
            if problem:
                return f"--out {value}: cannot write there ({problem}): choose a writable path"
    return None


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when transformers is imported
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command in OUT_COMMANDS and (problem := out_problem(rest)):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if command == "train":
        return train_main(rest)
    if command == "build-model":
        return build_model_main(rest)
    if command == "cluster":
        from rlvr.controller.local_cluster import main as cluster_main

        return cluster_main(rest)
    if command == "submit":
        from rlvr.controller.submit import main as submit_main

        return submit_main(rest)
    if command == "plan":
        from rlvr.plan.command import main as plan_main

        return plan_main(rest)
    if command == "score":
        from rlvr.rewards.score_command import main as score_main

        return score_main(rest)
    if command == "theory":
        from rlvr.theory.command import main as theory_main

        return theory_main(rest)
    if command == "study":
        from rlvr.study.command import main as study_main

        return study_main(rest)
    if command == "audit":
        from rlvr.controller.audit_command import main as audit_main

        return audit_main(rest)
    if command == "rm-train":
        from rlvr.reward_models.train_command import main as rm_train_main

        return rm_train_main(rest)
    if command == "rm-eval":
        from rlvr.reward_models.eval_command import main as rm_eval_main

        return rm_eval_main(rest)
    if command == "report":
        from rlvr.study.command import report_main

        return report_main(rest)
    print(f"rlvr: unknown command {command!r}\n\n{USAGE}", file=sys.stderr, end="")
    return 2


if __name__ == "__main__":
    sys.exit(main())
