# Run: .venv/bin/python tools/bench/controller_work.py [--repeats 50] [--threads 1] [--compare /path/to/other/checkout]
"""Milliseconds of controller (driver) work per RL step on the quickstart's workload, no actors.

The data is shaped like one quickstart step (recipes/quickstart.yaml: prompts_per_step x
samples_per_prompt sequences, arithmetic prompts in the tiny model's character vocabulary,
responses of 1..max_new_tokens tokens with log-probs, 0/1 rewards), built once. Each piece of
work the controller does between actor calls is then timed on the caller's side, `--repeats`
times, and its median printed:

  make_train_batch     the padded batch, with rl_step's flattening of its inputs
  categorize+metrics   reward_error_metrics + categorize of proxy vs gt [P, G]
  sample records       the per-sample dicts rl_step builds for samples/step_*.jsonl
  write_samples        RunFolder.write_samples as the loop calls it (what the loop waits for)

Their sum is compared with the 5 ms target (issue 11). Beside them, not counted: the writer's
own time (write_samples then a flush, where write_samples works in the background) and the
largest extra delay a 1 ms sleep of the caller saw while the writer ran (the GIL's share).

It imports whatever `rlvr` is on PYTHONPATH. `--compare DIR` runs this script alternately
under PYTHONPATH=DIR and PYTHONPATH=<this checkout> (`--rounds` each, interleaved so machine
load hits both alike) and prints both side by side: median over rounds, with min-max.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET_MS = 5.0
COUNTED = ("make_train_batch", "categorize+metrics", "sample records", "write_samples")
EXTRA = ("writer thread (not counted)", "caller stall while writing (max)")


def quickstart_step(recipe: Path, seed: int = 0):
    """One step's controller inputs, shaped like the recipe's (as rl_step sees them)."""
    import torch

    from rlvr.config import load_recipe
    from rlvr.models.tiny import CHARACTERS, SPECIAL_TOKENS
    from rlvr.rollout.generation import Generation
    from rlvr.tasks.arithmetic import arithmetic_prompts

    cfg = load_recipe(str(recipe), [])
    P, G, T = cfg.rollout.prompts_per_step, cfg.rollout.samples_per_prompt, cfg.rollout.max_new_tokens
    vocab = {c: i for i, c in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    eos = vocab["<eos>"]
    rng = random.Random(seed)
    prompts = arithmetic_prompts(seed, "train", P, num_digits=cfg.task.num_digits)
    prompt_ids = [[vocab[c] for c in p.text] for p in prompts]
    generations, scored = [], []
    for i, p in enumerate(prompts):
        group, records = [], []
        for j in range(G):
            text = "".join(rng.choice("0123456789;") for _ in range(rng.randint(1, T)))
            ids = [vocab[c] for c in text]
            if len(ids) < T and rng.random() < 0.8:
                ids.append(eos)  # stopped: the eos token is part of the response
            group.append(Generation(token_ids=ids, logprobs=[-rng.expovariate(2.0) for _ in ids],
                                    text=text, finish_reason="stop" if ids[-1] == eos else "length"))
            gt = float(rng.random() < 0.3)
            records.append({"prompt_id": p.id, "sample_index": j, "response": text, "gold": p.gold,
                            "num_tokens": len(ids), "meta": p.meta, "gt": gt, "proxy": gt, "reason": "ok"})
        generations.append(group)
        scored.append(records)
    proxy = torch.tensor([[r["proxy"] for r in g] for g in scored], dtype=torch.float64)
    gt = torch.tensor([[r["gt"] for r in g] for g in scored], dtype=torch.float64)
    return dict(prompts=prompts, prompt_ids=prompt_ids, generations=generations, scored=scored,
                proxy=proxy, gt=gt, G=G, pad_id=vocab["<pad>"])


def measure(step, repeats: int) -> dict:
    """{piece: median ms} of the controller's pieces of work on one step's data."""
    import torch

    from rlvr.algorithms.advantages import compute_advantages
    from rlvr.controller.prompts import verifier_inputs
    from rlvr.controller.step import SAMPLE_KEYS
    from rlvr.rewards.categorize import categorize, reward_error_metrics
    from rlvr.trainer.batch import make_train_batch
    from rlvr.tracking.run_folder import RunFolder

    prompts, prompt_ids, generations, scored = (step[k] for k in ("prompts", "prompt_ids", "generations", "scored"))
    proxy, gt, G = step["proxy"], step["gt"], step["G"]
    advantages = compute_advantages("grpo", proxy, normalize_std=True)

    def batch():  # as rl_step calls it
        make_train_batch([ids for ids in prompt_ids for _ in range(G)],
                         [g.token_ids for group in generations for g in group],
                         [g.logprobs for group in generations for g in group],
                         [0.0] * proxy.numel(), pad_id=step["pad_id"])

    def categories():
        reward_error_metrics(proxy, gt)
        return categorize(proxy, gt)

    labels = categories()

    def records():  # rl_step's list comprehension, verbatim
        version, n = 3, 1
        return [{**{k: r[k] for k in SAMPLE_KEYS}, **verifier_inputs(p), "prompt": p.text,
                 "category": labels[i][j],
                 "advantage": advantages[i, j].item(), "policy_version": version, "step": n}
                for i, (p, group) in enumerate(zip(prompts, scored)) for j, r in enumerate(group)]

    samples = records()
    times = {name: [] for name in COUNTED + EXTRA}
    with tempfile.TemporaryDirectory() as tmp:
        folder = RunFolder(Path(tmp) / "run")
        flush = getattr(folder, "flush_samples", lambda: None)  # absent where writes are synchronous
        for k in range(repeats):
            for name, work in (("make_train_batch", batch), ("categorize+metrics", categories),
                               ("sample records", records)):
                start = time.perf_counter()
                work()
                times[name].append(time.perf_counter() - start)
            start = time.perf_counter()
            folder.write_samples(k + 1, samples)
            times["write_samples"].append(time.perf_counter() - start)
            stall, ends = 0.0, start + 0.05
            while time.perf_counter() < ends:  # the loop waiting on actors while the writer works
                before = time.perf_counter()
                time.sleep(0.001)
                stall = max(stall, time.perf_counter() - before - 0.001)
            times["caller stall while writing (max)"].append(stall)
            flush()
            start = time.perf_counter()
            folder.write_samples(k + 1, samples)
            flush()
            times["writer thread (not counted)"].append(time.perf_counter() - start)
        folder.close()
    return {name: statistics.median(ts) * 1e3 for name, ts in times.items()}


def run_tree(tree: str, args) -> dict:
    env = dict(os.environ, PYTHONPATH=tree)
    out = subprocess.run([sys.executable, __file__, "--repeats", str(args.repeats), "--recipe", str(args.recipe),
                          "--threads", str(args.threads), "--json"],
                         env=env, check=True, capture_output=True, text=True, cwd=tree)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(columns: dict) -> str:
    """Rows = pieces, columns = trees; each cell median over rounds [min-max]."""
    names = list(columns)
    lines = [f"{'ms per step':<34}" + "".join(f"{n:>26}" for n in names)]

    def cell(values):
        return f"{statistics.median(values):7.3f} [{min(values):.3f}-{max(values):.3f}]"

    rounds = {n: columns[n] for n in names}
    for piece in COUNTED + ("total (counted)",) + EXTRA:
        row = f"{piece:<34}"
        for n in names:
            if piece == "total (counted)":
                values = [sum(r[p] for p in COUNTED) for r in rounds[n]]
            else:
                values = [r[piece] for r in rounds[n]]
            row += f"{cell(values):>26}"
        lines.append(row)
    totals = {n: statistics.median(sum(r[p] for p in COUNTED) for r in rounds[n]) for n in names}
    lines.append(f"target: counted total <= {TARGET_MS:.1f} ms: "
                 + ", ".join(f"{n} {'meets it' if t <= TARGET_MS else 'misses it'} ({t:.2f} ms)"
                             for n, t in totals.items()))
    if len(names) == 2:
        a, b = names
        lines.append(f"ratio {a} / {b} (counted total): {totals[a] / totals[b]:.1f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per piece (median)")
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "quickstart.yaml")
    parser.add_argument("--compare", metavar="DIR", help="another checkout to time side by side with this one")
    parser.add_argument("--rounds", type=int, default=3, help="with --compare: interleaved runs per checkout")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default, as the driver of a run with a cached model has)")
    parser.add_argument("--json", action="store_true", help="print one JSON line (used by --compare)")
    args = parser.parse_args()
    args.recipe = args.recipe.resolve()
    if args.compare:
        trees = {Path(args.compare).resolve().name or args.compare: str(Path(args.compare).resolve()),
                 "this": str(ROOT)}
        columns = {name: [] for name in trees}
        for r in range(args.rounds):
            for name, tree in trees.items():
                print(f"[bench] round {r + 1}/{args.rounds}: {name} ({tree})", file=sys.stderr, flush=True)
                columns[name].append(run_tree(tree, args))
        print(f"controller work per step, {args.recipe.name} shape, median of {args.repeats} calls per run, "
              f"{args.rounds} interleaved runs per checkout ({os.cpu_count()} CPUs, torch threads "
              f"{args.threads or 'default'})")
        print(table(columns))
        return
    import torch

    import rlvr

    if args.threads:
        torch.set_num_threads(args.threads)
    result = measure(quickstart_step(args.recipe), args.repeats)
    if args.json:
        print(json.dumps(result))
        return
    print(f"rlvr from {Path(rlvr.__file__).parent}; torch threads {torch.get_num_threads()}; "
          f"median of {args.repeats} calls")
    print(table({"ms": [result]}))


if __name__ == "__main__":
    main()
