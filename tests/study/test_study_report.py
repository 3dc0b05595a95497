"""The study report on hand-made run folders: per-run figures, mean/std over seeds,
steps-to-threshold, unfinished runs, CSV columns, the PNG and the console table."""
import csv
import json
import math
from pathlib import Path

import pytest

from rlvr.study.report import (METRICS, collect_runs, curve_area, format_table, run_stats, steps_to_threshold,
                               study_report, write_report)

SEEDS = [0, 1]
ARMS = {"good": [], "noisy": ["reward.design.name=flip"], "absent": ["steps=1"]}


def make_run(folder: Path, evals, harmful, step_s, status="finished", error=None):
    """A run folder as train() writes it: step 0 is the evaluation before training."""
    folder.mkdir(parents=True)
    rows = [{"step": 0, "eval/gt_accuracy": evals[0]}]
    for step in range(1, len(harmful) + 1):
        row = {"step": step, "errors/harmful": harmful[step - 1], "errors/beneficial": 0.0,
               "errors/benign": 0.5, "reward/false_positive_rate": 0.25,
               "reward/false_negative_rate": 0.0, "perf/step_s": step_s[step - 1]}
        if step in evals:
            row["eval/gt_accuracy"] = evals[step]
        rows.append(row)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {"status": status, **({"error": error} if error else {}),
               "audit": {"gt/accuracy": evals[0], "reward/false_positive_rate": 0.25, "audit/acc": None}}
    (folder / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def study_dir(tmp_path):
    make_run(tmp_path / "good__seed0", {0: 0.2, 2: 0.5, 4: 0.4}, [0.1, 0.3, 0.2, 0.2], [1, 3, 1, 3])
    make_run(tmp_path / "good__seed1", {0: 0.2, 2: 0.3, 4: 0.6}, [0.0] * 4, [1, 1, 1, 1])
    make_run(tmp_path / "noisy__seed0", {0: 0.2, 2: 0.3, 4: 0.35}, [0.5] * 4, [2, 2, 2, 2])
    make_run(tmp_path / "noisy__seed1", {0: 0.2}, [0.9], [9], status="failed", error="RuntimeError: boom")
    return tmp_path


def build(study_dir, threshold=0.45):
    runs = collect_runs(study_dir, list(ARMS), SEEDS)
    return study_report("toy", str(study_dir), SEEDS, threshold, ARMS, runs)


def test_run_stats_by_hand():
    rows = [{"step": 0, "eval/gt_accuracy": 0.2}, {"step": 1, "errors/harmful": 0.1, "perf/step_s": 1.0},
            {"step": 2, "errors/harmful": 0.3, "perf/step_s": 3.0, "eval/gt_accuracy": 0.5},
            {"step": 3, "errors/harmful": 0.2, "perf/step_s": 2.0, "eval/gt_accuracy": 0.4}]
    stats = run_stats(rows, threshold=0.45)
    assert stats["initial_eval_gt_accuracy"] == 0.2
    assert stats["final_eval_gt_accuracy"] == 0.4 and stats["best_eval_gt_accuracy"] == 0.5
    assert stats["steps_to_threshold"] == 2
    assert stats["errors/harmful"] == pytest.approx(0.2) and stats["perf/step_s"] == pytest.approx(2.0)
    assert stats["errors/benign"] is None  # never logged
    assert run_stats(rows, threshold=None)["steps_to_threshold"] is None
    assert steps_to_threshold([(0, 0.5), (10, 0.7)], 0.5) == 0  # the initial policy already is there
    assert steps_to_threshold([(0, 0.1), (10, 0.3)], 0.5) is None


def test_last_k_and_area_under_the_curve_by_hand():
    rows = [{"step": 0, "eval/gt_accuracy": 0.2}, {"step": 2, "eval/gt_accuracy": 0.5},
            {"step": 4, "eval/gt_accuracy": 0.4}, {"step": 8, "eval/gt_accuracy": 0.6}]
    stats = run_stats(rows, threshold=None, last_k=2)
    assert stats["last_k_eval_gt_accuracy"] == pytest.approx(0.5)  # (0.4 + 0.6) / 2
    # trapezoids: 2 * 0.35 + 2 * 0.45 + 4 * 0.5 = 3.6 over 8 steps
    assert stats["auc_eval_gt_accuracy"] == pytest.approx(0.45)
    assert run_stats(rows, None, last_k=10)["last_k_eval_gt_accuracy"] == pytest.approx(0.5)  # step 0 never counts
    assert curve_area([(0, 0.3)]) is None


def test_arm_means_and_std_over_seeds(study_dir):
    report = build(study_dir)
    good, noisy, absent = report["arms"]
    m = good["metrics"]
    assert good["n_finished"] == 2 and [r["status"] for r in good["runs"]] == ["finished", "finished"]
    assert m["initial_eval_gt_accuracy"]["mean"] == pytest.approx(0.2)
    assert m["initial_eval_gt_accuracy"]["std"] == pytest.approx(0.0)
    assert m["final_eval_gt_accuracy"]["mean"] == pytest.approx(0.5)
    assert m["final_eval_gt_accuracy"]["std"] == pytest.approx(math.sqrt(0.02))
    assert m["final_eval_gt_accuracy"]["per_seed"] == {"0": 0.4, "1": 0.6}
    assert m["best_eval_gt_accuracy"]["mean"] == pytest.approx(0.55)
    # Seed 0 reaches 0.45 at step 2, seed 1 at step 4.
    assert m["final_eval_gt_accuracy"]["se"] == pytest.approx(0.1)
    # t(0.975, 1) = 12.706: 0.5 +- 12.706 * 0.1
    assert m["final_eval_gt_accuracy"]["ci95"] == [pytest.approx(-0.7706, abs=1e-4), pytest.approx(1.7706, abs=1e-4)]
    assert {k: m["steps_to_threshold"][k] for k in ("mean", "std", "per_seed", "reached")} == \
        {"mean": 3.0, "std": pytest.approx(math.sqrt(2)), "per_seed": {"0": 2, "1": 4}, "reached": 2}
    assert m["errors/harmful"]["per_seed"] == {"0": pytest.approx(0.2), "1": 0.0}
    assert m["errors/harmful"]["mean"] == pytest.approx(0.1)
    assert m["perf/step_s"]["mean"] == pytest.approx(1.5)
    assert m["reward/false_positive_rate"]["mean"] == pytest.approx(0.25)
    assert good["curve"] == {"step": [0, 2, 4], "mean": [pytest.approx(0.2), pytest.approx(0.4), pytest.approx(0.5)],
                             "min": [0.2, 0.3, 0.4], "max": [0.2, 0.5, 0.6]}

    # The failed seed is recorded and left out of the figures; never reaching gives no mean.
    assert noisy["n_finished"] == 1
    assert noisy["runs"][1] == {"seed": 1, "run_name": "noisy__seed1", "status": "failed",
                                "error": "RuntimeError: boom"}
    assert noisy["metrics"]["final_eval_gt_accuracy"] == {"mean": 0.35, "std": None, "se": None, "ci95": None,
                                                          "n": 1, "per_seed": {"0": 0.35}}
    # Against the control ("good", the first arm): only seed 0 pairs; one pair gives no interval.
    assert "vs_control" not in good
    final = noisy["vs_control"]["final_eval_gt_accuracy"]
    assert final["n_pairs"] == 1 and final["diff_mean"] == pytest.approx(-0.05) and final["ci95"] is None
    assert final["p_value"] == 1.0  # both sign patterns of one difference are as extreme
    assert noisy["metrics"]["steps_to_threshold"]["reached"] == 0
    assert noisy["metrics"]["steps_to_threshold"]["mean"] is None
    assert absent["n_finished"] == 0 and {r["status"] for r in absent["runs"]} == {"missing"}
    assert all(absent["metrics"][k]["mean"] is None for k in METRICS)


def test_partly_reached_threshold_has_no_mean(study_dir):
    arm = build(study_dir, threshold=0.55)["arms"][0]["metrics"]["steps_to_threshold"]
    assert arm["per_seed"] == {"0": None, "1": 4} and arm["reached"] == 1 and arm["mean"] is None


def test_written_files_csv_columns_png_and_table(study_dir):
    report = build(study_dir)
    paths = write_report(report, study_dir)
    assert [p.name for p in paths] == ["study.json", "study.csv", "eval_gt_accuracy.png"]
    assert json.loads((study_dir / "study.json").read_text())["arms"][0]["metrics"]["final_eval_gt_accuracy"]["mean"] \
        == pytest.approx(0.5)
    with open(study_dir / "study.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["arm"] for r in rows] == ["good", "noisy", "absent"]
    header = list(rows[0])
    assert header[:3] == ["arm", "n_seeds", "n_finished"]
    for key in METRICS:
        assert [f"{key}_mean", f"{key}_std", f"{key}_ci95_lo", f"{key}_ci95_hi", f"{key}_seed0", f"{key}_seed1"] \
            == header[header.index(f"{key}_mean"):header.index(f"{key}_mean") + 6]
    assert "final_eval_gt_accuracy_vs_control_p" in header
    assert float(rows[1]["final_eval_gt_accuracy_vs_control_diff"]) == pytest.approx(-0.05)
    assert header[-2:] == ["status_seed0", "status_seed1"]
    assert float(rows[0]["final_eval_gt_accuracy_mean"]) == pytest.approx(0.5)
    assert rows[0]["steps_to_threshold_seed1"] == "4"
    assert rows[1]["final_eval_gt_accuracy_std"] == "" and rows[1]["status_seed1"] == "failed"
    png = (study_dir / "eval_gt_accuracy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000

    table = format_table(report).splitlines()
    assert table[0].split() == ["arm", "runs", "initial", "final", "best", "last3", "auc", "steps>=0.45",
                                "harmful", "beneficial", "benign", "fp_rate", "fn_rate", "s/step"]
    assert len({len(line) for line in table[:5]}) == 1  # aligned: every row as wide as the header
    assert table[2].split()[:8] == ["good", "2/2", "0.200±0.000", "0.500±0.141", "0.550±0.071", "0.450±0.000",
                                    "0.375±0.035", "3.0±1.4"]
    assert table[3].split()[:8] == ["noisy", "1/2", "0.200", "0.350", "0.350", "0.325", "0.287", "never"]
    assert table[4].split()[:3] == ["absent", "0/2", "-"]
    assert "  noisy seed 1: failed: RuntimeError: boom" in table
    assert "steps>=" not in format_table(build(study_dir, threshold=None))


def test_eval_metric_selects_the_curve(tmp_path):
    folder = tmp_path / "a__seed0"
    folder.mkdir()
    rows = [{"step": 0, "eval/gt_accuracy": 0.2, "eval/gt_accuracy_sampled": 0.15},
            {"step": 5, "eval/gt_accuracy": 0.6, "eval/gt_accuracy_sampled": 0.35}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "summary.json").write_text(json.dumps({"status": "finished"}))
    runs = collect_runs(tmp_path, ["a"], [0])
    report = study_report("toy", str(tmp_path), [0], 0.3, {"a": []}, runs, metric="eval/gt_accuracy_sampled")
    m = report["arms"][0]["metrics"]
    assert m["final_eval_gt_accuracy"]["mean"] == 0.35 and m["steps_to_threshold"]["mean"] == 5
    assert report["eval_metric"] == "eval/gt_accuracy_sampled"
    assert "are of eval/gt_accuracy_sampled" in format_table(report)


def test_audit_per_arm_in_report_and_table(study_dir):
    report = build(study_dir)
    good = report["arms"][0]
    assert good["audit"]["gt/accuracy"] == pytest.approx(0.2) and good["audit"]["audit/acc"] is None
    assert good["audit"]["reward/false_positive_rate"] == pytest.approx(0.25)
    assert report["arms"][2]["audit"] is None  # no finished run
    table = format_table(report)
    assert "audit before RL" in table and "initial policy under the proxy" in table
