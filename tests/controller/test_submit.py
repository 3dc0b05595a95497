"""`rlvr submit` without a cluster: the job it would submit (entrypoint, working dir, excludes,
address, token auth) and how --wait turns a job's end into an exit status (a stand-in client)."""
import json
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlvr.cli import main
from rlvr.controller import submit
from rlvr.controller.submit import (
    DEFAULT_ADDRESS,
    job_excludes,
    large_files,
    resolve_address,
    token_source,
)

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "recipes" / "quickstart.yaml")


def dry_run(capsys, *args):
    assert main(["submit", *args, "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    fields = dict(line.split(": ", 1) for line in out)
    return fields["address"], shlex.split(fields["entrypoint"]), json.loads(fields["runtime_env"])


def test_dry_run_names_the_interpreter_the_recipe_inside_the_upload_and_the_overrides(capsys, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")
    address, argv, env = dry_run(capsys, QUICKSTART, "steps=3", "reward.design={name: flip, fp_rate: 0.3}",
                                 "--env", "HF_HOME=/data/hf")
    assert address == "http://head:8265"
    assert argv == [sys.executable, "-m", "rlvr.cli", "train", "recipes/quickstart.yaml", "cluster.address=auto",
                    "steps=3", "reward.design={name: flip, fp_rate: 0.3}"]
    assert env["working_dir"] == str(ROOT) and env["env_vars"] == {"HF_HOME": "/data/hf"}
    assert {".git", ".venv", "__pycache__", "/runs/", "wandb/"} <= set(env["excludes"])


def test_python_flag_and_an_absolute_output_dir_outside_the_upload(capsys, tmp_path):
    _, argv, env = dry_run(capsys, QUICKSTART, f"output_dir={tmp_path}", "--python", "/opt/venv/bin/python",
                           "--exclude", "data/raw/")
    assert argv[:3] == ["/opt/venv/bin/python", "-m", "rlvr.cli"] and argv[-1] == f"output_dir={tmp_path}"
    assert "env_vars" not in env and env["excludes"][-1] == "data/raw/"
    assert not any(str(tmp_path) in e for e in env["excludes"])


def test_bad_key_fails_before_submission_naming_it(capsys):
    assert main(["submit", QUICKSTART, "trainer.nope=1", "--address", "http://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "quickstart.yaml" in err and "trainer.nope" in err


def test_recipe_outside_the_working_dir_is_refused(capsys, tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(Path(QUICKSTART).read_text())
    assert main(["submit", str(recipe), "--dry-run"]) == 2
    assert "outside the uploaded working dir" in capsys.readouterr().err
    assert main(["submit", QUICKSTART, "--env", "NOEQUALS", "--dry-run"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_address_resolution():
    assert resolve_address("http://a:1", {"RAY_ADDRESS": "http://b:2"}) == "http://a:1"
    assert resolve_address(None, {"RAY_ADDRESS": "http://b:2"}) == "http://b:2"
    assert resolve_address(None, {}) == DEFAULT_ADDRESS == "http://127.0.0.1:8265"


def test_token_auth_is_switched_on_only_when_a_token_exists_and_the_mode_is_unset(tmp_path):
    assert token_source({}, tmp_path) is None
    env = {}
    assert submit.enable_token_auth(env, tmp_path) is None and env == {}
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("abc")
    assert submit.enable_token_auth(env, tmp_path) == str(tmp_path / ".ray" / "auth_token")
    assert env == {"RAY_AUTH_MODE": "token"}
    env = {"RAY_AUTH_MODE": "disabled"}  # the user's choice stands
    assert submit.enable_token_auth(env, tmp_path) is None and env == {"RAY_AUTH_MODE": "disabled"}
    assert token_source({"RAY_AUTH_TOKEN": "xyz"}, tmp_path / "nohome") == "$RAY_AUTH_TOKEN"
    assert token_source({"RAY_AUTH_TOKEN_PATH": str(tmp_path / ".ray" / "auth_token")}, tmp_path / "nohome") \
        == str(tmp_path / ".ray" / "auth_token")


def test_excludes_cover_an_output_dir_inside_the_upload_and_large_files(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "big.jsonl").write_bytes(b"x" * 2000)
    (tmp_path / "data" / "small.jsonl").write_bytes(b"x" * 10)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "huge.so").write_bytes(b"x" * 5000)  # always excluded: not scanned
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "ckpt.bin").write_bytes(b"x" * 5000)  # excluded as /runs/: not scanned
    (tmp_path / "data" / "runs").mkdir()
    (tmp_path / "data" / "runs" / "big.bin").write_bytes(b"x" * 5000)  # not the top-level runs/
    big = large_files(tmp_path, limit=1000)
    assert big == ["data/big.jsonl", "data/runs/big.bin"]
    excludes = job_excludes(tmp_path, "experiments/out", big=big)
    assert "/experiments/out/" in excludes and "/data/big.jsonl" in excludes
    assert not any("elsewhere" in e for e in job_excludes(tmp_path, "/elsewhere/runs"))


class FakeClient:
    """Stands in for JobSubmissionClient: statuses in order, then the last one forever."""

    def __init__(self, statuses, logs="line 1\nline 2\n", message="Job entrypoint command failed with exit code 1"):
        self.statuses, self.logs, self.message, self.submitted = list(statuses), logs, message, None

    def submit_job(self, entrypoint, runtime_env, metadata):
        self.submitted = (entrypoint, runtime_env, metadata)
        return "raysubmit_TEST"

    async def tail_job_logs(self, job_id):
        yield self.logs

    def get_job_status(self, job_id):
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    def get_job_info(self, job_id):
        return SimpleNamespace(message=self.message + "\n" + self.logs)

    def get_job_logs(self, job_id):
        return self.logs


@pytest.mark.parametrize("final,code", [("SUCCEEDED", 0), ("FAILED", 1), ("STOPPED", 1)])
def test_wait_exit_status_follows_the_jobs_end(final, code, capsys, monkeypatch, tmp_path):
    from ray.job_submission import JobStatus

    client = FakeClient([JobStatus.RUNNING, JobStatus(final)])
    monkeypatch.setattr(submit, "_connect", lambda address: client)
    monkeypatch.setattr(submit, "enable_token_auth", lambda: None)  # leave this process's Ray config alone
    monkeypatch.setattr(submit.time, "sleep", lambda s: None)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # Ray's own CLI then needs it too: the hints say so
    assert main(["submit", QUICKSTART, "--address", "http://h:8265", "--wait", f"output_dir={tmp_path}"]) == code
    out, err = capsys.readouterr()
    assert "submitted job raysubmit_TEST to http://h:8265" in out
    assert "RAY_AUTH_MODE=token ray job logs -f raysubmit_TEST --address http://h:8265" in out
    assert "RAY_AUTH_MODE=token ray job stop raysubmit_TEST --address http://h:8265" in out
    assert "line 2" in out  # the streamed log
    assert client.submitted[0].split()[:5] == [sys.executable, "-m", "rlvr.cli", "train", "recipes/quickstart.yaml"]
    if code:
        assert f"job raysubmit_TEST {final}: Job entrypoint command failed with exit code 1\n" in err
        assert err.rstrip().endswith("last log lines:\nline 1\nline 2")
    else:
        assert "SUCCEEDED" in out


def test_without_wait_it_returns_after_submitting(capsys, monkeypatch, tmp_path):
    client = FakeClient(["RUNNING"])
    monkeypatch.setattr(submit, "_connect", lambda address: client)
    monkeypatch.setattr(submit, "enable_token_auth", lambda: None)  # leave this process's Ray config alone
    assert main(["submit", QUICKSTART, f"output_dir={tmp_path}"]) == 0
    assert "submitted job raysubmit_TEST" in capsys.readouterr().out and client.submitted is not None
