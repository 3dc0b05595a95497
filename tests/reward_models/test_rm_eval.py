"""rm-eval's metrics against hand-computed values, and the command on a tiny policy."""
import json
import math

import pytest
import torch

from rlvr.reward_models.metrics import format_rm_eval, pearson, rm_eval_metrics, within_prompt_variance

# 2 prompts x 3 samples; sample 0 of each prompt is the correct one.
PROXY = torch.tensor([[2.0, 1.0, 0.0], [0.5, 1.5, 0.7]], dtype=torch.float64)
GT = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
LOGP = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -2.0]], dtype=torch.float64)


def test_section4_metrics_variance_and_correlation_by_hand():
    m = rm_eval_metrics(PROXY, GT, LOGP)
    # pairs (y+, y-): p0 (2 vs 1), (2 vs 0): both right; p1 (0.5 vs 1.5), (0.5 vs 0.7): both wrong
    assert m["audit/ranking_pairs"] == 4
    assert m["audit/acc"] == pytest.approx(0.5)
    # p1's mean proxy is 0.9: the misranked 0.7 sits below it (forgiven), 1.5 does not
    assert m["audit/hacc"] == pytest.approx(0.75)
    # weights pi(y+) pi(y-): e^-3, e^-4 (p0), e^-2, e^-3 (p1)
    z = math.exp(-3) + math.exp(-4) + math.exp(-2) + math.exp(-3)
    assert m["audit/acc_w"] == pytest.approx((math.exp(-3) + math.exp(-4)) / z)
    assert m["audit/hacc_w"] == pytest.approx((2 * math.exp(-3) + math.exp(-4)) / z)
    # within-prompt variances 2/3 and 0.56/3, averaged
    assert m["reward/proxy_variance"] == pytest.approx((2 / 3 + 0.56 / 3) / 2)
    assert within_prompt_variance(PROXY) == m["reward/proxy_variance"]
    # pooled Pearson: cov sum 0.6, Sxx 2.575, Syy 4/3
    assert m["reward/proxy_gt_correlation"] == pytest.approx(0.6 / math.sqrt(2.575 * 4 / 3))
    assert m["gt/accuracy"] == pytest.approx(1 / 3)
    text = format_rm_eval({"rm_dir": "x", **m})
    assert "HAcc-W" in text and "0.7500" in text


def test_correlation_is_none_for_a_constant_reward():
    assert pearson(torch.ones(4), torch.tensor([0.0, 1.0, 0.0, 1.0])) is None


def test_rm_eval_command_writes_json_under_the_training_names(tmp_path, tiny_lm, capsys):
    from rlvr.cli import main
    from rlvr.reward_models.model import scalar_head_model

    model, tok = scalar_head_model(tiny_lm)
    rm = tmp_path / "rm"
    model.save_pretrained(rm)
    tok.save_pretrained(rm)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: {train_size: 100, eval_size: 16}\nrollout: {max_new_tokens: 4, samples_per_prompt: 4}\n")
    out = tmp_path / "eval.json"
    code = main(["rm-eval", str(rm), str(recipe), f"model.path={tiny_lm}", "--prompts", "6", "--normalize",
                 "whiten", "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["audit/prompts"] == 6 and result["audit/samples_per_prompt"] == 4
    assert result["design"] == {"name": "reward_model", "path": str(rm), "normalize": "whiten"}
    assert result["reward/proxy_variance"] > 0
    for key in ("audit/acc", "audit/acc_w", "audit/hacc", "audit/hacc_w", "reward/proxy_gt_correlation"):
        assert key in result
    assert "variance under the policy" in capsys.readouterr().out
