"""The RL loop, top to bottom: sample prompts, roll out, score, advantages, train, sync, eval.

The controller is the one place that knows the order of things; actors do one job each.

Schedule of step t (docs/loop.md has the timeline). Version v = the weights after v updates.
- Synchronous (default): step t's samples come from version t-1. With the collective weight
  sync the sync rides on calls made anyway: train_step(t) ends with rank 0 broadcasting
  version t, and step t+1's generate, issued right after it, begins by receiving it.
- `rollout.overlap`: step t+1's samples are generated while the trainer updates on step t,
  from the weights the engines hold then (version t-1); version t reaches the engines after
  the update, at the start of step t+2's generate. So step t's samples come from version
  max(t-2, 0) (one step stale from step 2 on: policy/version_lag = 1) and the run's results
  differ from a synchronous one, which is why it is off by default.
In both, an evaluation at step t runs after version t reached the engines (its generate
queues behind the one that received it), and a checkpoint of an overlap run stores the
generations made ahead (PENDING_STATE), so a resumed run continues exactly.
"""
from __future__ import annotations

import errno
import json
import random
import shutil
import sys
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Sequence

# torch is imported where it is used: `rlvr train` imports this module before it starts Ray,
# and the 2 s torch takes to import overlap Ray's start (Controller.inputs).
from rlvr.config import RecipeConfig, to_yaml
from rlvr.tasks import Prompt
from rlvr.tracking.run_folder import RunFolder, checkpoint_problem
from rlvr.tracking.tracker import Tracker, progress


RESUME_STATE = "rlvr_state.json"  # in a checkpoint folder: the loop's state at that step
PENDING_STATE = "rlvr_pending.json"  # in an overlap run's checkpoint: step+1's generations, made before this update
RESUME_KEYS = ("step", "evals", "initial_eval_gt_accuracy")  # what a resume reads from it
# Recipe keys a resumed run may change; anything else must match the run's config.yaml.
RESUME_MAY_CHANGE = {"resume", "steps", "output_dir", "run_name", "eval_every", "checkpoint_every",
                     "checkpoint_keep_last", "logging.wandb", "logging.console", "logging.log_samples_every",
                     "logging.wandb_group", "logging.wandb_tags",
                     "cluster.address", "cluster.num_cpus", "cluster.num_gpus", "cluster.colocate",
                     "cluster.placement_strategy", "trainer.num_gpus_per_rank",
                     "rollout.num_gpus_per_worker", "rollout.tensor_parallel_size",
                     "reward.colocate"}  # where samples are scored: the scores are the same

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
    import torch

    return tuple(torch.tensor([[r[key] for r in group] for group in scored], dtype=torch.float64)
                 for key in ("proxy", "gt"))


def split_round_robin(items: Sequence[Any], parts: int) -> List[List[Any]]:
    return [list(items[i::parts]) for i in range(parts)]


@dataclass
class Rollout:
    """One step's samples, scored, and the train batch built from them (advantages set)."""

    step: int
    prompts: List[Prompt]
    generated: Dict[str, Any]  # Controller._gather's dict: generations [P][G], policy_version, ...
    batch: Any  # TrainBatch, rows prompt-major
    metrics: Dict[str, Any]  # the samples' reward, length, version and rollout-time metrics
    samples: List[Dict[str, Any]]  # one record per sample, as samples/step_*.jsonl holds them


def generations_to_json(generated: Dict[str, Any]) -> Dict[str, Any]:
    """What PENDING_STATE keeps of a step's generations: enough to rebuild them exactly."""
    return {"policy_version": generated["policy_version"], "seconds": generated["seconds"],
            "generations": [[asdict(g) for g in group] for group in generated["generations"]]}


def generations_from_json(data: Dict[str, Any]) -> Dict[str, Any]:
    """Inverse of generations_to_json (floats survive JSON exactly: repr round-trips)."""
    from rlvr.rollout.engine import Generation

    groups = [[Generation(**g) for g in group] for group in data["generations"]]
    return {"generations": groups, "policy_version": data["policy_version"], "seconds": data["seconds"],
            "num_tokens": sum(len(g.token_ids) for group in groups for g in group)}


class Controller:
    def __init__(self, cfg: RecipeConfig):
        self.cfg = cfg
        # Generations issued ahead of their step, by step: (prompts, epoch, launched calls),
        # and those already scored into a Rollout. The loop's plan gives a step's prompts.
        self._inflight: Dict[int, Any] = {}
        self._ready: Dict[int, Rollout] = {}
        self._plan = None  # step -> (prompts, epoch); None: nothing is generated ahead
        self._generate_until = 0  # last step whose samples may be generated ahead

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
        before a model download or warm-up.

        Start-up order: Ray starts on a thread while this one reads the prompts and imports
        what the driver needs; the actors are launched as soon as the model folder is known
        and start (imports, model load) while the driver loads its tokenizer and tracker
        (`_start_actors` waits for them).
        """
        from rlvr.models.tokenizer import load_tokenizer

        cfg = self.cfg
        self._begin_cluster()
        train_prompts, eval_prompts = self.prompts()
        import torch  # noqa: F401 - the driver's one heavy import, while Ray starts

        self._reserve()
        model_dir, warmup = self.initial_policy(train_prompts, eval_prompts)
        self._launch_actors(model_dir)
        self.tokenizer = load_tokenizer(model_dir, built=not cfg.model.path)
        if cfg.task.apply_chat_template:
            train_prompts, eval_prompts = (chat_prompts(self.tokenizer, ps, cfg.model.path or model_dir)
                                           for ps in (train_prompts, eval_prompts))
        return train_prompts, eval_prompts, model_dir, warmup

    def _begin_cluster(self) -> None:
        """Start (or join) Ray and reserve the run's placement group on a background thread;
        `_reserve` waits for it."""
        from rlvr.controller.cluster import BackgroundStart, node_environment
        from rlvr.controller.layout import layout_for

        if getattr(self, "placement", None) is None and getattr(self, "_cluster_start", None) is None:
            # Ray's own import (0.5 s) first: the start thread then launches Ray's processes at
            # once instead of sharing the interpreter lock with the driver's imports (measured:
            # Ray up about 0.7 s sooner, 3 interleaved rounds on 2 cores)
            import ray  # noqa: F401
            uses_gpus = layout_for(self.cfg).gpus > 0
            self._cluster_start = BackgroundStart(self._start_cluster,
                                                  node_environment(self.cfg.cluster, uses_gpus))

    def _start_cluster(self):
        from rlvr.controller.cluster import reserve, start_ray
        from rlvr.controller.layout import layout_for

        cfg = self.cfg
        layout = layout_for(cfg)
        start_ray(cfg.cluster, int(layout.cpus), uses_gpus=layout.gpus > 0)
        return layout, reserve(layout, cfg.cluster.placement_strategy, log=progress)

    def _reserve(self) -> None:
        """Start or join Ray and hold the run's placement group (waiting for `_begin_cluster`'s
        start when there is one). The request is compared with the cluster first: a run that
        cannot be placed fails here, naming the resource."""
        if getattr(self, "placement", None) is not None:
            return
        start = getattr(self, "_cluster_start", None)  # kept: end_cluster releases its thread
        self.layout, self.placement = start.result() if start is not None else self._start_cluster()

    def _start_actors(self, model_dir: str) -> None:
        """Launch the actors (unless `inputs` did) and wait until all are ready."""
        import ray

        if getattr(self, "_launched", None) != model_dir:
            self._launch_actors(model_dir)
        self.trainer.wait_ready()
        ray.get([w.policy_version.remote() for w in self.rollout] + self._pending_ready)
        self._pending_ready = []
        progress("all actors ready")

    def _launch_actors(self, model_dir: str) -> None:
        """Create the trainer ranks, rollout and reward workers without waiting for them."""
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

        def start_trainer():  # trainer rank i sits in bundle i in every layout (rlvr/controller/layout.py)
            self.trainer = TrainerGroup(M, model_dir, asdict(cfg.trainer), asdict(cfg.algorithm),
                                        placement_group=self.placement, num_gpus_per_rank=cfg.trainer.num_gpus_per_rank,
                                        dtype=cfg.model.dtype, wait=False)

        if not layout.gpus:  # the slowest to start (DeepSpeed) goes first
            start_trainer()
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
        self._pending_ready = []
        if cfg.reward.colocate:  # training samples are scored where they are generated
            self._pending_ready = [w.enable_scoring.remote(cfg.reward.verifier, dict(cfg.reward.design),
                                                           cfg.reward.timeout_s) for w in self.rollout]
        if layout.gpus:
            # vLLM measures free GPU memory while it starts: on a shared card let the engines
            # finish before trainer ranks allocate (and free) memory beside them.
            ray.get([w.policy_version.remote() for w in self.rollout] + self._pending_ready)
            start_trainer()
        self._launched = model_dir

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
    def _launch(self, prompts: Sequence[Prompt], n: int, temperature: float, seed: int,
                receive_version=None, score_epoch=None):
        """Issue the generate calls (worker k gets prompts k, k + N, ...); with `receive_version`
        each worker first receives that version's broadcast; with `score_epoch` it also scores
        its samples (reward.colocate). Returns the handle `_gather` takes."""
        ids = [self.tokenizer(p.text, add_special_tokens=False)["input_ids"] for p in prompts]
        chunks = split_round_robin(list(range(len(prompts))), len(self.rollout))
        receive = {} if receive_version is None else {"receive_version": receive_version}

        def score(chunk) -> Dict[str, Any]:
            """generate's `score` argument for these prompts, with reward.colocate."""
            return {} if score_epoch is None else {"score": {
                "prompts": [(prompts[i].id, prompts[i].gold, prompts[i].meta) for i in chunk], "epoch": score_epoch}}

        futures = [w.generate.remote([ids[i] for i in chunk], n, self.cfg.rollout.max_new_tokens,
                                     temperature=temperature, top_p=self.cfg.rollout.top_p,
                                     seed=seed + k, stop_token_ids=[self.tokenizer.eos_token_id],
                                     **receive, **score(chunk))
                   for k, (w, chunk) in enumerate(zip(self.rollout, chunks)) if chunk]
        return ids, [c for c in chunks if c], futures

    @staticmethod
    def _gather(launched) -> Dict[str, Any]:
        """Wait for `_launch`'s calls: {"prompt_ids", "generations" [prompt][sample], "policy_version",
        "num_tokens", "seconds" (slowest worker's generation), "receive_s" (slowest receive, if any)}."""
        import ray

        ids, chunks, futures = launched
        generations: List[Any] = [None] * len(ids)
        scored: List[Any] = [None] * len(ids)
        versions, tokens, seconds, receives, score_s = set(), 0, 0.0, [], []
        for chunk, out in zip(chunks, ray.get(futures)):
            versions.add(out["policy_version"])
            tokens += out["num_tokens"]
            seconds = max(seconds, out.get("seconds", 0.0))
            if "receive_s" in out:
                receives.append(out["receive_s"])
            if "scored" in out:
                score_s.append(out["score_s"])
            for k, (i, group) in enumerate(zip(chunk, out["generations"])):
                generations[i] = group
                scored[i] = out["scored"][k] if "scored" in out else None
        return {"prompt_ids": ids, "generations": generations, "policy_version": max(versions),
                "num_tokens": tokens, "seconds": seconds, **({"receive_s": max(receives)} if receives else {}),
                **({"scored": scored, "score_s": max(score_s)} if score_s else {})}

    def _generate(self, prompts: Sequence[Prompt], n: int, temperature: float, seed: int):
        """[prompt][sample] Generations and the policy version they came from."""
        out = self._gather(self._launch(prompts, n, temperature, seed))
        return out["prompt_ids"], out["generations"], out["policy_version"], out["num_tokens"]

    def _score(self, prompts: Sequence[Prompt], generations, epoch: int = 0) -> List[List[Dict]]:
        """Both rewards for every sample. A sample's reward-randomness key is (prompt id,
        sample_index = epoch * G + j): a prompt seen again in a later epoch gets fresh
        i.i.d. draws, and a re-run (or `rlvr score` on the samples file) gets the same ones."""
        import ray

        from rlvr.rewards.worker import sample_records

        records = sample_records([(p.id, p.gold, p.meta) for p in prompts], generations, epoch)
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
        import torch

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
            size = cfg.rollout.prompts_per_step
            self._plan = lambda s: (sampler.batch(s, size), sampler.epoch(s, size))
            # overlap: the last step's update overlaps step steps+1's generation too, which the
            # final checkpoint keeps, so a run extended with resume=true continues exactly
            self._generate_until = cfg.steps + (1 if cfg.rollout.overlap else 0)
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
                if cfg.rollout.overlap:  # the generations made before the checkpoint's update
                    self._ready[state["step"] + 1] = self._restore_pending(checkpoint, state["step"] + 1)
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
                metrics, samples = self.rl_step(step, *self._plan(step))
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
            self.end_cluster()

    def end_cluster(self) -> None:
        """Actors, placement group and Ray down, if they are up; a start still under way (the
        run failed while Ray was starting) is waited for first."""
        start = getattr(self, "_cluster_start", None)
        if start is not None and not start.settle():
            progress("Ray was still starting when the run ended; leaving it to end with this process")
            return
        if "ray" in sys.modules and sys.modules["ray"].is_initialized():
            self._shutdown()
        elif start is not None:
            start.release()

    # ---- one RL step -------------------------------------------------------------------
    def _launch_step(self, step: int, prompts: Sequence[Prompt], epoch: int, receive_version=None) -> None:
        """Start generating step `step`'s G samples per prompt (its seed is a function of the step)."""
        cfg = self.cfg
        self._inflight[step] = (list(prompts), epoch, self._launch(
            prompts, cfg.rollout.samples_per_prompt, cfg.rollout.temperature,
            seed=cfg.seed * 1_000_003 + step * 97, receive_version=receive_version,
            score_epoch=epoch if cfg.reward.colocate else None))

    def _ahead(self, step: int) -> bool:
        """Whether step `step`'s samples may be generated ahead of it (the loop's plan reaches it)."""
        return self._plan is not None and step <= self._generate_until

    def _rollout(self, step: int, prompts: Sequence[Prompt], epoch: int) -> Rollout:
        """Step `step`'s Rollout: made ahead, or in flight (waited for and scored), or made now."""
        rollout = self._ready.pop(step, None)
        if rollout is None:
            if step not in self._inflight:
                self._launch_step(step, prompts, epoch)
            made_for, epoch, launched = self._inflight.pop(step)
            rollout = self._prepare(step, made_for, epoch, self._gather(launched))
        if [p.id for p in rollout.prompts] != [p.id for p in prompts]:
            raise RuntimeError(f"step {step}: the samples made ahead are of other prompts than the step's "
                               "(the loop's plan and its steps disagree)")
        return rollout

    def _prepare(self, step: int, prompts: Sequence[Prompt], epoch: int, generated: Dict[str, Any]) -> Rollout:
        """Score a step's generations with both rewards, build the train batch with advantages
        (`algorithm.name`) from the PROXY, and the samples' metrics and records."""
        import torch

        from rlvr.algorithms.advantages import compute_advantages
        from rlvr.rewards.categorize import categorize, reward_error_metrics
        from rlvr.trainer.batch import make_train_batch, resolve_pad_id

        cfg, G = self.cfg, self.cfg.rollout.samples_per_prompt
        generations, version, tokens = generated["generations"], generated["policy_version"], generated["num_tokens"]
        start = time.time()
        prompt_ids = generated.get("prompt_ids") or [self.tokenizer(p.text, add_special_tokens=False)["input_ids"]
                                                     for p in prompts]
        t0 = time.time()
        waited = 0.0  # seconds spent waiting on other actors (scoring, the reward KL): not controller work
        if "scored" in generated:  # reward.colocate: the rollout workers scored their samples
            scored, t_reward = generated["scored"], generated["score_s"]
        else:
            scored = self._score(prompts, generations, epoch)
            t_reward = waited = time.time() - t0
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
            t_kl = time.time()
            kl = torch.tensor(self.trainer.sequence_kl(batch, temperature=cfg.rollout.temperature),
                              dtype=torch.float64).view_as(proxy)
            waited += time.time() - t_kl
            shaped = proxy - cfg.algorithm.kl_coef * kl
            kl_metrics = {"reward/kl_penalty_mean": (cfg.algorithm.kl_coef * kl).mean().item()}
        advantages = compute_advantages(cfg.algorithm.name, shaped, normalize_std=cfg.algorithm.normalize_std)
        batch.advantages = advantages.flatten().to(torch.float32)
        t_rollout = generated["seconds"]
        metrics: Dict[str, Any] = {
            "gt/reward_mean": gt.mean().item(),
            "gt/accuracy": (gt >= 1.0).double().mean().item(),
            "proxy/reward_mean": proxy.mean().item(),
            **reward_error_metrics(proxy, gt),
            # Verifier failures score 0 silently; this makes a broken verifier or gold visible.
            "reward/verifier_error_rate": sum(r["reason"] in VERIFIER_ERRORS for g in scored for r in g)
            / proxy.numel(),
            **kl_metrics,
            "response/length_mean": tokens / max(1, proxy.numel()),
            "policy/version": version,
            "policy/version_lag": step - 1 - version,
            "perf/rollout_s": t_rollout, "perf/reward_s": t_reward,
            "perf/rollout_tokens_per_s": tokens / max(t_rollout, 1e-9),
            **({"perf/weight_receive_s": generated["receive_s"]} if "receive_s" in generated else {}),
        }
        categories, advantage = categorize(proxy, gt), advantages.tolist()  # one transfer, not P x G .item()
        samples = [{**{k: r[k] for k in SAMPLE_KEYS}, **_verifier_inputs(p), "prompt": p.text,
                    "category": categories[i][j],
                    "advantage": advantage[i][j], "policy_version": version, "step": step}
                   for i, (p, group) in enumerate(zip(prompts, scored)) for j, r in enumerate(group)]
        # the driver's own work on the step's samples: batch, advantages, metrics, sample records
        metrics["perf/controller_s"] = time.time() - start - waited
        return Rollout(step, list(prompts), generated, batch, metrics, samples)

    def _fused_sync(self) -> bool:
        """Whether new weights ride on train_step and the next generate (the collective sync)."""
        from rlvr.controller.weight_sync import CollectiveSync

        return isinstance(getattr(self, "weight_sync", None), CollectiveSync)

    def _train_result(self, refs, engine_refs) -> Dict[str, float]:
        """train_step's metrics; an engine call that fails meanwhile raises at once (a rank
        waiting to send it weights would otherwise block until the weight group's timeout)."""
        import ray

        key = lambda ref: ref.hex() if hasattr(ref, "hex") else id(ref)  # noqa: E731 - ObjectRef or a test's stand-in
        left, pending = {key(r) for r in refs}, list(refs) + list(engine_refs)
        while left and engine_refs:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                if key(ref) in left:
                    left.discard(key(ref))
                else:
                    ray.get(ref)  # raises the engine's error
        return self.trainer.collect("train_step", refs)[0]

    def rl_step(self, step: int, prompts: Sequence[Prompt], epoch: int = 0):
        """One RL step: roll out G samples per prompt, score both rewards, advantages
        (`algorithm.name`) from the PROXY, train, sync weights. Returns (metrics, per-sample records).

        Generations of later steps are issued from here when the loop's plan allows (module
        docstring): with rollout.overlap step+1's while the trainer updates, and with the
        collective sync the one that receives this step's weights right after train_step.
        """
        import ray

        cfg = self.cfg
        overlap = cfg.rollout.overlap and self._plan is not None
        rollout = self._rollout(step, prompts, epoch)
        nxt, later = step + 1, step + (2 if overlap else 1)  # `later`: the first generation from version `step`
        if overlap and self._ahead(nxt) and nxt not in self._inflight:
            self._launch_step(nxt, *self._plan(nxt))  # the engines' current weights: version step - 1
        fused = self._fused_sync()
        t1 = time.time()
        refs = self.trainer.train_step(rollout.batch, temperature=cfg.rollout.temperature,
                                       broadcast_version=step if fused else None, wait=False)
        receives = []
        if fused and self._ahead(later):
            self._launch_step(later, *self._plan(later), receive_version=step)
        elif fused:  # nothing left to generate: the engines take the weights for eval and sync_check
            receives = [w.receive_weights.remote(step) for w in self.rollout]
        if overlap and nxt in self._inflight:  # score step+1's samples while the trainer works
            made_for, nxt_epoch, launched = self._inflight.pop(nxt)
            self._ready[nxt] = self._prepare(nxt, made_for, nxt_epoch, self._gather(launched))
        engine_refs = receives + [f for _, _, (_, _, futures) in self._inflight.values() for f in futures]
        train_metrics = self._train_result(refs, engine_refs if fused else [])
        t_train = time.time() - t1
        if fused:
            # rank 0's send: transfer + load when the engines were already waiting (always in
            # synchronous mode); with overlap it also holds any wait for the in-flight generation
            sync_s = train_metrics.pop("perf/weight_broadcast_s")
            if receives:
                sync_s = min(sync_s, max(ray.get(receives)))  # the later of the two waited for nothing
        else:
            sync_s = self._sync_weights(step)
            if self._ahead(later) and later not in self._inflight:
                self._launch_step(later, *self._plan(later))
        metrics: Dict[str, Any] = {"step": step, **rollout.metrics, **train_metrics,
                                   "perf/train_s": t_train, "perf/weight_sync_s": sync_s}
        if "policy/kl_to_ref" in metrics and "policy/kl_to_init" not in metrics:
            metrics["policy/kl_to_init"] = metrics["policy/kl_to_ref"]
        return metrics, rollout.samples

    def checkpoint(self, folder: RunFolder, state: Dict[str, Any]) -> None:
        """HF weights + trainer state (optimizer included) + the loop's state. rlvr_state.json
        is written last: a checkpoint without it is incomplete and never resumed from."""
        path = folder.checkpoint_dir(state["step"])
        try:
            (path / RESUME_STATE).unlink(missing_ok=True)  # a folder being rewritten reads incomplete
            self.trainer.save_hf(str(path))
            self.trainer.save_training_state(str(path / "trainer"))
            ahead = self._ready.get(state["step"] + 1)
            if self.cfg.rollout.overlap and ahead is not None:
                pending = {"step": ahead.step, "prompt_ids": [p.id for p in ahead.prompts],
                           **generations_to_json(ahead.generated)}
                (path / PENDING_STATE).write_text(json.dumps(pending))
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

    def _restore_pending(self, checkpoint: Path, step: int) -> Rollout:
        """Step `step`'s generations kept in an overlap checkpoint, scored again (rewards are
        pure functions of their keys, so the scores are the ones the original run got)."""
        from rlvr.config.load import RecipeError

        path = checkpoint / PENDING_STATE
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise RecipeError(f"resume: {path} is missing or unreadable ({err}); an overlap run resumes from "
                              "a checkpoint written with rollout.overlap = true") from None
        prompts, epoch = self._plan(step)
        if data.get("step") != step or data.get("prompt_ids") != [p.id for p in prompts]:
            raise RecipeError(f"resume: {path} holds step {data.get('step')}'s generations for other prompts "
                              f"than step {step}'s: the checkpoint does not belong to this recipe")
        return self._prepare(step, prompts, epoch, generations_from_json(data))

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
            if problem is None and self.cfg.rollout.overlap and not (marker.parent / PENDING_STATE).is_file():
                problem = (f"{marker.parent / PENDING_STATE} is missing (an overlap checkpoint keeps the "
                           "next step's samples)")
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
