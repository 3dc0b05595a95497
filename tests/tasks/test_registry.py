"""get_task_prompts: every task name, file-backed splits, errors."""
import json

import pytest

from rlvr.config.schema import TaskConfig
from rlvr.tasks.arithmetic import arithmetic_prompts
from rlvr.tasks.registry import get_task_prompts


def test_arithmetic_and_constraints_by_name():
    cfg = {"name": "arithmetic", "seed": 2, "num_digits": 2, "operations": ["+", "-"]}
    assert get_task_prompts(cfg, "train", 10) == arithmetic_prompts(2, "train", 10, 2, ["+", "-"])
    assert get_task_prompts(TaskConfig(seed=2), "eval", 5) == arithmetic_prompts(2, "eval", 5)
    prompts = get_task_prompts({"name": "constraints", "seed": 0}, "train", 5)
    assert len(prompts) == 5 and len(prompts[0].meta["constraints"]) == 2


def test_file_backed_tasks(tmp_path):
    path = tmp_path / "gsm.jsonl"
    path.write_text("".join(json.dumps({"question": f"q{i}", "answer": f"#### {i}"}) + "\n"
                            for i in range(30)))
    cfg = {"name": "gsm8k", "path": str(path), "seed": 0, "eval_size": 10}
    train, held_out = get_task_prompts(cfg, "train", 20), get_task_prompts(cfg, "eval", 10)
    assert not {p.id for p in train} & {p.id for p in held_out}
    assert len({p.id for p in train + held_out}) == 30
    assert get_task_prompts(cfg, "train", 20) == train  # deterministic
    with pytest.raises(ValueError, match="21 train prompts requested"):
        get_task_prompts(cfg, "train", 21)
    for split in ("train", "eval"):
        (tmp_path / f"m_{split}.jsonl").write_text(
            json.dumps({"problem": f"{split}?", "solution": "\\boxed{1}"}) + "\n")
    cfg = {"name": "math", "path": str(tmp_path / "m_{split}.jsonl")}
    assert get_task_prompts(cfg, "eval", 1)[0].text == "eval?"


def test_errors():
    with pytest.raises(ValueError, match=r"task.name = 'nope'.*gsm8k"):
        get_task_prompts({"name": "nope"}, "train", 1)
    with pytest.raises(ValueError, match="task.path"):
        get_task_prompts({"name": "math"}, "train", 1)


def _gsm_file(path, n):
    path.write_text("".join(json.dumps({"question": f"q{i}", "answer": f"#### {i}"}) + "\n" for i in range(n)))
    return path


def test_a_data_file_too_small_for_the_splits_names_file_split_rows_and_key(tmp_path):
    from rlvr.tasks.loaders import TaskDataError

    path = _gsm_file(tmp_path / "gsm.jsonl", 30)
    with pytest.raises(TaskDataError, match=rf"^{path}: 30 records, but task.eval_size = 64 leaves none for "
                                            r"the train split; lower task.eval_size below 30"):
        get_task_prompts({"name": "gsm8k", "path": str(path), "eval_size": 64}, "eval", 64)
    with pytest.raises(TaskDataError, match=r"20 train prompts requested \(task.train_size\) but the train split "
                                            r"has 10 records \(30 in the file minus task.eval_size = 20\); "
                                            r"lower task.train_size to at most 10"):
        get_task_prompts({"name": "gsm8k", "path": str(path), "eval_size": 20}, "train", 20)
    _gsm_file(tmp_path / "g_eval.jsonl", 5)
    with pytest.raises(TaskDataError, match=r"g_eval.jsonl: 8 eval prompts requested \(task.eval_size\) but the "
                                            r"eval split has 5 records; lower task.eval_size to at most 5"):
        get_task_prompts({"name": "gsm8k", "path": str(tmp_path / "g_{split}.jsonl")}, "eval", 8)


def test_rlvr_train_reports_a_too_small_data_file_in_one_line(tmp_path, capsys):
    """It was a 29-line traceback; now exit status 2 and one problem line on stderr."""
    from pathlib import Path

    from rlvr.cli import main

    path = _gsm_file(tmp_path / "gsm.jsonl", 30)
    recipe = str(Path(__file__).resolve().parents[2] / "recipes" / "quickstart.yaml")
    assert main(["train", recipe, "task.name=gsm8k", f"task.path={path}", "task.eval_size=64",
                 "reward.verifier=math", f"output_dir={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # caught by the checks before Ray starts (rlvr/controller/preflight.py): no run folder either
    assert err.splitlines() == [
        "error: recipe quickstart.yaml: 1 problem(s) to fix before the run can start:",
        f"  - task.eval_size = 64 but {path} holds 30 records, so none are left for training: lower "
        "task.eval_size below 30, or use a larger file"]
    assert not (tmp_path / "runs").exists()
