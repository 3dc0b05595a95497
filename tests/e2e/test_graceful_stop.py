"""Ctrl-C mid-step: the step finishes, a checkpoint and summary.json (status stopped) are
written, and resume=true continues exactly as an uninterrupted run would have."""
import json
import os
import signal

import pytest

from rlvr.controller.loop import Controller, train
from rlvr.tracking.run_folder import read_metrics

from .same_metrics import assert_same_metrics
from .test_quickstart import short_run

ARGS = ["steps=4", "eval_every=2", "eval.audit_prompts=0"]


@pytest.mark.e2e
def test_sigint_in_a_step_stops_after_it_with_a_checkpoint_and_resume_continues_exactly(tmp_path):
    full = train(short_run(tmp_path, *ARGS))
    assert full["status"] == "finished"

    real_step = Controller.rl_step

    def interrupted_at_step_2(self, step, *args):
        if step == 2:  # in the middle of the step, as a Ctrl-C would arrive
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(self, step, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Controller, "rl_step", interrupted_at_step_2)
        stopped = train(short_run(tmp_path, *ARGS, "run_name=stopped"))
    run = tmp_path / "stopped"
    assert stopped["status"] == "stopped" and stopped["steps"] == 2 and stopped["stopped_by"] == "SIGINT"
    assert json.loads((run / "summary.json").read_text())["status"] == "stopped"
    assert json.loads((run / "checkpoints" / "step_000002" / "rlvr_state.json").read_text())["step"] == 2
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [0, 1, 2]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are put back

    resumed = train(short_run(tmp_path, *ARGS, "run_name=stopped", "resume=true"))
    assert resumed["status"] == "finished" and resumed["resumed_from_step"] == 2
    original, again = read_metrics(tmp_path / "e2e" / "metrics.jsonl"), read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in original] == [0, 1, 2, 3, 4]
    assert_same_metrics(original, again)
    assert resumed["final_eval_gt_accuracy"] == full["final_eval_gt_accuracy"]


def test_a_second_signal_aborts_and_one_before_the_steps_aborts_at_once():
    from rlvr.controller.stop import StopSignals

    with StopSignals() as stop:
        with pytest.raises(KeyboardInterrupt, match="SIGINT"):  # start-up: nothing to keep yet
            os.kill(os.getpid(), signal.SIGINT)
        stop.arm()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested == "SIGTERM"
        with pytest.raises(KeyboardInterrupt, match="SIGINT"):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


OVERLAP = ["steps=4", "eval_every=4", "eval.audit_prompts=0", "rollout.overlap=true", "algorithm.recompute_logprobs=false"]


@pytest.mark.e2e
def test_with_overlap_a_stop_after_the_next_update_was_sent_ends_after_that_update(tmp_path):
    """rollout.overlap sends step t+1's update while step t runs (StepRunner.train_ahead): a
    Ctrl-C that comes after it was sent stops the run after step t+1, whose weights the
    checkpoint then holds, and resume=true continues exactly."""
    from rlvr.controller.step import StepRunner

    full = train(short_run(tmp_path, *OVERLAP, "run_name=overlap_full"))
    real_ahead = StepRunner.train_ahead

    def signal_once_sent(self, step):
        sends = real_ahead(self, step)
        if sends and step == 1:  # update 2 goes to the trainer now; the signal comes right after
            os.kill(os.getpid(), signal.SIGINT)
        return sends

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StepRunner, "train_ahead", signal_once_sent)
        stopped = train(short_run(tmp_path, *OVERLAP, "run_name=overlap_stopped"))
    run = tmp_path / "overlap_stopped"
    assert stopped["status"] == "stopped" and stopped["steps"] == 2
    assert json.loads((run / "checkpoints" / "step_000002" / "rlvr_state.json").read_text())["step"] == 2
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [0, 1, 2]

    resumed = train(short_run(tmp_path, *OVERLAP, "run_name=overlap_stopped", "resume=true"))
    assert resumed["status"] == "finished" and resumed["resumed_from_step"] == 2
    assert_same_metrics(read_metrics(tmp_path / "overlap_full" / "metrics.jsonl"), read_metrics(run / "metrics.jsonl"))
    assert resumed["final_eval_gt_accuracy"] == full["final_eval_gt_accuracy"]
