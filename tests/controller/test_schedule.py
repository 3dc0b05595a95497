"""The loop's schedule of generations and weight syncs (rlvr/controller/loop.py's docstring), with
stand-in actors whose calls run when issued, in issue order, as a Ray actor runs its queue.

The stand-in trainer counts its updates (its weights are version = updates) and, with the
collective sync, "broadcasts" at the end of train_step into every engine's inbox; an engine
takes the next message when a generate asks it to receive one. Each sample's behaviour
log-prob encodes the version the engine held, so the batches the trainer gets show which
weights every step's samples really came from.
"""
from dataclasses import replace

import pytest

from rlvr.config import RecipeConfig
from rlvr.controller.actors import ActorPool
from rlvr.controller.prompts import PromptSampler
from rlvr.controller.step import StepRunner
from rlvr.controller.weight_sync import CollectiveSync, ObjectStoreSync
from rlvr.rollout.generation import Generation
from rlvr.rewards.worker import RewardWorker
from tests.controller.test_rl_step import PROMPTS, RESPONSES, FakeTokenizer, Remote

G = 4


def logprob(k: int, version: int) -> float:
    """Behaviour log-prob of sample k's tokens under weights `version` (the stand-in's model)."""
    return -0.1 * (k + 1) - 0.01 * version


class Engine:
    def __init__(self):
        self.version, self.inbox, self.log = 0, [], []

    def receive_weights(self, version):
        sent = self.inbox.pop(0)
        assert sent == version, f"engine expected version {version}, the trainer sent {sent}"
        self.version = version
        self.log.append(("receive", version))
        return 0.5

    def generate(self, prompts, n, max_new_tokens, temperature, top_p, seed, stop_token_ids, receive_version=None):
        out = {} if receive_version is None else {"receive_s": self.receive_weights(receive_version)}
        self.log.append(("generate", self.version))
        groups = [[Generation([ord(c) for c in t], [logprob(k, self.version)] * len(t), t, "stop")
                   for k, t in enumerate(RESPONSES["".join(map(chr, ids))][:n])] for ids in prompts]
        return {"generations": groups, "policy_version": self.version, "seconds": 0.25,
                "num_tokens": sum(len(g.token_ids) for grp in groups for g in grp), **out}

    def update_weights(self, state, version):  # the object-store sync
        self.version = state

    def policy_version(self):
        return self.version


class Trainer:
    def __init__(self, engines):
        self.engines, self.updates, self.batches, self.weights_at_train = engines, 0, [], []

    def train_step(self, batch, temperature=1.0, broadcast_version=None, wait=True):
        self.batches.append(batch)
        self.weights_at_train.append(self.updates)
        self.updates += 1
        metrics = {"loss": 0.0}
        if broadcast_version is not None:
            assert broadcast_version == self.updates
            for engine in self.engines:
                engine.inbox.append(broadcast_version)
            metrics["perf/weight_broadcast_s"] = 0.002
        return metrics if wait else [metrics]

    def collect(self, what, refs):
        return refs

    def train_metrics(self, refs):  # TrainerGroup's: the ranks' results combined (one rank here)
        return self.collect("train_step", refs)[0]

    def full_state_dict_ref(self):
        return self.updates


@pytest.fixture()
def make(monkeypatch):
    import ray

    monkeypatch.setattr(ray, "get", lambda refs, **_: list(refs) if isinstance(refs, list) else refs)
    monkeypatch.setattr(ray, "wait", lambda refs, num_returns=1, **_: (refs[:num_returns], refs[num_returns:]))
    base = RecipeConfig()
    made = []

    def build(overlap, sync="collective", steps=4, workers=2):
        cfg = replace(base, seed=3, steps=steps,
                      rollout=replace(base.rollout, samples_per_prompt=G, prompts_per_step=2, overlap=overlap),
                      reward=replace(base.reward, verifier="arithmetic", design={"name": "incorrect_only"}))
        c = StepRunner(cfg, ActorPool(cfg), tokenizer=None)
        c.tokenizer = FakeTokenizer()
        engines = [Engine() for _ in range(workers)]
        c.actors.rollout = [Remote(e) for e in engines]
        c.actors.reward = [Remote(RewardWorker("arithmetic", {"name": "incorrect_only"}))]
        c.actors.trainer = Trainer(engines)
        if sync == "collective":
            c.actors.weight_sync = CollectiveSync.__new__(CollectiveSync)  # only its type matters to the loop
        else:
            c.actors.weight_sync = ObjectStoreSync(c.actors.trainer, c.actors.rollout)
        sampler = PromptSampler(PROMPTS + [replace(p, id=p.id + "'") for p in PROMPTS], seed=0)  # 2 per step
        c._plan = lambda s: (sampler.batch(s, 2), sampler.epoch(s, 2))
        c._generate_until = steps + (1 if overlap else 0)
        made.append(c)
        return c, engines

    yield build
    for c in made:
        for w in c.actors.reward:
            w._obj.close()


def behaviour_version(batch) -> int:
    """The weights version encoded in a batch's behaviour log-probs (row 0 is sample k = 0)."""
    first = float(batch.old_logprobs[0][batch.response_mask[0].bool()][0])
    return round((-0.1 - first) / 0.01)


@pytest.mark.parametrize("sync", ["collective", "object_store"])
def test_synchronous_steps_sample_from_the_last_update_and_eval_sees_it(make, sync):
    c, engines = make(overlap=False, sync=sync)
    for step in range(1, 5):
        metrics, samples = c.rl_step(step, *c._plan(step))
        assert metrics["policy/version"] == step - 1 and metrics["policy/version_lag"] == 0
        assert {s["policy_version"] for s in samples} == {step - 1}
        assert behaviour_version(c.actors.trainer.batches[-1]) == step - 1 == c.actors.trainer.weights_at_train[-1]
        # an evaluation now (it follows the step) samples from this step's update
        assert c.generate(PROMPTS, 1, 0.0, seed=0)[2] == step
        assert metrics["perf/weight_sync_s"] >= 0
    assert [e.version for e in engines] == [4, 4]  # the last update reached the engines (sync_check)
    assert not c._inflight and not c._ready
    if sync == "collective":
        # step 2's generate, issued right after update 1, first receives it; the evaluation after
        # step 1 queues behind it. The last update went by a receive of its own.
        gens = [entry for entry in engines[0].log if entry[0] == "generate"]
        assert engines[0].log[:4] == [("generate", 0), ("receive", 1), ("generate", 1), ("generate", 1)]
        assert ("receive", 4) in engines[0].log and all(not e.inbox for e in engines)
        assert metrics["perf/weight_sync_s"] == 0.002 and len(gens) == 4 + 4  # 4 steps + 4 evals


@pytest.mark.parametrize("sync", ["collective", "object_store"])
def test_overlap_samples_step_t_plus_1_from_the_weights_before_update_t(make, sync):
    c, engines = make(overlap=True, sync=sync)
    for step in range(1, 5):
        metrics, samples = c.rl_step(step, *c._plan(step))
        made_from = max(step - 2, 0)  # step t+1 is generated while update t runs, from version t-1
        assert metrics["policy/version"] == made_from and {s["policy_version"] for s in samples} == {made_from}
        assert metrics["policy/version_lag"] == (0 if step == 1 else 1)
        assert behaviour_version(c.actors.trainer.batches[-1]) == made_from
        assert c.actors.trainer.weights_at_train[-1] == step - 1
        # step+1's samples are made (and scored) during this step, before its update reached the engines
        assert c._ready[step + 1].generated["policy_version"] == step - 1
        assert c.generate(PROMPTS, 1, 0.0, seed=0)[2] == step  # eval after the step sees its update
    assert [e.version for e in engines] == [4, 4] and all(not e.inbox for e in engines)
    assert sorted(c._ready) == [5] and not c._inflight  # step 5 (for an extended resume) came from version 3
    assert c._ready[5].generated["policy_version"] == 3


@pytest.mark.parametrize("sync", ["collective", "object_store"])
def test_overlap_sends_the_next_update_ahead_unless_the_loop_holds_the_step(make, sync):
    """StepRunner.train_ahead: with the fused sync, update t+1 is sent while step t runs (its
    batch is ready), except after a step the loop holds (here step 2, as for a checkpoint) and
    the last; the trainer gets the same batches in the same order as without it."""
    import torch

    plain, _ = make(overlap=True, sync=sync)
    for step in range(1, 5):
        plain.rl_step(step, *plain._plan(step))
    c, engines = make(overlap=True, sync=sync)
    c.follow(c._plan, c._generate_until, holds=lambda s: s in (2, 4))
    updates_after = []
    for step in range(1, 5):
        metrics, samples = c.rl_step(step, *c._plan(step))
        updates_after.append(c.actors.trainer.updates)
        assert metrics["policy/version"] == max(step - 2, 0) and metrics["perf/train_s"] >= 0
        assert c.trained_ahead(step + 1) == (sync == "collective" and step in (1, 3))
    # the stand-in trains when called: updates 2 and 4 ran during steps 1 and 3
    assert updates_after == ([2, 2, 4, 4] if sync == "collective" else [1, 2, 3, 4])
    assert c.actors.trainer.weights_at_train == [0, 1, 2, 3]
    for ours, theirs in zip(c.actors.trainer.batches, plain.actors.trainer.batches, strict=True):
        assert all(torch.equal(getattr(ours, f), getattr(theirs, f)) for f in
                   ("input_ids", "attention_mask", "response_mask", "old_logprobs", "advantages"))
    assert [e.version for e in engines] == [4, 4] and all(not e.inbox for e in engines)
    c.reset()  # a restart forgets an update sent ahead
    assert not c._trained_ahead


def test_overlap_is_not_started_by_an_rl_step_without_the_loops_plan(make):
    c, engines = make(overlap=True, sync="object_store")
    c._plan = None
    for step in (1, 2):
        metrics, _ = c.rl_step(step, PROMPTS, 0)
        assert metrics["policy/version_lag"] == 0
    assert not c._inflight and not c._ready and [e.version for e in engines] == [2, 2]


def test_made_ahead_samples_of_other_prompts_are_refused(make):
    c, _ = make(overlap=True)
    c.rl_step(1, *c._plan(1))
    prompts, epoch = c._plan(2)
    with pytest.raises(RuntimeError, match="step 2: the samples made ahead are of other prompts"):
        c.rl_step(2, prompts[::-1], epoch)


class EngineInterface:
    """The stand-in Engine behind RolloutEngine's interface (what RolloutWorker calls)."""

    def __init__(self, engine):
        self.engine = engine

    def generate(self, prompts, n, max_new_tokens, **kwargs):
        return self.engine.generate(prompts, n, max_new_tokens, **kwargs)["generations"]

    def receive_weights(self):
        version = self.engine.inbox[0]
        self.engine.receive_weights(version)
        return version

    def leave_weight_group(self):
        pass

    def shutdown(self):
        pass


def test_colocated_scoring_gives_the_pools_scores(make):
    """reward.colocate: real RolloutWorkers (stand-in engines) score their own samples with the
    same verifier and design as the reward pool; every sample, advantage and metric is the same."""
    from rlvr.rollout.worker import RolloutWorker

    design = {"name": "flip", "fp_rate": 0.5, "fn_rate": 0.3, "seed": 11}
    runs = []
    for colocate in (False, True):
        c, engines = make(overlap=False)
        c.cfg = replace(c.cfg, reward=replace(c.cfg.reward, design=design, colocate=colocate))
        c.actors.reward[0]._obj.close()
        c.actors.reward = [Remote(RewardWorker("arithmetic", design))] * (0 if colocate else 1)
        workers = []
        for engine in engines:
            worker = RolloutWorker.__new__(RolloutWorker)  # the real generate + scoring, no engine start
            worker.engine, worker._policy_version = EngineInterface(engine), 0
            if colocate:
                worker.enable_scoring("arithmetic", design)
            workers.append(worker)
        c.actors.rollout = [Remote(w) for w in workers]
        steps = [c.rl_step(step, *c._plan(step)) for step in (1, 2, 3)]  # step 3: epoch 1's draws
        for w in workers:
            w.shutdown()  # closes the colocated verifier
        runs.append(steps)
    for (pool_metrics, pool_samples), (own_metrics, own_samples) in zip(*runs):
        assert own_samples == pool_samples
        assert {k: v for k, v in own_metrics.items() if not k.startswith("perf/")} == \
               {k: v for k, v in pool_metrics.items() if not k.startswith("perf/")}
    proxies = [s["proxy"] for _, samples in runs[0] for s in samples]
    assert 0 < sum(proxies) < len(proxies)  # the flip design drew both ways


def test_colocate_is_refused_for_a_verifier_that_needs_the_sandboxed_pool():
    from rlvr.config import RecipeError, load_recipe

    assert load_recipe(None, ["reward.colocate=true"]).reward.colocate
    with pytest.raises(RecipeError, match="reward.colocate = true scores inside the rollout worker, but verifier "
                                          "'math' runs in sandboxed processes"):
        load_recipe(None, ["reward.colocate=true", "reward.verifier=math", "task.name=gsm8k"])


def test_an_overlap_resume_skips_a_checkpoint_without_its_pending_samples(tmp_path, fake_checkpoint):
    from rlvr.config import load_recipe, to_yaml
    from rlvr.controller.checkpoint import PENDING_STATE, resume_point
    from rlvr.tracking.run_folder import RunFolder

    cfg = load_recipe(None, [f"output_dir={tmp_path}", "run_name=r", "steps=9", "rollout.overlap=true", "algorithm.tis_cap=2.0",
                             "resume=true"])
    folder = RunFolder(tmp_path / "r")
    folder.write_config(to_yaml(cfg))
    older, newer = fake_checkpoint(folder, 2), fake_checkpoint(folder, 4)
    (older / PENDING_STATE).write_text("{}")
    state, path, skipped = resume_point(cfg, folder)
    assert path == older and state["step"] == 2  # step 4's lacks the samples made ahead of step 5
    assert skipped == [newer]


def test_colocated_scores_out_of_order_are_refused_naming_both_samples(make):
    """A rollout worker's scores are added to the records the driver builds, in sample order."""
    c, _ = make(overlap=False)
    prompts = c._plan(1)[0][:1]
    gens = [[Generation([1], [-0.1], "1;", "stop"), Generation([2], [-0.2], "2;", "stop")]]
    pid = prompts[0].id
    scores = [[{"prompt_id": pid, "sample_index": j, "gt": 1.0, "proxy": 1.0} for j in (0, 1)]]
    merged = c._with_records(prompts, gens, 0, scores)
    assert [(r["response"], r["sample_index"], r["gt"]) for r in merged[0]] == [("1;", 0, 1.0), ("2;", 1, 1.0)]
    with pytest.raises(RuntimeError, match=f"got the score of {pid}#1 for {pid}#0"):
        c._with_records(prompts, gens, 0, [scores[0][::-1]])
