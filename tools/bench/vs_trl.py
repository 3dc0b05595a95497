# Run: .venv/bin/python tools/bench/vs_trl.py [--steps 30 --prompts 32 --samples 8 --rounds 3 --seeds 0,1,2
#        --systems bare,rlvr,rlvr_in_trainer,rlvr_overlap,trl,trl_1t --load 2 --json out.json] [recipe key=value ...]
# (TRL arms need the bench extra: pip install -e ".[bench]"; expected hardware: any CPU, 2 cores or more)
"""rlvr beside TRL's GRPOTrainer and a bare single-process loop, on the quickstart workload.

Every arm trains the quickstart's warmed-up tiny model (built once by rlvr's own warm-up
cache under <output_dir>/_models) for --steps GRPO steps of --prompts x --samples, on the
same prompts in the same order (rlvr's PromptSampler), with the same reward (rlvr's
RewardWorker scoring, in-process for TRL and bare), G, max new tokens, temperature, lr, clip
and token-mean loss. Arms run in interleaved rounds (round r: every system once), each in
its own subprocess with its own thread setting, so background load hits them alike and no
setting leaks between them.

Measured per arm, over the timed window (steps 2..N: step 1 pays lazy initialisation in
every system; the final evaluation is excluded): samples/s, and CPU-seconds per step of the
arm's whole process tree (for rlvr: the driver, Ray's own processes and every actor);
startup (process start to step 1); held-out greedy ground-truth accuracy after the N steps
(the same eval prompts and checker for all). rlvr's per-stage times (metrics.jsonl perf/*)
are printed beside their floors measured by the bare loop: HF generate in-process, scoring
in-process, one forward/backward/AdamW step (each distinct prompt forwarded once, as rlvr's
trainer does by default), a copy_ of the state_dict into the generating model, and batch building.

`--load N` starts N CPU-bound processes before every arm and stops them after it (each also
ends by itself if the bench dies), so a busy machine is reproducible: run once without and once
with it to get both tables.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere: import this checkout's rlvr
    sys.path.insert(0, str(ROOT))

# name -> (kind, torch threads or None = the library's default, label in the tables)
SYSTEMS = {
    "bare": ("bare", 1, "bare single-process loop, 1 thread"),
    "rlvr": ("rlvr", None, "rlvr sync (actors, 1 thread each)"),
    "rlvr_overlap": ("rlvr", None, "rlvr rollout.overlap=true, reward.colocate=true"),
    "rlvr_threads": ("rlvr", None, "rlvr sync, cluster.threads_per_actor=auto"),
    "rlvr_dp": ("rlvr", None, "rlvr sync, one actor per core per stage (1 thread each)"),
    "rlvr_in_trainer": ("rlvr", None, "rlvr sync, rollout.in_trainer=true, reward.colocate=true"),
    "trl": ("trl", None, "TRL GRPOTrainer, default threads"),
    "trl_1t": ("trl", 1, "TRL GRPOTrainer, 1 thread"),
}
DEFAULT_SYSTEMS = "bare,rlvr,rlvr_dp,rlvr_in_trainer,rlvr_overlap,trl,trl_1t"
# Per-step stage times (seconds) every arm that has them reports, in table order.
STAGES = ("rollout", "reward", "controller", "train", "weight_sync", "after_step", "step")
STAGE_FLOORS = {
    "rollout": "HF generate in-process (rlvr's HFEngine, no Ray)",
    "reward": "in-process scoring (the same RewardWorker.score)",
    "controller": "advantages + make_train_batch",
    "train": "one forward/backward/AdamW step, prompts shared",
    "train_compute": "one forward/backward/AdamW step, prompts shared (rlvr: inside the trainer actor, before the broadcast)",
    "weight_sync": "copy_ of the state_dict into the generating model",
    "after_step": "nothing (no files written)",
    "step": "the whole bare step",
}


# ---- measuring ---------------------------------------------------------------------------

def process_tree() -> list:
    """psutil.Process of this process and all its live descendants (for rlvr: Ray and its actors)."""
    import psutil

    me = psutil.Process()
    return [me] + me.children(recursive=True)


def tree_cpu_seconds() -> float:
    """User + system CPU seconds of this process and all its descendants, live or reaped."""
    import psutil

    total = 0.0
    for proc in process_tree():
        try:
            t = proc.cpu_times()
            # children_*: descendants that exited and were waited for; live ones count themselves
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:  # exited between the listing and the read
            pass
    return total


def process_start_time() -> float:
    """When this process started (time.time() clock): startup includes interpreter and imports."""
    import psutil

    return psutil.Process().create_time()


def overlap_supported() -> bool:
    """Whether this checkout's schema has rollout.overlap (the overlap arm runs only then)."""
    from rlvr.config.schema import RolloutConfig

    return "overlap" in {f.name for f in dataclasses.fields(RolloutConfig)}


def threads_supported() -> bool:
    """Whether this checkout's schema has cluster.threads_per_actor (the rlvr_threads arm runs only then)."""
    from rlvr.config.schema import ClusterConfig

    return "threads_per_actor" in {f.name for f in dataclasses.fields(ClusterConfig)}


def machine_info() -> Dict[str, Any]:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    import psutil

    return {"cpus_logical": os.cpu_count(), "cpus_physical": psutil.cpu_count(logical=False),
            "cpu_model": model, "platform": platform.platform(), "python": platform.python_version()}


def versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "ray", "deepspeed", "trl"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


# ---- the workload ------------------------------------------------------------------------

def recipe_overrides(spec: Dict[str, Any], seed: int) -> List[str]:
    """The recipe's key=value overrides of one arm: the user's, then the bench's shape."""
    return [*spec["overrides"], f"steps={spec['steps']}", f"rollout.prompts_per_step={spec['prompts']}",
            f"rollout.samples_per_prompt={spec['samples']}", f"output_dir={spec['output_dir']}",
            f"seed={seed}", "eval_every=0"]


def load_workload(spec: Dict[str, Any], seed: int, extra: Sequence[str] = ()):
    """(cfg, train prompts, eval prompts, [(step, epoch, prompts)] for steps 1..N, verify)."""
    from rlvr.config.load import load_recipe
    from rlvr.controller.loop import Controller
    from rlvr.controller.prompts import PromptSampler
    from rlvr.rewards.verifiers import get_verifier

    cfg = load_recipe(spec["recipe"], [*recipe_overrides(spec, seed), *extra])
    train, held_out = Controller(cfg).prompts()
    sampler = PromptSampler(train, cfg.seed)
    P = cfg.rollout.prompts_per_step
    schedule = [(s, sampler.epoch(s, P), sampler.batch(s, P)) for s in range(1, cfg.steps + 1)]
    return cfg, train, held_out, schedule, get_verifier(cfg.reward.verifier)


def score_groups(scorer, prompts, completions: Sequence[Sequence[str]], token_counts, epoch: int):
    """Score G completions per prompt as rlvr's controller does: [P][G] records with gt and proxy."""
    records = [{"prompt_id": p.id, "sample_index": epoch * len(group) + j, "response": text, "gold": p.gold,
                "num_tokens": n, "meta": p.meta}
               for p, group, counts in zip(prompts, completions, token_counts)
               for j, (text, n) in enumerate(zip(group, counts))]
    scored = scorer.score(records)  # same order as records
    G = len(completions[0])
    return [scored[i * G:(i + 1) * G] for i in range(len(prompts))]


def window(spec: Dict[str, Any]) -> range:
    """The timed steps: 2..N."""
    return range(2, spec["steps"] + 1)


# ---- the arms (each runs in its own subprocess) ---------------------------------------------

def run_bare(spec: Dict[str, Any], seed: int, threads: Optional[int]) -> Dict[str, Any]:
    """A single-process GRPO loop built from rlvr's pure functions and its HF engine."""
    import torch

    torch.set_num_threads(threads or 1)
    from transformers import AutoModelForCausalLM

    from rlvr.algorithms import aggregate, compute_advantages, policy_loss_terms, token_logprobs
    from rlvr.controller.step import reward_tensors
    from rlvr.models.warmup import greedy_accuracy
    from rlvr.rewards.worker import RewardWorker
    from rlvr.rollout.hf_engine import HFEngine
    from rlvr.trainer.batch import make_train_batch, resolve_pad_id, trim_padding
    from rlvr.trainer.prompt_sharing import response_logits

    cfg, _, held_out, schedule, verify = load_workload(spec, seed)
    alg, ro = cfg.algorithm, cfg.rollout
    torch.manual_seed(seed)
    engine = HFEngine(spec["model_dir"], seed=seed, dtype=cfg.model.dtype, device="cpu")
    tok = engine.tokenizer
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=getattr(torch, cfg.model.dtype))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.trainer.lr, weight_decay=cfg.trainer.weight_decay)
    scorer = RewardWorker(cfg.reward.verifier, dict(cfg.reward.design), timeout_s=cfg.reward.timeout_s)
    pad = resolve_pad_id(tok.pad_token_id, tok.eos_token_id)
    dst, src = engine.model.state_dict(), model.state_dict()
    copies = [(dst[name], src[name]) for name in dst]
    low = alg.clip_eps if alg.clip_eps_low is None else alg.clip_eps_low
    high = alg.clip_eps if alg.clip_eps_high is None else alg.clip_eps_high
    stages: Dict[str, List[float]] = {k: [] for k in STAGES}
    marks: Dict[str, float] = {}
    for step, epoch, prompts in schedule:
        if step == 2:
            marks.update(start=time.time(), cpu_start=tree_cpu_seconds())
        t0 = time.time()
        if step == 1:
            marks["step1"] = t0
        ids = [tok(p.text, add_special_tokens=False)["input_ids"] for p in prompts]
        gens = engine.generate(ids, ro.samples_per_prompt, ro.max_new_tokens, temperature=ro.temperature,
                               top_p=ro.top_p, seed=seed * 1_000_003 + step * 97, stop_token_ids=[tok.eos_token_id])
        t1 = time.time()
        scored = score_groups(scorer, prompts, [[g.text for g in grp] for grp in gens],
                              [[len(g.token_ids) for g in grp] for grp in gens], epoch)
        t2 = time.time()
        proxy, _ = reward_tensors(scored)
        G = ro.samples_per_prompt
        batch = make_train_batch([x for x in ids for _ in range(G)], [g.token_ids for grp in gens for g in grp],
                                 [g.logprobs for grp in gens for g in grp], [0.0] * proxy.numel(), pad_id=pad)
        batch.advantages = compute_advantages(alg.name, proxy, normalize_std=alg.normalize_std).flatten().float()
        t3 = time.time()
        batch = trim_padding(batch)
        # as rlvr's trainer: a group's G rows share one forward of their prompt
        logits, start = response_logits(model, batch, share=True)
        if ro.temperature != 1.0:
            logits = logits / ro.temperature
        logprobs = token_logprobs(logits[:, :-1], batch.input_ids[:, start:])
        # one update per step: the pre-update policy is this forward, so old = detached (ratio 1)
        loss_tok, _, _ = policy_loss_terms(logprobs, logprobs.detach(), batch.advantages, alg.loss, low, high,
                                           alg.clip_ratio_c)
        loss = aggregate(loss_tok, batch.response_mask[:, start:], alg.loss_agg, alg.loss_agg_constant)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.trainer.grad_clip)
        opt.step()
        t4 = time.time()
        with torch.no_grad():
            for d, s in copies:
                d.copy_(s)
        t5 = time.time()
        if step >= 2:
            for name, value in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, 0.0, t5 - t0)):
                stages[name].append(value)
    marks.update(end=time.time(), cpu_end=tree_cpu_seconds())
    accuracy = greedy_accuracy(model, tok, held_out, verify, ro.max_new_tokens)
    return _result(spec, marks, accuracy, {k: statistics.mean(v) for k, v in stages.items()})


def per_core_layout() -> List[str]:
    """The rlvr_dp arm's overrides: a synchronous step computes one stage at a time, so each stage
    gets one single-threaded actor per core (the step's prompts split between the engines, the
    batch between the trainer ranks); an in-process verifier scores inside the engines."""
    cores = max(1, os.cpu_count() or 1)
    return [f"rollout.num_workers={cores}", f"trainer.num_ranks={cores}"]


def run_rlvr(spec: Dict[str, Any], seed: int, overlap: bool, extra: Sequence[str] = (),
             colocate_reward: bool = False) -> Dict[str, Any]:
    """rlvr's own loop (Controller.run, as `rlvr train` runs it), stamped at each step's log line.
    colocate_reward: score inside the rollout workers when the verifier runs in-process (the
    overlap arm always does)."""
    from rlvr.controller import loop

    N = spec["steps"]
    # Equal work: TRL at beta = 0 and the bare loop keep no reference model, so rlvr's KL-to-init
    # diagnostic (one no-grad reference forward per step) is off here. The overlap arm is rlvr
    # set up for throughput: its ratio is taken against the engine's (one update old) log-probs
    # (cheaper than TIS and as accurate here), and an in-process verifier scores inside the
    # rollout worker (reward.colocate; the same scores, no reward round trip: 4-8% per step).
    from rlvr.config import load_recipe
    from rlvr.rewards.verifiers import runs_in_process

    colocate = runs_in_process(load_recipe(spec["recipe"], spec["overrides"]).reward.verifier)
    extra = [*extra, "algorithm.log_kl_to_init=false",
             *(["rollout.overlap=true", "algorithm.recompute_logprobs=false"] if overlap else []),
             *(["reward.colocate=true"] if (overlap or colocate_reward) and colocate else [])]
    cfg, *_ = load_workload(spec, seed, extra)
    cfg = dataclasses.replace(cfg, run_name=f"vs_trl-{'overlap' if overlap else 'sync'}-s{seed}-{os.getpid()}")
    logged: Dict[int, float] = {}
    marks: Dict[str, float] = {}
    final_eval = {"wall": 0.0, "cpu": 0.0}

    class StampedTracker(loop.Tracker):
        """Tracker that notes when each step's metrics are logged (and the CPU then)."""

        def log(self, metrics):
            super().log(metrics)
            step = int(metrics["step"])
            logged[step] = time.time()
            if step == 1:
                marks.update(start=logged[step], cpu_start=tree_cpu_seconds())
            if step == N:
                marks.update(end=logged[step], cpu_end=tree_cpu_seconds(), processes=len(process_tree()))

    class TimedController(loop.Controller):
        """Controller whose last evaluation (inside step N's window) is timed, to be taken out."""

        def evaluate(self, prompts, step):
            wall, cpu = time.time(), tree_cpu_seconds()
            out = super().evaluate(prompts, step)
            if step == N:
                final_eval.update(wall=time.time() - wall, cpu=tree_cpu_seconds() - cpu)
            return out

    loop.Tracker = StampedTracker  # the loop builds its Tracker by this module-level name
    summary = TimedController(cfg).run()
    run_dir = Path(cfg.output_dir) / cfg.run_name
    rows = {int(r["step"]): r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if r.get("step", 0) >= 1}
    marks["end"] -= final_eval["wall"]
    marks["cpu_end"] -= final_eval["cpu"]
    marks["step1"] = logged[1] - rows[1]["perf/step_s"]
    steps = list(window(spec))
    step_s = {k: rows[k]["perf/step_s"] - (final_eval["wall"] if k == N else 0.0) for k in steps}
    # every perf/*_s key the loop logs on each timed step (an overlapped loop may add or drop some)
    keys = set.intersection(*(set(rows[k]) for k in steps))
    stages = {key[len("perf/"):-len("_s")]: statistics.mean(rows[k][key] for k in steps)
              for key in sorted(keys) if key.startswith("perf/") and key.endswith("_s")
              and not key.endswith("_per_s") and key != "perf/step_s"}
    stages["step"] = statistics.mean(step_s.values())
    stages["after_step"] = (marks["end"] - marks["start"]) / len(steps) - stages["step"]
    if not spec.get("keep_runs"):
        shutil.rmtree(run_dir, ignore_errors=True)
    result = _result(spec, marks, summary["final_eval_gt_accuracy"], stages)
    result["initial_accuracy"] = summary.get("initial_eval_gt_accuracy")
    return result


def run_trl(spec: Dict[str, Any], seed: int, threads: Optional[int]) -> Dict[str, Any]:
    """TRL's GRPOTrainer on the same prompts (in order, no shuffle), reward, G and loss."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    try:
        from datasets import Dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
        from trl import GRPOConfig, GRPOTrainer
    except ImportError as err:
        raise SystemExit(f"the TRL arms need trl ({err}): pip install -e \".[bench]\", or leave trl out of "
                         "--systems") from None

    from rlvr.models.warmup import greedy_accuracy
    from rlvr.rewards.worker import RewardWorker

    cfg, _, held_out, schedule, verify = load_workload(spec, seed)
    ro, alg, N = cfg.rollout, cfg.algorithm, spec["steps"]
    G = ro.samples_per_prompt
    rows = [{"prompt": p.text, "prompt_id": p.id, "epoch": epoch}
            for _, epoch, prompts in schedule for p in prompts]
    scorer = RewardWorker(cfg.reward.verifier, dict(cfg.reward.design), timeout_s=cfg.reward.timeout_s)

    by_id = {p.id: p for _, _, prompts in schedule for p in prompts}
    seen: List[str] = []  # prompt ids in the order TRL scored them: must be the schedule's

    def proxy_reward(prompts, completions, completion_ids, prompt_id, epoch, **_):
        """The recipe's proxy reward of each completion (TRL groups a prompt's G rows together)."""
        groups = [slice(i, i + G) for i in range(0, len(completions), G)]
        seen.extend(prompt_id[g.start] for g in groups)
        scored = score_groups(scorer, [by_id[prompt_id[g.start]] for g in groups], [completions[g] for g in groups],
                              [[len(c) for c in completion_ids[g]] for g in groups], epoch[0])
        return [r["proxy"] for group in scored for r in group]

    marks: Dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            step = state.global_step + 1
            if step == 1:
                marks["step1"] = time.time()
            if step == 2:
                marks.update(start=time.time(), cpu_start=tree_cpu_seconds())

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == N:
                marks.update(end=time.time(), cpu_end=tree_cpu_seconds())

    tok = AutoTokenizer.from_pretrained(spec["model_dir"])
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=getattr(torch, cfg.model.dtype))
    with tempfile.TemporaryDirectory(prefix="vs_trl-") as out:
        args = GRPOConfig(
            output_dir=out, max_steps=N, per_device_train_batch_size=len(schedule[0][2]) * G,
            gradient_accumulation_steps=1, num_generations=G, max_completion_length=ro.max_new_tokens,
            temperature=ro.temperature, top_p=ro.top_p, top_k=0, learning_rate=cfg.trainer.lr,
            weight_decay=cfg.trainer.weight_decay, max_grad_norm=cfg.trainer.grad_clip,
            lr_scheduler_type="constant", warmup_steps=0, beta=alg.kl_coef, epsilon=alg.clip_eps,
            num_iterations=1, loss_type="dapo",  # dapo = token mean over the batch, as rlvr's token_mean
            scale_rewards="group" if alg.normalize_std else "none", shuffle_dataset=False, seed=seed,
            bf16=False, fp16=False, use_cpu=True, gradient_checkpointing=False, report_to="none",
            logging_steps=N, save_strategy="no", disable_tqdm=True, remove_unused_columns=False,
            dataloader_num_workers=0, log_completions=False)
        trainer = GRPOTrainer(model=model, reward_funcs=[proxy_reward], args=args,
                              train_dataset=Dataset.from_list(rows), processing_class=tok, callbacks=[Clock()])
        trainer.train()
    expected = [p.id for _, _, prompts in schedule for p in prompts]
    if seen != expected:
        raise RuntimeError(f"TRL trained on other prompts than the schedule (first: {seen[:3]}, expected "
                           f"{expected[:3]}): the comparison would not be like for like")
    accuracy = greedy_accuracy(trainer.model, tok, held_out, verify, ro.max_new_tokens)
    return _result(spec, marks, accuracy, {})


def _result(spec, marks: Dict[str, float], accuracy: float, stages: Dict[str, float]) -> Dict[str, Any]:
    n = len(window(spec))
    wall = marks["end"] - marks["start"]
    return {"samples_per_s": n * spec["prompts"] * spec["samples"] / wall, "step_s": wall / n,
            "cpu_s_per_step": (marks["cpu_end"] - marks["cpu_start"]) / n,
            "startup_s": marks["step1"] - process_start_time(), "eval_accuracy": accuracy,
            "stages": stages, "torch_threads": _torch_threads(),
            "processes": marks.get("processes", len(process_tree()))}


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def run_arm(system: str, spec: Dict[str, Any], seed: int) -> Dict[str, Any]:
    kind, threads, _ = SYSTEMS[system]
    if kind == "bare":
        return run_bare(spec, seed, threads)
    if kind == "rlvr":
        extra = {"rlvr_threads": ["cluster.threads_per_actor=auto"], "rlvr_dp": per_core_layout(),
                 "rlvr_in_trainer": ["rollout.in_trainer=true"]}.get(system, [])
        return run_rlvr(spec, seed, overlap=system == "rlvr_overlap", extra=extra,
                        colocate_reward=system in ("rlvr_dp", "rlvr_in_trainer"))
    return run_trl(spec, seed, threads)


# ---- the driver --------------------------------------------------------------------------

# A CPU-bound busy loop that ends by itself once its parent (the bench) is gone, even after a SIGKILL.
BUSY_LOOP = ("import os, sys, time\n"
             "parent = int(sys.argv[1])  # the bench's pid, passed: it may be gone before this line runs\n"
             "print('up', flush=True)  # the bench starts the arm once every load process runs\n"
             "while os.getppid() == parent:\n"
             "    end = time.time() + 0.5\n"
             "    while time.time() < end:\n"
             "        pass\n")


class BackgroundLoad:
    """`--load N`: N CPU-bound processes running inside the block (one arm), stopped at its end,
    so that "under load" is the same for every arm and every round. N = 0: nothing."""

    def __init__(self, processes: int):
        if processes < 0:
            raise SystemExit(f"--load = {processes} must be >= 0")
        self.count, self.procs = processes, []

    def __enter__(self) -> "BackgroundLoad":
        self.procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(os.getpid())], stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                      for _ in range(self.count)]
        for proc in self.procs:  # running, not merely forked, before the arm starts
            proc.stdout.readline()
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        self.procs = []


def run_rounds(systems: Sequence[str], seeds: Sequence[int], rounds: int, run_one: Callable[..., Dict[str, Any]],
               load: int = 0, log: Callable[[str], None] = lambda message: None) -> List[Dict[str, Any]]:
    """Every arm once per round per seed (interleaved), each under `load` background processes;
    run_one(system, seed, round) gives the arm's result."""
    out = []
    for seed in seeds:
        for rnd in range(1, rounds + 1):
            for system in systems:
                started = time.time()
                with BackgroundLoad(load):
                    result = run_one(system, seed, rnd)
                result.update(system=system, seed=seed, round=rnd, load=load)
                out.append(result)
                log(f"seed {seed} round {rnd}/{rounds} {system}{f' (load {load})' if load else ''}: "
                    f"{result['samples_per_s']:.0f} samples/s, {result['cpu_s_per_step']:.3f} CPU-s/step, "
                    f"gt accuracy {result['eval_accuracy']:.3f} ({time.time() - started:.0f} s)")
    return out

def arm_env(threads: Optional[int]) -> Dict[str, str]:
    """The environment of one arm's subprocess: thread settings made explicit, none inherited."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def launch(system: str, spec_path: Path, seed: int, log_path: Path, timeout_s: float) -> Dict[str, Any]:
    """Run one arm in a subprocess; its result, or RuntimeError with the tail of its log."""
    out = log_path.with_suffix(".json")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--arm", system, "--spec", str(spec_path),
           "--seed", str(seed), "--result", str(out)]
    with open(log_path, "w") as log:
        try:
            proc = subprocess.run(cmd, env=arm_env(SYSTEMS[system][1]), stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout_s, cwd=ROOT)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    if code != 0 or not out.is_file():
        tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-25:])
        raise RuntimeError(f"arm {system} (seed {seed}) failed (exit {code}); log {log_path}:\n{tail}")
    return json.loads(out.read_text())


def spread(values: Sequence[float]) -> Dict[str, float]:
    """{"mean", "min", "max"} of values."""
    return {"mean": statistics.mean(values), "min": min(values), "max": max(values)}


def summarize(runs: Sequence[Dict[str, Any]], systems: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """Per system: samples/s, CPU-s per step, startup, stage times (mean, min, max over rounds),
    ratios of samples/s to each TRL arm's in the SAME round (and seed), and ground-truth
    accuracy: mean over seeds of each seed's mean over rounds.

    runs: [{"system", "seed", "round", "samples_per_s", "cpu_s_per_step", "startup_s",
    "eval_accuracy", "stages"}].
    """
    by = {(r["system"], r["seed"], r["round"]): r for r in runs}
    out: Dict[str, Dict[str, Any]] = {}
    for system in systems:
        mine = [r for r in runs if r["system"] == system]
        if not mine:
            continue
        row: Dict[str, Any] = {k: spread([r[k] for r in mine])
                               for k in ("samples_per_s", "cpu_s_per_step", "startup_s")}
        for ref in ("trl", "trl_1t"):
            ratios = [r["samples_per_s"] / by[(ref, r["seed"], r["round"])]["samples_per_s"]
                      for r in mine if (ref, r["seed"], r["round"]) in by]
            if ratios:
                row[f"vs_{ref}"] = spread(ratios)
        seeds = sorted({r["seed"] for r in mine})
        per_seed = [statistics.mean(r["eval_accuracy"] for r in mine if r["seed"] == s) for s in seeds]
        row["eval_accuracy"] = {"mean": statistics.mean(per_seed), "per_seed": dict(zip(seeds, per_seed))}
        names = sorted({k for r in mine for k in r["stages"]})
        row["stages"] = {k: spread([r["stages"][k] for r in mine if k in r["stages"]]) for k in names}
        out[system] = row
    return out


def _mmm(s: Dict[str, float], fmt: str) -> str:
    return f"{fmt.format(s['mean'])} ({fmt.format(s['min'])}-{fmt.format(s['max'])})"


def render(summary: Dict[str, Dict[str, Any]], steps: int, seeds: Sequence[int], initial: Optional[float]) -> str:
    """The two markdown tables: systems side by side, and rlvr's stages against bare floors."""
    acc_head = f"gt accuracy after {steps} steps (mean of {len(seeds)} seed{'s' if len(seeds) > 1 else ''})"
    lines = [f"| system | samples/s | CPU-s per step | vs TRL default | vs TRL 1 thread | {acc_head} "
             "| startup to step 1 (s) |",
             "|---|---|---|---|---|---|---|"]
    for system, row in summary.items():
        ratio = [(_mmm(row[k], "{:.2f}") if k in row else "-") for k in ("vs_trl", "vs_trl_1t")]
        lines.append(f"| {SYSTEMS[system][2]} | {_mmm(row['samples_per_s'], '{:.0f}')} | "
                     f"{_mmm(row['cpu_s_per_step'], '{:.3f}')} | {ratio[0]} | {ratio[1]} | "
                     f"{row['eval_accuracy']['mean']:.3f} | {row['startup_s']['mean']:.1f} |")
    if initial is not None:
        lines.append(f"\ninitial policy (warm-up): held-out greedy gt accuracy {initial:.3f}")
    rlvr_arms = [s for s in summary if SYSTEMS[s][0] == "rlvr"]
    if rlvr_arms:
        bare = summary.get("bare", {}).get("stages", {})
        lines += ["", "per-step stage costs in ms (mean, min-max over rounds), against the bare loop's floors:", "",
                  "| stage | " + " | ".join(SYSTEMS[s][2] for s in rlvr_arms) + " | bare floor | floor is |",
                  "|---|" + "---|" * len(rlvr_arms) + "---|---|"]
        extra = sorted({k for s in rlvr_arms for k in summary[s]["stages"]} - set(STAGES))
        for stage in list(STAGES) + extra:
            cells = [(_mmm({k: v * 1e3 for k, v in summary[s]["stages"][stage].items()}, "{:.1f}")
                      if stage in summary[s]["stages"] else "-") for s in rlvr_arms]
            floor = _mmm({k: v * 1e3 for k, v in bare[stage].items()}, "{:.1f}") if stage in bare else "-"
            note = STAGE_FLOORS.get(stage, f"(rlvr's perf/{stage}_s as its loop logs it)")
            lines.append(f"| {stage} | " + " | ".join(cells) + f" | {floor} | {note} |")
        startup = [f"{summary[s]['startup_s']['mean']:.1f}" for s in rlvr_arms]
        bare_startup = f"{summary['bare']['startup_s']['mean']:.1f}" if "bare" in summary else "-"
        lines.append("| startup to step 1 (s) | " + " | ".join(startup) + f" | {bare_startup} | "
                     "process start, model load, (rlvr: Ray, actors, step-0 eval and audit) |")
    return "\n".join(lines)


def choose_systems(requested: Optional[str], log: Callable[[str], None]) -> List[str]:
    """The arms to run: unknown names are an error; default arms that cannot run here are
    dropped with a note, requested ones that cannot are an error."""
    names = [s.strip() for s in (requested or DEFAULT_SYSTEMS).split(",") if s.strip()]
    unknown = [s for s in names if s not in SYSTEMS]
    if unknown:
        raise SystemExit(f"--systems: {unknown[0]!r} is not one of {sorted(SYSTEMS)}")
    out = []
    for s in names:
        if s == "rlvr_overlap" and not overlap_supported():
            why = "this checkout's schema has no rollout.overlap"
        elif s == "rlvr_threads" and not threads_supported():
            why = "this checkout's schema has no cluster.threads_per_actor"
        elif SYSTEMS[s][0] == "trl" and versions()["trl"] == "not installed":
            why = "trl is not installed (pip install -e \".[bench]\")"
        else:
            out.append(s)
            continue
        if requested:
            raise SystemExit(f"--systems {s}: {why}")
        log(f"skipping {s}: {why}")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="recipe key=value overrides (e.g. warmup.steps=100)")
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "quickstart.yaml"), help="the workload's recipe")
    parser.add_argument("--steps", type=int, default=30, help="GRPO steps per arm (timed: steps 2..N)")
    parser.add_argument("--prompts", type=int, default=32, help="prompts per step (P)")
    parser.add_argument("--samples", type=int, default=8, help="samples per prompt (G)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per seed")
    parser.add_argument("--seeds", default="0", help="comma list of seeds (accuracy is their mean)")
    parser.add_argument("--systems", default=None, help=f"comma list of {list(SYSTEMS)} (default: all that can run)")
    parser.add_argument("--output-dir", default="runs",
                        help="where the warmed-up model is cached (the recipe's output_dir)")
    parser.add_argument("--json", default=None, help="write every arm's numbers and the summary here")
    parser.add_argument("--load", type=int, default=0,
                        help="CPU-bound background processes running during every arm (a busy machine)")
    parser.add_argument("--keep-runs", action="store_true", help="keep rlvr's run folders")
    parser.add_argument("--arm-timeout", type=float, default=1800.0, help="seconds one arm may take")
    parser.add_argument("--arm", help=argparse.SUPPRESS)  # internal: run one arm in this process
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.arm:
        spec = json.loads(Path(args.spec).read_text())
        result = run_arm(args.arm, spec, args.seed)
        Path(args.result).write_text(json.dumps(result))
        return 0

    def log(message: str) -> None:
        print(f"[bench] {message}", file=sys.stderr, flush=True)

    if args.steps < 2:
        raise SystemExit(f"--steps = {args.steps}: use at least 2 (step 1 is not timed)")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    systems = choose_systems(args.systems, log)
    machine, load_before = machine_info(), os.getloadavg()
    print(f"machine: {machine['cpus_logical']} logical CPUs ({machine['cpus_physical']} physical), "
          f"{machine['cpu_model']}; {machine['platform']}, Python {machine['python']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    print("load average before: " + " ".join(f"{x:.2f}" for x in load_before)
          + (f"; every arm runs beside {args.load} CPU-bound background process(es) (--load)" if args.load else ""),
          flush=True)

    output_dir = str(Path(args.output_dir).resolve())
    spec = {"recipe": str(Path(args.recipe).resolve()), "overrides": list(args.overrides), "steps": args.steps,
            "prompts": args.prompts, "samples": args.samples, "output_dir": output_dir, "keep_runs": args.keep_runs}
    cfg, train, held_out, _, verify = load_workload(spec, seeds[0])
    from rlvr.models.prepare import prepare_policy

    log("preparing the warmed-up model (rlvr's warm-up cache)")
    model_dir, warmup = prepare_policy(cfg, list(train), list(held_out), verify, log)
    spec["model_dir"] = model_dir
    print(f"workload: {Path(args.recipe).name} {' '.join(args.overrides)}; model {model_dir}; "
          f"{args.prompts} prompts x {args.samples} samples per step, max_new_tokens {cfg.rollout.max_new_tokens}, "
          f"lr {cfg.trainer.lr:g}, loss {cfg.algorithm.loss} {cfg.algorithm.loss_agg}; {args.steps} steps "
          f"(timed: 2..{args.steps}); {args.rounds} round(s) x seeds {seeds}; eval on {len(held_out)} held-out prompts",
          flush=True)

    Path(output_dir).mkdir(parents=True, exist_ok=True)  # --output-dir may name a folder not made yet
    work = Path(tempfile.mkdtemp(prefix="vs_trl-", dir=output_dir))
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    runs = run_rounds(systems, seeds, args.rounds, lambda system, seed, rnd: launch(
        system, spec_path, seed, work / f"{system}-s{seed}-r{rnd}.log", args.arm_timeout), load=args.load, log=log)
    load_after = os.getloadavg()
    summary = summarize(runs, systems)
    print("load average after: " + " ".join(f"{x:.2f}" for x in load_after))
    print()
    print(render(summary, args.steps, seeds, warmup.get("eval_accuracy")))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": machine, "versions": versions(), "load_before": load_before, "load_after": load_after,
            "spec": spec, "seeds": seeds, "rounds": args.rounds, "load": args.load, "systems": systems, "warmup": warmup,
            "runs": runs, "summary": summary}, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
