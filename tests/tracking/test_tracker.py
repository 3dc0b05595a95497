"""The tracker: console line, and wandb (offline) with a study's group and tags and one run id
per run folder, so a resumed run continues the same wandb run."""
import pytest

from rlvr.tracking.run_folder import RunFolder
from rlvr.tracking.tracker import WANDB_ID_FILE, Tracker, console_line


def test_console_line_labels_the_heuristic():
    line = console_line({"step": 3, "gt/reward_mean": 0.25, "errors/harmful": 0.1}, 10)
    assert line == "step    3/10 | gt 0.250 | harm~ 0.10"


def test_wandb_offline_group_tags_and_resumed_id(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    ids = []
    for step in (1, 2):  # a first run, then a resumed one in the same folder
        folder = RunFolder(tmp_path / "run")
        tracker = Tracker(folder, 2, console=False, wandb_project="rlvr-test", run_name="arm__seed0",
                          config={"seed": 0}, wandb_group="flip_noise", wandb_tags=["arm=flip", "reward.design.name=flip"])
        assert tracker.wandb.group == "flip_noise"
        assert set(tracker.wandb.tags) == {"arm=flip", "reward.design.name=flip"}
        ids.append(tracker.wandb.id)
        tracker.log({"step": step, "loss": 0.5})
        tracker.close({"status": "finished"})
    assert ids[0] == ids[1] == (tmp_path / "run" / WANDB_ID_FILE).read_text().strip()
