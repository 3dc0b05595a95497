"""Advantage estimators against hand-derived numbers (rewards [P, G] -> advantages [P, G])."""
import math

import pytest
import torch

from rlvr.algorithms import compute_advantages, get_advantage_estimator

NAMES = ["grpo", "dr_grpo", "rloo", "reinforce", "reinforce_baseline", "reinforce_pp"]


def test_every_name_is_registered():
    for name in NAMES:
        assert callable(get_advantage_estimator(name))


def test_rloo_is_reward_minus_leave_one_out_mean():
    adv = compute_advantages("rloo", torch.tensor([[3.0, 1.0, 2.0], [1.0, 0.0, 0.0]]))
    # 3 - (1 + 2) / 2 = 1.5; 1 - (3 + 2) / 2 = -1.5; 2 - (3 + 1) / 2 = 0
    # 1 - 0 = 1; 0 - (1 + 0) / 2 = -0.5 (twice)
    assert torch.allclose(adv, torch.tensor([[1.5, -1.5, 0.0], [1.0, -0.5, -0.5]]))


def test_rloo_binary_group_is_g_over_g_minus_1_times_centered():
    adv = compute_advantages("rloo", torch.tensor([[1.0, 0.0, 0.0, 1.0]]))
    assert torch.allclose(adv, torch.tensor([[2 / 3, -2 / 3, -2 / 3, 2 / 3]]))


def test_rloo_single_sample_has_no_baseline_so_zero():
    assert torch.equal(compute_advantages("rloo", torch.tensor([[5.0], [1.0]])), torch.zeros(2, 1))


def test_dr_grpo_is_group_centered_without_std():
    adv = compute_advantages("dr_grpo", torch.tensor([[3.0, 1.0, 2.0], [0.0, 0.0, 3.0]]))
    assert torch.allclose(adv, torch.tensor([[1.0, -1.0, 0.0], [-1.0, -1.0, 2.0]]))


def test_grpo_keeps_normalize_std_option():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    assert torch.allclose(compute_advantages("grpo", r), torch.full((1, 4), 0.5 * math.sqrt(3)) * torch.tensor([1, -1, -1, 1]),
                          atol=1e-5)
    assert torch.allclose(compute_advantages("grpo", r, normalize_std=False), torch.tensor([[0.5, -0.5, -0.5, 0.5]]))


def test_reinforce_is_the_raw_reward_shift_and_scale_included():
    r = torch.tensor([[3.0, 1.0], [0.5, -1.0]])
    adv = compute_advantages("reinforce", r)
    assert torch.equal(adv, r) and adv.data_ptr() != r.data_ptr()


def test_reinforce_baseline_subtracts_the_batch_mean():
    adv = compute_advantages("reinforce_baseline", torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
    assert torch.allclose(adv, torch.tensor([[0.0, -1.0], [-1.0, 2.0]]))  # batch mean 1


def test_reinforce_pp_whitens_over_the_whole_batch():
    adv = compute_advantages("reinforce_pp", torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
    # centered [[0, -1], [-1, 2]]; population var (0 + 1 + 1 + 4) / 4 = 1.5
    s = math.sqrt(1.5)
    assert torch.allclose(adv, torch.tensor([[0.0, -1 / s], [-1 / s, 2 / s]]), atol=1e-6)
    # not per group: the first group alone would whiten to +-1
    assert not torch.allclose(adv[0], torch.tensor([1.0, -1.0]))


def test_reinforce_pp_constant_batch_is_zero():
    assert torch.equal(compute_advantages("reinforce_pp", torch.full((2, 3), 0.7)), torch.zeros(2, 3))


@pytest.mark.parametrize("name", NAMES)
def test_shape_is_checked(name):
    with pytest.raises(ValueError, match="prompts, group_size"):
        compute_advantages(name, torch.zeros(4))
