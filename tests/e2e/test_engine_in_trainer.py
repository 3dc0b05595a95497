"""rollout.in_trainer through real actors: the engine inside trainer rank 0 (weights copied in
memory at the end of each train step, ZeRO-3 gathering them from both ranks), the samples scored
there too (reward.colocate; the reward worker scores the evaluations). The run must be the separate-actor
run, metric for metric and sample for sample."""
import pytest
import yaml

from rlvr.controller.loop import train

from .same_metrics import assert_same_run
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
