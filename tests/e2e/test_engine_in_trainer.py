"""rollout.in_trainer through real actors: the engine inside trainer rank 0 (weights copied in
memory at the end of each train step, ZeRO-3 gathering them from both ranks), the samples scored
there too (reward.colocate; the reward worker scores the evaluations). The run must be the separate-actor
run, metric for metric and sample for sample."""
import pytest
import yaml

from rlvr.controller.faults import INJECT_ENV
from rlvr.controller.loop import train

from .same_metrics import assert_same_run
from .test_faults import ARGS as FAULT_ARGS
from .test_quickstart import short_run


@pytest.mark.e2e
def test_engine_in_trainer_run_equals_the_separate_actors_run(tmp_path):
    common = ("trainer.num_ranks=2", "trainer.zero_stage=3")
    separate = train(short_run(tmp_path / "separate", *common))
    inside = train(short_run(tmp_path / "inside", *common, "rollout.in_trainer=true", "reward.colocate=true"))
    assert separate["status"] == inside["status"] == "finished"
    written = yaml.safe_load((tmp_path / "inside" / "e2e" / "config.yaml").read_text())
    assert written["rollout"]["weight_sync"] == "in_process"
    assert inside["sync_max_logprob_diff"] < 1e-3  # the engine holds the trainer's weights
    assert_same_run(tmp_path / "separate" / "e2e", tmp_path / "inside" / "e2e", steps=3)


@pytest.mark.e2e
def test_a_killed_rank_holding_the_engine_restarts_every_actor_and_the_run_is_unchanged(tmp_path, monkeypatch):
    # killed before step 1, the rank fails the engine's generate call (the engine path); killed
    # before step 3, it fails step 3's train_step and the generate queued behind it.
    # Either way every actor restarts, from the start and from step 2's checkpoint, as
    # docs/cluster.md says, and the run ends as the uninterrupted one.
    args = [*FAULT_ARGS, "rollout.in_trainer=true", "cluster.max_restarts=2"]
    clean = train(short_run(tmp_path, *args, "run_name=clean"))
    assert clean["status"] == "finished" and clean["fault_events"] == []
    monkeypatch.setenv(INJECT_ENV, "kill:trainer:0@1,kill:trainer:0@3")
    lost = train(short_run(tmp_path, *args, "run_name=lost"))
    assert lost["status"] == "finished"
    first, second = lost["fault_events"]
    assert (first["step"], first["actor"]) == (1, "trainer rank 0")
    assert first["cause"] == "ActorLost" and "from the start of the run" in first["action"]  # the engine path
    # whichever of the rank's two calls in flight (train_step, the next generate) fails first, the rank is named
    assert (second["step"], second["actor"]) == (3, "trainer rank 0")
    assert "from step_000002" in second["action"]
    assert_same_run(tmp_path / "clean", tmp_path / "lost", steps=4)
