"""`rlvr theory`: exact log-linear policy-gradient simulator for checking a reward design.

    rlvr theory CONFIG.yaml|json --out DIR [--log-every N] [--no-plot] [--no-ablation]
    rlvr theory --paper --out DIR        # the paper's Section 3.3 set
    rlvr theory --random N [--seed S] [--thresholds 0.5,0.9] [--horizons 2000,20000] --out DIR
                                         # static categories vs ablations on N random instances
    rlvr theory --sweep [--p-stars 0.1,0.12,...] [--p-meds 0.3,0.5,0.65] --out DIR
                                         # steps-to-threshold over p* and pi_0(y_med), fitted exponents

Writes DIR/result.json with (at least) these keys:
  steps_to_threshold  int | null  steps applied before E[r_G] first reaches `threshold` (0: starts there)
  final_gt_reward     float       E_pi[r_G] after the last step
  final_probs         [K] floats  pi after the last step
  categories          {"y": name} static category of each erroneous output y (r_P(y) != r_G(y)), in
                                  the vocabulary training uses (rlvr/rewards/labels.py)
  ablation            {"y": {steps_to_threshold, delta_steps, final_gt_reward, verdict}} with only
                                  the error on y corrected; null with --no-ablation
  disagreements       [{output, category, ablation_verdict}] where the two disagree
  shapley             {thresholds, horizons, tolerance, runs, errors: {"y": {by_setting: [{threshold, horizon,
                                  shapley, fix_one, add_one, verdict, ...}], area: [{horizon, shapley, ...}]}}}:
                                  each error's effect on log(1 + steps to threshold) (positive: slower) and on
                                  the mean E[r_G] over the horizon, exact over all 2^k coalitions of the
                                  errors (k <= 8; null with --no-ablation)
  ground_truth_run    {steps_to_threshold, final_gt_reward} trained on r_G itself (null if no
                                  error or --no-ablation)
  seed_spread         {seeds, proxy: {steps_to_threshold, quartiles, reached}, ground_truth: same or
                                  null} when the config lists `seeds` (null otherwise)
  trajectory          {step, gt_reward, proxy_reward, probs} at the log interval
plus DIR/trajectory.png, and a one-line summary on stdout. With --paper, one such
directory per run under DIR plus DIR/summary.json and DIR/comparison.png.
A bad config prints the error (naming key and file) and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rlvr.theory import paper
from rlvr.theory.config import TheoryConfigError, config_from_dict, load_config
from rlvr.theory.runner import run_configs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlvr theory",
        description="Exact log-linear policy-gradient simulator: steps-to-threshold, error categories, ablation.",
    )
    parser.add_argument("config", nargs="?", help="theory config (.yaml, .yml or .json)")
    parser.add_argument("--paper", action="store_true", help="run the paper's Section 3.3 set instead of CONFIG")
    parser.add_argument("--random", type=int, metavar="N",
                        help="compare static categories with fix-one and add-one ablations on N random instances")
    parser.add_argument("--sweep", action="store_true",
                        help="steps-to-threshold over a grid of p* and pi_0(y_med); fit steps ~ (1/p*)^a")
    parser.add_argument("--p-stars", help="--sweep: pi_0(y*) values, comma-separated")
    parser.add_argument("--p-meds", help="--sweep: pi_0(y_med) values, comma-separated")
    parser.add_argument("--seed", type=int, default=0, help="--random: the family's seed")
    parser.add_argument("--thresholds", help="E[r_G] thresholds, comma-separated (--random: default 0.5,0.9; "
                        "CONFIG: the Shapley effect's thresholds, default the config's threshold)")
    parser.add_argument("--horizons", default="2000,20000", help="--random: step budgets, comma-separated")
    parser.add_argument("--max-errors", type=int, default=2, help="--random: reward errors per instance, at most")
    parser.add_argument("--out", help="output directory (default: runs/theory/<config name> or runs/theory/paper)")
    parser.add_argument("--log-every", type=int, help="trajectory log interval in steps (overrides the config)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-ablation", action="store_true", help="skip the single-error correction reruns")
    return parser


def _fmt_steps(steps: int | None) -> str:
    return "never" if steps is None else str(steps)


def reached_text(steps: int | None) -> str:
    """'reached at step 168', or 'never reached'."""
    return "never reached" if steps is None else f"reached at step {steps}"


def summary_line(result: dict[str, Any], out_file: Path | None = None) -> str:
    """One-line console summary of a result dict."""
    traj = result["trajectory"]
    parts = [
        f"theory {result['name']}: E[r_G] {traj['gt_reward'][0]:.3f} -> {result['final_gt_reward']:.3f} "
        f"over {traj['step'][-1]} steps; threshold {result['threshold']:g} {reached_text(result['steps_to_threshold'])}"
    ]
    errors = []
    for y, category in result["categories"].items():
        text = f"y{y} {category}"
        if result["ablation"] is not None:
            ab = result["ablation"][y]
            fixed = ab["steps_to_threshold"]
            text += f" (ablation: {ab['verdict']}, fixed " + (
                "never reaches it)" if fixed is None else f"reaches it at {fixed})")
        effect = ((result.get("shapley") or {}).get("errors") or {}).get(y)
        if effect:
            first = effect["by_setting"][0]
            text += f" [Shapley {first['shapley']:+.3f} log steps: {first['verdict']}]"
        errors.append(text)
    parts.append("errors: " + (", ".join(errors) if errors else "none"))
    if result["ground_truth_run"] is not None:
        parts.append(f"on r_G: {_fmt_steps(result['ground_truth_run']['steps_to_threshold'])}")
    spread = result.get("seed_spread")
    if spread:
        text = "/".join(_fmt_steps(q) for q in spread["proxy"]["quartiles"])
        if spread["ground_truth"]:
            text += ", on r_G " + "/".join(_fmt_steps(q) for q in spread["ground_truth"]["quartiles"])
        parts.append(f"{len(spread['seeds'])} seeds: quartiles {text}")
    if result["disagreements"]:
        parts.append(f"DISAGREE on {', '.join('y' + str(d['output']) for d in result['disagreements'])}")
    if out_file is not None:
        parts.append(f"-> {out_file}")
    return "; ".join(parts)


def _write(result: dict[str, Any], out_dir: Path, plot: bool) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / "result.json"
    out_file.write_text(json.dumps(result, indent=1) + "\n")
    if plot:
        from rlvr.theory.plot import plot_result  # matplotlib only when plotting

        plot_result(result, out_dir / "trajectory.png")
    return out_file


def _run_paper(args: argparse.Namespace) -> int:
    out_dir = Path(args.out or "runs/theory/paper")
    configs = [config_from_dict(raw, source=f"paper:{raw['name']}") for raw in paper.paper_configs()]
    results = run_configs(configs, ablate=not args.no_ablation, log_every=args.log_every)
    for result in results:
        out_file = _write(result, out_dir / result["name"], plot=not args.no_plot)
        print(summary_line(result, out_file))
    summary = paper.summarize(results)
    summary["simulation_seconds"] = results[0]["simulation_seconds"]
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    for row in summary["gt_vs_proxy"]:
        print(f"paper {row['variant']:9s} p*={row['p_star']:.2f}: steps to E[r_G] >= {paper.THRESHOLD}: "
              f"ground truth {_fmt_steps(row['gt_steps'])}, proxy {_fmt_steps(row['proxy_steps'])}")
    if not args.no_plot:
        from rlvr.theory.plot import plot_comparison

        by_name = {r["name"]: r for r in results}
        panels = {
            "exact gradient": [r for n, r in by_name.items() if n.startswith("paper_exact")],
            "REINFORCE (1 sample)": [r for n, r in by_name.items() if n.startswith("paper_reinforce")],
            "feature similarity (r_G)": [r for n, r in by_name.items() if n.startswith("paper_features")],
        }
        plot_comparison(panels, out_dir / "comparison.png")
    print(f"paper set: {len(results)} runs in {summary['simulation_seconds']:.1f} s -> {out_dir / 'summary.json'}")
    return 0


def _run_random(args: argparse.Namespace) -> int:
    from rlvr.theory.random_families import format_agreement, random_agreement

    try:
        thresholds = [float(t) for t in (args.thresholds or "0.5,0.9").split(",")]
        horizons = [int(h) for h in args.horizons.split(",")]
    except ValueError:
        print("rlvr theory: error: --thresholds and --horizons take comma-separated numbers, e.g. 0.5,0.9",
              file=sys.stderr)
        return 2
    if args.random < 1 or args.max_errors < 1 or any(h < 1 for h in horizons):
        print("rlvr theory: error: --random, --max-errors and --horizons must be >= 1", file=sys.stderr)
        return 2
    report = random_agreement(args.random, args.seed, thresholds, horizons, args.max_errors)
    out_dir = Path(args.out or f"runs/theory/random{args.random}_seed{args.seed}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "random.json").write_text(json.dumps(report, indent=1) + "\n")
    print(format_agreement(report))
    print(f"-> {out_dir / 'random.json'}")
    return 0


def _run_sweep(args: argparse.Namespace) -> int:
    from rlvr.theory import sweep

    try:
        p_stars = [float(v) for v in args.p_stars.split(",")] if args.p_stars else sweep.P_STAR_GRID
        p_meds = [float(v) for v in args.p_meds.split(",")] if args.p_meds else sweep.P_MED_GRID
        report = sweep.run_sweep(p_stars, p_meds)
    except ValueError as exc:
        print(f"rlvr theory: error: {exc} (--p-stars and --p-meds take comma-separated numbers, "
              "e.g. 0.1,0.15,0.2)", file=sys.stderr)
        return 2
    out_dir = Path(args.out or "runs/theory/sweep")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sweep.json").write_text(json.dumps(report, indent=1) + "\n")
    print(sweep.format_sweep(report))
    if not args.no_plot:
        from rlvr.theory.plot import plot_sweep

        print(f"-> {plot_sweep(report, out_dir / 'sweep.png')}")
    print(f"-> {out_dir / 'sweep.json'}")
    return 0


def main(argv: list[str]) -> int:
    """Entry point of `rlvr theory`; argv excludes the word 'theory'. Returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return int(exc.code or 0)
    if sum([args.paper, args.sweep, args.config is not None, args.random is not None]) != 1:
        parser.print_usage(sys.stderr)
        print("rlvr theory: error: give exactly one of CONFIG, --paper, --sweep or --random N", file=sys.stderr)
        return 2
    if args.random is not None:
        return _run_random(args)
    if args.sweep:
        return _run_sweep(args)
    if args.log_every is not None and args.log_every < 1:
        print("rlvr theory: error: --log-every must be >= 1", file=sys.stderr)
        return 2
    try:
        if args.paper:
            return _run_paper(args)
        config = load_config(args.config)
        thresholds = [float(t) for t in args.thresholds.split(",")] if args.thresholds else None
        result = run_configs([config], ablate=not args.no_ablation, log_every=args.log_every)[0]
    except TheoryConfigError as exc:
        print(f"rlvr theory: error: {exc}", file=sys.stderr)
        return 2
    except ValueError:
        print("rlvr theory: error: --thresholds takes comma-separated numbers, e.g. 0.5,0.9", file=sys.stderr)
        return 2
    result["shapley"] = None
    if not args.no_ablation:
        from rlvr.theory.runner import _errors
        from rlvr.theory.shapley import config_effects

        result["shapley"] = config_effects(config, _errors(config), thresholds)
    out_file = _write(result, Path(args.out or f"runs/theory/{config.name}"), plot=not args.no_plot)
    print(summary_line(result, out_file))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
