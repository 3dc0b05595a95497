import json

import pytest

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


def test_prune_checkpoints_on_disk_and_resume_from_what_is_left(tmp_path, fake_checkpoint):
    from rlvr.config import load_recipe, to_yaml
    from rlvr.controller.checkpoint import RESUME_STATE, resume_point

    cfg = load_recipe(None, [f"output_dir={tmp_path}", "run_name=r", "steps=10", "resume=true"])
    folder = RunFolder(tmp_path / "r")
    folder.write_config(to_yaml(cfg))
    for step, complete in ((2, True), (4, True), (5, False), (6, True), (8, False)):
        path = folder.checkpoint_dir(step)
        (path / "trainer").mkdir(parents=True)
        if complete:
            fake_checkpoint(folder, step)
    deleted = folder.prune_checkpoints(2, RESUME_STATE)
    assert [p.name for p in deleted] == ["step_000002", "step_000005"]
    assert sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir()) == [
        "step_000004", "step_000006", "step_000008"]
    state, path, _ = resume_point(cfg, folder)
    assert state["step"] == 6 and path == folder.checkpoint_dir(6)


def _resumable(tmp_path, steps=10):
    from rlvr.config import load_recipe, to_yaml

    cfg = load_recipe(None, [f"output_dir={tmp_path}", "run_name=r", f"steps={steps}", "resume=true"])
    folder = RunFolder(tmp_path / "r")
    folder.write_config(to_yaml(cfg))
    return cfg, folder


def test_a_truncated_or_empty_checkpoint_is_named_and_the_previous_one_used(tmp_path, fake_checkpoint, capsys):
    import pytest

    from rlvr.config import RecipeError
    from rlvr.controller.checkpoint import resume_point

    cfg, folder = _resumable(tmp_path)
    fake_checkpoint(folder, 2)
    newest = fake_checkpoint(folder, 4)
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-20])  # the save died mid-file
    state, path, skipped = resume_point(cfg, folder)
    assert state["step"] == 2 and path == folder.checkpoint_dir(2)
    assert skipped == [newest]
    err = capsys.readouterr().err
    assert f"{weights}: truncated" in err and "resuming from the previous complete checkpoint step_000002" in err

    fake_checkpoint(folder, 4)
    (newest / "rlvr_state.json").write_text("")  # empty loop state: a one-line reason, no JSONDecodeError
    assert resume_point(cfg, folder)[0]["step"] == 2
    assert "rlvr_state.json: empty" in capsys.readouterr().err

    fake_checkpoint(folder, 4)
    part = newest / "trainer" / "deepspeed" / "mp_rank_00_model_states.pt"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    assert resume_point(cfg, folder)[0]["step"] == 2
    assert f"{part}: truncated or corrupt" in capsys.readouterr().err

    (folder.checkpoint_dir(2) / "rlvr_state.json").write_text('{"step": 2}')  # now no complete one is left
    with pytest.raises(RecipeError, match=r"no complete checkpoint to resume from; .*step_000004.*"
                                          r"mp_rank_00_model_states.pt: truncated .*1 older checkpoint"):
        resume_point(cfg, folder)


def test_safetensors_problem_reads_only_the_header(tmp_path):
    import torch
    from safetensors.torch import save_file

    from rlvr.tracking.run_folder import safetensors_problem

    path = tmp_path / "m.safetensors"
    save_file({"a": torch.zeros(10), "b": torch.ones(3)}, str(path))
    assert safetensors_problem(path) is None
    full = path.read_bytes()
    path.write_bytes(full[:-1])
    assert safetensors_problem(path) == f"truncated ({len(full) - 1} of {len(full)} bytes)"
    path.write_bytes(full[:5])
    assert safetensors_problem(path).startswith("truncated (5 bytes")
    assert safetensors_problem(tmp_path / "none.safetensors") == "missing"


def test_truncate_samples_drops_the_crashed_runs_later_steps(tmp_path):
    folder = RunFolder(tmp_path / "run")
    for step in (2, 4, 6, 8):
        folder.write_samples(step, [{"step": step}])
    (tmp_path / "run" / "samples" / "notes.txt").write_text("kept")
    gone = folder.truncate_samples(4)
    assert [p.name for p in gone] == ["step_000006.jsonl", "step_000008.jsonl"]
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == [
        "notes.txt", "step_000002.jsonl", "step_000004.jsonl"]


def test_summary_is_written_compactly_when_the_disk_is_full(tmp_path, monkeypatch, capsys):
    import errno
    from pathlib import Path

    folder = RunFolder(tmp_path / "run")
    assert folder.write_summary({"status": "running", "run_name": "r"})

    def full(self, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "replace", full)  # the .tmp can be written but not renamed: a full disk
    assert folder.write_summary({"status": "failed", "error": "OSError: disk", "traceback": "x" * 10_000})
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == {"status": "failed", "error": "OSError: disk"}
    assert not (tmp_path / "run" / "summary.json.tmp").exists()
    assert "without its traceback" in capsys.readouterr().err


def test_unwritable_names_the_blocking_path(tmp_path):
    import os

    from rlvr.tracking.run_folder import unwritable

    (tmp_path / "file").write_text("")
    assert unwritable(tmp_path / "a" / "b") is None
    assert unwritable(tmp_path / "file" / "run") == f"{tmp_path / 'file'} is a file, not a folder"
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert unwritable(locked / "run") == f"{locked} is not writable by this user"


# ------------------------------------------------------------ samples in the background

def _old_write_samples(path, records):
    """The synchronous writer write_samples replaced (kept as the byte-for-byte reference)."""
    import math

    def jsonable(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if hasattr(value, "item"):
            return jsonable(value.item())
        return value

    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps({k: jsonable(v) for k, v in r.items()}) + "\n")


def test_samples_files_are_byte_for_byte_those_of_the_synchronous_writer(tmp_path):
    import numpy as np
    import torch

    records = [{"prompt_id": "p\u00e9\n\"q", "sample_index": i, "response": "12;", "gold": "46", "num_tokens": 3,
                "gt": 1.0, "proxy": [float("nan"), float("inf"), -0.0, 1e-300][i % 4], "reason": None,
                "category": "none", "advantage": torch.tensor(0.1 * i, dtype=torch.float64)[()],
                "np": np.float32(0.1), "flag": i % 2 == 0, "constraints": [{"kind": "len", "n": 3}],
                "policy_version": 7, "step": 2} for i in range(9)]
    folder = RunFolder(tmp_path / "run")
    folder.write_samples(2, records)
    folder.write_samples(3, [])
    folder.close()
    _old_write_samples(tmp_path / "ref2.jsonl", records)
    _old_write_samples(tmp_path / "ref3.jsonl", [])
    samples = tmp_path / "run" / "samples"
    assert (samples / "step_000002.jsonl").read_bytes() == (tmp_path / "ref2.jsonl").read_bytes()
    assert (samples / "step_000003.jsonl").read_bytes() == b""


def test_background_jobs_run_in_submission_order():
    import random
    import time

    from rlvr.tracking.run_folder import BackgroundWriter

    writer, done = BackgroundWriter(), []

    def job(i):
        time.sleep(random.random() * 1e-3)
        done.append(i)

    for i in range(50):
        writer.submit(job, i)
    writer.flush()
    assert done == list(range(50))


def test_the_same_step_written_twice_keeps_the_later_records(tmp_path):
    folder = RunFolder(tmp_path / "run")
    for version in range(20):
        folder.write_samples(1, [{"v": version}])
    folder.flush_samples()
    assert (tmp_path / "run" / "samples" / "step_000001.jsonl").read_text() == '{"v": 19}\n'


def test_a_failed_background_write_surfaces_once_on_the_next_call(tmp_path, monkeypatch):
    import errno
    import threading

    import rlvr.tracking.run_folder as run_folder

    folder = RunFolder(tmp_path / "run")

    def full_disk(path, mode="r", *args, **kwargs):
        if "step_000003" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(run_folder, "open", full_disk, raising=False)
    gate, ran = threading.Event(), threading.Event()
    folder._samples.submit(gate.wait)
    folder.write_samples(3, [{"a": 1}])  # returns at once: the write happens later
    folder._samples.submit(ran.set)  # runs after the failing write has been recorded
    gate.set()
    assert ran.wait(10)
    with pytest.raises(OSError, match=r"No space left on device: writing .*step_000003\.jsonl") as err:
        folder.write_samples(4, [{"a": 2}])
    assert err.value.errno == errno.ENOSPC  # the loop's full-disk check still recognises it
    folder.flush_samples()  # reported once; step 4 was not queued (the call raised), step 5 is
    folder.write_samples(5, [{"a": 3}])
    folder.write_samples(3, [{"a": 4}])
    with pytest.raises(OSError, match="step_000003"):
        folder.flush_samples()
    folder.write_samples(3, [{"a": 5}])
    with pytest.raises(OSError, match="step_000003"):
        folder.close()  # raised after closing metrics.jsonl
    assert folder._metrics.closed
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == ["step_000005.jsonl"]


def _blocked(folder):
    """Hold the folder's samples writer until the returned event is set (released in 0.2 s)."""
    import threading

    gate = threading.Event()
    folder._samples.submit(gate.wait)
    threading.Timer(0.2, gate.set).start()
    return gate


def test_truncate_samples_waits_for_pending_writes(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.write_samples(2, [{"step": 2}])
    gate = _blocked(folder)
    folder.write_samples(6, [{"step": 6}])  # still queued behind the gate
    gone = folder.truncate_samples(4)
    assert gate.is_set()
    assert [p.name for p in gone] == ["step_000006.jsonl"]
    folder.close()
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == ["step_000002.jsonl"]


def test_checkpoint_dir_and_close_flush_pending_samples(tmp_path):
    folder = RunFolder(tmp_path / "run")
    gate = _blocked(folder)
    folder.write_samples(2, [{"step": 2}])
    path = folder.checkpoint_dir(2)  # a checkpoint of step 2 is written only after its samples
    assert gate.is_set() and path == tmp_path / "run" / "checkpoints" / "step_000002"
    assert (tmp_path / "run" / "samples" / "step_000002.jsonl").is_file()
    gate = _blocked(folder)
    folder.write_samples(3, [{"step": 3}])
    folder.close()
    assert gate.is_set() and (tmp_path / "run" / "samples" / "step_000003.jsonl").is_file()


def test_the_writer_thread_exits_when_idle_and_restarts(monkeypatch):
    import time

    from rlvr.tracking.run_folder import BackgroundWriter

    monkeypatch.setattr(BackgroundWriter, "IDLE_S", 0.05)
    writer, done = BackgroundWriter(), []
    writer.submit(done.append, 1)
    thread = writer._thread
    writer.flush()
    thread.join(5)
    assert not thread.is_alive() and writer._thread is None
    writer.submit(done.append, 2)
    writer.flush()
    assert done == [1, 2]


def test_a_process_that_never_closes_the_folder_still_writes_its_samples(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from rlvr.tracking.run_folder import BackgroundWriter, RunFolder; "
            "BackgroundWriter.IDLE_S = 0.05; "
            "RunFolder(sys.argv[1]).write_samples(1, [{'x': 1}] * 1000)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], check=True, timeout=60)
    assert len((tmp_path / "run" / "samples" / "step_000001.jsonl").read_text().splitlines()) == 1000


def _returns_within(seconds, call):
    """Run call() on a thread; assert it returned within `seconds` (a hang fails, not blocks)."""
    import threading

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{call} still running after {seconds} s"


def test_a_closed_writer_takes_new_jobs_and_closes_again():
    from rlvr.tracking.run_folder import BackgroundWriter

    writer, done = BackgroundWriter(), []
    writer.submit(done.append, 1)
    thread = writer._thread
    _returns_within(10, writer.close)
    assert not thread.is_alive() and writer._thread is None  # gone at once, not after IDLE_S
    _returns_within(10, writer.close)  # hangs if close()'s marker is never marked done
    writer.submit(done.append, 2)
    _returns_within(10, writer.flush)
    _returns_within(10, writer.close)
    assert done == [1, 2]
