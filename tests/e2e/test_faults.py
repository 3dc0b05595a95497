"""Lost actors on the embedded cluster (docs/faults.md): a killed reward worker is replaced inside
its step, a killed trainer rank restarts every actor from the last checkpoint, and either run ends
with every non-timing metric and every sample file equal to an uninterrupted run's; a frozen
engine is found by the stage timeout and, with max_restarts = 0, fails the run at once, named."""
import json

import pytest

from rlvr.controller.faults import INJECT_ENV
from rlvr.controller.loop import train
from rlvr.tracking.run_folder import read_metrics

from .same_metrics import assert_same_run
from .test_quickstart import short_run

# 16 prompts, 8 per step: step 3 is epoch 1 (fresh reward keys); flip draws make the rewards random
ARGS = ["steps=4", "eval_every=2", "checkpoint_every=2", "task.train_size=16", "reward.design.name=flip",
        "reward.design.fp_rate=0.3", "cluster.max_restarts=1"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("faults")
    summary = train(short_run(out, *ARGS, "run_name=clean"))
    assert summary["status"] == "finished" and summary["fault_events"] == []
    return out


def _injected_run(out, monkeypatch, inject: str, name: str, *extra: str):
    """A run of ARGS (+ extra) with RLVR_FAULT_INJECT = `inject` that finishes; its folder and its one fault event."""
    monkeypatch.setenv(INJECT_ENV, inject)
    summary = train(short_run(out, *ARGS, *extra, f"run_name={name}"))
    assert summary["status"] == "finished"
    [event] = json.loads((out / name / "summary.json").read_text())["fault_events"]
    return out / name, event


@pytest.mark.e2e
def test_a_killed_reward_worker_is_replaced_and_the_run_is_unchanged(uninterrupted, monkeypatch):
    run, event = _injected_run(uninterrupted, monkeypatch, "kill:reward:0@3", "reward_lost")
    assert (event["step"], event["actor"]) == (3, "reward worker 0") and "replaced" in event["action"]
    assert read_metrics(run / "metrics.jsonl")[-1]["fault/replaced_workers"] == 1
    assert_same_run(uninterrupted / "clean", run, steps=4)


@pytest.mark.e2e
def test_a_killed_trainer_rank_restarts_from_the_last_checkpoint_and_the_run_is_unchanged(uninterrupted, monkeypatch):
    run, event = _injected_run(uninterrupted, monkeypatch, "kill:trainer:0@4", "trainer_lost")
    assert event["step"] == 4 and "restarted from step_000002" in event["action"]
    last = read_metrics(run / "metrics.jsonl")[-1]
    assert (last["fault/restarts"], last["fault/redone_steps"]) == (1, 2)  # steps 3 and 4 again
    assert_same_run(uninterrupted / "clean", run, steps=4)


@pytest.mark.e2e
def test_a_frozen_engine_fails_the_run_at_the_stage_timeout_when_no_restart_is_allowed(uninterrupted, monkeypatch):
    import time

    monkeypatch.setenv(INJECT_ENV, "freeze:rollout:0@1")
    start = time.time()
    with pytest.raises(Exception, match="rollout worker 0 made no progress for cluster.stage_timeout_s = 5.0 s"):
        train(short_run(uninterrupted, *ARGS, "run_name=frozen", "cluster.max_restarts=0",
                        "cluster.stage_timeout_s=5"))
    summary = json.loads((uninterrupted / "frozen" / "summary.json").read_text())
    assert summary["status"] == "failed" and "StageTimeout" in summary["error"]
    assert time.time() - start < 120
    import ray

    assert not ray.is_initialized()


OVERLAP = ["rollout.overlap=true", "algorithm.recompute_logprobs=false"]


@pytest.mark.e2e
def test_with_overlap_a_killed_engine_restarts_from_the_checkpoint_and_its_pending_samples(uninterrupted, monkeypatch):
    # the lost engine's in-flight generation came from weights that exist nowhere any more: the run
    # restarts every actor from step 2's checkpoint, which holds step 3's samples made before it
    clean = train(short_run(uninterrupted, *ARGS, *OVERLAP, "run_name=overlap_clean"))
    assert clean["status"] == "finished"
    run, event = _injected_run(uninterrupted, monkeypatch, "kill:rollout:0@3", "overlap_lost", *OVERLAP)
    assert (event["step"], event["actor"]) == (3, "rollout worker 0")
    assert "restarted from step_000002" in event["action"]
    assert_same_run(uninterrupted / "overlap_clean", run, steps=4)


@pytest.mark.e2e
def test_with_overlap_a_trainer_killed_with_an_update_sent_ahead_restarts_and_ends_equal(uninterrupted, monkeypatch):
    # eval and checkpoint at steps 2 and 4 only: step 4's update goes to the trainer during step 3
    # (StepRunner.train_ahead), and the rank is killed before step 4 with it queued or running
    args = ["eval_every=4", *OVERLAP]
    clean = train(short_run(uninterrupted, *ARGS, *args, "run_name=ahead_clean"))
    assert clean["status"] == "finished"
    from rlvr.controller.step import StepRunner

    real, sent = StepRunner.train_ahead, []

    def recording(self, step):
        sends = real(self, step)
        if sends:
            sent.append(step)
        return sends

    monkeypatch.setattr(StepRunner, "train_ahead", recording)
    run, event = _injected_run(uninterrupted, monkeypatch, "kill:trainer:0@4", "ahead_lost", *args)
    assert 3 in sent  # step 4's update was sent during step 3, before the kill
    assert (event["step"], event["actor"]) == (4, "trainer rank 0")
    assert "restarted from step_000002" in event["action"]
    assert_same_run(uninterrupted / "ahead_clean", run, steps=4)
