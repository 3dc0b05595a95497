# Run: .venv/bin/python tools/bench/startup.py [--rounds 3] [--tree OTHER_CHECKOUT ...] [key=value ...]
"""Where the seconds from `rlvr train` to step 1 go: a phase table, optionally for several checkouts.

Each round runs `rlvr train RECIPE steps=1 eval_every=0` once per checkout (their `rlvr` first on
PYTHONPATH), in turn, so background load hits all alike; every stderr line is time-stamped from
the launch and the phases are cut at the run's own progress lines. The model is built (or
found cached) by an untimed first run from each checkout. Prints per phase the median and
min-max over rounds.

Each round also times the stack's floor on this machine, beside the runs: a plain script that
starts the same embedded Ray cluster (3 logical CPUs, no dashboard, API server or autoscaler
monitor) and three actors that only import what rlvr's trainer, rollout and reward actors
import from other packages (torch, transformers' Llama model code, DeepSpeed), then exit. No
rlvr code runs in it: what rlvr adds to start-up is the difference. A second floor starts one
actor that imports all of it: the least any design built on Ray, transformers and DeepSpeed can
take to step 1, before its model is loaded.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import psutil

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere: import this checkout's rlvr (the floor's env)
    sys.path.insert(0, str(ROOT))

# (phase, regex of the progress line that ends it); a phase whose line is missing is left out.
PHASES: List[Tuple[str, str]] = [
    ("python start + driver imports", r"\[rlvr\] run folder "),
    # Ray starts on a thread while the driver prepares (Controller.inputs): one phase for both
    ("prompts, model, Ray start + placement group", r"\[rlvr\] starting \d+ trainer rank"),
    ("trainer rendezvous address", r"\[rlvr\.trainer\] starting \d+ trainer rank"),
    ("trainer ranks ready", r"\[rlvr\.trainer\] (\d+)/\1 trainer ranks ready"),
    ("rollout + reward workers ready", r"\[rlvr\] all actors ready"),
    ("weight-sync group", r"\[rlvr\] weight sync: "),
    ("initial eval", r"^step +0/"),
    ("initial audit", r"\[rlvr\] audit of the initial policy"),
    ("step 1", r"^step +1/"),
]
RANK0 = re.compile(r"rank 0 ready ([\d.]+) s after the group started: ([\d.]+) s to its __init__ "
                   r"\(worker process, imports\), then (.*) s$")


FLOOR = """
import sys

import ray
from ray._private.node import Node

# as rlvr's embedded cluster starts: no API server, no autoscaler monitor
Node.start_api_server = Node.start_monitor = lambda self, *args, **kwargs: None
ray.init(address="local", num_cpus=3, num_gpus=0, include_dashboard=False, _node_ip_address="127.0.0.1")

@ray.remote(num_cpus=1)
class Imports:
    def __init__(self, modules):
        import importlib
        for name in modules:
            importlib.import_module(name)

    def ready(self):
        return True

model = ["torch", "transformers.models.auto.modeling_auto", "transformers.models.llama.modeling_llama"]
actors = [Imports.remote(model + ["deepspeed"]), Imports.remote(model), Imports.remote([])]
actors = actors[:int(sys.argv[1])]
ray.get([a.ready.remote() for a in actors])
print("floor: actors ready", flush=True)
ray.shutdown()
"""
FLOOR_NAME = "floor: Ray + actor imports"
FLOOR_ONE_NAME = "floor, 1 actor: all imports"


def _cpu_group(cmdline: List[str]) -> str:
    text = " ".join(cmdline)
    for name in ("PolicyTrainer", "RolloutWorker", "RewardWorker"):
        if name in text:
            return name
    if "rlvr.cli" in text:
        return "driver"
    if "ray::" in text and text.rstrip().endswith("Agent"):  # ray::DashboardAgent, ray::RuntimeEnvAgent
        return "Ray services"
    if "ray::" in text or "default_worker.py" in text:
        return "other Ray workers"
    return "Ray services"


def cpu_seconds(pid: int) -> Dict[str, float]:
    """CPU seconds (user + system) used so far by process `pid` and its descendants, by role, and in all;
    a load-independent measure of the start-up work on a shared machine."""
    out: Dict[str, float] = {}
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.Error:
        return out
    for p in procs:
        try:
            t = p.cpu_times()
            group = _cpu_group(p.cmdline())
        except psutil.Error:
            continue
        out[group] = out.get(group, 0.0) + t.user + t.system
    out["all"] = sum(out.values())
    return out


def run_once(tree: Path, recipe: str, overrides: List[str], out: str) -> Tuple[Dict[str, float], List[str]]:
    """Phase seconds of one `rlvr train` run from checkout `tree`, and its time-stamped lines."""
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "rlvr.cli", "train", recipe, f"output_dir={out}", "steps=1",
           "eval_every=0", "logging.log_samples_every=0", *overrides]
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, cpu = [], {}
    step1 = re.compile(PHASES[-1][1])
    for line in proc.stdout:
        lines.append((time.time() - start, line.rstrip("\n")))
        if not cpu and step1.search(line):
            cpu = cpu_seconds(proc.pid)
    if proc.wait() != 0:
        tail = "\n".join(text for _, text in lines[-15:])
        raise RuntimeError(f"rlvr train from {tree} failed (exit {proc.returncode}):\n{tail}")
    phases: Dict[str, float] = {}
    last = 0.0
    for name, pattern in PHASES:
        regex = re.compile(pattern)
        hit = next((t for t, text in lines if t >= last and regex.search(text.split("[0m", 1)[-1])), None)
        if hit is None:
            continue
        phases[name] = hit - last
        last = hit
    phases["TOTAL to step 1"] = last
    for group, seconds in sorted(cpu.items()):
        phases[f"CPU s to step 1: {group}"] = seconds
    for _, text in lines:
        m = RANK0.search(text)
        if m:
            phases["  rank 0: actor created -> __init__"] = float(m.group(2))
            for part in m.group(3).split(", "):
                label, seconds = part.rsplit(" ", 1)
                phases[f"  rank 0: {label}"] = float(seconds)
    return phases, [f"{t:7.2f} {text}" for t, text in lines]


def _descendants(pid: int) -> list:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def run_floor(actors: int = 3) -> Dict[str, float]:
    """Seconds from launch until the floor script's actors are ready, and its CPU seconds: with 3
    actors, rlvr's layout (trainer, rollout, reward worker); with 1, one process imports everything."""
    from rlvr.config.schema import ClusterConfig
    from rlvr.controller.cluster import node_environment

    # the floor's cluster gets what rlvr's embedded cluster gets (one thread per process, CPU only, ...)
    env = dict(os.environ, **node_environment(ClusterConfig()))
    start = time.time()
    proc = subprocess.Popen([sys.executable, "-c", FLOOR, str(actors)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seconds, cpu, tail, tree = None, {}, [], []
    for line in proc.stdout:
        tail = (tail + [line])[-15:]
        if seconds is None and line.startswith("floor: actors ready"):
            seconds, cpu = time.time() - start, cpu_seconds(proc.pid)
            tree = _descendants(proc.pid)
    if proc.wait() != 0 or seconds is None:
        raise RuntimeError(f"the floor script failed (exit {proc.returncode}):\n{''.join(tail)}")
    # Ray's agents outlive ray.shutdown() by a moment; one still holding its port would cost
    # the next run's agent seconds of retries, so the next arm starts once they are gone.
    psutil.wait_procs(tree, timeout=20)
    return {"TOTAL to step 1": seconds, "CPU s to step 1: all": cpu.get("all", 0.0)}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="recipe overrides, key=value")
    parser.add_argument("--recipe", default="recipes/quickstart.yaml")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", action="append", default=[],
                        help="another checkout to time beside this one (repeatable), e.g. a `git worktree` of main")
    parser.add_argument("--out", default=None, help="output_dir (default: a temporary folder)")
    parser.add_argument("--show-lines", action="store_true", help="print the last round's time-stamped output")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor script")
    args = parser.parse_args(argv)
    trees = [ROOT] + [Path(t).resolve() for t in args.tree]
    recipe = str((ROOT / args.recipe).resolve()) if not os.path.isabs(args.recipe) else args.recipe
    out = args.out or tempfile.mkdtemp(prefix="rlvr-startup-")
    # untimed, from every checkout: each looks for the cached model under `out` and under its own
    # runs/_models, so a checkout without one (a fresh worktree) would build it in its first round
    for tree in trees:
        print(f"[bench] building or finding the model (untimed) from {tree} in {out}", file=sys.stderr, flush=True)
        run_once(tree, recipe, args.overrides, out)
    results: Dict[object, List[Dict[str, float]]] = {t: [] for t in trees}
    for r in range(args.rounds):
        for tree in trees:
            phases, lines = run_once(tree, recipe, args.overrides, out)
            results[tree].append(phases)
            print(f"[bench] round {r + 1}/{args.rounds} {tree}: {phases['TOTAL to step 1']:.1f} s to step 1",
                  file=sys.stderr, flush=True)
            if args.show_lines and r == args.rounds - 1:
                print("\n".join(lines), file=sys.stderr)
        for name, actors in ([] if args.no_floor else [(FLOOR_NAME, 3), (FLOOR_ONE_NAME, 1)]):
            floor = run_floor(actors)
            results.setdefault(name, []).append(floor)
            print(f"[bench] round {r + 1}/{args.rounds} {name}: {floor['TOTAL to step 1']:.1f} s to its actors ready",
                  file=sys.stderr, flush=True)
    columns = list(results)
    names: List[str] = []
    for runs in results.values():
        for phases in runs:
            names += [n for n in phases if n not in names]
    width = max(len(n) for n in names)
    print(f"\nstartup of `rlvr train {args.recipe}` to step 1 (model cached), s: median [min-max] of "
          f"{args.rounds} interleaved rounds; load average at the end {os.getloadavg()[0]:.1f}")
    print(f"{'phase':<{width}} " + " ".join(f"{str(t)[-28:]:>28}" for t in columns))
    for name in names:
        cells = []
        for tree in columns:
            values = [p[name] for p in results[tree] if name in p]
            cells.append(f"{statistics.median(values):8.2f} [{min(values):6.2f}-{max(values):6.2f}]" if values else "-")
        print(f"{name:<{width}} " + " ".join(f"{c:>28}" for c in cells))
    if FLOOR_NAME in results:
        floor = statistics.median(p["TOTAL to step 1"] for p in results[FLOOR_NAME])
        one = statistics.median(p["TOTAL to step 1"] for p in results[FLOOR_ONE_NAME])
        for tree in trees:
            total = statistics.median(p["TOTAL to step 1"] for p in results[tree])
            print(f"{str(tree)}: {total:.1f} s to step 1 = {total / floor:.2f}x the floor ({floor:.1f} s), "
                  f"{total - floor:+.1f} s")
        print(f"one process importing everything, after Ray's start, is ready at {one:.1f} s: no design on "
              f"Ray, transformers and DeepSpeed reaches step 1 sooner on this machine")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
