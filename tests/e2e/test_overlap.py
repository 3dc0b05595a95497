"""rollout.overlap through the real actors: step t+1's samples come from the weights before
update t (one step stale), and a run resumed from a checkpoint (which keeps the samples made
ahead) reproduces the uninterrupted one at every step."""
import json

import pytest

from rlvr.controller.checkpoint import PENDING_STATE
from rlvr.controller.loop import Controller, train
from rlvr.tracking.run_folder import read_metrics

from .same_metrics import assert_same_metrics
from .test_quickstart import short_run

ARGS = ["rollout.overlap=true", "algorithm.tis_cap=2.0", "checkpoint_every=2", "eval.audit_prompts=0"]


@pytest.mark.e2e
def test_overlap_is_one_step_stale_and_resumes_exactly(tmp_path):
    full = train(short_run(tmp_path, *ARGS))
    assert full["status"] == "finished"
    assert full["sync_max_logprob_diff"] < 1e-4  # the last update reached the engine before sync_check
    run = tmp_path / "e2e"
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["policy/version_lag"] for r in rows[1:]] == [0, 1, 1]
    assert [r["policy/version"] for r in rows[1:]] == [0, 0, 1]
    # The trainer compares the engine's log-probs with its own pre-update ones: equal (up to
    # kernels) when the samples come from the weights it holds (step 1), apart once they come
    # from the weights one update older, as they must from step 2 on.
    assert rows[1]["policy/logprob_mismatch_mean"] < 1e-5
    assert all(r["policy/logprob_mismatch_mean"] > 1e-3 for r in rows[2:])
    pending = json.loads((run / "checkpoints" / "step_000002" / PENDING_STATE).read_text())
    assert pending["step"] == 3 and pending["policy_version"] == 1 and len(pending["generations"]) == 8
    # the final checkpoint keeps step 4's samples too: `resume=true steps=N` extends the run exactly
    assert json.loads((run / "checkpoints" / "step_000003" / PENDING_STATE).read_text())["step"] == 4

    real_step = Controller.rl_step

    def dies_at_step_3(self, step, *args):
        if step == 3:
            raise RuntimeError("simulated crash")
        return real_step(self, step, *args)

    crashed = tmp_path / "crashed"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Controller, "rl_step", dies_at_step_3)
        with pytest.raises(RuntimeError, match="simulated crash"):
            train(short_run(tmp_path, *ARGS, "run_name=crashed"))
    resumed = train(short_run(tmp_path, *ARGS, "run_name=crashed", "resume=true"))
    assert resumed["status"] == "finished" and resumed["resumed_from_step"] == 2

    again = read_metrics(crashed / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    assert_same_metrics(rows, again)
    assert resumed["final_eval_gt_accuracy"] == full["final_eval_gt_accuracy"]
    fields = ("prompt_id", "sample_index", "response", "gt", "proxy", "advantage", "policy_version")
    first, second = ([[json.loads(line)[f] for f in fields]
                      for line in (folder / "samples" / "step_000003.jsonl").read_text().splitlines()]
                     for folder in (run, crashed))
    assert second == first
