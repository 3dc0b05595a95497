"""Sampled accuracy and unbiased pass@k against hand-computed values."""
import pytest
import torch

from rlvr.rewards.accuracy import pass_at_k, per_prompt_success, sampled_eval_metrics


def test_sampled_accuracy_and_pass_at_k_by_hand():
    correct = torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 1]], dtype=torch.bool)
    assert per_prompt_success(correct).tolist() == [0.25, 0.0, 0.75]
    m = sampled_eval_metrics(correct)
    assert m["eval/gt_accuracy_sampled"] == pytest.approx(1.0 / 3.0)
    assert m["eval/pass_at_k"] == pytest.approx(2.0 / 3.0)  # prompts 0 and 2 have a correct sample
    # pass@2 with n = 4: prompt 0: 1 - C(3,2)/C(4,2) = 1 - 3/6 = 0.5; prompt 1: 0; prompt 2: 1 - 0 = 1
    assert pass_at_k(correct, 2) == pytest.approx(0.5)
    # pass@1 is the mean per-prompt success
    assert pass_at_k(correct, 1) == pytest.approx(1.0 / 3.0)
    with pytest.raises(ValueError, match="k = 5"):
        pass_at_k(correct, 5)
    with pytest.raises(ValueError, match="prompts, samples"):
        per_prompt_success(torch.zeros(3, dtype=torch.bool))
