"""One RL step: roll out G samples per prompt, score both rewards, advantages from the PROXY,
train, sync weights; and the generations it issues ahead of later steps.

Schedule of step t (docs/loop.md has the timeline). Version v = the weights after v updates.
- Synchronous (default): step t's samples come from version t-1. With the collective weight
  sync the sync rides on calls made anyway: train_step(t) ends with rank 0 broadcasting
  version t, and step t+1's generate, issued right after it, begins by receiving it.
- `rollout.overlap`: step t+1's samples are generated while the trainer updates on step t,
  from the weights the engines hold then (version t-1); version t reaches the engines after
  the update, at the start of step t+2's generate. So step t's samples come from version
  max(t-2, 0) (one step stale from step 2 on: policy/version_lag = 1) and the run's results
  differ from a synchronous one, which is why it is off by default. Step t+1's batch is ready
  before update t ends, so with the collective sync its train_step is sent at once, queued
  behind update t (StepRunner.train_ahead: the same updates, the trainer never idle).
In both, an evaluation at step t runs after version t reached the engines (its generate
queues behind the one that received it).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence

from rlvr.config import RecipeConfig
from rlvr.controller.faults import wait_each
from rlvr.controller.prompts import split_round_robin, verifier_inputs
from rlvr.controller.weight_sync import CollectiveSync, InProcessSync
from rlvr.tasks import Prompt

VERIFIER_ERRORS = ("timeout", "parse_error")  # verdict reasons that mean "could not check"

# Fields of a scored record that go into samples/step_*.jsonl as they are.
SAMPLE_KEYS = ("prompt_id", "sample_index", "response", "gold", "num_tokens", "gt", "proxy", "reason",
               "expected_proxy", "systematic_proxy")


def reward_tensors(scored: Sequence[Sequence[Dict[str, Any]]]):
    """(proxy [P, G], gt [P, G]) float64 tensors of scored groups (as `StepRunner.score` returns)."""
    from rlvr.rewards.categorize import reward_channels

    return reward_channels(scored)[:2]


class Launched(NamedTuple):
    """StepRunner.launch's generate calls: what `gather` waits for, and how to issue each again."""

    ids: List[List[int]]  # every prompt's token ids
    chunks: List[List[int]]  # per call: the prompt indices it generates for
    futures: List[Any]  # per call: its ObjectRef
    calls: List[tuple]  # per call: (rollout worker index, the worker it went to, args, kwargs)


@dataclass
class Rollout:
    """One step's samples, scored, and the train batch built from them (advantages set)."""

    step: int
    prompts: List[Prompt]
    generated: Dict[str, Any]  # StepRunner.gather's dict: generations [P][G], policy_version, ...
    batch: Any  # TrainBatch, rows prompt-major
    metrics: Dict[str, Any]  # the samples' reward, length, version and rollout-time metrics
    samples: List[Dict[str, Any]]  # one record per sample, as samples/step_*.jsonl holds them


def generations_to_json(generated: Dict[str, Any]) -> Dict[str, Any]:
    """What a checkpoint keeps of a step's generations made ahead: enough to rebuild them exactly."""
    return {"policy_version": generated["policy_version"], "seconds": generated["seconds"],
            "generations": [[g.to_json() for g in group] for group in generated["generations"]]}


def generations_from_json(data: Dict[str, Any]) -> Dict[str, Any]:
    """Inverse of generations_to_json (floats survive JSON exactly: repr round-trips)."""
    from rlvr.rollout.generation import Generation

    groups = [[Generation(**g) for g in group] for group in data["generations"]]
    return {"generations": groups, "policy_version": data["policy_version"], "seconds": data["seconds"],
            "num_tokens": sum(len(g.token_ids) for group in groups for g in group)}


def _drop_if_hung(actor, name: str, err: BaseException) -> None:
    """A hung actor is lost: killed (named in the log) so the run's teardown does not wait on it."""
    from rlvr.controller.faults import StageTimeout
    from rlvr.tracking.tracker import progress

    if isinstance(err, StageTimeout):
        import ray

        progress(f"{name} hung ({err}); killing it")
        if not ray.is_initialized():  # a stand-in: ray.kill would start a Ray of its own first
            return
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - gone already
            pass


# How long a failed side of the weight broadcast waits for the other side's calls to say whether one was lost.
PEER_VERDICT_S = 30.0


def _error_of(ref) -> Optional[BaseException]:
    """The exception ray.get(ref) raises, or None."""
    import ray

    try:
        ray.get(ref)
    except Exception as err:  # noqa: BLE001 - returned to the caller
        return err
    return None


def _lost_peer(peer_refs, names, wait_s: float = PEER_VERDICT_S):
    """An ActorLost naming the actor whose call among `peer_refs` (`names` theirs) failed with a
    lost-actor error, or None. When one side of the weight broadcast fails (its peer closed the
    connection), the other side's loss is the cause, and the run recovers from it instead of
    failing on the survivor's error."""
    import ray

    from rlvr.controller.faults import ActorLost, is_lost_actor

    name_of = {id(ref): name for ref, name in zip(peer_refs, names)}
    pending, deadline = list(peer_refs), time.monotonic() + wait_s
    while pending and time.monotonic() < deadline:
        done, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
        for ref in done:
            err = _error_of(ref)
            if err is not None:
                if is_lost_actor(err):
                    lost = ActorLost(f"{name_of.get(id(ref), 'an actor')} lost during the weight "
                                     f"broadcast ({type(err).__name__}: {str(err)[:200]})")
                    lost.__cause__ = err
                    return lost
    return None


class StepRunner:
    """Drives the actors (`actors`: .rollout, .reward, .trainer, .weight_sync, as ActorPool
    holds them) through RL steps; keeps the generations issued ahead of their step."""

    def __init__(self, cfg: RecipeConfig, actors, tokenizer):
        from rlvr.rewards.designs import reads_prompt

        self.cfg, self.actors, self.tokenizer = cfg, actors, tokenizer
        self._with_text = reads_prompt(cfg.reward.design)  # scored records carry the prompt text
        # Generations issued ahead of their step, by step: (prompts, epoch, launched calls),
        # and those already scored into a Rollout. The loop's plan gives a step's prompts.
        self._inflight: Dict[int, Any] = {}
        self._ready: Dict[int, Rollout] = {}
        self._plan: Optional[Callable[[int], tuple]] = None  # step -> (prompts, epoch); None: nothing ahead
        self._generate_until = 0  # last step whose samples may be generated ahead
        # rollout.overlap: train_step calls sent before their step (train_ahead), by step:
        # (per-rank refs, when sent); and when the last train_step's result came back
        self._holds: Callable[[int], bool] = lambda step: True
        self._trained_ahead: Dict[int, tuple] = {}
        self._train_done = 0.0
        self._step = 0  # the step rl_step is in (named by fault records)

    def reset(self) -> None:
        """Forget the generations and updates issued ahead (their actors are gone: a restart)."""
        self._inflight.clear()
        self._ready.clear()
        self._trained_ahead.clear()

    def follow(self, plan: Callable[[int], tuple], generate_until: int,
               holds: Optional[Callable[[int], bool]] = None) -> None:
        """Let later steps' generations be issued ahead, up to step `generate_until` (plan: step ->
        (prompts, epoch)). holds(step): whether the loop needs the trainer or the engines between
        step `step`'s update and the next (an evaluation, a checkpoint, a stop); otherwise, with
        rollout.overlap, the next update is sent before step `step` ends (`train_ahead`).
        None: always (no update is sent ahead)."""
        self._plan, self._generate_until = plan, generate_until
        self._holds = holds or (lambda step: True)

    def trained_ahead(self, step: int) -> bool:
        """Whether step `step`'s update was already sent to the trainer (the loop cannot stop before it)."""
        return step in self._trained_ahead

    def train_ahead(self, step: int) -> bool:
        """Whether step `step + 1`'s update may be sent to the trainer while step `step`'s runs.

        With rollout.overlap step t+1's batch is ready before step t's update ends (it was
        generated meanwhile), and the trainer's calls run in the order sent: sent at once, the
        update starts the moment the trainer is free instead of after the driver's end of step t
        (metrics, logs, the next launch and a Ray call: 5-7 ms of a 45 ms step in the quickstart,
        the trainer idle). The trainer does the same work in the same order, so the run is the
        same, bit for bit. Not when anything between the two updates needs the trainer or the
        engines at version t (`holds`: an evaluation, a checkpoint, a stop; the last step), nor
        with a weight sync outside train_step (it would read the later weights)."""
        cfg = self.cfg
        return (cfg.rollout.overlap and self._plan is not None and step + 1 <= cfg.steps
                and isinstance(self.actors.weight_sync, CollectiveSync)
                and not self.actors.engine_sleep.enabled and not self._holds(step))

    def ready_ahead(self, step: int) -> Optional[Rollout]:
        """Step `step`'s Rollout if it was made and scored ahead of its step (overlap), else None."""
        return self._ready.get(step)

    def restore_ahead(self, step: int, prompts: Sequence[Prompt], epoch: int, generated: Dict[str, Any]) -> None:
        """Score again the generations a checkpoint kept for `step` (rewards are pure functions of
        their keys, so the scores are the ones the original run got) and hold them for that step."""
        self._ready[step] = self.prepare(step, prompts, epoch, generated)

    # ---- generate and score -------------------------------------------------------------
    def _reward_key(self, prompt: Prompt) -> tuple:
        """What a sample record carries of its prompt: (id, gold, meta[, text if the design reads it])."""
        return (prompt.id, prompt.gold, prompt.meta, *([prompt.text] if self._with_text else []))

    def launch(self, prompts: Sequence[Prompt], n: int, temperature: float, seed: int,
               receive_version=None, score_epoch=None):
        """Issue the generate calls (worker k gets prompts k, k + N, ...); with `receive_version`
        each worker first receives that version's broadcast; with `score_epoch` it also scores
        its samples (reward.colocate). Returns the handle `gather` takes."""
        rollout = self.actors.rollout
        ids = [self.tokenizer(p.text, add_special_tokens=False)["input_ids"] for p in prompts]
        chunks = split_round_robin(list(range(len(prompts))), len(rollout))
        receive = {} if receive_version is None else {"receive_version": receive_version}

        def score(chunk) -> Dict[str, Any]:
            """generate's `score` argument for these prompts, with reward.colocate."""
            return {} if score_epoch is None else {"score": {
                "prompts": [self._reward_key(prompts[i]) for i in chunk], "epoch": score_epoch}}

        # worker chunk k's seed is seed + k: a chunk issued again (a replaced worker) samples the same
        calls = [(k, w, ([ids[i] for i in chunk], n, self.cfg.rollout.max_new_tokens),
                  dict(temperature=temperature, top_p=self.cfg.rollout.top_p, seed=seed + k,
                       stop_token_ids=[self.tokenizer.eos_token_id], **receive, **score(chunk)))
                 for k, (w, chunk) in enumerate(zip(rollout, chunks)) if chunk]
        futures = [w.generate.remote(*args, **kwargs) for _, w, args, kwargs in calls]
        return Launched(ids, [c for c in chunks if c], futures, calls)

    def _stage_results(self, futures, names) -> List[Any]:
        """The calls' values: ray.get, or with cluster.stage_timeout_s / max_restarts each value
        or its exception (faults.wait_each) for `_recover` to replace the worker that raised it."""
        import ray

        cluster = self.cfg.cluster
        if not cluster.stage_timeout_s and not cluster.max_restarts:
            return ray.get(futures)  # nothing to recover from: as before, the first error raises
        return wait_each(futures, cluster.stage_timeout_s, names)

    def _recover(self, role: str, index: int, used, err: BaseException, issue: Callable):
        """The value of a call to `role` worker `index` (`used`: the actor it went to) that raised
        `err`: the worker replaced (once per loss) and `issue(worker)` issued again, until it
        answers or cluster.max_restarts is spent. Errors that are no lost actor raise as they are."""
        actors, name = self.actors, f"{role} worker {index}"
        while True:
            workers = getattr(actors, role)
            if workers[index] is used:  # not replaced yet (an earlier call may have found the loss)
                if not actors.faults.allow(err, name):
                    _drop_if_hung(used, name, err)
                    raise err
                if role == "rollout" and self.cfg.rollout.in_trainer:
                    from rlvr.controller.faults import ActorLost

                    raise ActorLost(f"trainer rank 0 lost, and {name} inside it (rollout.in_trainer): every "
                                    f"actor restarts ({type(err).__name__})") from err
                if role == "rollout" and self.cfg.rollout.overlap and self._plan is not None:
                    # the lost call's weights (the version before the trainer's current one) exist
                    # nowhere now: every actor restarts from the last checkpoint instead
                    from rlvr.controller.faults import ActorLost

                    raise ActorLost(f"{name} lost while generating with rollout.overlap (its weights "
                                    f"are gone: every actor restarts) ({type(err).__name__})") from err
                node = actors.node_of(role, index)
                actors.replace_worker(role, index, actors.version)
                actors.faults.replaced_workers += 1
                actors.faults.record(self._step, name, node, "replaced; its unfinished calls issued again "
                                     "with the same seeds", err)
            used = workers[index]
            [out] = wait_each([issue(used)], self.cfg.cluster.stage_timeout_s, [name])
            if not isinstance(out, BaseException):
                return out
            err = out

    def gather(self, launched: Launched) -> Dict[str, Any]:
        """Wait for `launch`'s calls: {"prompt_ids", "generations" [prompt][sample], "policy_version",
        "num_tokens", "seconds" (slowest worker's generation), "receive_s" (slowest receive, if any)}.
        A call whose worker was lost is issued again on its replacement, with the same seed."""
        ids, chunks, futures = launched.ids, launched.chunks, launched.futures
        outs = self._stage_results(futures, [f"rollout worker {k}" for k, *_ in launched.calls])
        for i, out in enumerate(outs):
            if isinstance(out, BaseException):
                k, used, args, kwargs = launched.calls[i]
                # the replacement holds the current weights already: no receive
                again = {key: v for key, v in kwargs.items() if key != "receive_version"}
                outs[i] = self._recover("rollout", k, used, out, lambda w: w.generate.remote(*args, **again))
        generations: List[Any] = [None] * len(ids)
        scored: List[Any] = [None] * len(ids)
        versions, tokens, seconds, receives, score_s = set(), 0, 0.0, [], []
        for chunk, out in zip(chunks, outs):
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

    def generate(self, prompts: Sequence[Prompt], n: int, temperature: float, seed: int):
        """[prompt][sample] Generations and the policy version they came from."""
        out = self.gather(self.launch(prompts, n, temperature, seed))
        return out["prompt_ids"], out["generations"], out["policy_version"], out["num_tokens"]

    def score(self, prompts: Sequence[Prompt], generations, epoch: int = 0) -> List[List[Dict]]:
        """Both rewards for every sample. A sample's reward-randomness key is (prompt id,
        sample_index = epoch * G + j): a prompt seen again in a later epoch gets fresh
        i.i.d. draws, and a re-run (or `rlvr score` on the samples file) gets the same ones."""
        import ray

        from rlvr.rewards.worker import sample_records

        reward = self.actors.reward
        records = sample_records([self._reward_key(p) for p in prompts], generations, epoch)
        shards = split_round_robin(list(range(len(records))), len(reward))
        calls = [(j, w, [r for i in shard for r in records[i]]) for j, (w, shard) in enumerate(zip(reward, shards))
                 if shard]
        # scores only come back: each is added to its record here (the responses do not travel twice)
        outs = self._stage_results([w.score.remote(batch, scores_only=True) for _, w, batch in calls],
                                   [f"reward worker {j}" for j, *_ in calls])
        for i, out in enumerate(outs):
            if isinstance(out, BaseException):  # rewards are pure functions of their keys: re-scoring is exact
                j, used, batch = calls[i]
                outs[i] = self._recover("reward", j, used, out, lambda w: w.score.remote(batch, scores_only=True))
        sent = {(r["prompt_id"], r["sample_index"]): r for group in records for r in group}
        scored: Dict[str, List[Dict]] = {}
        for out in outs:
            for scores in out:
                scored.setdefault(scores["prompt_id"], []).append(
                    {**sent[scores["prompt_id"], scores["sample_index"]], **scores})
        return [sorted(scored[p.id], key=lambda r: r["sample_index"]) for p in prompts]

    def _with_records(self, prompts: Sequence[Prompt], generations, epoch: int, scores) -> List[List[Dict]]:
        """[prompt][sample] scored records from the scores a rollout worker sent (reward.colocate):
        each sample's record, built here as `score` builds it, with its scores added."""
        from rlvr.rewards.worker import sample_records

        records = sample_records([self._reward_key(p) for p in prompts], generations, epoch)
        out = []
        for group, group_scores in zip(records, scores):
            for r, s in zip(group, group_scores):
                if (r["prompt_id"], r["sample_index"]) != (s["prompt_id"], s["sample_index"]):
                    raise RuntimeError(f"a rollout worker's scores are out of order: got the score of "
                                       f"{s['prompt_id']}#{s['sample_index']} for {r['prompt_id']}#{r['sample_index']}")
            out.append([{**r, **s} for r, s in zip(group, group_scores)])
        return out

    # ---- one step's pieces ----------------------------------------------------------------
    def launch_step(self, step: int, prompts: Sequence[Prompt], epoch: int, receive_version=None) -> None:
        """Start generating step `step`'s G samples per prompt (its seed is a function of the step)."""
        cfg = self.cfg
        self._inflight[step] = (list(prompts), epoch, self.launch(
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
                self.launch_step(step, prompts, epoch)
            made_for, epoch, launched = self._inflight.pop(step)
            rollout = self.prepare(step, made_for, epoch, self.gather(launched))
        if [p.id for p in rollout.prompts] != [p.id for p in prompts]:
            raise RuntimeError(f"step {step}: the samples made ahead are of other prompts than the step's "
                               "(the loop's plan and its steps disagree)")
        return rollout

    def prepare(self, step: int, prompts: Sequence[Prompt], epoch: int, generated: Dict[str, Any]) -> Rollout:
        """Score a step's generations with both rewards, build the train batch with advantages
        (`algorithm.name`) from the PROXY, and the samples' metrics and records."""
        import torch

        from rlvr.algorithms.advantages import compute_advantages
        from rlvr.rewards.categorize import categorize, reward_channels, reward_error_metrics
        from rlvr.trainer.batch import make_train_batch, resolve_pad_id

        cfg, G = self.cfg, self.cfg.rollout.samples_per_prompt
        generations, version, tokens = generated["generations"], generated["policy_version"], generated["num_tokens"]
        start = time.time()
        prompt_ids = generated.get("prompt_ids") or [self.tokenizer(p.text, add_special_tokens=False)["input_ids"]
                                                     for p in prompts]
        t0 = time.time()
        waited = 0.0  # seconds spent waiting on other actors (scoring, the reward KL): not controller work
        if "scored" in generated:  # reward.colocate: the rollout workers scored their samples
            scored, t_reward = self._with_records(prompts, generations, epoch, generated["scored"]), generated["score_s"]
        else:
            scored = self.score(prompts, generations, epoch)
            t_reward = waited = time.time() - t0
        # expected: E[proxy | prompt, response] over the design's noise; systematic: the part of
        # the proxy that is a function of (prompt, response), on which errors are labelled
        proxy, gt, expected, systematic = reward_channels(scored)
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
            kl = torch.tensor(self.actors.trainer.sequence_kl(batch, temperature=cfg.rollout.temperature),
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
            **reward_error_metrics(proxy, gt, expected=expected, systematic=systematic),
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
        categories, advantage = categorize(systematic, gt), advantages.tolist()  # one transfer, not P x G .item()
        samples = [{**{k: r[k] for k in SAMPLE_KEYS}, **verifier_inputs(p), "prompt": p.text,
                    "category": categories[i][j],
                    "advantage": advantage[i][j], "policy_version": version, "step": step}
                   for i, (p, group) in enumerate(zip(prompts, scored)) for j, r in enumerate(group)]
        # the driver's own work on the step's samples: batch, advantages, metrics, sample records
        metrics["perf/controller_s"] = time.time() - start - waited
        return Rollout(step, list(prompts), generated, batch, metrics, samples)

    def _fused_sync(self) -> bool:
        """Whether new weights ride on train_step (and, with the collective sync, the next generate):
        the collective and the in-process sync."""
        return isinstance(self.actors.weight_sync, (CollectiveSync, InProcessSync))

    def _train_result(self, refs, engine_refs, engine_names=()) -> Dict[str, float]:
        """train_step's metrics; an engine call that fails meanwhile raises at once (a rank
        waiting to send it weights would otherwise block until the weight group's timeout)."""
        import ray

        from rlvr.controller.faults import ActorLost, StageTimeout, is_lost_actor

        key = lambda ref: ref.hex() if hasattr(ref, "hex") else id(ref)  # noqa: E731 - ObjectRef or a test's stand-in
        engine_name = {key(ref): name for ref, name in zip(engine_refs, engine_names)}
        left, pending = {key(r) for r in refs}, list(refs) + list(engine_refs)
        timeout = self.cfg.cluster.stage_timeout_s or None
        while left and (engine_refs or timeout):
            done, pending = ray.wait(pending, num_returns=1, **({"timeout": timeout} if timeout else {}))
            if not done:  # a stuck rank or collective: the run restarts its actors, or fails naming it
                raise StageTimeout(f"trainer ranks (train_step of step {self._step}) made no progress for "
                                   f"cluster.stage_timeout_s = {timeout} s")
            for ref in done:
                if key(ref) in left:
                    left.discard(key(ref))
                    continue
                failed = _error_of(ref)  # the engine's error, if its call failed
                if failed is None:
                    continue
                if is_lost_actor(failed):  # the engine itself was lost: name it
                    raise ActorLost(f"{engine_name.get(key(ref), 'a rollout worker')} lost during "
                                    f"train_step ({type(failed).__name__})") from failed
                # looked up outside an except block: an error raised inside one would carry the
                # engine's as its context, and look lost itself
                lost = _lost_peer(refs, [f"trainer rank {r}" for r in range(len(refs))])
                if lost is not None:  # the broadcast broke because a rank went: that is the loss
                    raise lost from failed
                raise failed
        try:
            return self.actors.trainer.train_metrics(refs)
        except Exception as err:  # noqa: BLE001 - raised below, or the lost engine in its place
            failed = err
        if is_lost_actor(failed):  # a rank itself was lost
            raise failed
        lost = _lost_peer(engine_refs, engine_names)
        if lost is not None:  # the broadcast broke because an engine went: that is the loss
            raise lost from failed
        raise failed

    def _sync_weights(self, step: int) -> float:
        """actors.sync_weights(step); with the object-store sync an engine lost on the way is
        replaced (holding the trainer's weights) and given them again, stamped `step`."""
        from rlvr.controller.faults import lost_actor_name
        from rlvr.controller.weight_sync import ObjectStoreSync

        actors, start = self.actors, time.time()
        try:
            return actors.sync_weights(step)
        except Exception as err:
            role, _, index = lost_actor_name(err).rpartition(" ")
            if role != "rollout worker" or not isinstance(actors.weight_sync, ObjectStoreSync):
                raise
            k = int(index)
            state = actors.trainer.full_state_dict_ref()
            self._recover("rollout", k, actors.rollout[k], err, lambda w: w.update_weights.remote(state, step))
            actors.version = step
            return time.time() - start

    def rl_step(self, step: int, prompts: Sequence[Prompt], epoch: int = 0):
        """One RL step: roll out G samples per prompt, score both rewards, advantages
        (`algorithm.name`) from the PROXY, train, sync weights. Returns (metrics, per-sample records).

        Generations of later steps are issued from here when the loop's plan allows (module
        docstring): with rollout.overlap step+1's while the trainer updates, and with the
        collective sync the one that receives this step's weights right after train_step.
        """
        import ray

        cfg, actors = self.cfg, self.actors
        self._step = step
        overlap = cfg.rollout.overlap and self._plan is not None
        rollout = self._rollout(step, prompts, epoch)
        nxt, later = step + 1, step + (2 if overlap else 1)  # `later`: the first generation from version `step`
        if overlap and self._ahead(nxt) and nxt not in self._inflight:
            self.launch_step(nxt, *self._plan(nxt))  # the engines' current weights: version step - 1
        fused = self._fused_sync()
        sleep_s = actors.engine_sleep.before_train()  # rollout.sleep_while_training: free the shared GPUs
        ahead = self._trained_ahead.pop(step, None)
        if ahead is None:
            t1 = time.time()
            refs = actors.trainer.train_step(rollout.batch, temperature=cfg.rollout.temperature,
                                             broadcast_version=step if fused else None, wait=False)
        else:  # sent during step - 1 (train_ahead): timed from when the trainer was free for it
            refs, t1 = ahead[0], max(ahead[1], self._train_done)
        receives = []
        # rollout.in_trainer: rank 0 loads its engine at the end of train_step, before any later call to it
        loaded = isinstance(actors.weight_sync, InProcessSync)
        if fused and self._ahead(later):
            self.launch_step(later, *self._plan(later), receive_version=None if loaded else step)
        elif fused and not loaded:  # nothing left to generate: the engines take the weights for eval and sync_check
            receives = [w.receive_weights.remote(step) for w in actors.rollout]
        if overlap and nxt in self._inflight:  # score step+1's samples while the trainer works
            made_for, nxt_epoch, launched = self._inflight.pop(nxt)
            self._ready[nxt] = self.prepare(nxt, made_for, nxt_epoch, self.gather(launched))
        if self.train_ahead(step) and nxt in self._ready:  # queued behind this update on every rank
            self._trained_ahead[nxt] = (actors.trainer.train_step(
                self._ready[nxt].batch, temperature=cfg.rollout.temperature, broadcast_version=nxt,
                wait=False), time.time())
        engine_refs = receives + [f for _, _, launched in self._inflight.values() for f in launched.futures]
        # rollout.in_trainer: an engine call fails when the rank holding the engine is lost: name the rank
        engine = "trainer rank 0 (holding rollout worker {})" if cfg.rollout.in_trainer else "rollout worker {}"
        engine_names = [engine.format(k) for k in range(len(receives))] + [
            engine.format(call[0]) for _, _, launched in self._inflight.values() for call in launched.calls]
        train_metrics = self._train_result(refs, engine_refs if fused else [], engine_names)
        self._train_done = time.time()
        t_train = self._train_done - t1
        if fused:
            actors.version = step  # the weights the engines hold once they received the broadcast
            # rank 0's send: transfer + load when the engines were already waiting (always in
            # synchronous mode); with overlap it also holds any wait for the in-flight generation
            sync_s = train_metrics.pop("perf/weight_broadcast_s")
            if receives:
                sync_s = min(sync_s, max(ray.get(receives)))  # the later of the two waited for nothing
        else:
            wake_s = actors.engine_sleep.before_sync()  # weights back on the GPU before they are overwritten
            sync_s = self._sync_weights(step)
            if self._ahead(later) and later not in self._inflight:
                self.launch_step(later, *self._plan(later))
        metrics: Dict[str, Any] = {"step": step, **rollout.metrics, **train_metrics,
                                   "perf/train_s": t_train, "perf/weight_sync_s": sync_s}
        if actors.engine_sleep.enabled:  # never with the fused sync: sleep needs colocated engines
            metrics.update({"perf/engine_sleep_s": sleep_s, "perf/engine_wake_s": wake_s})
        if "policy/kl_to_ref" in metrics and "policy/kl_to_init" not in metrics:
            metrics["policy/kl_to_init"] = metrics["policy/kl_to_ref"]
        return metrics, rollout.samples
