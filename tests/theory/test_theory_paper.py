"""The paper's Section 3.3 set via `rlvr theory --paper`, checked against hand-set expectations,
an independent plain-Python re-derivation, and the shipped recipes."""

import json
from pathlib import Path

import pytest
import yaml

from rlvr.theory import paper
from rlvr.theory.command import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper")
    assert main(["--paper", "--out", str(out), "--no-plot"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    results = {name: json.loads((out / name / "result.json").read_text()) for name in summary["runs"]}
    return summary, results


def _steps(results, name):
    return results[name]["steps_to_threshold"]


def test_proxy_beats_ground_truth_by_far_at_small_p_star(paper_run):
    _, results = paper_run
    gt, proxy = _steps(results, "paper_exact_pstar0.05_gt"), _steps(results, "paper_exact_pstar0.05_proxy")
    assert proxy is not None and proxy < 300
    assert gt is None  # stalls on y_med for all 50,000 steps
    assert abs(results["paper_exact_pstar0.05_gt"]["final_gt_reward"] - 0.8) < 0.01


def test_gap_shrinks_as_p_star_grows(paper_run):
    _, results = paper_run
    gt = [_steps(results, f"paper_exact_pstar{p:.2f}_gt") for p in paper.P_STARS]
    proxy = [_steps(results, f"paper_exact_pstar{p:.2f}_proxy") for p in paper.P_STARS]
    assert gt[0] is None and gt[1] > 5 * gt[2]  # super-linear in 1 / p*
    assert proxy[0] > proxy[1] > proxy[2]
    assert proxy[0] < 2.5 * proxy[2]  # roughly order 1 / p*
    for g, p in zip(gt[1:], proxy[1:]):
        assert g > 10 * p


def test_reinforce_variant_shows_the_same_ordering(paper_run):
    _, results = paper_run
    for p in paper.P_STARS:
        gt = _steps(results, f"paper_reinforce_pstar{p:.2f}_gt")
        proxy = _steps(results, f"paper_reinforce_pstar{p:.2f}_proxy")
        assert proxy is not None and (gt is None or gt > 5 * proxy)


def test_feature_similarity_variant(paper_run):
    _, results = paper_run
    neg, orth, pos = (_steps(results, f"paper_features_{v}") for v in ("neg", "orth", "pos"))
    assert neg is None and pos < orth  # similarity to y* turns y_med's pull into a pull toward y*


def test_y_med_error_categorized_and_confirmed_beneficial(paper_run):
    _, results = paper_run
    for name, result in results.items():
        if name.endswith("_proxy"):
            assert result["categories"] == {"1": "beneficial"}
            assert result["ablation"]["1"]["verdict"] == "beneficial"
            assert result["disagreements"] == []
        else:
            assert result["categories"] == {} and result["ablation"] == {}


def test_exact_numbers_match_independent_plain_python(paper_run, load_tool):
    _, results = paper_run
    check = load_tool("theory_independent_check.py")
    for p in paper.P_STARS:
        for reward in ("gt", "proxy"):
            steps, value = check.paper_exact_case(p, reward)
            result = results[f"paper_exact_pstar{p:.2f}_{reward}"]
            assert steps == result["steps_to_threshold"]
            if steps is None:
                assert value == pytest.approx(result["final_gt_reward"], abs=1e-12)


def test_summary_lists_every_comparison(paper_run):
    summary, results = paper_run
    assert len(summary["runs"]) == 15 and len(summary["gt_vs_proxy"]) == 6
    row = summary["gt_vs_proxy"][0]
    assert row == {"variant": "exact", "p_star": 0.05, "gt_steps": None,
                   "proxy_steps": _steps(results, "paper_exact_pstar0.05_proxy")}


@pytest.mark.parametrize("raw", paper.paper_configs(), ids=lambda raw: raw["name"])
def test_shipped_recipes_equal_the_paper_definitions(raw):
    path = REPO / "recipes" / "theory" / f"{raw['name']}.yaml"
    text = path.read_text()
    assert text.startswith(f"# rlvr theory recipes/theory/{raw['name']}.yaml")
    assert yaml.safe_load(text) == raw


def test_every_recipe_loads_and_starts_with_its_command():
    from rlvr.theory.config import load_config

    for path in sorted((REPO / "recipes" / "theory").glob("*.yaml")):
        assert path.read_text().startswith(f"# rlvr theory recipes/theory/{path.name} --out "), path
        load_config(path)
