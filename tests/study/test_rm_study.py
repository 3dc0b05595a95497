"""The reward-model study kind: validation, and the correlation report on synthetic reward models."""
import json

import pytest

from rlvr.study.rm_study import (RMStudy, build_report, correlation_report, format_correlations, is_rm_study,
                                 per_rm_rows, rl_study_file, write_rm_report)
from rlvr.study.spec import StudyError


def arm(name, initial, final):
    metric = lambda v: {"mean": v}  # noqa: E731
    return {"arm": name, "n_finished": 1, "metrics": {"initial_eval_gt_accuracy": metric(initial),
                                                      "final_eval_gt_accuracy": metric(final),
                                                      "last_k_eval_gt_accuracy": metric(final)}}


def synthetic(n=12):
    """n reward models whose gain follows HAcc exactly and Acc only loosely."""
    records, arms = {}, []
    for i in range(n):
        hacc, acc = 0.5 + 0.04 * i, 0.5 + 0.04 * ((i * 5) % n)
        records[f"rm{i}"] = {"eval": {"audit/acc": acc, "audit/acc_w": acc, "audit/hacc": hacc, "audit/hacc_w": hacc,
                                      "reward/proxy_variance": 0.1 * (i % 3), "reward/proxy_gt_correlation": 0.2},
                             "train": {"heldout/pairwise_accuracy": acc, "rm": {"flip_rate": 0.0},
                                       "pairs_measured": {"flip_share": 0.0, "bias_rate": None, "class_share": 0.0}}}
        arms.append(arm(f"rm{i}", 0.2, 0.2 + 0.02 * i))
    return records, arms


def test_rows_correlations_and_the_difference_on_synthetic_reward_models():
    records, arms = synthetic()
    rows = per_rm_rows(list(records), records, arms, "final_eval_gt_accuracy")
    assert rows[3]["gain"] == pytest.approx(0.06) and rows[3]["HAcc"] == pytest.approx(0.62)
    report = correlation_report(rows, resamples=300)
    assert report["correlations"]["HAcc"]["spearman"]["r"] == pytest.approx(1.0)
    assert report["correlations"]["HAcc"]["pearson"]["r"] == pytest.approx(1.0)
    acc_r = report["correlations"]["Acc"]["spearman"]["r"]
    assert acc_r < 0.9
    diff = report["differences"]["HAcc - Acc"]["spearman"]
    assert diff["diff"] == pytest.approx(1.0 - acc_r)
    assert diff["ci95"][0] <= diff["diff"] <= diff["ci95"][1]
    assert report["correlations"]["corr_gt"]["spearman"]["r"] is None  # constant column: undefined


def test_a_reward_model_without_finished_runs_has_no_gain_and_is_left_out():
    records, arms = synthetic(4)
    rows = per_rm_rows(list(records), records, arms[:3], "final_eval_gt_accuracy")
    assert rows[3]["gain"] is None and rows[3]["n_seeds_finished"] == 0
    assert correlation_report(rows, resamples=50)["n_with_gain"] == 3


def write_study(tmp_path, text):
    (tmp_path / "r.yaml").write_text("steps: 2\n")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


GOOD = """kind: reward_models
recipe: r.yaml
seeds: [0]
rm_train: [rm.pairs=50]
design: {normalize: whiten}
reward_models:
  clean: []
  flip: [rm.flip_rate=0.2]
"""


def test_study_file_is_validated_and_its_rl_arms_point_at_the_reward_models(tmp_path):
    path = write_study(tmp_path, GOOD)
    assert is_rm_study(path)
    study = RMStudy(path, out=str(tmp_path / "out"))
    assert study.models["flip"].flip_rate == 0.2 and study.models["flip"].pairs == 50
    assert study.cfg.output_dir == str(tmp_path / "out")
    spec = rl_study_file(study).read_text()
    assert "ground_truth: []" in spec
    assert f'path: "{tmp_path / "out" / "reward_models" / "flip"}"' in spec and 'normalize: "whiten"' in spec
    for bad, message in ((GOOD.replace("rm.flip_rate=0.2", "rm.flip_rate=3"), "rm.flip_rate = 3"),
                         (GOOD.replace("seeds: [0]", "seedz: [0]"), "unknown key 'seedz'"),
                         (GOOD.replace("rm.pairs=50", "steps=3"), "is not an rm.<knob>"),
                         (GOOD.replace("design: {normalize: whiten}", "design: {path: x}"), "design.path"),
                         (GOOD.replace("  flip: [rm.flip_rate=0.2]\n", ""), "at least two")):
        with pytest.raises(StudyError, match=message.replace(".", r"\.").replace("<", ".")):
            RMStudy(write_study(tmp_path, bad))


def test_report_files_and_table(tmp_path):
    records, arms = synthetic(5)
    path = write_study(tmp_path, GOOD)
    study = RMStudy(path, out=str(tmp_path / "out"))
    study.models = {name: None for name in records}
    study.resamples = 100
    report = build_report(study, records, {"arms": [arm("ground_truth", 0.2, 0.25), *arms]})
    assert report["gt_gain"] == pytest.approx(0.05)
    paths = write_rm_report(report, tmp_path / "out")
    assert {p.name for p in paths} >= {"rm_study.json", "rm_study.csv", "scatter_HAcc.png", "scatter_variance.png"}
    assert json.loads((tmp_path / "out" / "rm_study.json").read_text())["n_reward_models"] == 5
    table = format_correlations(report)
    assert "HAcc - Acc" in table and "spearman" in table and "rm4" in table


def test_shipped_reward_model_study_validates_with_at_least_twelve_reward_models():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "recipes" / "studies" / "rm_metrics.yaml"
    assert path.read_text().startswith("# rlvr study recipes/studies/rm_metrics.yaml\n") and is_rm_study(path)
    study = RMStudy(path)
    assert len(study.models) >= 12 and study.cfg.task.name == "arithmetic"
    assert {rm.flip_rate for rm in study.models.values()} >= {0.0, 0.2, 0.45}
    assert {rm.bias for rm in study.models.values()} == {"none", "off_by_one", "longer"}
