"""`rlvr study` end to end: the run loop with a stand-in train() (skip, failure, resume, drift),
and one real study through Ray on the quickstart (e2e)."""
import json
import shutil
import time
from pathlib import Path

import pytest

from rlvr.cli import main as cli_main
from rlvr.config import to_yaml
from rlvr.study.command import config_drift, main
from rlvr.study.report import METRICS

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"


def write_study(tmp_path, arms, overrides="[steps=2]", seeds="[0]", name="toy"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"recipe: {QUICKSTART}\nseeds: {seeds}\noverrides: {overrides}\nthreshold: 0.5\n"
                    f"arms:\n" + "".join(f"  {arm}: {value}\n" for arm, value in arms.items()))
    return path


@pytest.fixture
def fake_train(monkeypatch):
    """train() stand-in writing a run folder; arms named bad* fail before any summary exists."""
    calls = []

    def train(cfg):
        calls.append(cfg.run_name)
        folder = Path(cfg.output_dir) / cfg.run_name
        folder.mkdir(parents=True)
        (folder / "config.yaml").write_text(to_yaml(cfg))
        if cfg.run_name.startswith("bad"):
            raise RuntimeError("warm-up exploded")
        acc = 0.25 + 0.1 * cfg.seed - (0.05 + 0.01 * cfg.seed if cfg.run_name.startswith("worse") else 0.0)
        rows = [{"step": 0, "eval/gt_accuracy": 0.2}, {"step": 1, "errors/harmful": 0.1, "perf/step_s": 0.5},
                {"step": 2, "errors/harmful": 0.3, "perf/step_s": 0.5, "eval/gt_accuracy": acc}]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        summary = {"run_name": cfg.run_name, "status": "finished", "initial_eval_gt_accuracy": 0.2,
                   "final_eval_gt_accuracy": acc}
        (folder / "summary.json").write_text(json.dumps(summary))
        return summary

    monkeypatch.setattr("rlvr.controller.loop.train", train)
    return calls


def test_failed_arm_is_recorded_study_goes_on_and_resumes(tmp_path, fake_train, capsys):
    study = write_study(tmp_path, {"gt": "[]", "bad": "[reward.design.name=flip]", "fp": "[reward.design.name=flip]"},
                        seeds="[0, 1]")
    out = tmp_path / "out"
    assert main([str(study), "--out", str(out)]) == 1  # one arm failed
    assert fake_train == ["gt__seed0", "bad__seed0", "fp__seed0", "gt__seed1", "bad__seed1", "fp__seed1"]
    captured = capsys.readouterr()
    assert "[1/6] gt__seed0: start" in captured.err and "[2/6] bad__seed0: FAILED" in captured.err
    assert "[3/6] fp__seed0: finished" in captured.err
    failed = json.loads((out / "bad__seed0" / "summary.json").read_text())
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: warm-up exploded"
    report = json.loads((out / "study.json").read_text())
    assert [a["arm"] for a in report["arms"]] == ["gt", "bad", "fp"]
    assert report["arms"][1]["runs"][0]["error"] == "RuntimeError: warm-up exploded"
    gt = report["arms"][0]["metrics"]
    assert gt["final_eval_gt_accuracy"]["mean"] == pytest.approx(0.3)
    assert gt["steps_to_threshold"]["reached"] == 0
    assert [line.split()[:2] for line in captured.out.splitlines()[2:5]] == [["gt", "2/2"], ["bad", "0/2"], ["fp", "2/2"]]
    assert (out / "study.csv").is_file() and (out / "eval_gt_accuracy.png").is_file()

    # Resume: finished runs are skipped; the failed ones are moved aside and rerun.
    assert main([str(study), "--out", str(out)]) == 1
    assert fake_train[6:] == ["bad__seed0", "bad__seed1"]
    assert "[1/6] gt__seed0: already finished, skipped" in capsys.readouterr().err
    assert len(list((out / "_unfinished").glob("bad__seed0__*"))) == 1


def test_dry_run_and_report_only_start_nothing(tmp_path, fake_train, capsys):
    study = write_study(tmp_path, {"gt": "[]", "fp": "[reward.design.name=flip, reward.design.fp_rate=0.2]"})
    out = tmp_path / "out"
    assert main([str(study), "--out", str(out), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "2 arms x 1 seeds = 2 runs" in plan and "[2/2] fp__seed0: run" in plan
    assert "initial policy" in plan and ": 2 run(s)" in plan  # both arms share one warm-up
    assert main([str(study), "--out", str(out), "--report-only"]) == 0
    assert fake_train == []
    assert "0/1" in capsys.readouterr().out
    assert json.loads((out / "study.json").read_text())["arms"][0]["runs"][0]["status"] == "missing"


def test_control_comparison_in_words_and_rlvr_report_rerenders(tmp_path, fake_train, capsys):
    study = write_study(tmp_path, {"worse": "[reward.design.name=flip]", "gt": "[]"}, seeds="[0, 1, 2]")
    study.write_text(study.read_text() + "control: gt\nlast_k: 1\n")
    out = tmp_path / "out"
    assert main([str(study), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "study.json").read_text())
    assert report["control"] == "gt" and report["last_k"] == 1
    worse, gt = report["arms"]
    assert "vs_control" not in gt
    final = worse["vs_control"]["final_eval_gt_accuracy"]
    # paired diffs -0.05, -0.06, -0.07: mean -0.06, sd 0.01, t(0.975, 2) * 0.01 / sqrt(3) = 0.024841
    assert final["n_pairs"] == 3 and final["diff_mean"] == pytest.approx(-0.06)
    assert final["ci95"] == [pytest.approx(-0.084841, abs=1e-5), pytest.approx(-0.035159, abs=1e-5)]
    assert final["p_value"] == 0.25 and final["separable"] is True
    assert worse["metrics"]["final_eval_gt_accuracy"]["ci95"] is not None
    assert "paired by seed against the control (gt)" in printed
    assert "worse vs gt: final eval/gt_accuracy -0.060" in printed and "cannot go below p = 0.25" in printed

    (out / "study.csv").unlink()
    assert cli_main(["report", str(out)]) == 0
    assert (out / "study.csv").is_file()
    assert json.loads((out / "study.json").read_text()) == report
    # Every metric keeps its per-seed values, so the report survives without the run folders.
    assert all(set(worse["metrics"][key]["per_seed"]) == {"0", "1", "2"} for key in METRICS)
    for folder in out.glob("*__seed*"):
        shutil.rmtree(folder)
    assert cli_main(["report", str(out)]) == 0
    assert json.loads((out / "study.json").read_text()) == report
    assert "recomputed from the per-seed values in study.json" in capsys.readouterr().err
    assert cli_main(["report", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: the folder does not exist" in capsys.readouterr().err


def test_sampled_eval_metric_needs_sampled_evaluation(tmp_path, fake_train, capsys):
    study = write_study(tmp_path, {"gt": "[]"})
    study.write_text(study.read_text() + "eval_metric: eval/pass_at_k\n")
    assert main([str(study), "--dry-run"]) == 2
    assert "needs eval.samples_per_prompt >= 1" in capsys.readouterr().err
    study.write_text(study.read_text().replace("[steps=2]", "[steps=2, eval.samples_per_prompt=4]"))
    assert main([str(study), "--dry-run"]) == 0


def test_control_must_be_an_arm(tmp_path, fake_train, capsys):
    study = write_study(tmp_path, {"gt": "[]"})
    study.write_text(study.read_text() + "control: nope\n")
    assert main([str(study), "--dry-run"]) == 2
    assert "control = 'nope' is not an arm" in capsys.readouterr().err


def test_finished_run_with_a_different_recipe_is_refused(tmp_path, fake_train, capsys):
    out = tmp_path / "out"
    assert main([str(write_study(tmp_path, {"gt": "[]"})), "--out", str(out)]) == 0
    changed = write_study(tmp_path, {"gt": "[]"}, overrides="[steps=3]")
    assert main([str(changed), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "arm 'gt'" in err and "steps: 2 -> 3" in err and "--out NEW_DIR" in err
    assert fake_train == ["gt__seed0"]


def test_config_drift_ignores_location_and_new_keys():
    assert config_drift("a: 1\nb: {c: 2}\nrun_name: x\n", "a: 1\nb: {c: 3, d: 4}\nrun_name: y\n") == ["b.c: 2 -> 3"]


def test_cli_dispatch_and_bad_study(tmp_path, capsys):
    assert cli_main(["--help"]) == 0
    assert "study STUDY.yaml" in capsys.readouterr().out
    bad = write_study(tmp_path, {"gt": "[]", "typo": "[reward.design.name=flip, reward.design.fp_ratee=0.2]"})
    assert cli_main(["study", str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "study toy.yaml: arm 'typo'" in err and "reward.design.fp_ratee" in err
    assert cli_main(["study", str(bad), "--dry-run", "--report-only"]) == 2  # mutually exclusive


TINY = ("[steps=2, eval_every=1, warmup.steps=50, warmup.target_accuracy=0.05, task.train_size=200, "
        "task.eval_size=16, rollout.prompts_per_step=4, rollout.samples_per_prompt=4]")


@pytest.mark.e2e
def test_real_study_two_arms_then_resume(tmp_path, capsys):
    study = write_study(tmp_path, {"ground_truth": "[]",
                                   "flip_fp0.5": "[reward.design.name=flip, reward.design.fp_rate=0.5]"},
                        overrides=TINY)
    out = tmp_path / "out"
    assert main([str(study), "--out", str(out)]) == 0
    report = json.loads((out / "study.json").read_text())
    assert [a["arm"] for a in report["arms"]] == ["ground_truth", "flip_fp0.5"]
    for arm in report["arms"]:
        assert arm["n_finished"] == 1 and arm["curve"]["step"] == [0, 1, 2]
        run = json.loads((out / f"{arm['arm']}__seed0" / "summary.json").read_text())
        assert arm["metrics"]["final_eval_gt_accuracy"]["mean"] == run["final_eval_gt_accuracy"]
        assert arm["metrics"]["perf/step_s"]["mean"] > 0
    gt, flip = (a["metrics"] for a in report["arms"])
    # Same warm-up for both arms, and the same initial evaluation.
    assert gt["initial_eval_gt_accuracy"]["mean"] == flip["initial_eval_gt_accuracy"]["mean"]
    assert len([p for p in (out / "_models").iterdir() if p.is_dir()]) == 1  # and its .lock file
    assert gt["reward/false_positive_rate"]["mean"] == 0.0
    assert flip["reward/false_positive_rate"]["mean"] > 0.0
    assert (out / "study.csv").read_text().count("\n") == 3  # header + 2 arms
    capsys.readouterr()

    started = time.time()
    assert main([str(study), "--out", str(out)]) == 0  # resume: nothing left to train
    assert time.time() - started < 10
    assert capsys.readouterr().err.count("already finished, skipped") == 2
