"""Controller.run when things go wrong, with stand-ins for prompts, actors and the trainer (no
Ray): summary.json says `running` while a run lives and is always written at the end (a full
disk included), a resume that fails early leaves a finished run's summary alone, a full disk
while checkpointing is one clear message, and an unwritable output_dir is one line."""
import errno
import json
from pathlib import Path

import pytest

from rlvr.config import RecipeError, load_recipe, to_yaml
from rlvr.controller import loop
from rlvr.controller.actors import ActorPool
from rlvr.controller.checkpoint import RunError
from rlvr.controller.loop import Controller
from rlvr.tasks import Prompt
from rlvr.tracking.run_folder import RunFolder

QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.yaml"


def recipe(tmp_path, *overrides):
    return load_recipe(None, [f"output_dir={tmp_path}", "run_name=r", "steps=2", "eval_every=0",
                              "checkpoint_every=1", "eval.audit_prompts=0",
                              "logging.console=false", *overrides])


class FakeTrainer:
    def __init__(self, save_error=None):
        self.save_error = save_error

    def save_hf(self, path):
        if self.save_error:
            raise self.save_error
        Path(path).mkdir(parents=True, exist_ok=True)

    def save_training_state(self, path):
        pass

    def load_training_state(self, path):
        pass


@pytest.fixture
def stand_ins(monkeypatch):
    """Controller pieces replaced by stand-ins; returns a dict the test can inspect and steer."""
    seen = {"summaries": [], "shutdowns": 0, "trainer": FakeTrainer()}
    prompts = [Prompt(id=f"p{i}", text=f"{i}+1=", gold=str(i + 1), meta={}) for i in range(4)]

    def inputs(self):
        seen["summaries"].append(json.loads((seen["folder"] / "summary.json").read_text()))
        return prompts, prompts, "model-dir", {}

    def wait_ready(self, model_dir):
        self.trainer, self.rollout = seen["trainer"], []

    def shutdown(self):
        seen["shutdowns"] += 1

    real_init = RunFolder.__init__

    def folder_init(folder, path):
        real_init(folder, path)
        seen["folder"] = folder.path

    monkeypatch.setattr(RunFolder, "__init__", folder_init)
    monkeypatch.setattr(Controller, "inputs", inputs)
    monkeypatch.setattr(ActorPool, "wait_ready", wait_ready)
    monkeypatch.setattr(ActorPool, "shutdown", shutdown)
    monkeypatch.setattr(ActorPool, "sync_weights", lambda self, version: 0.0)
    monkeypatch.setattr(Controller, "evaluate", lambda self, prompts, step: {"eval/gt_accuracy": 0.25})
    monkeypatch.setattr(Controller, "sync_check", lambda self, prompt: 0.0)
    monkeypatch.setattr(Controller, "rl_step", lambda self, step, prompts, epoch=0: (
        {"step": step, "perf/weight_sync_s": 0.0}, []))
    import rlvr.controller.weight_sync as weight_sync

    monkeypatch.setattr(weight_sync, "make_weight_sync", lambda *args, **kwargs: None)
    import ray

    # As if the embedded cluster were up: the run must shut it down however it ends.
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    return seen


def test_summary_says_running_while_the_run_lives_and_finished_at_the_end(tmp_path, stand_ins):
    summary = Controller(recipe(tmp_path)).run()
    assert stand_ins["summaries"][0]["status"] == "running" and "started" in stand_ins["summaries"][0]
    on_disk = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == on_disk["status"] == "finished" and on_disk["started"]
    assert stand_ins["shutdowns"] == 1


def test_disk_full_while_checkpointing_is_one_message_and_everything_is_closed(tmp_path, stand_ins, monkeypatch,
                                                                               capsys):
    stand_ins["trainer"] = FakeTrainer(OSError(errno.ENOSPC, "No space left on device"))
    real_replace = Path.replace

    def replace(self, target):  # the final summary cannot be renamed into place either
        if stand_ins["trainer"].save_error is not None and Path(target).name == "summary.json" \
                and stand_ins["summaries"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", replace)
    with pytest.raises(RunError, match=r"no space left on device while saving checkpoint .*step_000001 "
                                       r"\(\d+ MiB free\): free some space"):
        Controller(recipe(tmp_path)).run()
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "failed" and "no space left" in summary["error"]
    assert not (tmp_path / "r" / "summary.json.tmp").exists()
    assert not (tmp_path / "r" / "checkpoints" / "step_000001" / "rlvr_state.json").exists()
    assert stand_ins["shutdowns"] == 1  # Ray is shut down although the summary write failed first
    assert "without its traceback" in capsys.readouterr().err

    # The CLI prints the message in one line (exit status 1), not a traceback.
    from rlvr.cli import main

    def full_disk(cfg):
        raise RunError("no space left on device while saving checkpoint X")

    monkeypatch.setattr(loop, "train", full_disk)
    assert main(["train", str(QUICKSTART)]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: no space left on device while saving checkpoint X"]


def test_a_samples_file_that_cannot_be_written_fails_the_run(tmp_path, stand_ins, monkeypatch):
    # Samples are written in the background: the error surfaces a call later, but before the
    # final checkpoint, so the run ends failed rather than finished with a file missing.
    import rlvr.tracking.run_folder as run_folder

    def full_disk(path, mode="r", *args, **kwargs):
        if "step_000001.jsonl" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(run_folder, "open", full_disk, raising=False)
    with pytest.raises(OSError, match=r"No space left on device: writing .*step_000001\.jsonl"):
        Controller(recipe(tmp_path, "checkpoint_every=0")).run()
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "failed" and "step_000001.jsonl" in summary["error"]
    assert not (tmp_path / "r" / "checkpoints" / "step_000002").exists()
    assert stand_ins["shutdowns"] == 1


def test_a_resume_that_fails_early_leaves_a_finished_runs_summary(tmp_path, stand_ins, fake_checkpoint, monkeypatch):
    cfg = recipe(tmp_path, "steps=6", "resume=true")
    folder = RunFolder(tmp_path / "r")
    folder.write_config(to_yaml(cfg))
    folder.log_metrics({"step": 0})
    finished = {"run_name": "r", "status": "finished", "final_eval_gt_accuracy": 0.5}
    folder.write_summary(finished)
    fake_checkpoint(folder, 2)
    bad = fake_checkpoint(folder, 4)
    (bad / "rlvr_state.json").write_text("")

    def boom(self, path):
        raise RuntimeError("trainer state unreadable")

    monkeypatch.setattr(FakeTrainer, "load_training_state", boom)
    with pytest.raises(RuntimeError, match="trainer state unreadable"):
        Controller(cfg).run()
    assert json.loads((tmp_path / "r" / "summary.json").read_text()) == finished
    assert stand_ins["shutdowns"] == 1
    # the empty checkpoint was moved out of the way of pruning and later resumes
    assert (tmp_path / "r" / "checkpoints" / "step_000004.incomplete").is_dir() and not bad.exists()


def test_an_unwritable_output_dir_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    with pytest.raises(RecipeError, match=r"^output_dir = .*file: cannot write the run folder .*: choose a writable"):
        Controller(recipe(tmp_path / "file")).run()
    from rlvr.cli import main

    assert main(["train", str(QUICKSTART),
                 f"output_dir={tmp_path / 'file'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # found before Ray starts (rlvr/controller/preflight.py)
    assert len(err) == 2 and err[1].startswith("  - output_dir = ") and "choose a writable output_dir" in err[1]
    assert main(["score", str(tmp_path / "in.jsonl"), "--verifier", "arithmetic",
                 "--out", str(tmp_path / "file" / "out.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --out {tmp_path / 'file' / 'out.jsonl'}: cannot write there "
                   f"({tmp_path / 'file'} is a file, not a folder): choose a writable path"]


@pytest.mark.parametrize("checkpoint_step", [2, 3])
def test_a_resume_continues_the_data_plan_at_the_step_after_its_checkpoint(checkpoint_step, tmp_path, stand_ins,
                                                                          fake_checkpoint, monkeypatch):
    # a resume whose plan restarts at step 0 trains on step 1's prompts again; with 4 prompts and
    # 2 per step, step 3 is epoch 1: both the prompts and the epoch (the reward keys) must follow
    from rlvr.controller.prompts import PromptSampler

    calls = []
    monkeypatch.setattr(Controller, "rl_step", lambda self, step, prompts, epoch=0: (
        calls.append((step, [p.id for p in prompts], epoch)) or ({"step": step, "perf/weight_sync_s": 0.0}, [])))
    cfg = recipe(tmp_path, "steps=5", "rollout.prompts_per_step=2", "resume=true")
    folder = RunFolder(tmp_path / "r")
    folder.write_config(to_yaml(cfg))
    folder.log_metrics({"step": 0})
    folder.write_summary({"run_name": "r", "status": "failed"})
    fake_checkpoint(folder, checkpoint_step)
    Controller(cfg).run()
    prompts = [Prompt(id=f"p{i}", text=f"{i}+1=", gold=str(i + 1), meta={}) for i in range(4)]  # the stand-ins'
    sampler = PromptSampler(prompts, cfg.seed)
    expected = [(s, [p.id for p in sampler.batch(s, 2)], sampler.epoch(s, 2)) for s in range(checkpoint_step + 1, 6)]
    assert calls == expected
    assert calls[0][0] == checkpoint_step + 1 and calls[-1][2] == 2
