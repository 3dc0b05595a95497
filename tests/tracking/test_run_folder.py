import json

from rlvr.tracking.run_folder import RunFolder, read_metrics
from rlvr.tracking.tracker import Tracker, console_line


def test_run_folder_writes_contract_files(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.write_config("seed: 0\n")
    tracker = Tracker(folder, total_steps=2, console=False)
    tracker.log({"step": 1, "gt/reward_mean": 0.5, "loss": float("nan")})
    tracker.log({"step": 2, "gt/reward_mean": 0.75})
    folder.write_samples(2, [{"prompt_id": "p", "gt": 1.0}])
    tracker.close({"status": "finished"})
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert rows == [{"step": 1, "gt/reward_mean": 0.5, "loss": None}, {"step": 2, "gt/reward_mean": 0.75}]
    assert json.loads((tmp_path / "run" / "samples" / "step_000002.jsonl").read_text()) == {"prompt_id": "p", "gt": 1.0}
    assert (tmp_path / "run" / "config.yaml").read_text() == "seed: 0\n"
    assert (tmp_path / "run" / "checkpoints").is_dir()


def test_console_line_shows_known_metrics_only():
    line = console_line({"step": 3, "gt/reward_mean": 0.25, "perf/step_s": 1.5, "other": 1}, 10)
    assert line == "step    3/10 | gt 0.250 | s/step 1.50"


def test_truncate_metrics_keeps_earlier_steps_and_drops_a_half_written_line(tmp_path):
    folder = RunFolder(tmp_path / "run")
    assert not folder.is_used()
    for step in range(4):
        folder.log_metrics({"step": step, "loss": 0.1 * step})
    folder.close()
    with open(tmp_path / "run" / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "lo')  # the process died mid-write
    folder = RunFolder(tmp_path / "run")
    assert folder.is_used()
    folder.truncate_metrics(2)
    folder.log_metrics({"step": 3, "loss": 9.0})
    folder.close()
    assert [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [0, 1, 2, 3]


def test_checkpoints_to_delete_keeps_the_newest_complete_ones():
    from rlvr.tracking.run_folder import checkpoints_to_delete

    found = [(2, True), (4, True), (6, True), (1, False), (7, False)]
    assert checkpoints_to_delete(found, 0) == []  # keep everything
    assert checkpoints_to_delete(found, 1) == [1, 2, 4]  # 7 is newer than 6: a save in progress stays
    assert checkpoints_to_delete(found, 2) == [1, 2]
    assert checkpoints_to_delete(found, 5) == [1]  # a dead save older than the newest complete goes
    assert checkpoints_to_delete([(3, False)], 1) == []  # nothing complete: delete nothing


def test_prune_checkpoints_on_disk_and_resume_from_what_is_left(tmp_path):
    from rlvr.config import load_recipe, to_yaml
    from rlvr.controller.loop import RESUME_STATE, Controller

    cfg = load_recipe(None, [f"output_dir={tmp_path}", "run_name=r", "steps=10", "resume=true"])
    folder = RunFolder(tmp_path / "r")
    folder.write_config(to_yaml(cfg))
    for step, complete in ((2, True), (4, True), (5, False), (6, True), (8, False)):
        path = folder.checkpoint_dir(step)
        (path / "trainer").mkdir(parents=True)
        if complete:
            (path / RESUME_STATE).write_text(json.dumps({"step": step, "evals": [0.0]}))
    deleted = folder.prune_checkpoints(2, RESUME_STATE)
    assert [p.name for p in deleted] == ["step_000002", "step_000005"]
    assert sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir()) == [
        "step_000004", "step_000006", "step_000008"]
    state, path = Controller(cfg).resume_point(folder)
    assert state["step"] == 6 and path == folder.checkpoint_dir(6)
