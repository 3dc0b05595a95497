"""`rlvr study`: train one base recipe once per arm and seed, then compare the arms.

    rlvr study STUDY.yaml [--out DIR] [--dry-run] [--report-only]

Every (arm, seed) recipe is validated before the first run starts. Runs go one after another
into `<output_dir>/<arm>__seed<s>/`, seed-major (every arm at the first seed, then the next
seed), so an interrupted study already compares every arm. A run whose folder holds a
finished summary.json is skipped (the study resumes); an unfinished folder is moved to
`_unfinished/` and the run starts over. All arms share the study's warm-up cache
(`<output_dir>/_models/<hash>`, or a model already cached under `runs/_models`), so arms that
do not change model, warm-up or task start from the same weights. A failed run is recorded and the study goes on.

Writes `<output_dir>/study.json`, `study.csv`, `eval_gt_accuracy.png` (see report.py) and
prints the table. Exit status: 0, 1 if any run is not finished, 2 for a bad study file.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List

from rlvr.config.load import recipe_drift
from rlvr.study.report import (collect_runs, format_table, report_from_values, settings_of, study_report,
                               write_report)
from rlvr.study.spec import Study, StudyError, StudyRun, load_study, run_name

# Keys that follow from where the study writes, not from what it trains.
_LOCATION_KEYS = {"output_dir", "run_name"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlvr study",
        description="Train a base recipe once per arm (named overrides) and seed, then compare the arms.")
    parser.add_argument("study", help="study YAML (see recipes/studies/)")
    parser.add_argument("--out", help="output folder (default: the study's output_dir, "
                                      "else runs/studies/<study file stem>)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true",
                      help="validate every run's recipe and print the plan; start nothing")
    mode.add_argument("--report-only", action="store_true",
                      help="only (re)write the report from the run folders already there")
    return parser


def say(message: str) -> None:
    print(f"[rlvr study] {message}", file=sys.stderr, flush=True)


def config_drift(stored_yaml: str, current_yaml: str) -> List[str]:
    """`key: stored -> current` for differing keys, ignoring where the run is written."""
    return recipe_drift(stored_yaml, current_yaml, ignore=_LOCATION_KEYS)


def plan_runs(study: Study) -> List[str]:
    """Per run: "skip" (finished), "rerun" (an unfinished folder is there) or "run". Raises
    StudyError when a finished run was trained with a different recipe than the study asks now."""
    from rlvr.config import to_yaml

    actions = []
    for run in study.runs:
        folder = study.output_dir / run.run_name
        summary = folder / "summary.json"
        if summary.is_file() and json.loads(summary.read_text()).get("status") == "finished":
            if (folder / "config.yaml").is_file():
                drift = config_drift((folder / "config.yaml").read_text(), to_yaml(run.cfg))
                if drift:
                    raise StudyError(
                        f"study {study.path.name}: arm {run.arm!r}: the finished run {folder} was trained "
                        f"with a different recipe ({'; '.join(drift[:3])}{'; ...' if len(drift) > 3 else ''}); "
                        "delete that folder to retrain it, or pass --out NEW_DIR")
            actions.append("skip")
        else:
            actions.append("rerun" if folder.exists() else "run")
    return actions


def _print_plan(study: Study, actions: List[str]) -> None:
    from rlvr.models.prepare import find_cached_policy, policy_cache_key

    print(f"study {study.name}: {len(study.arms)} arms x {len(study.seeds)} seeds = {len(study.runs)} runs "
          f"from {study.recipe} into {study.output_dir}")
    for arm, overrides in study.arms.items():
        print(f"  arm {arm}: {' '.join([*study.overrides, *overrides]) or '(the recipe as is)'}")
    words = {"skip": "finished, skip", "rerun": "unfinished folder, move aside and rerun", "run": "run"}
    policies: Dict[str, int] = {}  # initial policy folder -> runs starting from it
    for i, (run, action) in enumerate(zip(study.runs, actions), 1):
        cached = None if run.cfg.model.path else find_cached_policy(run.cfg)
        where = run.cfg.model.path or (f"{cached[0]} (cached)" if cached else
                                       f"{study.output_dir / '_models' / policy_cache_key(run.cfg)} (to build)")
        policies[where] = policies.get(where, 0) + 1
        print(f"  [{i}/{len(study.runs)}] {run.run_name}: {words[action]}")
    for where, count in policies.items():
        print(f"  initial policy {where}: {count} run(s)")


def _train_one(run: StudyRun, folder: Path) -> Dict[str, Any]:
    """train() the run; on an exception return a failed summary (written if train() wrote none)."""
    from rlvr.controller.loop import train

    try:
        return train(run.cfg)
    except Exception as err:  # noqa: BLE001 - one failed arm must not stop the study
        summary = {"run_name": run.run_name, "status": "failed", "error": f"{type(err).__name__}: {err}",
                   "traceback": traceback.format_exc()}
        if not (folder / "summary.json").is_file():  # it failed before train() opened its summary
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary


def run_study(study: Study, actions: List[str]) -> None:
    total = len(study.runs)
    for i, (run, action) in enumerate(zip(study.runs, actions), 1):
        folder = study.output_dir / run.run_name
        tag = f"[{i}/{total}] {run.run_name}"
        if action == "skip":
            say(f"{tag}: already finished, skipped")
            continue
        if action == "rerun":  # metrics.jsonl is append-only: start from an empty folder
            aside = study.output_dir / "_unfinished" / f"{run.run_name}__{time.strftime('%Y%m%d-%H%M%S')}"
            aside.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(folder), str(aside))
            say(f"{tag}: moved the unfinished folder to {aside}")
        say(f"{tag}: start ({' '.join(run.overrides)})")
        started = time.time()
        summary = _train_one(run, folder)
        wall = time.time() - started
        if summary.get("status") == "finished":
            first, last = (summary.get(f"{k}_eval_gt_accuracy") for k in ("initial", "final"))
            say(f"{tag}: finished in {wall:.0f} s, eval gt accuracy "
                + " -> ".join("?" if v is None else f"{v:.3f}" for v in (first, last)))
        else:
            say(f"{tag}: FAILED after {wall:.0f} s: {summary.get('error')}")


def report(study: Study) -> Dict[str, Any]:
    """Collect the run folders, write study.json/csv/png, print the table; the report dict."""
    runs = collect_runs(study.output_dir, list(study.arms), study.seeds)
    result = study_report(study.name, str(study.output_dir), study.seeds, study.threshold, study.arms, runs,
                          control=study.controls or None, last_k=study.last_k, metric=study.eval_metric,
                          blocks=study.blocks, comparisons=study.comparisons, interactions=study.interactions,
                          primary_metric=study.primary_metric)
    return _write_and_print(result, study.output_dir)


def _write_and_print(result: Dict[str, Any], output_dir: Path) -> Dict[str, Any]:
    paths = write_report(result, output_dir)
    print(format_table(result))
    print(f"report: {', '.join(str(p) for p in paths)}")
    return result


def rerender(study_dir: Path) -> Dict[str, Any]:
    """Rewrite a study folder's report with the settings its study.json records (arms, seeds,
    threshold, blocks, comparisons, interactions, primary_metric; no study file needed): from
    the run folders when any is there, else from the per-seed values study.json keeps."""
    study_json = Path(study_dir) / "study.json"
    if not Path(study_dir).is_dir():
        raise StudyError(f"{study_dir}: the folder does not exist (give the study's output folder, "
                         "e.g. runs/studies/<study file stem>)")
    if not study_json.is_file():
        raise StudyError(f"{study_dir}: no study.json (run `rlvr study STUDY.yaml` first)")
    try:
        old = json.loads(study_json.read_text())
        settings = settings_of(old)
        arms = {a["arm"]: a.get("overrides", []) for a in old["arms"]}
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as err:
        raise StudyError(f"{study_json}: not a study report ({type(err).__name__}: {err})") from None
    seeds = settings["seeds"]
    if not any((Path(study_dir) / run_name(arm, seed)).is_dir() for arm in arms for seed in seeds):
        say(f"{study_dir}: no run folders; the report is recomputed from the per-seed values in study.json")
        return _write_and_print(report_from_values(old), Path(study_dir))
    runs = collect_runs(Path(study_dir), list(arms), seeds)
    result = study_report(settings["study"], str(study_dir), seeds, settings["threshold"], arms, runs,
                          control=settings["control"], last_k=settings["last_k"], metric=settings["eval_metric"],
                          blocks=settings["blocks"],
                          comparisons=settings["comparisons"], interactions=settings["interactions"],
                          primary_metric=settings["primary_metric"])
    return _write_and_print(result, Path(study_dir))


def report_main(argv: List[str]) -> int:
    """Entry point of `rlvr report STUDY_DIR`: re-render a study's report from its folder."""
    parser = argparse.ArgumentParser(prog="rlvr report",
                                     description="Rewrite a study's report (study.json/csv/png) from its run folders.")
    parser.add_argument("study_dir", help="a study's output folder (holds study.json)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        rerender(Path(args.study_dir))
    except StudyError as err:
        print(f"rlvr report: error: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv: List[str]) -> int:
    """Entry point of `rlvr study`; argv excludes the word 'study'. Returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return int(exc.code or 0)
    from rlvr.study.rm_study import is_rm_study

    if is_rm_study(Path(args.study)):  # kind: reward_models (rlvr/study/rm_study.py)
        from rlvr.study.rm_study import main as rm_study_main

        return rm_study_main(args.study, args.out, args.dry_run, args.report_only)
    try:
        study = load_study(args.study, args.out)
        actions = [] if args.report_only else plan_runs(study)
    except StudyError as err:
        print(f"rlvr study: error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        _print_plan(study, actions)
        return 0
    if not args.report_only:
        say(f"{study.name}: {len(study.runs)} runs ({actions.count('skip')} already finished) "
            f"into {study.output_dir}")
        run_study(study, actions)
    result = report(study)
    if args.report_only:
        return 0
    unfinished = [r for arm in result["arms"] for r in arm["runs"] if r["status"] != "finished"]
    return 1 if unfinished else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
