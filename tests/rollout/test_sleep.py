"""Sleep/wake of colocated engines: the order of one RL step with rollout.sleep_while_training,
through real RolloutWorker objects over a stand-in engine that records every call."""
import pytest

from rlvr.controller.weight_sync import EngineSleep
from rlvr.rollout import worker as worker_module
from rlvr.rollout.generation import Generation
from rlvr.rollout.sleep import EngineAsleep, SleepState


class RecordingEngine:
    """Records calls into a log shared with the stand-in trainer; sleeps like vLLM's GPU engine."""

    def __init__(self, log, can_sleep=True):
        self.log, self.can_sleep, self.asleep = log, can_sleep, False

    def generate(self, prompts, n, max_new_tokens, **_):
        assert not self.asleep, "generated while asleep"
        self.log.append("generate")
        return [[Generation([1], [-0.5], "x", "length") for _ in range(n)] for _ in prompts]

    def sleep(self):
        self.asleep = True
        self.log.append("sleep")

    def wake_up(self):
        self.asleep = False
        self.log.append("wake_up")

    def load_weights(self, state_dict):
        assert not self.asleep, "loaded weights while asleep"
        self.log.append("load_weights")

    def weight_group_size(self):
        return 1

    def leave_weight_group(self):
        pass

    def shutdown(self):
        pass


@pytest.fixture
def workers(monkeypatch):
    log = []
    monkeypatch.setattr(worker_module, "make_engine", lambda *a, **k: RecordingEngine(log))
    return [worker_module.RolloutWorker("unused", backend="vllm") for _ in range(2)], log


def _call_all(workers, method):
    return [getattr(w, method)() for w in workers]


def test_a_colocated_step_sleeps_before_training_and_wakes_before_the_sync(workers):
    rollout, log = workers
    sleep = EngineSleep(rollout, enabled=True, call_all=_call_all)
    for version in (1, 2):  # two RL steps as the controller runs them
        for w in rollout:
            w.generate([[1, 2]], n=2, max_new_tokens=1)
        assert sleep.before_train() >= 0
        assert all(w.is_asleep() for w in rollout)
        log.append("train")
        sleep.before_sync()
        for w in rollout:  # object_store-style sync
            w.update_weights({}, version)
    step = ["generate", "generate", "sleep", "sleep", "train", "wake_up", "wake_up", "load_weights", "load_weights"]
    assert log == step * 2
    assert [w.policy_version() for w in rollout] == [2, 2]


def test_an_asleep_worker_refuses_generation_scoring_and_weights(workers):
    rollout, log = workers
    w = rollout[0]
    w.sleep()
    w.sleep()  # already asleep: nothing more happens
    for call in (lambda: w.generate([[1]], n=1, max_new_tokens=1), lambda: w.score([1], [2]),
                 lambda: w.update_weights({}, 1), lambda: w.receive_weights(1),
                 lambda: w.generate([[1]], n=1, max_new_tokens=1, receive_version=1)):
        with pytest.raises(EngineAsleep, match="while asleep"):
            call()
    assert log == ["sleep"]
    w.wake_up()
    w.wake_up()  # already awake: nothing more happens
    w.generate([[1]], n=1, max_new_tokens=1)
    assert log == ["sleep", "wake_up", "generate"]


def test_sleep_off_changes_nothing_and_an_engine_without_sleep_mode_refuses(workers, monkeypatch):
    rollout, log = workers
    off = EngineSleep(rollout, enabled=False, call_all=_call_all)
    assert off.before_train() == 0.0 and off.before_sync() == 0.0 and log == []
    monkeypatch.setattr(worker_module, "make_engine", lambda *a, **k: RecordingEngine([], can_sleep=False))
    with pytest.raises(RuntimeError, match="built without sleep mode"):
        worker_module.RolloutWorker("unused", backend="hf").sleep()


def test_sleep_state_order():
    state = SleepState(can_sleep=True)
    state.require_awake("generate")
    assert state.wake_up() is False  # awake already
    assert state.sleep() is True and state.sleep() is False
    with pytest.raises(EngineAsleep, match="generate while asleep"):
        state.require_awake("generate")
    assert state.wake_up() is True
    state.require_awake("generate")


def test_the_worker_reports_its_engine_start_time(workers):
    rollout, _ = workers
    info = rollout[0].ready_info()
    assert info["backend"] == "vllm" and info["policy_version"] == 0 and info["weight_group_size"] == 1
    assert 0 <= info["engine_start_s"] < 5
