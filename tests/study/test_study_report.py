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
    # Never reaching 0.45 by step 4 is censored at the horizon: the seed counts 4 steps, not dropped.
    steps = noisy["metrics"]["steps_to_threshold"]
    assert steps["reached"] == 0 and steps["censored"] == 1 and steps["per_seed"] == {"0": 4}
    assert steps["mean"] == 4.0 and noisy["metrics"]["threshold_reached"]["per_seed"] == {"0": 0.0}
    assert absent["n_finished"] == 0 and {r["status"] for r in absent["runs"]} == {"missing"}
    assert all(absent["metrics"][k]["mean"] is None for k in METRICS)


def test_never_reaching_the_threshold_is_censored_at_the_horizon(study_dir):
    # good: seed 0 peaks at 0.5 (never 0.55; horizon step 4), seed 1 reaches 0.6 at step 4.
    report = build(study_dir, threshold=0.55)
    good = report["arms"][0]["metrics"]
    steps = good["steps_to_threshold"]
    assert steps["per_seed"] == {"0": 4, "1": 4} and steps["reached"] == 1 and steps["censored"] == 1
    assert steps["mean"] == 4.0 and good["threshold_reached"]["mean"] == 0.5
    assert "4.0±0.0 (1/2)" in format_table(report)  # reached in 1 of 2 seeds


def test_steps_comparison_keeps_every_seed_and_uses_the_restricted_mean():
    # Arm reaches at 10, 20 and never (horizon 60) on seeds 0-2; control at 20, 30, 30.
    # Dropping the censored seed (the old rule) would read -10 (faster) from 2 pairs; the restricted
    # means give (10 - 20 + 20 - 30 + 60 - 30) / 3 = +3.33 (slower) from 3 pairs.
    def run(steps_reached, horizon=60):
        rows = [{"step": 0, "eval/gt_accuracy": 0.1}]
        rows += [{"step": s, "eval/gt_accuracy": 0.9 if steps_reached is not None and s >= steps_reached else 0.2}
                 for s in range(10, horizon + 1, 10)]
        return {"status": "finished", "rows": rows}

    arm = {"seed": None, "run_name": "", "error": None}
    runs = {"arm": [{**arm, "seed": s, **run(v)} for s, v in enumerate([10, 20, None])],
            "gt": [{**arm, "seed": s, **run(v)} for s, v in enumerate([20, 30, 30])]}
    report = study_report("toy", "x", [0, 1, 2], 0.5, {"gt": [], "arm": []}, runs, control="gt")
    c = report["comparisons"][0]["metrics"]["steps_to_threshold"]
    assert c["n_pairs"] == 3 and c["diff_mean"] == pytest.approx(10 / 3)
    assert c["p_value"] == 1.0  # diffs -10, -10, +30: |sum| 10; every sign pattern reaches |sum| >= 10
    assert report["arms"][1]["metrics"]["steps_to_threshold"]["reached"] == 2


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


def test_graded_ground_truth_is_a_selectable_study_metric(tmp_path):
    folder = tmp_path / "a__seed0"
    folder.mkdir()
    rows = [{"step": 0, "eval/gt_accuracy": 0.1, "eval/gt_reward_mean": 0.30},
            {"step": 5, "eval/gt_accuracy": 0.2, "eval/gt_reward_mean": 0.55}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "summary.json").write_text(json.dumps({"status": "finished"}))
    report = study_report("toy", str(tmp_path), [0], None, {"a": []}, collect_runs(tmp_path, ["a"], [0]),
                          metric="eval/gt_reward_mean")
    assert report["arms"][0]["metrics"]["final_eval_gt_accuracy"]["mean"] == 0.55
    assert "are of eval/gt_reward_mean" in format_table(report)


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


# ---- blocks, Holm, and a report from stored per-seed values alone -----------------------------------
def _p_t_df2(diffs):
    """Two-sided paired t-test p for 3 pairs, closed form: P(|T_2| > t) = 1 - t / sqrt(2 + t^2)."""
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    t = abs(mean) / (sd / math.sqrt(3))
    return 1 - t / math.sqrt(2 + t * t)


HAND_STUDY = {
    "study": "pc", "seeds": [0, 1, 2], "threshold": None, "primary_metric": "final_eval_gt_accuracy",
    "blocks": {"easy": ["binary_easy", "partial_easy"], "rare": ["binary_rare", "partial_rare"]},
    "control": {"easy": "binary_easy", "rare": "binary_rare"},
    "interactions": [{"name": "(partial_rare - binary_rare) - (partial_easy - binary_easy)",
                      "first": ["partial_rare", "binary_rare"], "second": ["partial_easy", "binary_easy"]}],
    "arms": [{"arm": arm, "metrics": {"final_eval_gt_accuracy": {"per_seed": dict(zip("012", values))}}}
             for arm, values in (("binary_easy", [0.50, 0.60, 0.55]), ("partial_easy", [0.40, 0.52, 0.44]),
                                 ("binary_rare", [0.10, 0.20, 0.15]), ("partial_rare", [0.14, 0.21, 0.22]))],
}


def test_blocks_holm_and_rerender_from_a_hand_written_study_json(tmp_path, capsys):
    from rlvr.cli import main as cli_main

    (tmp_path / "study.json").write_text(json.dumps(HAND_STUDY))
    assert cli_main(["report", str(tmp_path)]) == 0  # no run folders: from the per-seed values
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "study.json").read_text())
    easy, rare = report["comparisons"]
    # Each partial arm against the binary arm of its own block, never the other block's.
    assert [(c["block"], c["arm"], c["reference"]) for c in report["comparisons"]] == \
        [("easy", "partial_easy", "binary_easy"), ("rare", "partial_rare", "binary_rare")]
    e, r = easy["metrics"]["final_eval_gt_accuracy"], rare["metrics"]["final_eval_gt_accuracy"]
    i = report["interactions"][0]["metrics"]["final_eval_gt_accuracy"]
    d_easy, d_rare = [-0.10, -0.08, -0.11], [0.04, 0.01, 0.07]
    d_inter = [b - a for a, b in zip(d_easy, d_rare)]  # 0.14, 0.09, 0.18
    assert e["diff_mean"] == pytest.approx(-0.29 / 3) and r["diff_mean"] == pytest.approx(0.04)
    assert r["diff_sd"] == pytest.approx(0.03) and i["diff_mean"] == pytest.approx(0.41 / 3)
    # t(0.975, 2) = 4.3027: rare's interval 0.04 +- 4.3027 * 0.03 / sqrt(3)
    assert r["ci95"] == [pytest.approx(0.04 - 0.074525, abs=1e-5), pytest.approx(0.04 + 0.074525, abs=1e-5)]
    p_easy, p_rare, p_inter = _p_t_df2(d_easy), _p_t_df2(d_rare), _p_t_df2(d_inter)  # 0.0082, 0.1472, 0.0344
    assert (e["p_t"], r["p_t"], i["p_t"]) == (pytest.approx(p_easy), pytest.approx(p_rare), pytest.approx(p_inter))
    # Holm over the family of 3: sorted 0.0082 (x3), 0.0344 (x2), 0.1472 (x1, then the running max).
    assert e["p_t_holm"] == pytest.approx(3 * p_easy) and i["p_t_holm"] == pytest.approx(2 * p_inter)
    assert r["p_t_holm"] == pytest.approx(max(2 * p_inter, p_rare))
    assert e["family_size"] == 3 and e["separable_holm"] is True
    assert i["separable"] is True and i["separable_holm"] is False  # t = 5.25 > 4.30, but 0.069 > 0.05 after Holm
    # Sign-flip p on 3 pairs: 0.25 for same-sign differences; Holm: 0.75, 0.75, 0.75.
    assert (e["p_value"], e["p_holm"]) == (0.25, pytest.approx(0.75))
    # Other metrics are exploratory: no Holm fields.
    assert "p_t_holm" not in easy["metrics"]["last_k_eval_gt_accuracy"]
    assert report["arms"][1]["vs_control"] == easy["metrics"]  # the arm's own block control

    assert "block easy: paired by seed against the control (binary_easy)" in printed
    assert "block rare: paired by seed against the control (binary_rare)" in printed
    assert "partial_rare - binary_easy" not in printed
    assert "primary metric: final_eval_gt_accuracy" in printed and "final*" in printed
    assert (f"Holm over 3 primary comparisons: t-test p = {2 * p_inter:.3g}" in printed
            and "the interval excludes 0 but not after Holm's correction" in printed)
    assert "partial_easy vs binary_easy: final eval/gt_accuracy -0.097" in printed
    with open(tmp_path / "study.csv") as f:
        rows = {row["arm"]: row for row in csv.DictReader(f)}
    assert rows["partial_rare"]["reference"] == "binary_rare" and rows["partial_rare"]["block"] == "rare"
    assert rows["partial_rare"]["final_eval_gt_accuracy_seed2"] == "0.22"
    assert float(rows["partial_rare"]["final_eval_gt_accuracy_vs_control_diff"]) == pytest.approx(0.04)

    # The rewritten study.json renders the same report again (the round trip is stable).
    capsys.readouterr()
    assert cli_main(["report", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "study.json").read_text()) == report
    assert capsys.readouterr().out == printed


def test_without_a_primary_metric_every_p_is_exploratory(tmp_path):
    from rlvr.study.report import report_from_values

    stored = {k: v for k, v in HAND_STUDY.items() if k not in ("primary_metric", "interactions")}
    report = report_from_values(stored)
    assert report["primary_metric"] is None
    assert all("p_t_holm" not in c["metrics"]["final_eval_gt_accuracy"] for c in report["comparisons"])
    assert "no primary_metric declared: every p-value below is uncorrected and exploratory" in format_table(report)
