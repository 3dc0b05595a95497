"""Systematic error vs noise: every design declares its kind and its expected proxy, and labels
see only the systematic part (a flip design has no errors of the theory's kind)."""
from __future__ import annotations

import statistics

import pytest

from rlvr.rewards.categorize import noise_metrics, reward_error_metrics
from rlvr.rewards.designs import DESIGNS, RewardDesign, build_design
from rlvr.rewards.labels import label_group
from rlvr.rewards.types import GroundTruth, ScoredSample

# The smallest recipe mapping of each registered design (designs added later fall back to {name}).
MINIMAL = {"table": {"values": {"wrong": 0.5}}, "compose": {"designs": [{"name": "flip", "fp_rate": 0.2}]},
           "correct_errors": {"labels": ["harmful_hacking"]}}


def sample(prompt: str, j: int, gt: float, answer: str = "7") -> ScoredSample:
    return ScoredSample(prompt, j, f"{answer};", "7", 2, GroundTruth(gt, "ok" if gt >= 1 else "wrong", answer))


def groups(n: int = 200, g: int = 4):
    return [[sample(f"p{p}", j, 1.0 if (p + j) % 3 == 0 else 0.0, answer=str((p + j) % 3 + 6)) for j in range(g)]
            for p in range(n)]


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_every_registered_design_declares_its_errors_and_expected_proxy(name):
    try:
        design = build_design({"name": name, **MINIMAL.get(name, {})})
    except Exception as err:  # a design that needs more than defaults (e.g. a model path) is built by its own tests
        pytest.skip(f"{name} needs parameters: {err}")
    assert design.errors in ("systematic", "stochastic")
    assert type(design).expected_proxy is not None and callable(design.signal_map)
    group = groups(1)[0]
    proxy, expected, systematic = design.score_channels(group)
    assert proxy == design.score_group(group)  # the tracked path gives training's proxy exactly
    assert len(expected) == len(systematic) == len(group)
    if design.errors == "systematic":
        assert expected == pytest.approx(proxy)  # no noise: the proxy is its own expectation


def test_the_base_class_documents_the_interface():
    doc = RewardDesign.__doc__ + (RewardDesign.expected_proxy.__doc__ or "")
    assert "E[r_P | prompt, response]" in doc or "E[r_P | prompt, response]" in RewardDesign.expected_proxy.__doc__


@pytest.mark.parametrize("fp, fn", [(0.4, 0.0), (0.2, 0.1), (0.0, 0.3)])
def test_flip_noise_expected_proxy_and_no_systematic_labels(fp, fn):
    design = build_design({"name": "flip", "fp_rate": fp, "fn_rate": fn, "seed": 5})
    assert design.errors == "stochastic" and design.signal_map((0.0, 1.0)) == pytest.approx((fp, 1 - fp - fn))
    realized, labelled = 0, 0
    for group in groups():
        gts = [s.gt.score for s in group]
        proxy, expected, systematic = design.score_channels(group)
        assert expected == pytest.approx([fp + (1 - fp - fn) * g for g in gts])
        assert systematic == pytest.approx(gts)
        labelled += sum(name != "none" for name in label_group(gts, systematic))
        realized += sum(p != g for p, g in zip(proxy, gts))
    assert labelled == 0 and realized > 50  # many realized flips, none of them an error of the theory's kind


def test_persistent_flip_is_systematic_and_labelled():
    design = build_design({"name": "flip", "fp_rate": 0.5, "seed": 5, "persistent": True})
    assert design.errors == "systematic"
    labelled = 0
    for group in groups():
        gts = [s.gt.score for s in group]
        _, expected, systematic = design.score_channels(group)
        assert systematic == expected == design.score_group(group)
        labelled += sum(name != "none" for name in label_group(gts, systematic))
    assert labelled > 50


def test_random_reward_expected_proxy_is_its_mean():
    design = build_design({"name": "random", "p": 0.3, "seed": 2})
    assert design.errors == "stochastic" and design.signal_map((0.0, 1.0)) == (0.3, 0.0)
    _, expected, systematic = design.score_channels(groups(1)[0])
    assert expected == systematic == [0.3] * 4  # scale 0: nothing to undo


def test_backward_correction_undoes_the_flip_scale_and_affine_is_a_rescaling():
    fixed = build_design({"name": "compose", "designs": [{"name": "flip", "fp_rate": 0.2, "fn_rate": 0.1},
                                                         {"name": "backward_correction", "fp_rate": 0.2, "fn_rate": 0.1}]})
    assert fixed.signal_map((0.0, 1.0)) == pytest.approx((0.0, 1.0)) and fixed.errors == "stochastic"
    group = groups(1)[0]
    _, expected, systematic = fixed.score_channels(group)
    assert expected == pytest.approx([s.gt.score for s in group]) == systematic
    affine = build_design({"name": "affine", "scale": 2.0, "shift": -1.0})
    _, _, systematic = affine.score_channels(group)
    assert systematic == pytest.approx([s.gt.score for s in group])


def test_systematic_design_at_rate_below_one_is_stochastic_with_a_systematic_mean():
    design = build_design({"name": "systematic_false_positive", "rate": 0.5, "seed": 1})
    assert design.errors == "stochastic"
    group = [sample("p", j, 0.0, answer="6") for j in range(4)]
    _, expected, systematic = design.score_channels(group)
    assert expected == systematic == [0.5] * 4  # every wrong sample: half-rewarded on average


def test_noise_metrics_of_a_flip_design_recover_its_scale():
    design = build_design({"name": "flip", "fp_rate": 0.3, "fn_rate": 0.1, "seed": 0})
    import torch

    rows = [design.score_channels(g) for g in groups(400)]
    proxy = torch.tensor([r[0] for r in rows])
    expected = torch.tensor([r[1] for r in rows])
    gt = torch.tensor([[s.gt.score for s in g] for g in groups(400)])
    m = noise_metrics(proxy, gt, expected)
    assert m["reward/signal_scale"] == pytest.approx(0.6)
    # Var(r_P | y) = 0.3 * 0.7 (gt 0) or 0.1 * 0.9 (gt 1); a third of the samples pass
    want = (2 / 3) * 0.21 + (1 / 3) * 0.09
    assert m["reward/noise_var"] == pytest.approx(want, rel=0.1)
    metrics = reward_error_metrics(proxy, gt, expected=expected, systematic=torch.tensor([r[2] for r in rows]))
    assert metrics["errors/harmful"] == metrics["errors/beneficial"] == metrics["errors/benign"] == 0.0
    assert metrics["reward/error_rate"] > 0.1
    assert statistics.fmean(proxy.flatten().tolist()) == pytest.approx(0.3 + 0.6 / 3, abs=0.03)
