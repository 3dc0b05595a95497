"""Lost actors (rlvr/controller/faults.py) with stand-in actors, no Ray: a rollout or reward worker
that dies mid-step is replaced and its calls issued again with the same seeds, so the step's samples,
metrics and train batch equal those of a step without the loss; a hang past cluster.stage_timeout_s
is a lost worker; max_restarts bounds the recoveries (0 = fail fast); and the loop restarts every
actor from the last complete checkpoint when anything else is lost, with metrics not duplicated."""
import json
from dataclasses import replace

import pytest
import ray.exceptions

from rlvr.config import RecipeConfig
from rlvr.controller.actors import ActorPool
from rlvr.controller.faults import FaultLog, RecoveryExhausted, StageTimeout, injections, is_lost_actor
from rlvr.controller.step import StepRunner
from rlvr.controller.weight_sync import ObjectStoreSync
from rlvr.rewards.worker import RewardWorker
from tests.controller.test_rl_step import G, PROMPTS, FakeRollout, FakeTokenizer, FakeTrainer


class Failed:
    """A stand-in ObjectRef whose call raised: ray.get raises its error."""

    def __init__(self, err):
        self.err = err


class Hung:
    """A stand-in ObjectRef that never completes."""


class Actor:
    """obj.method.remote(*a) runs now; `dies_on` = {method: times}: that many calls raise ActorDiedError."""

    def __init__(self, obj, dies_on=None, hangs_on=()):
        self._obj, self._dies, self._hangs = obj, dict(dies_on or {}), set(hangs_on)
        self.__dict__["died_with"] = None

    def __getattr__(self, name):
        def remote(*args, **kwargs):
            if name in self._hangs:
                return Hung()
            if self._dies.get(name):
                self._dies[name] -= 1
                self.died_with = kwargs
                return Failed(ray.exceptions.ActorDiedError())
            return getattr(self._obj, name)(*args, **kwargs)

        return type("Method", (), {"remote": staticmethod(remote)})


class SeededRollout(FakeRollout):
    """Records each generate's seed; its samples' log-probs depend on the seed, so a re-issue with
    another seed would change the train batch."""

    def __init__(self, log):
        super().__init__()
        self.log = log

    def generate(self, prompts, n, max_new_tokens, temperature, top_p, seed, stop_token_ids):
        self.log.append(seed)
        out = super().generate(prompts, n, max_new_tokens, temperature, top_p, seed, stop_token_ids)
        for group in out["generations"]:
            for g in group:
                g.logprobs = [lp - 0.001 * seed for lp in g.logprobs]
        return out


@pytest.fixture()
def runner(monkeypatch):
    def get(refs, **_):
        def one(ref):
            if isinstance(ref, Failed):
                raise ref.err
            assert not isinstance(ref, Hung)
            return ref
        return [one(r) for r in refs] if isinstance(refs, list) else one(refs)

    def wait(refs, num_returns=1, timeout=None, **_):
        ready = [r for r in refs if not isinstance(r, Hung)][:num_returns]
        return ready, [r for r in refs if all(r is not d for d in ready)]

    monkeypatch.setattr(ray, "get", get)
    monkeypatch.setattr(ray, "wait", wait)
    made = []

    def make(max_restarts=1, stage_timeout_s=None, rollout_dies=None, reward_dies=None, hangs=(), overlap=False):
        base = RecipeConfig()
        design = {"name": "incorrect_only"}
        cfg = replace(base, seed=3,
                      rollout=replace(base.rollout, samples_per_prompt=G, prompts_per_step=2, overlap=overlap,
                                      weight_sync="object_store"),
                      reward=replace(base.reward, verifier="arithmetic", design=design),
                      cluster=replace(base.cluster, max_restarts=max_restarts, stage_timeout_s=stage_timeout_s))
        c = StepRunner(cfg, ActorPool(cfg), tokenizer=None)
        c.tokenizer = FakeTokenizer()
        seeds = {0: [], 1: []}
        c.actors.rollout = [Actor(SeededRollout(seeds[k]), (rollout_dies or {}).get(k), hangs if k == 0 else ())
                            for k in range(2)]
        c.actors.reward = [Actor(RewardWorker("arithmetic", design), (reward_dies or {}).get(j)) for j in range(2)]
        c.actors.trainer = FakeTrainer()
        c.actors.weight_sync = ObjectStoreSync(c.actors.trainer, c.actors.rollout)
        replaced = []

        def replace_worker(pool, role, index, version):  # a fresh stand-in in the lost one's place
            replaced.append((role, index, version))
            fresh = SeededRollout(seeds[index]) if role == "rollout" else RewardWorker("arithmetic", design)
            if role == "rollout":
                fresh.version = version
            getattr(pool, role)[index] = Actor(fresh)
            if role == "rollout" and isinstance(pool.weight_sync, ObjectStoreSync):  # as the real one does
                pool.weight_sync.rollout = list(pool.rollout)
            made.append(fresh)

        monkeypatch.setattr(ActorPool, "replace_worker", replace_worker)
        made.extend(w._obj for w in c.actors.reward)
        return c, seeds, replaced

    yield make
    for obj in made:
        if isinstance(obj, RewardWorker):
            obj.close()


def _two_steps(c):
    out = [c.rl_step(step, PROMPTS, 0) for step in (1, 2)]
    batches = [b.old_logprobs.tolist() for b in c.actors.trainer.batches]
    return [{k: v for k, v in m.items() if not k.startswith("perf/")} for m, _ in out], [s for _, s in out], batches


def test_a_lost_rollout_worker_is_replaced_and_its_chunk_generated_again_with_the_same_seed(runner):
    clean, clean_seeds, _ = runner(max_restarts=0)
    expected = _two_steps(clean)
    c, seeds, replaced = runner(rollout_dies={1: {"generate": 1}})
    lost = c.actors.rollout[1]
    assert _two_steps(c) == expected  # samples, metrics and the trainer's batches: as without the loss
    # worker 1's step-1 chunk went to the lost worker, then to its replacement with the same seed
    assert lost.died_with["seed"] == clean_seeds[1][0] and seeds == clean_seeds
    assert replaced == [("rollout", 1, 0)]  # brought to the engines' version before the re-issue
    faults = c.actors.faults
    assert (faults.replaced_workers, faults.restarts) == (1, 0)
    assert [(e["step"], e["actor"]) for e in faults.events] == [(1, "rollout worker 1")]
    assert faults.metrics() == {"fault/restarts": 0, "fault/replaced_workers": 1, "fault/redone_steps": 0}


def test_a_lost_reward_worker_is_replaced_and_its_shard_scored_again(runner):
    clean, _, _ = runner(max_restarts=0)
    expected = _two_steps(clean)
    c, _, replaced = runner(max_restarts=3, reward_dies={0: {"score": 1}, 1: {"score": 1}})
    assert _two_steps(c) == expected
    assert sorted(replaced) == [("reward", 0, 0), ("reward", 1, 0)]
    assert c.actors.faults.replaced_workers == 2 and len(c.actors.faults.events) == 2


def test_max_restarts_zero_fails_fast_with_the_actors_error(runner):
    c, _, replaced = runner(max_restarts=0, reward_dies={0: {"score": 1}})
    with pytest.raises(ray.exceptions.ActorDiedError):
        c.rl_step(1, PROMPTS, 0)
    assert not replaced and not c.actors.faults.events


def test_a_worker_lost_again_and_again_fails_once_the_recoveries_are_spent(runner):
    c, _, replaced = runner(max_restarts=1, rollout_dies={0: {"generate": 1}})
    c.rl_step(1, PROMPTS, 0)
    c.actors.rollout[0] = Actor(SeededRollout([]), {"generate": 1})  # the replacement dies too
    with pytest.raises(RecoveryExhausted, match=r"rollout worker 0 lost after 1 recoveries \(cluster.max_restarts = 1\)"):
        c.rl_step(2, PROMPTS, 0)


def test_a_hung_engine_is_a_lost_worker_after_the_stage_timeout(runner):
    c, _, _ = runner(max_restarts=0, stage_timeout_s=0.01, hangs=("generate",))
    with pytest.raises(StageTimeout, match=r"rollout worker 0 made no progress for cluster.stage_timeout_s = 0.01 s"):
        c.rl_step(1, PROMPTS, 0)
    clean, _, _ = runner(max_restarts=0)
    expected = _two_steps(clean)
    c, _, replaced = runner(max_restarts=1, stage_timeout_s=0.01, hangs=("generate",))
    assert _two_steps(c) == expected and replaced == [("rollout", 0, 0)]
    assert c.actors.faults.events[0]["cause"] == "StageTimeout"


def test_a_weight_sync_outside_train_step_that_hangs_is_a_stage_timeout(runner):
    # object_store (and ipc) syncs run after train_step: a hung engine there is named as in a stage
    c, _, replaced = runner(max_restarts=0, stage_timeout_s=0.01, hangs=("update_weights",))
    c.actors.weight_sync.stage_timeout_s = 0.01  # as ActorPool.open_weight_sync sets it from the recipe
    with pytest.raises(StageTimeout, match=r"^rollout worker 0 made no progress for cluster.stage_timeout_s = "
                                           r"0.01 s \(weight sync\)"):
        c.rl_step(1, PROMPTS, 0)
    clean, _, _ = runner(max_restarts=0)
    expected = _two_steps(clean)
    c, _, replaced = runner(max_restarts=1, stage_timeout_s=0.01, hangs=("update_weights",))
    c.actors.weight_sync.stage_timeout_s = 0.01
    assert _two_steps(c) == expected and replaced == [("rollout", 0, 0)]  # with a recovery left: replaced
    assert c.actors.faults.events[0]["cause"] == "StageTimeout"


def test_an_engine_lost_in_the_object_store_sync_is_replaced_and_given_the_weights(runner):
    clean, _, _ = runner(max_restarts=0)
    expected = _two_steps(clean)
    c, _, replaced = runner(rollout_dies={1: {"update_weights": 1}})
    assert _two_steps(c) == expected
    assert replaced == [("rollout", 1, 0)]  # created at the engines' version, then sent step 1's weights
    assert c.actors.rollout[1]._obj.version == 2 and c.actors.version == 2
    assert [(e["step"], e["actor"]) for e in c.actors.faults.events] == [(1, "rollout worker 1")]


def test_a_broadcast_broken_by_a_lost_peer_names_the_peer_not_the_survivors_error(runner):
    # the collective sync: trainer and engines fail together when one of them goes; the loss is
    # the cause, and is what the run recovers from (the survivor's "connection closed" is not)
    from rlvr.controller.faults import ActorLost, is_lost_actor
    from rlvr.controller.step import _lost_peer

    closed = lambda: RuntimeError("Connection closed by peer")  # noqa: E731 - a fresh error each time
    c, _, _ = runner()
    c.actors.trainer.collect = lambda what, refs: [ray.get(r) for r in refs]
    with pytest.raises(ActorLost, match=r"^rollout worker 1 lost during the weight broadcast \(ActorDiedError"):
        c._train_result([Failed(closed())], [{"ok": 1}, Failed(ray.exceptions.ActorDiedError())],
                        ["rollout worker 0", "rollout worker 1"])
    with pytest.raises(ActorLost, match=r"^trainer rank 1 lost during the weight broadcast"):
        c._train_result([Hung(), Failed(ray.exceptions.ActorDiedError())], [Failed(closed())], ["rollout worker 0"])
    with pytest.raises(RuntimeError, match="Connection closed") as raised:  # nobody lost: the error as it is
        c._train_result([Failed(closed())], [Failed(closed())], ["rollout worker 0"])
    assert not is_lost_actor(raised.value)
    assert _lost_peer([Failed(closed()), {"ok": 1}], ["a", "b"]) is None
    assert is_lost_actor(_lost_peer([Failed(ray.exceptions.ActorDiedError())], ["reward worker 3"]))


def test_a_replacement_lost_while_starting_is_started_again_within_the_restart_timeout(monkeypatch):
    # right after a node goes, Ray may still place the new actor in the dead node's bundle
    cfg = RecipeConfig()
    pool = ActorPool(replace(cfg, cluster=replace(cfg.cluster, restart_timeout_s=30)))
    monkeypatch.setattr(ActorPool, "_wait_placement", lambda self, timeout=None: None)
    monkeypatch.setattr("time.sleep", lambda s: None)
    tries = []

    def start(seconds_left):
        tries.append(seconds_left)
        if len(tries) < 3:
            raise ray.exceptions.ActorDiedError()
        return "worker"

    assert pool._until_placed("reward worker 0", start) == "worker" and len(tries) == 3
    with pytest.raises(ValueError):  # an error the actor raised itself is not tried again
        pool._until_placed("reward worker 0", lambda s: (_ for _ in ()).throw(ValueError("bad input")))
    pool.cfg = replace(cfg, cluster=replace(cfg.cluster, restart_timeout_s=0.001))
    with pytest.raises(ray.exceptions.ActorDiedError):  # past cluster.restart_timeout_s: the loss raises
        pool._until_placed("reward worker 0", lambda s: (_ for _ in ()).throw(ray.exceptions.ActorDiedError()))


def test_with_overlap_a_lost_engine_is_left_to_the_restart(runner):
    # the weights the lost call used (one version behind the trainer's) exist nowhere any more
    c, _, replaced = runner(rollout_dies={0: {"generate": 1}}, overlap=True)
    c._plan, c._generate_until = (lambda s: (PROMPTS, 0)), 2
    from rlvr.controller.faults import ActorLost

    with pytest.raises(ActorLost, match=r"^rollout worker 0 lost while generating with rollout.overlap") as raised:
        c.rl_step(1, PROMPTS, 0)
    assert isinstance(raised.value.__cause__, ray.exceptions.ActorDiedError) and is_lost_actor(raised.value)
    assert not replaced


def test_lost_actor_errors_and_the_fault_log():
    from rlvr.trainer.group import TrainerGroupError

    try:
        try:
            raise ray.exceptions.ActorDiedError()
        except ray.exceptions.RayActorError as err:
            raise TrainerGroupError("trainer rank 1 failed during train_step") from err
    except TrainerGroupError as wrapped:
        assert is_lost_actor(wrapped)
    assert is_lost_actor(ray.exceptions.NodeDiedError("n")) and is_lost_actor(StageTimeout("x"))
    assert not is_lost_actor(ValueError("a bug in the verifier"))
    off = FaultLog(0)
    assert off.metrics() == {} and not off.allow(ray.exceptions.ActorDiedError(), "x")  # fail fast: no new columns
    log = FaultLog(2)
    assert log.allow(ray.exceptions.ActorDiedError(), "x") and not log.allow(ValueError(), "x")
    assert injections("kill:reward:0@3, freeze:rollout:1@2") == {3: [("kill", "reward", 0)], 2: [("freeze", "rollout", 1)]}
    with pytest.raises(ValueError, match="must look like"):
        injections("kill:driver:0@3")


# ---- the loop: a lost actor the step cannot replace restarts every actor from a checkpoint ----
from tests.controller.test_run_faults import recipe, stand_ins  # noqa: E402,F401 - the fixture


@pytest.mark.parametrize("max_restarts", [0, 1])
def test_the_loop_restarts_from_the_last_checkpoint_and_redoes_the_steps_after_it(tmp_path, stand_ins, monkeypatch,
                                                                                 fake_checkpoint, max_restarts):
    from rlvr.controller.loop import Controller

    lost = {"at": 4}
    restarts = []

    def rl_step(self, step, prompts, epoch=0):
        if step == lost.get("at"):
            del lost["at"]
            raise ray.exceptions.ActorDiedError()
        return {"step": step, "perf/weight_sync_s": 0.0, "loss": float(step)}, [{"prompt_id": "p0", "step": step}]

    monkeypatch.setattr(Controller, "rl_step", rl_step)
    monkeypatch.setattr(ActorPool, "restart", lambda self: restarts.append(1))
    monkeypatch.setattr(Controller, "checkpoint", lambda self, folder, state: fake_checkpoint(folder, state["step"]))
    cfg = recipe(tmp_path, "steps=5", "checkpoint_every=2", f"cluster.max_restarts={max_restarts}")
    path = tmp_path / "r"
    if not max_restarts:
        with pytest.raises(ray.exceptions.ActorDiedError):
            Controller(cfg).run()
        assert json.loads((path / "summary.json").read_text())["status"] == "failed" and not restarts
        return
    summary = Controller(cfg).run()
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4, 5]  # step 3 redone: its first row replaced
    assert [r.get("fault/redone_steps") for r in rows[1:]] == [0, 0, 2, 2, 2]  # steps 3 and 4 (the failed one)
    assert [r.get("fault/restarts") for r in rows[1:]] == [0, 0, 1, 1, 1]
    assert sorted(p.name for p in (path / "samples").iterdir()) == [f"step_00000{s}.jsonl" for s in range(1, 6)]
    on_disk = json.loads((path / "summary.json").read_text())
    assert summary["status"] == on_disk["status"] == "finished" and restarts == [1]
    [event] = on_disk["fault_events"]
    assert event["step"] == 4 and "restarted from step_000002" in event["action"] and event["cause"] == "ActorDiedError"
