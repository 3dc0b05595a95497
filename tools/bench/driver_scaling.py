# Run: .venv/bin/python tools/bench/driver_scaling.py [--sizes 64x8x256,256x8x1024,...] [--engines 1,4,16,64]
#        [--engine-size 64x8x256] [--steps 3] [--target 1024x16x4096] [--json out.json]
"""How the driver's (controller's) work per RL step grows with the batch and with the actors.

Simulated: stand-in rollout engines (Ray actors, one logical CPU each) return canned samples at
once (random token ids and log-probs, every response max_new_tokens long, built once per shape
and sent again every step), stand-in reward workers score them at once, and a stand-in trainer
takes the batch and returns. The driver runs rlvr's own StepRunner.rl_step against them, so
what remains of a step is the driver's work plus Ray's transport:

  step_ms        the whole rl_step (launch, gather, score round trip, prepare, train call)
  controller_ms  perf/controller_s as the loop logs it (prepare's own work on the samples)
  driver_cpu_ms  CPU seconds (user + system, every thread) the driver process spent in the
                 rl_step: its own work, where step_ms also holds the stand-ins' and the object
                 store's work on the same cores and the waits between them
  peak_mb        tracemalloc's peak during one launch, gather and prepare (a separate, untimed
                 step): Python objects and numpy's buffers, plus the batch's two masks (made by
                 torch, which tracemalloc does not see)
  moved_mb       bytes serialized per step: engine results to the driver, records to the reward
                 workers and back, the batch to the trainer (pickle protocol 5 sizes, as Ray
                 ships them)

Two axes: the batch (prompts x G x response tokens, --sizes, with --engines-for-sizes engines)
and the actors (--engines, at --engine-size). Each axis gets a least-squares fit of
log(step_ms) on log(tokens per step) or log(engines): the slope b of step ~ a * x^b, its value
extrapolated to --target, and the size at which the driver's step work would pass 5% of a 60 s
step (3 s). Engines ship their samples as flat arrays (rlvr.rollout.generation.PackedGroups), so
1024 x 16 x 4096 (67M tokens) runs on a 24 GB machine; it needs a quiet one.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere: import this checkout's rlvr
    sys.path.insert(0, str(ROOT))

BUDGET_S = 0.05 * 60.0  # 5% of a 60 s GPU step
VOCAB = 32_000  # canned token ids are drawn below this (realistic int sizes for pickling)


def parse_size(text: str) -> Tuple[int, int, int]:
    """'PxGxT' -> (prompts, samples per prompt, response tokens)."""
    try:
        p, g, t = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"size {text!r}: write prompts x G x response tokens, e.g. 256x16x1024") from None
    if min(p, g, t) < 1:
        raise SystemExit(f"size {text!r}: every factor must be >= 1")
    return p, g, t


# ---- stand-ins ------------------------------------------------------------------------------

def actor_classes():
    """(CannedEngine, CannedReward, CannedTrainer) Ray actor classes. Made here so cloudpickle
    ships them by value (this file is not an importable module in Ray's workers)."""
    import ray

    def canned_group(n: int, tokens: int, seed: int):
        """n Generations (token_ids, logprobs as numpy arrays, as engines' samples arrive at the
        driver), each `tokens` long. rlvr.rollout.generation imports no torch: nor do the stand-ins."""
        import numpy as np

        from rlvr.rollout.generation import Generation

        rng = np.random.default_rng(seed)
        return [Generation(rng.integers(3, VOCAB, tokens), -rng.random(tokens), f"{seed}.{j}:" + "x" * (3 * tokens),
                           "length") for j in range(n)]

    @ray.remote(num_cpus=1)
    class CannedEngine:
        """RolloutWorker.generate's contract, answered from canned samples built once per shape."""

        def __init__(self, index: int):
            self.index, self.cache = index, {}

        def generate(self, prompts, n, max_new_tokens, **_):
            from rlvr.rollout.generation import PackedGroups

            key = (len(prompts), n, max_new_tokens)
            if key not in self.cache:
                self.cache = {key: [canned_group(n, max_new_tokens, self.index * 100_003 + i)
                                    for i in range(len(prompts))]}
            groups = self.cache[key]
            # packed, as RolloutWorker.generate ships them
            return {"generations": PackedGroups(groups), "policy_version": 0,
                    "num_tokens": len(prompts) * n * max_new_tokens, "seconds": 0.0}

        def warm(self, prompts, n, max_new_tokens):
            self.generate([[0]] * prompts, n, max_new_tokens)

    @ray.remote(num_cpus=1)
    class CannedReward:
        """RewardWorker.score's contract (scores_only: each key and its scores), at once."""

        def score(self, records, scores_only=False):
            out = []
            for r in records:
                gt = float((r["sample_index"] + len(r["response"])) % 3 == 0)
                out.append({**({"prompt_id": r["prompt_id"], "sample_index": r["sample_index"]} if scores_only else r),
                            "gt": gt, "proxy": gt, "reason": "ok", "answer": None,
                            "expected_proxy": gt, "systematic_proxy": gt})
            return out

    @ray.remote(num_cpus=1)
    class CannedTrainer:
        """PolicyTrainer.train_step's contract: takes the shard, returns metrics at once."""

        def train_step(self, batch, temperature=1.0, broadcast_version=None, counts=None):
            return {"loss": 0.0, "policy/grad_norm": 0.0, "trainer/response_tokens": float(len(batch))}

    return CannedEngine, CannedReward, CannedTrainer


class FakeTokenizer:
    """What StepRunner asks of a tokenizer: ids of a prompt's text, eos and pad ids."""

    eos_token_id, pad_token_id = 2, 0

    def __call__(self, text: str, add_special_tokens: bool = False) -> Dict[str, List[int]]:
        return {"input_ids": [3 + ord(c) % 200 for c in text]}


class Simulation:
    """rlvr's StepRunner over stand-in actors: `engines` engines, `rewards` reward workers, one
    trainer rank; reshape with `resize(P, G, T)` before stepping."""

    def __init__(self, engines: int, rewards: int = 1, recipe: Path = ROOT / "recipes" / "quickstart.yaml"):
        from rlvr.controller.weight_sync import EngineSleep
        from rlvr.trainer.group import TrainerGroup

        CannedEngine, CannedReward, CannedTrainer = actor_classes()
        self.recipe = recipe
        trainer = TrainerGroup.__new__(TrainerGroup)  # the real driver-side group, over a stand-in rank
        trainer.num_ranks, trainer.actors, trainer._store = 1, [CannedTrainer.remote()], None
        trainer.minibatches_per_step = 1
        self.actors = SimpleNamespace(
            rollout=[CannedEngine.remote(i) for i in range(engines)], reward=[CannedReward.remote() for _ in range(rewards)],
            trainer=trainer, weight_sync=None, engine_sleep=EngineSleep([], enabled=False),
            sync_weights=lambda version: 0.0)
        self.runner, self.prompts = None, []

    def resize(self, P: int, G: int, T: int) -> None:
        import ray

        from rlvr.config import load_recipe
        from rlvr.controller.prompts import split_round_robin
        from rlvr.controller.step import StepRunner
        from rlvr.tasks.arithmetic import arithmetic_prompts

        cfg = load_recipe(str(self.recipe), [f"rollout.prompts_per_step={P}", f"rollout.samples_per_prompt={G}",
                                             f"rollout.max_new_tokens={T}", "algorithm.kl_coef=0",
                                             "reward.colocate=false"])
        self.runner = StepRunner(cfg, self.actors, FakeTokenizer())
        self.prompts = arithmetic_prompts(0, "train", P, num_digits=cfg.task.num_digits)
        chunks = split_round_robin(list(range(P)), len(self.actors.rollout))
        ray.get([w.warm.remote(len(c), G, T) for w, c in zip(self.actors.rollout, chunks) if c])

    def step(self, step: int) -> Dict[str, float]:
        """One rl_step: {"step_ms", "controller_ms", "driver_cpu_ms"}."""
        import resource

        def cpu_s() -> float:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            return usage.ru_utime + usage.ru_stime

        start, cpu = time.perf_counter(), cpu_s()
        metrics, _ = self.runner.rl_step(step, self.prompts)
        return {"step_ms": (time.perf_counter() - start) * 1e3, "controller_ms": metrics["perf/controller_s"] * 1e3,
                "driver_cpu_ms": (cpu_s() - cpu) * 1e3}

    def memory_and_bytes(self) -> Dict[str, float]:
        """{"peak_mb", "moved_mb"} of one more (untimed) step, as the module docstring says."""
        import ray

        from rlvr.rewards.worker import sample_records
        from rlvr.rollout.generation import PackedGroups

        runner = self.runner
        tracemalloc.start()
        try:
            generated = runner.gather(runner.launch(self.prompts, runner.cfg.rollout.samples_per_prompt, 1.0, seed=0))
            rollout = runner.prepare(1, self.prompts, 0, generated)
            python_peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        batch = rollout.batch
        # numpy reports its buffers to tracemalloc (input_ids, old_logprobs, the engines' arrays);
        # the two masks are made by torch, which does not
        tensors = sum(getattr(batch, k).numel() * getattr(batch, k).element_size()
                      for k in ("attention_mask", "response_mask"))

        def size(obj) -> int:
            buffers: List[Any] = []
            head = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
            return len(head) + sum(memoryview(b).nbytes for b in buffers)

        chunks = generated["generations"]
        engine_out = sum(size({"generations": PackedGroups(chunks[i::len(self.actors.rollout)])})
                         for i in range(len(self.actors.rollout)))
        records = sample_records([runner._reward_key(p) for p in self.prompts], chunks, 0)
        scored = ray.get(self.actors.reward[0].score.remote([r for g in records for r in g], scores_only=True))
        moved = engine_out + size(records) + size(scored) + size(batch)
        return {"peak_mb": (python_peak + tensors) / 2**20, "moved_mb": moved / 2**20}


# ---- measuring and fitting ------------------------------------------------------------------

def measure(sim: Simulation, P: int, G: int, T: int, steps: int) -> Dict[str, Any]:
    """One table row: medians over `steps` timed rl_steps (after one untimed), memory and bytes."""
    sim.resize(P, G, T)
    sim.step(0)
    runs = [sim.step(k + 1) for k in range(steps)]
    row = {"prompts": P, "G": G, "tokens": T, "sequences": P * G, "tokens_per_step": P * G * T,
           "engines": len(sim.actors.rollout),
           **{k: statistics.median(r[k] for r in runs) for k in ("step_ms", "controller_ms", "driver_cpu_ms")},
           **{f"{k}_range": [min(r[k] for r in runs), max(r[k] for r in runs)] for k in ("step_ms", "driver_cpu_ms")}}
    row.update(sim.memory_and_bytes())
    return row


def fit_power(xs: Sequence[float], ys: Sequence[float]) -> Dict[str, float]:
    """Least-squares fit of log y = log a + b log x: {"a", "b"} (y ~ a * x^b). Needs two distinct xs."""
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1e-9)) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    sxx = sum((x - mx) ** 2 for x in lx)
    if sxx == 0:
        raise ValueError("fit_power: needs at least two different x values")
    b = sum((x - mx) * (y - my) for x, y in zip(lx, ly)) / sxx
    return {"a": math.exp(my - b * mx), "b": b}


def crossing(fit: Dict[str, float], budget: float) -> float:
    """x at which a * x^b reaches `budget`: inf when the fit does not grow, or grows so slowly
    that the crossing lies beyond any float (a near-flat fit of a few noisy rows)."""
    if fit["b"] <= 0:
        return math.inf
    log_x = math.log(budget / fit["a"]) / fit["b"]
    return math.exp(log_x) if log_x < math.log(sys.float_info.max) else math.inf


def render(rows: Sequence[Dict[str, Any]], title: str) -> str:
    lines = [title, "", "| prompts x G x tokens | engines | tokens/step | step (ms) | driver CPU (ms) | controller (ms) | "
                        "peak (MB) | moved (MB) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['prompts']} x {r['G']} x {r['tokens']} | {r['engines']} | {r['tokens_per_step']:,} | "
                     f"{_mmm(r, 'step_ms')} | {_mmm(r, 'driver_cpu_ms')} | {r['controller_ms']:.1f} | {r['peak_mb']:.1f} | "
                     f"{r['moved_mb']:.1f} |")
    return "\n".join(lines)


def _mmm(row, key: str) -> str:
    """'median (min-max)' of a row's timed steps."""
    lo, hi = row.get(f"{key}_range", (row[key], row[key]))
    return f"{row[key]:.1f} ({lo:.0f}-{hi:.0f})"


def analyse(rows, key: str, target_x: float,
            metrics=("step_ms", "driver_cpu_ms", "controller_ms", "peak_mb", "moved_mb")):
    """Per metric: its power-law fit in `key`, the value extrapolated to target_x; for the times,
    the x at which they reach 5% of a 60 s step."""
    out = {}
    for m in metrics:
        fit = fit_power([r[key] for r in rows], [r[m] for r in rows])
        out[m] = {**fit, "at_target": fit["a"] * target_x ** fit["b"]}
        if m.endswith("_ms"):
            out[m]["budget_x"] = crossing(fit, BUDGET_S * 1e3)
    return out


def describe(analysis, key: str, target_label: str) -> str:
    lines = []
    for m, f in analysis.items():
        line = f"- {m} ~ {f['a']:.3g} * {key}^{f['b']:.2f}; at {target_label}: {f['at_target']:.4g}"
        if "budget_x" in f:
            bx = f["budget_x"]
            where = "never (no measurable growth)" if math.isinf(bx) else f"{bx:,.0f}"
            line += f"; passes {BUDGET_S:.0f} s (5% of 60 s) at {key} = {where}"
        lines.append(line)
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16x8x64,64x8x256,128x16x512,256x16x1024",
                        help="batch axis: comma list of PROMPTSxGxTOKENS")
    parser.add_argument("--engines-for-sizes", type=int, default=4, help="engines on the batch axis")
    parser.add_argument("--engines", default="1,4,16,64", help="actor axis: comma list of engine counts")
    parser.add_argument("--engine-size", default="64x8x256", help="the batch on the actor axis")
    parser.add_argument("--rewards", type=int, default=1, help="stand-in reward workers")
    parser.add_argument("--steps", type=int, default=3, help="timed rl_steps per row (median)")
    parser.add_argument("--target", default="1024x16x4096", help="the size the fit extrapolates to")
    parser.add_argument("--target-engines", type=int, default=64, help="the engine count the fit extrapolates to")
    parser.add_argument("--json", help="write the rows and fits here")
    args = parser.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    engines = [int(e) for e in args.engines.split(",") if e.strip()]
    tP, tG, tT = parse_size(args.target)
    if len({p * g * t for p, g, t in sizes}) < 2 or len(set(engines)) < 2:
        raise SystemExit("--sizes and --engines each need two different values to fit a growth")

    import ray

    logical = max(engines + [args.engines_for_sizes]) + args.rewards + 2
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=logical, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    try:
        print(f"local Ray cluster with {logical} logical CPUs on {os.cpu_count()} cores; "
              f"median (min-max) of {args.steps} rl_steps per row", flush=True)
        sim = Simulation(args.engines_for_sizes, args.rewards)
        batch_rows = [measure(sim, P, G, T, args.steps) for P, G, T in sizes]
        del sim
        eP, eG, eT = parse_size(args.engine_size)
        actor_rows = []
        for n in engines:
            sim = Simulation(n, args.rewards)
            actor_rows.append(measure(sim, eP, eG, eT, args.steps))
            for actor in sim.actors.rollout:
                ray.kill(actor)
    finally:
        ray.shutdown()
    target_tokens = tP * tG * tT
    batch_fit = analyse(batch_rows, "tokens_per_step", target_tokens)
    actor_fit = analyse(actor_rows, "engines", args.target_engines)
    # the two axes combined: the batch's fit at the target plus what the extra engines add (each
    # engine adds a call and a result to gather: additive, not a factor on the batch's work)
    engines_extra_ms = max(actor_fit["step_ms"]["a"] * (args.target_engines ** actor_fit["step_ms"]["b"]
                                                        - args.engines_for_sizes ** actor_fit["step_ms"]["b"]), 0.0)
    combined_ms = batch_fit["step_ms"]["at_target"] + engines_extra_ms
    measured = [r for r in batch_rows + actor_rows
                if (r["prompts"], r["G"], r["tokens"], r["engines"]) == (tP, tG, tT, args.target_engines)]
    print(render(batch_rows, f"batch axis ({args.engines_for_sizes} engines)"))
    print(describe(batch_fit, "tokens_per_step", f"{args.target} ({target_tokens:,} tokens)"))
    budget_tokens = batch_fit["step_ms"]["budget_x"]
    if not math.isinf(budget_tokens):
        print(f"  = about {tP} x {tG} x {budget_tokens / (tP * tG):,.0f} tokens at {tP} x {tG} sequences")
    print()
    print(render(actor_rows, f"actor axis ({args.engine_size} per step)"))
    print(describe(actor_fit, "engines", f"{args.target_engines} engines"))
    print()
    print(f"driver step work at {args.target} with {args.target_engines} engines (both fits): "
          f"{combined_ms / 1e3:.2f} s = {combined_ms / 600:.1f}% of a 60 s step "
          f"({'within' if combined_ms <= BUDGET_S * 1e3 else 'over'} the 5% target)")
    for r in measured:
        for what, ms in (("step", r["step_ms"]), ("driver CPU", r["driver_cpu_ms"])):
            print(f"{what} at {args.target} with {args.target_engines} engines (measured): {ms / 1e3:.2f} s = "
                  f"{ms / 600:.1f}% of a 60 s step ({'within' if ms <= BUDGET_S * 1e3 else 'over'} the 5% target)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "batch_rows": batch_rows, "actor_rows": actor_rows, "batch_fit": batch_fit, "actor_fit": actor_fit,
            "combined_ms": combined_ms, "measured": measured,
            "target": args.target, "target_engines": args.target_engines}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
