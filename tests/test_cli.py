import subprocess
import sys
from pathlib import Path

from rlvr.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "recipes" / "quickstart.yaml")


def test_usage_and_unknown_command(capsys):
    assert main(["--help"]) == 0
    assert "train RECIPE.yaml" in capsys.readouterr().out
    assert main([]) == 2
    assert main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


def test_train_print_config_applies_overrides(capsys):
    assert main(["train", QUICKSTART, "trainer.lr=1e-5", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "lr: 1.0e-05" in out and "zero_stage: 2" in out


def test_train_bad_override_fails_before_anything_starts(capsys):
    assert main(["train", QUICKSTART, "rollout.backend=tgi"]) == 2
    err = capsys.readouterr().err
    assert "quickstart.yaml" in err and "rollout.backend = 'tgi'" in err


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "rlvr"
    out = subprocess.run([str(script), "train", QUICKSTART, "--print-config"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "run_name: null" in out.stdout


def test_build_model_writes_a_cached_warmed_up_model(tmp_path, capsys):
    args = ["build-model", QUICKSTART, f"output_dir={tmp_path}", "warmup.steps=4", "warmup.check_every=2",
            "warmup.target_accuracy=1.0", "task.train_size=64", "task.eval_size=8"]
    assert main(args) == 0
    folder = capsys.readouterr().out.split()[0]
    assert Path(folder).parent == tmp_path / "_models"
    assert (Path(folder) / "model.safetensors").is_file() and (Path(folder) / "rlvr_warmup.json").is_file()
    assert main(args) == 0  # second time: taken from the cache
    assert capsys.readouterr().out.split()[0] == folder


def test_build_model_for_the_constraints_task_checks_constraints_from_prompt_meta(tmp_path, capsys):
    recipe = str(ROOT / "recipes" / "constraints.yaml")
    assert main(["build-model", recipe, f"output_dir={tmp_path}", "warmup.steps=2", "warmup.check_every=1",
                 "task.train_size=32", "task.eval_size=4", "model.hidden_size=32", "model.num_heads=1",
                 "model.intermediate_size=64"]) == 0
    out = capsys.readouterr().out
    assert "'validation_accuracy'" in out and "'eval_accuracy'" in out


def test_a_gpu_recipe_prints_its_memory_plan_before_the_checks(capsys):
    recipe = str(ROOT / "recipes" / "gpu_single.yaml")
    assert main(["train", recipe, "--dry-run"]) == 2  # no data files, no CUDA here
    err = capsys.readouterr().err
    assert err.index("per trainer GPU (rank 0)") < err.index("problem(s) to fix")
    assert "of 80.0 GB: fits" in err
