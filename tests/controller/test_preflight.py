"""The checks before Ray starts (rlvr/controller/preflight.py) and `rlvr train --dry-run`: every
problem at once, one line each with its fix, and nothing created."""
import json
from pathlib import Path

import pytest

from rlvr.cli import main
from rlvr.config import load_recipe
from rlvr.controller import preflight
from rlvr.controller.preflight import Where, data_problems, run_checks, wandb_problems

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "recipes" / "quickstart.yaml")


def gsm8k_file(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"question": f"q{i}", "answer": f"... #### {i}"}) + "\n" for i in range(n))
                    + "\n")  # a blank line is not a record
    return path


def where(tmp_path, **environ):
    return Where(environ=environ, home=tmp_path, base_dir=tmp_path)


def gsm8k(path, *more):
    return load_recipe(None, ["task.name=gsm8k", "reward.verifier=math", f"task.path={path}", *more])


def test_missing_split_files_name_the_prepare_command(tmp_path):
    lines = data_problems(gsm8k("data/gsm8k_{split}.jsonl"), where(tmp_path))
    assert lines == [
        "task.path: the train split's file data/gsm8k_train.jsonl does not exist: create it: python "
        "tools/prepare_data.py openai/gsm8k --config main --split train --out data/gsm8k_train.jsonl",
        "task.path: the eval split's file data/gsm8k_eval.jsonl does not exist: create it: python "
        "tools/prepare_data.py openai/gsm8k --config main --split test --out data/gsm8k_eval.jsonl"]


def test_too_few_records_for_train_size_eval_size_and_prompts_per_step(tmp_path):
    gsm8k_file(tmp_path / "d_train.jsonl", 20)
    gsm8k_file(tmp_path / "d_eval.jsonl", 5)
    cfg = gsm8k(str(tmp_path / "d_{split}.jsonl"), "task.train_size=30", "task.eval_size=8",
                "rollout.prompts_per_step=24")
    train, eval_ = data_problems(cfg, where(tmp_path))
    assert train.startswith("task.train_size = 30 but ") and "holds 20 train records" in train
    assert "lower task.train_size to at most 20 (and rollout.prompts_per_step = 24 to at most 20)" in train
    assert eval_.startswith("task.eval_size = 8 but ") and "at most 5" in eval_
    cfg = gsm8k(str(tmp_path / "d_{split}.jsonl"), "task.train_size=20", "task.eval_size=5",
                "rollout.prompts_per_step=16")
    assert data_problems(cfg, where(tmp_path)) == []


def test_one_file_serves_both_splits(tmp_path):
    gsm8k_file(tmp_path / "all.jsonl", 10)
    assert "none are left for training" in data_problems(
        gsm8k("all.jsonl", "task.eval_size=10", "task.train_size=4", "rollout.prompts_per_step=2"),
        where(tmp_path))[0]
    line, = data_problems(gsm8k("all.jsonl", "task.eval_size=4", "task.train_size=7", "rollout.prompts_per_step=2"),
                          where(tmp_path))
    assert line.startswith("task.train_size = 7 but all.jsonl (minus task.eval_size = 4) holds 6 train records")
    assert data_problems(gsm8k("all.jsonl", "task.eval_size=4", "task.train_size=6", "rollout.prompts_per_step=2"),
                         where(tmp_path)) == []


def test_a_synthetic_task_that_cannot_make_enough_prompts(tmp_path):
    cfg = load_recipe(None, ["task.num_digits=1", "task.train_size=100", "task.eval_size=8", "rollout.prompts_per_step=8"])
    line, = data_problems(cfg, where(tmp_path))
    assert line.startswith("task arithmetic: task.train_size = 100 is more than half")


@pytest.mark.parametrize("environ,netrc,ok", [
    ({}, False, False),
    ({"WANDB_API_KEY": "k"}, False, True),
    ({"WANDB_MODE": "offline"}, False, True),
    ({"WANDB_MODE": "disabled"}, False, True),
    ({"WANDB_MODE": "online"}, True, True),
])
def test_wandb_needs_a_key_or_offline_mode(tmp_path, environ, netrc, ok):
    if netrc:
        (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
        (tmp_path / ".netrc").chmod(0o600)
    cfg = load_recipe(QUICKSTART, ["logging.wandb=true"])
    lines = wandb_problems(cfg, where(tmp_path, **environ))
    assert (lines == []) == ok
    if not ok:
        assert len(lines) == 1 and "WANDB_MODE=offline" in lines[0] and "wandb login" in lines[0]
    assert wandb_problems(load_recipe(QUICKSTART), where(tmp_path)) == []


def test_gpus_asked_where_torch_has_no_cuda(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = load_recipe(QUICKSTART, ["trainer.num_gpus_per_rank=1"])
    assert preflight.gpu_problems(cfg, where(tmp_path)) == [
        f"trainer.num_gpus_per_rank = 1 but torch {torch.__version__} has no CUDA on this machine: set them to 0 "
        "to run on CPU, or run where torch sees a GPU (a CUDA build of torch and a driver); cluster.num_gpus = N "
        "rehearses the GPU layout on CPU"]
    assert preflight.gpu_problems(load_recipe(QUICKSTART), where(tmp_path)) == []
    rehearsal = load_recipe(QUICKSTART, ["trainer.num_gpus_per_rank=1", "cluster.num_gpus=1"])
    assert preflight.gpu_problems(rehearsal, where(tmp_path)) == []  # declared GPUs: placement only, on CPU


def test_the_memory_plan_is_checked_where_a_gpu_is_asked_for(tmp_path):
    gpu_single = str(Path(QUICKSTART).parent / "gpu_single.yaml")
    problems = preflight.memory_check_problems(load_recipe(gpu_single, ["model.path=Qwen/Qwen2.5-7B"]), where(tmp_path))
    assert len(problems) == 1 and "the largest item is optimizer states" in problems[0], problems
    assert preflight.memory_check_problems(load_recipe(gpu_single), where(tmp_path)) == []  # 0.5B fits
    assert preflight.memory_check_problems(load_recipe(QUICKSTART), where(tmp_path)) == []  # no GPU asked


def test_a_used_run_folder_and_a_resume_of_nothing(tmp_path):
    run = tmp_path / "runs" / "r1"
    cfg = load_recipe(QUICKSTART, [f"output_dir={tmp_path / 'runs'}", "run_name=r1"])
    assert preflight.run_folder_problems(cfg, where(tmp_path)) == []
    resume = load_recipe(QUICKSTART, [f"output_dir={tmp_path / 'runs'}", "run_name=r1", "resume=true"])
    assert "holds no run" in preflight.run_folder_problems(resume, where(tmp_path))[0]
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 0}\n')
    (run / "config.yaml").write_text("seed: 0\n")
    assert "already holds a run: continue it with resume=true" in preflight.run_folder_problems(cfg, where(tmp_path))[0]
    assert preflight.run_folder_problems(resume, where(tmp_path)) == []


def test_a_check_that_breaks_is_skipped_not_fatal(tmp_path, capsys):
    def broken(cfg, where):
        raise OSError("odd file system")

    assert run_checks(load_recipe(QUICKSTART), where(tmp_path), checks=[broken, lambda c, w: ["one"]]) == ["one"]
    assert "broken check could not run (OSError: odd file system)" in capsys.readouterr().err


def test_dry_run_reports_three_problems_at_once_and_creates_nothing(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs"
    code = main(["train", QUICKSTART, "--dry-run", "task.name=gsm8k", "reward.verifier=math",
                 "task.path=data/gsm8k_{split}.jsonl", "trainer.num_gpus_per_rank=1", "logging.wandb=true",
                 f"output_dir={out}", "run_name=dry"])
    assert code == 2
    err = capsys.readouterr().err.splitlines()
    err = err[err.index("error: recipe quickstart.yaml: 4 problem(s) to fix before the run can start:"):]  # after the memory plan
    # three problems: the data (a line per split file), the GPU, wandb
    problems = "\n".join(err[1:])
    assert problems.count("  - ") == 4
    assert "tools/prepare_data.py openai/gsm8k --config main --split train --out data/gsm8k_train.jsonl" in problems
    assert "trainer.num_gpus_per_rank = 1 but torch" in problems and "has no CUDA" in problems
    assert "logging.wandb = true but wandb has no API key" in problems
    assert list(tmp_path.iterdir()) == []  # no run folder, no data folder, nothing


def test_dry_run_of_a_ready_recipe(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", QUICKSTART, "--dry-run", f"output_dir={tmp_path / 'runs'}"]) == 0
    assert "passed every check" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_submit_runs_the_checks_before_uploading(capsys, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("NETRC", "/nonexistent/netrc")
    assert main(["submit", QUICKSTART, "--dry-run", "task.name=gsm8k", "reward.verifier=math",
                 "task.path=data/rlvr_test_missing_{split}.jsonl", "logging.wandb=true"]) == 2
    err = capsys.readouterr().err
    assert "3 problem(s)" in err and "data/rlvr_test_missing_train.jsonl does not exist" in err
    assert "(--env WANDB_API_KEY=... for the job)" in err
    # the key given to the job with --env is enough
    assert main(["submit", QUICKSTART, "--dry-run", "logging.wandb=true", "--env", "WANDB_API_KEY=abc"]) == 0
