"""The RL loop, top to bottom: sample prompts, roll out, score, advantages, train, sync, eval.

The controller is the one place that knows the order of things; actors do one job each.
"""
from __future__ import annotations

import errno
import json
import random
import shutil
import sys
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Dict, List, Sequence

import torch

from rlvr.config import RecipeConfig, to_yaml
from rlvr.tasks import Prompt
from rlvr.tracking.run_folder import RunFolder, checkpoint_problem
from rlvr.tracking.tracker import Tracker, progress


RESUME_STATE = "rlvr_state.json"  # in a checkpoint folder: the loop's state at that step
RESUME_KEYS = ("step", "evals", "initial_eval_gt_accuracy")  # what a resume reads from it
# Recipe keys a resumed run may change; anything else must match the run's config.yaml.
RESUME_MAY_CHANGE = {"resume", "steps", "output_dir", "run_name", "eval_every", "checkpoint_every",
                     "checkpoint_keep_last", "logging.wandb", "logging.console", "logging.log_samples_every",
                     "logging.wandb_group", "logging.wandb_tags",
                     "cluster.address", "cluster.num_cpus", "cluster.num_gpus", "cluster.colocate",
                     "cluster.placement_strategy", "trainer.num_gpus_per_rank",
                     "rollout.num_gpus_per_worker", "rollout.tensor_parallel_size"}

AUDIT_SEED = 5_000_011  # the audit's prompt choice and sampling: the same in every arm and seed
AUDIT_EPOCH = 1_000_000  # reward-randomness key epoch of audit samples: draws apart from training's
EVAL_SAMPLING_SEED = 7_000_003  # + step: sampled evaluation draws, independent of the recipe's seed
VERIFIER_ERRORS = ("timeout", "parse_error")  # verdict reasons that mean "could not check"

# Fields of a scored record that go into samples/step_*.jsonl as they are.
SAMPLE_KEYS = ("prompt_id", "sample_index", "response", "gold", "num_tokens", "gt", "proxy", "reason")


class RunError(RuntimeError):
    """A run failed for a reason the user can fix (e.g. a full disk); the CLI prints it in one line."""


def _no_space(err: BaseException) -> bool:
    """True when `err` (or a remote error wrapping it, e.g. a trainer rank's) is a full disk."""
    return ((isinstance(err, OSError) and err.errno == errno.ENOSPC)
            or "No space left on device" in str(err) or "[Errno 28]" in str(err))


def default_run_name(cfg: RecipeConfig) -> str:
    """cleanrl-style `{task}__{design}__{seed}__{time}`."""
    design = cfg.reward.design.get("name", "design")
    return f"{cfg.task.name}__{design}__{cfg.seed}__{time.strftime('%Y%m%d-%H%M%S')}"


class PromptSampler:
    """Epoch-wise shuffled prompt order; a pure function of (seed, step)."""

    def __init__(self, prompts: Sequence[Prompt], seed: int):
        self.prompts, self.seed = list(prompts), seed

    def _position(self, step: int, size: int):
        """(epoch, batch index within the epoch) of a step; a partial last batch is skipped."""
        return divmod(step - 1, max(1, len(self.prompts) // size))

    def epoch(self, step: int, size: int) -> int:
        """How many full passes over the prompts came before this step's batch."""
        return self._position(step, size)[0]

    def batch(self, step: int, size: int) -> List[Prompt]:
        epoch, index = self._position(step, size)
        order = list(range(len(self.prompts)))
        random.Random(f"{self.seed}:{epoch}").shuffle(order)
        return [self.prompts[i] for i in order[index * size:(index + 1) * size]]


def _verifier_inputs(prompt: Prompt) -> Dict[str, Any]:
    """What a verifier needs besides response and gold (kept in samples so `rlvr score` can
    re-score them): the prompt's constraints, for the constraints task."""
    return {"constraints": prompt.meta["constraints"]} if "constraints" in prompt.meta else {}


def chat_prompts(tokenizer, prompts: Sequence[Prompt], model: str) -> List[Prompt]:
    """Each prompt's text wrapped as one user turn by the tokenizer's chat template, ending
    with the assistant's turn opening (task.apply_chat_template)."""
    if not getattr(tokenizer, "chat_template", None):
        from rlvr.config.load import RecipeError

        raise RecipeError(f"task.apply_chat_template = true but the tokenizer of {model} has no chat "
                          "template: set it false, or use an instruct/chat model")
    return [replace(p, text=tokenizer.apply_chat_template([{"role": "user", "content": p.text}],
                                                          tokenize=False, add_generation_prompt=True))
            for p in prompts]


def reward_tensors(scored: Sequence[Sequence[Dict[str, Any]]]):
    """(proxy [P, G], gt [P, G]) float64 tensors of scored groups (as `Controller._score` returns)."""
    return tuple(torch.tensor([[r[key] for r in group] for group in scored], dtype=torch.float64)
                 for key in ("proxy", "gt"))


def split_round_robin(items: Sequence[Any], parts: int) -> List[List[Any]]:
    return [list(items[i::parts]) for i in range(parts)]


class Controller:
    def __init__(self, cfg: RecipeConfig):
        self.cfg = cfg

    # ---- set-up ---------------------------------------------------------------------
    def prompts(self):
        """(train prompts, held-out eval prompts) of the recipe's task, with its prompt template."""
        from rlvr.tasks.registry import get_task_prompts

        task, template = asdict(self.cfg.task), self.cfg.task.prompt_template
        splits = tuple([replace(p, text=template.replace("{question}", p.text)) for p in
                        get_task_prompts(task, split, count)]
                       for split, count in (("train", self.cfg.task.train_size), ("eval", self.cfg.task.eval_size)))
        for split, prompts in zip(("train", "eval"), splits):
            seen: Dict[str, int] = {}
            for i, p in enumerate(prompts):
                if p.id in seen:  # rewards group by prompt id: two prompts must never share one
                    raise ValueError(f"task {self.cfg.task.name}: {split} prompts {seen[p.id]} and {i} "
                                     f"share the id {p.id!r}")
                seen[p.id] = i
        return splits

    def initial_policy(self, train: Sequence[Prompt], held_out: Sequence[Prompt]):
        """(model folder, warm-up info): the recipe's model, or the tiny model built and warmed up."""
        from rlvr.models.prepare import prepare_policy
        from rlvr.rewards.verifiers import get_verifier

        return prepare_policy(self.cfg, list(train), list(held_out),
                              get_verifier(self.cfg.reward.verifier), progress)

    def inputs(self):
        """(train prompts, eval prompts, model folder, warm-up info), with self.tokenizer set and
        the chat template applied when the recipe asks; a cluster too small for the run fails
        before a model download or warm-up."""
        from transformers import AutoTokenizer

        cfg = self.cfg
        train_prompts, eval_prompts = self.prompts()
        if cfg.cluster.address != "local" or cfg.trainer.num_gpus_per_rank or cfg.rollout.num_gpus_per_worker:
            self._reserve()
        model_dir, warmup = self.initial_policy(train_prompts, eval_prompts)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if cfg.task.apply_chat_template:
            train_prompts, eval_prompts = (chat_prompts(self.tokenizer, ps, cfg.model.path or model_dir)
                                           for ps in (train_prompts, eval_prompts))
        return train_prompts, eval_prompts, model_dir, warmup

    def _reserve(self) -> None:
        """Start or join Ray and hold the run's placement group. The request is compared with
        the cluster first: a run that cannot be placed fails here, naming the resource."""
        from rlvr.controller.cluster import reserve, start_ray
        from rlvr.controller.layout import layout_for

        if getattr(self, "placement", None) is not None:
            return
        cfg = self.cfg
        self.layout = layout = layout_for(cfg)
        start_ray(cfg.cluster, int(layout.cpus), uses_gpus=layout.gpus > 0)
        self.placement = reserve(layout, cfg.cluster.placement_strategy, log=progress)

    def _start_actors(self, model_dir: str) -> None:
        import ray

        from rlvr.controller.cluster import slot_strategy
        from rlvr.rewards.worker import RewardWorkerActor
        from rlvr.rollout.worker import RolloutWorkerActor
        from rlvr.trainer.group import TrainerGroup

        cfg = self.cfg
        self._reserve()
        layout = self.layout
        M, N, R = len(layout.trainer), len(layout.rollout), len(layout.reward)
        progress(f"starting {M} trainer rank(s), {N} rollout worker(s) ({cfg.rollout.backend}), "
                 f"{R} reward worker(s)")
        self.rollout = []
        for i, slot in enumerate(layout.rollout):
            tp = len(slot.shard_bundles)
            env = ({"VLLM_RAY_BUNDLE_INDICES": ",".join(map(str, slot.shard_bundles)),
                    "VLLM_RAY_PER_WORKER_GPUS": str(slot.gpus_per_shard)} if tp > 1 else {})
            if tp == 1 and not slot.num_gpus and layout.gpus:
                env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU engine in a GPU run: Ray would show it every GPU
            kwargs = {"dtype": cfg.model.dtype, "max_model_len": cfg.rollout.max_model_len,
                      "gpu_memory_utilization": cfg.rollout.gpu_memory_utilization,
                      **({"tensor_parallel_size": tp} if tp > 1 else {})}
            # tp > 1: vLLM's Ray executor starts one worker per shard bundle of this placement group.
            self.rollout.append(RolloutWorkerActor.options(
                num_cpus=slot.num_cpus, num_gpus=slot.num_gpus,
                scheduling_strategy=slot_strategy(self.placement, slot.bundle, capture_child_tasks=tp > 1),
                **({"runtime_env": {"env_vars": env}} if env else {}),
            ).remote(model_dir, backend=cfg.rollout.backend, seed=cfg.seed + i, engine_kwargs=kwargs))
        self.reward = [
            RewardWorkerActor.options(num_cpus=slot.num_cpus,
                                      scheduling_strategy=slot_strategy(self.placement, slot.bundle)).remote(
                cfg.reward.verifier, dict(cfg.reward.design), timeout_s=cfg.reward.timeout_s)
            for slot in layout.reward]
        if layout.gpus:
            # vLLM measures free GPU memory while it starts: on a shared card let the engines
            # finish before trainer ranks allocate (and free) memory beside them.
            ray.get([w.policy_version.remote() for w in self.rollout])
        # Trainer rank i sits in bundle i in every layout (rlvr/controller/layout.py).
        self.trainer = TrainerGroup(M, model_dir, asdict(cfg.trainer), asdict(cfg.algorithm),
                                    placement_group=self.placement,
                                    num_gpus_per_rank=cfg.trainer.num_gpus_per_rank, dtype=cfg.model.dtype)
        ray.get([w.policy_version.remote() for w in self.rollout])
        progress("all actors ready")

    def _shutdown(self) -> None:
        import ray

        if getattr(self, "weight_sync", None) is not None:
            self.weight_sync.close()
            self.weight_sync = None

        for name in ("rollout", "reward"):
            for actor in getattr(self, name, []):
                try:  # engines first: a killed vLLM actor leaks /dev/shm segments
                    ray.get(actor.shutdown.remote() if name == "rollout" else actor.close.remote(),
                            timeout=60)
                except Exception:  # noqa: BLE001 - best effort on the way out
                    pass
        if getattr(self, "trainer", None) is not None:
            self.trainer.shutdown()
        if getattr(self, "placement", None) is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self.placement)
        from rlvr.controller.cluster import shutdown_ray

        shutdown_ray()

    # ---- one step's pieces ------------------------------------------------------------
    def _generate(self, prompts: Sequence[Prompt], n: int, temperature: float, seed: int):
        """[prompt][sample] Generations and the policy version they came from."""
        import ray

        ids = [self.tokenizer(p.text, add_special_tokens=False)["input_ids"] for p in prompts]
        chunks = split_round_robin(list(range(len(prompts))), len(self.rollout))
        futures = [w.generate.remote([ids[i] for i in chunk], n, self.cfg.rollout.max_new_tokens,
                                     temperature=temperature, top_p=self.cfg.rollout.top_p,
                                     seed=seed + k, stop_token_ids=[self.tokenizer.eos_token_id])
                   for k, (w, chunk) in enumerate(zip(self.rollout, chunks)) if chunk]
        generations: List[Any] = [None] * len(prompts)
        versions, tokens = set(), 0
        for chunk, out in zip([c for c in chunks if c], ray.get(futures)):
            versions.add(out["policy_version"])
            tokens += out["num_tokens"]
            for i, group in zip(chunk, out["generations"]):
                generations[i] = group
        return ids, generations, max(versions), tokens

    def _score(self, prompts: Sequence[Prompt], generations, epoch: int = 0) -> List[List[Dict]]:
        """Both rewards for every sample. A sample's reward-randomness key is (prompt id,
        sample_index = epoch * G + j): a prompt seen again in a later epoch gets fresh
        i.i.d. draws, and a re-run (or `rlvr score` on the samples file) gets the same ones."""
        import ray

        records = [[{"prompt_id": p.id, "sample_index": epoch * len(group) + j, "response": g.text, "gold": p.gold,
                     "num_tokens": len(g.token_ids), "meta": p.meta} for j, g in enumerate(group)]
                   for p, group in zip(prompts, generations)]
        shards = split_round_robin(list(range(len(records))), len(self.reward))
        futures = [w.score.remote([r for i in shard for r in records[i]])
                   for w, shard in zip(self.reward, shards) if shard]
        scored: Dict[str, List[Dict]] = {}
        for out in ray.get(futures):
            for r in out:
                scored.setdefault(r["prompt_id"], []).append(r)
        return [sorted(scored[p.id], key=lambda r: r["sample_index"]) for p in prompts]

    def _sync_weights(self, version: int) -> float:
        """Trainer weights -> every rollout engine, stamped `version` (rollout.weight_sync); seconds."""
        start = time.time()
        self.weight_sync.sync(version)
        return time.time() - start

    def evaluate(self, prompts: Sequence[Prompt], step: int) -> Dict[str, float]:
        """Greedy ground-truth accuracy on the held-out split; with eval.samples_per_prompt = k,
        also the mean accuracy of k sampled answers per prompt and pass@k."""
        from rlvr.rewards.accuracy import sampled_eval_metrics

        _, generations, _, _ = self._generate(prompts, 1, 0.0, seed=0)
        scored = self._score(prompts, generations)
        gts = [g[0]["gt"] for g in scored]
        metrics = {"eval/gt_accuracy": sum(x >= 1.0 for x in gts) / len(gts),
                   "eval/gt_reward_mean": sum(gts) / len(gts)}
        k = self.cfg.eval.samples_per_prompt
        if k:  # the same sampling seed at a given step in every arm and run of a study
            _, generations, _, _ = self._generate(prompts, k, self.cfg.eval.temperature,
                                                  seed=EVAL_SAMPLING_SEED + step)
            correct = reward_tensors(self._score(prompts, generations))[1] >= 1.0
            metrics.update(sampled_eval_metrics(correct))
        return metrics

    def audit(self, train_prompts: Sequence[Prompt], num_prompts: int) -> Dict[str, Any]:
        """The initial policy's profile under the proxy (rlvr/rewards/audit.py): G samples on
        `num_prompts` training prompts chosen by AUDIT_SEED, scored by both channels."""
        from rlvr.rewards.audit import audit_profile

        order = list(range(len(train_prompts)))
        random.Random(AUDIT_SEED).shuffle(order)
        prompts = [train_prompts[i] for i in order[:num_prompts]]
        G = self.cfg.rollout.samples_per_prompt
        _, generations, _, _ = self._generate(prompts, G, self.cfg.rollout.temperature, seed=AUDIT_SEED)
        scored = self._score(prompts, generations, epoch=AUDIT_EPOCH)
        proxy, gt = reward_tensors(scored)
        logp = torch.tensor([[sum(g.logprobs) for g in group] for group in generations], dtype=torch.float64)
        return audit_profile(proxy, gt, logp)

    # ---- the loop ----------------------------------------------------------------------
    def run(self) -> Dict[str, Any]:
        cfg = self.cfg
        if cfg.run_name is None:
            cfg = self.cfg = replace(cfg, run_name=default_run_name(cfg))
        from rlvr.config.load import RecipeError

        path = Path(cfg.output_dir) / cfg.run_name
        try:
            folder = RunFolder(path)
            if not cfg.resume and not folder.is_used():
                folder.write_config(to_yaml(cfg))
        except OSError as err:  # read-only or full parent: one line, not a traceback
            raise RecipeError(f"output_dir = {cfg.output_dir}: cannot write the run folder {path} "
                              f"({err.strerror or err}): choose a writable output_dir") from None
        if cfg.resume:
            resume = self.resume_point(folder)
            for bad in getattr(self, "skipped_checkpoints", []):
                aside = bad.with_name(f"{bad.name}.incomplete")
                shutil.rmtree(aside, ignore_errors=True)
                bad.rename(aside)  # out of the way of pruning and of later resumes; kept to inspect
                progress(f"moved the incomplete checkpoint {bad.name} to {aside.name}")
            folder.write_config(to_yaml(cfg))
        elif folder.is_used():
            raise RecipeError(f"run folder {folder.path} already holds a run: continue it with "
                              "resume=true, or choose another run_name")
        else:
            resume = None
        progress(f"run folder {folder.path}")
        started = time.time()
        summary: Dict[str, Any] = {"run_name": cfg.run_name, "status": "running",
                                   "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        # A resume keeps the run's summary.json (a finished run's included) until its checkpoint
        # is restored: a resume that fails before that leaves the folder as it was.
        owns_summary = resume is None
        if owns_summary:
            folder.write_summary(summary)
        tracker = None
        try:
            train_prompts, eval_prompts, model_dir, warmup = self.inputs()
            summary.update(model_dir=model_dir, warmup=warmup)
            tracker = Tracker(folder, cfg.steps, cfg.logging.console,
                              cfg.logging.wandb_project if cfg.logging.wandb else None,
                              cfg.run_name, asdict(cfg), wandb_group=cfg.logging.wandb_group,
                              wandb_tags=cfg.logging.wandb_tags)
            sampler = PromptSampler(train_prompts, cfg.seed)
            self._start_actors(model_dir)
            from rlvr.controller.weight_sync import make_weight_sync

            self.weight_sync = make_weight_sync(cfg.rollout.weight_sync, self.trainer, self.rollout,
                                                cfg.model.dtype, cfg.rollout.sync_bucket_mb)
            if resume is None:
                first = self.evaluate(eval_prompts, 0)
                tracker.log({"step": 0, **first})
                state = {"step": 0, "evals": [first["eval/gt_accuracy"]],
                         "initial_eval_gt_accuracy": first["eval/gt_accuracy"]}
                if cfg.eval.audit_prompts:
                    state["audit"] = self.audit(train_prompts, cfg.eval.audit_prompts)
                    progress(f"audit of the initial policy under the proxy: gt accuracy "
                             f"{state['audit']['gt/accuracy']:.3f}, false-positive rate "
                             f"{state['audit']['reward/false_positive_rate']:.3f}, false-negative rate "
                             f"{state['audit']['reward/false_negative_rate']:.3f} (rlvr audit for the full table)")
            else:
                state, checkpoint = resume
                self.trainer.load_training_state(str(checkpoint / "trainer"))
                self._sync_weights(state["step"])
                folder.truncate_metrics(state["step"])
                for gone in folder.truncate_samples(state["step"]):
                    progress(f"deleted {gone.name} of the crashed run (after step {state['step']})")
                summary["resumed_from_step"] = state["step"]
                owns_summary = True
                folder.write_summary(summary)
                progress(f"resumed from {checkpoint} (step {state['step']})")
            summary["initial_eval_gt_accuracy"] = state["initial_eval_gt_accuracy"]
            if "audit" in state:
                summary["audit"] = state["audit"]
            evals = list(state["evals"])
            step_times, sync_times = [], []
            for step in range(state["step"] + 1, cfg.steps + 1):
                t0 = time.time()
                size = cfg.rollout.prompts_per_step
                metrics, samples = self.rl_step(step, sampler.batch(step, size), sampler.epoch(step, size))
                if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps:
                    metrics.update(self.evaluate(eval_prompts, step))
                    evals.append(metrics["eval/gt_accuracy"])
                metrics["perf/step_s"] = time.time() - t0
                step_times.append(metrics["perf/step_s"])
                sync_times.append(metrics["perf/weight_sync_s"])
                tracker.log(metrics)
                if cfg.logging.log_samples_every and step % cfg.logging.log_samples_every == 0:
                    folder.write_samples(step, samples)
                if step == cfg.steps or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
                    self.checkpoint(folder, {**state, "step": step, "evals": evals})
            summary.update({
                "status": "finished", "steps": cfg.steps,
                "final_eval_gt_accuracy": evals[-1], "best_eval_gt_accuracy": max(evals),
                "sync_max_logprob_diff": self.sync_check(eval_prompts[0]),
                "mean_step_s": sum(step_times) / max(1, len(step_times)),
                "mean_weight_sync_s": sum(sync_times) / max(1, len(sync_times)),
            })
        except BaseException as err:
            summary.update({"status": "failed", "error": f"{type(err).__name__}: {err}",
                            "traceback": traceback.format_exc()})
            raise
        finally:
            summary["wall_s"] = time.time() - started
            self._close(folder, tracker, summary, owns_summary)
        progress(f"done: held-out greedy gt accuracy {summary['initial_eval_gt_accuracy']:.3f} -> "
                 f"{summary['final_eval_gt_accuracy']:.3f} (best {summary['best_eval_gt_accuracy']:.3f}) "
                 f"in {summary['wall_s']:.0f} s; run folder {folder.path}")
        return summary

    def _close(self, folder: RunFolder, tracker, summary: Dict[str, Any], owns_summary: bool) -> None:
        """The run's last writes, each guarded so that one failing (a full disk) skips none of
        the others: summary.json, the tracker, then actors and Ray."""
        try:
            if owns_summary:
                folder.write_summary(summary)
            else:
                progress(f"the resume failed before restoring its checkpoint: {folder.path / 'summary.json'} "
                         "is left as it was")
            try:
                if tracker is not None:
                    tracker.close(summary)
                else:
                    folder.close()
            except Exception as err:  # noqa: BLE001 - the run's own error matters more
                progress(f"closing the tracker failed: {type(err).__name__}: {err}")
        finally:
            if "ray" in sys.modules and sys.modules["ray"].is_initialized():
                self._shutdown()

    def rl_step(self, step: int, prompts: Sequence[Prompt], epoch: int = 0):
        """One RL step: roll out G samples per prompt, score both rewards, advantages
        (`algorithm.name`) from the PROXY, train, sync weights. Returns (metrics, per-sample records)."""
        from rlvr.algorithms.advantages import compute_advantages
        from rlvr.rewards.categorize import categorize, reward_error_metrics
        from rlvr.trainer.batch import make_train_batch, resolve_pad_id

        cfg, G = self.cfg, self.cfg.rollout.samples_per_prompt
        t0 = time.time()
        prompt_ids, generations, version, tokens = self._generate(
            prompts, G, cfg.rollout.temperature, seed=cfg.seed * 1_000_003 + step * 97)
        t_rollout = time.time() - t0
        scored = self._score(prompts, generations, epoch)
        t_reward = time.time() - t0 - t_rollout
        proxy, gt = reward_tensors(scored)
        batch = make_train_batch(
            [ids for ids in prompt_ids for _ in range(G)],
            [g.token_ids for group in generations for g in group],
            [g.logprobs for group in generations for g in group],
            [0.0] * proxy.numel(),
            pad_id=resolve_pad_id(self.tokenizer.pad_token_id, self.tokenizer.eos_token_id))
        shaped, kl_metrics = proxy, {}
        if cfg.algorithm.kl_coef > 0 and cfg.algorithm.kl_in == "reward":
            # KL in the reward: each sample's proxy minus kl_coef x its KL to the reference
            kl = torch.tensor(self.trainer.sequence_kl(batch, temperature=cfg.rollout.temperature),
                              dtype=torch.float64).view_as(proxy)
            shaped = proxy - cfg.algorithm.kl_coef * kl
            kl_metrics = {"reward/kl_penalty_mean": (cfg.algorithm.kl_coef * kl).mean().item()}
        advantages = compute_advantages(cfg.algorithm.name, shaped, normalize_std=cfg.algorithm.normalize_std)
        batch.advantages = advantages.flatten().to(torch.float32)
        t1 = time.time()
        train_metrics = self.trainer.train_step(batch, temperature=cfg.rollout.temperature)
        t_train = time.time() - t1
        metrics: Dict[str, Any] = {
            "step": step,
            "gt/reward_mean": gt.mean().item(),
            "gt/accuracy": (gt >= 1.0).double().mean().item(),
            "proxy/reward_mean": proxy.mean().item(),
            **reward_error_metrics(proxy, gt),
            # Verifier failures score 0 silently; this makes a broken verifier or gold visible.
            "reward/verifier_error_rate": sum(r["reason"] in VERIFIER_ERRORS for g in scored for r in g)
            / proxy.numel(),
            **train_metrics, **kl_metrics,
            "response/length_mean": tokens / max(1, proxy.numel()),
            "policy/version": version,
            "perf/rollout_s": t_rollout, "perf/reward_s": t_reward, "perf/train_s": t_train,
            "perf/rollout_tokens_per_s": tokens / max(t_rollout, 1e-9),
            "perf/weight_sync_s": self._sync_weights(step),
        }
        if "policy/kl_to_ref" in metrics and "policy/kl_to_init" not in metrics:
            metrics["policy/kl_to_init"] = metrics["policy/kl_to_ref"]
        categories = categorize(proxy, gt)
        samples = [{**{k: r[k] for k in SAMPLE_KEYS}, **_verifier_inputs(p), "prompt": p.text,
                    "category": categories[i][j],
                    "advantage": advantages[i, j].item(), "policy_version": version, "step": step}
                   for i, (p, group) in enumerate(zip(prompts, scored)) for j, r in enumerate(group)]
        return metrics, samples

    def checkpoint(self, folder: RunFolder, state: Dict[str, Any]) -> None:
        """HF weights + trainer state (optimizer included) + the loop's state. rlvr_state.json
        is written last: a checkpoint without it is incomplete and never resumed from."""
        path = folder.checkpoint_dir(state["step"])
        try:
            (path / RESUME_STATE).unlink(missing_ok=True)  # a folder being rewritten reads incomplete
            self.trainer.save_hf(str(path))
            self.trainer.save_training_state(str(path / "trainer"))
            (path / RESUME_STATE).write_text(json.dumps(state, indent=2))
        except Exception as err:
            if not _no_space(err):
                raise
            try:
                (path / RESUME_STATE).unlink(missing_ok=True)
                free = f"{shutil.disk_usage(folder.path).free / 2**20:.0f} MiB free"
            except OSError:
                free = "free space unknown"
            raise RunError(f"no space left on device while saving checkpoint {path} ({free}): free "
                           "some space (or lower checkpoint_keep_last), then continue with resume=true "
                           "from the last complete checkpoint") from err
        for old in folder.prune_checkpoints(self.cfg.checkpoint_keep_last, RESUME_STATE):
            progress(f"deleted checkpoint {old.name} (checkpoint_keep_last = {self.cfg.checkpoint_keep_last})")

    def resume_point(self, folder: RunFolder):
        """(loop state, checkpoint folder) of the run's latest complete checkpoint."""
        from rlvr.config.load import RecipeError, recipe_drift

        where = f"resume {folder.path}"
        done = sorted(p for p in folder.path.glob(f"checkpoints/step_*/{RESUME_STATE}") if p.parent.is_dir()
                      and not p.parent.name.endswith(".incomplete"))
        if not done:
            raise RecipeError(f"{where}: no complete checkpoint to resume from "
                              "(set checkpoint_every to save them during a run)")
        drift = recipe_drift((folder.path / "config.yaml").read_text(), to_yaml(self.cfg),
                             ignore=RESUME_MAY_CHANGE)
        if drift:
            raise RecipeError(f"{where}: the recipe differs from the run's config.yaml: "
                              f"{'; '.join(drift)}. Only {sorted(RESUME_MAY_CHANGE)} may change.")
        # Newest first; a checkpoint whose files are missing or truncated is skipped with a
        # warning naming the file (checked here, before Ray or any actor starts).
        self.skipped_checkpoints: List[Path] = []
        problems = []
        for marker in reversed(done):
            problem = checkpoint_problem(marker.parent, RESUME_STATE, RESUME_KEYS)
            if problem is None:
                break
            problems.append(problem)
            self.skipped_checkpoints.append(marker.parent)
            progress(f"WARNING: checkpoint {marker.parent.name} is incomplete: {problem}")
        else:
            raise RecipeError(f"{where}: no complete checkpoint to resume from; {problems[0]}"
                              + (f" (and {len(problems) - 1} older checkpoint(s) broken too)" if len(problems) > 1 else ""))
        state = json.loads(marker.read_text())
        if self.skipped_checkpoints:
            progress(f"WARNING: resuming from the previous complete checkpoint {marker.parent.name} instead")
        if state["step"] >= self.cfg.steps:
            raise RecipeError(f"{where}: checkpoint step {state['step']} >= steps = {self.cfg.steps}: "
                              "raise steps to train further")
        return state, marker.parent

    def sync_check(self, prompt: Prompt) -> float:
        """|log p(response)| difference between trainer and each rollout engine on a fixed sequence."""
        import ray

        prompt_ids = self.tokenizer(prompt.text, add_special_tokens=False)["input_ids"]
        response_ids = self.tokenizer(prompt.gold, add_special_tokens=False)["input_ids"]
        reference = self.trainer.sequence_logprobs([prompt_ids], [response_ids])[0]
        scores = ray.get([w.score.remote(prompt_ids, response_ids) for w in self.rollout])
        return max(abs(reference - sum(tokens)) for tokens in scores)


def train(cfg: RecipeConfig) -> Dict[str, Any]:
    return Controller(cfg).run()
