"""A run resumed from a checkpoint continues exactly where the original went: same data
order, same reward draws, same weights and optimizer state."""
import json

import pytest

from rlvr.config import RecipeError, load_recipe
from rlvr.controller.loop import train
from rlvr.tracking.run_folder import read_metrics

from .same_metrics import assert_same_metrics
from .test_quickstart import short_run


@pytest.mark.e2e
def test_resumed_run_reproduces_the_uninterrupted_one(tmp_path):
    # 16 train prompts, 8 per step: steps 1-2 are epoch 0 and step 3 (the resumed one) is
    # epoch 1, whose reward draws are keyed by sample_index = G + j.
    args = ["checkpoint_every=2", "task.train_size=16", "reward.design.name=flip",
            "reward.design.fp_rate=0.3"]
    full = train(short_run(tmp_path, *args))
    assert full["status"] == "finished"
    run = tmp_path / "e2e"
    assert json.loads((run / "checkpoints" / "step_000002" / "rlvr_state.json").read_text())["step"] == 2

    # The same run dies at step 3: its summary says so, and what came before is kept.
    from rlvr.controller.loop import Controller

    real_step = Controller.rl_step

    def dies_at_step_3(self, step, *args):
        if step == 3:
            raise RuntimeError("simulated crash")
        return real_step(self, step, *args)

    crashed = tmp_path / "crashed"  # same output_dir: the warmed-up model is reused
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Controller, "rl_step", dies_at_step_3)
        with pytest.raises(RuntimeError, match="simulated crash"):
            train(short_run(tmp_path, *args, "run_name=crashed"))
    summary = json.loads((crashed / "summary.json").read_text())
    assert summary["status"] == "failed" and "simulated crash" in summary["traceback"]
    assert [r["step"] for r in read_metrics(crashed / "metrics.jsonl")] == [0, 1, 2]
    import ray

    assert not ray.is_initialized()  # actors and the embedded cluster were shut down

    # A sample file of a step after the checkpoint (as a crash at step 5 would leave) goes on resume.
    (crashed / "samples" / "step_000005.jsonl").write_text('{"step": 5}\n')
    resumed = train(short_run(tmp_path, *args, "run_name=crashed", "resume=true"))
    assert not (crashed / "samples" / "step_000005.jsonl").exists()
    assert resumed["status"] == "finished" and resumed["resumed_from_step"] == 2

    original, again = read_metrics(run / "metrics.jsonl"), read_metrics(crashed / "metrics.jsonl")
    assert [r["step"] for r in original] == [0, 1, 2, 3]
    for before in original:
        assert set(before) >= ({"step", "eval/gt_accuracy"} if before["step"] == 0 else
                               {"loss", "proxy/reward_mean", "reward/false_positive_rate", "policy/version"})
    assert_same_metrics(original, again)
    for key in ("final_eval_gt_accuracy", "best_eval_gt_accuracy", "initial_eval_gt_accuracy"):
        assert resumed[key] == full[key], key

    # Step 3 drew its rewards with epoch-1 keys, and the resumed run drew the same ones.
    def samples(folder):
        path = folder / "samples" / "step_000003.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    first, second = samples(run), samples(crashed)
    assert sorted({s["sample_index"] for s in first}) == [4, 5, 6, 7]  # G = 4, epoch 1
    fields = ("prompt_id", "sample_index", "response", "gt", "proxy", "advantage", "category")
    assert [[s[f] for f in fields] for s in second] == [[s[f] for f in fields] for s in first]


def test_resume_refuses_a_changed_recipe_or_a_missing_checkpoint(tmp_path, fake_checkpoint):
    from rlvr.controller.checkpoint import resume_point
    from rlvr.tracking.run_folder import RunFolder

    folder = RunFolder(tmp_path / "e2e")
    with pytest.raises(RecipeError, match="no complete checkpoint"):
        resume_point(short_run(tmp_path, "resume=true"), folder)
    from rlvr.config import to_yaml

    folder.write_config(to_yaml(short_run(tmp_path)))
    done = fake_checkpoint(folder, 2)
    with pytest.raises(RecipeError, match=r"trainer.lr: 0.0001 -> 0.001"):
        resume_point(short_run(tmp_path, "resume=true", "trainer.lr=1e-3"), folder)
    with pytest.raises(RecipeError, match="raise steps"):
        resume_point(short_run(tmp_path, "resume=true", "steps=2"), folder)
    state, path, _ = resume_point(short_run(tmp_path, "resume=true", "steps=5"), folder)
    assert state["step"] == 2 and path == done
