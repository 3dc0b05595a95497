"""Bradley-Terry loss against hand values, and training on a toy separable pair set."""
import math

import pytest
import torch

from rlvr.reward_models.bradley_terry import bt_loss, pairwise_accuracy


def test_bt_loss_is_mean_log_one_plus_exp_of_minus_margin():
    chosen, rejected = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([0.0, 0.0, 1.0])
    # margins 2, 0, -2: log(1 + e^-2) = 0.126928, log 2 = 0.693147, log(1 + e^2) = 2.126928
    assert bt_loss(chosen, rejected).item() == pytest.approx((0.126928 + 0.693147 + 2.126928) / 3, abs=1e-6)
    assert bt_loss(torch.tensor([0.0]), torch.tensor([0.0])).item() == pytest.approx(math.log(2))


def test_bt_loss_gradient_pushes_chosen_up_by_sigmoid_of_minus_margin():
    chosen = torch.tensor([1.0], requires_grad=True)
    bt_loss(chosen, torch.tensor([0.0])).backward()
    assert chosen.grad.item() == pytest.approx(-1 / (1 + math.e), abs=1e-6)  # -sigmoid(-1)


def test_pairwise_accuracy_counts_ties_as_wrong_and_shapes_are_checked():
    assert pairwise_accuracy(torch.tensor([1.0, 2.0, 0.0, 5.0]), torch.tensor([0.0, 2.0, 1.0, 4.0])) == 0.5
    with pytest.raises(ValueError):
        bt_loss(torch.tensor([1.0, 2.0]), torch.tensor([1.0]))


def test_training_on_a_separable_toy_set_ranks_held_out_pairs_perfectly(tiny_lm):
    from rlvr.reward_models.model import scalar_head_model
    from rlvr.reward_models.training import pair_accuracy, train_bradley_terry

    torch.manual_seed(0)
    model, tok = scalar_head_model(tiny_lm)
    # Separable by the last character: every chosen response ends in "a;", every rejected in "b;".
    pairs = [{"prompt": f"{i}+{j}=", "chosen": f"{i + j}a;", "rejected": f"{i + j}b;"}
             for i in range(10, 30) for j in range(10, 13)]
    train, held_out = pairs[:40], pairs[40:]
    curve = train_bradley_terry(model, tok, train, steps=40, batch_size=16, lr=3e-3, log_every=10)
    assert [row["step"] for row in curve] == [10, 20, 30, 40]
    assert curve[-1]["loss"] < curve[0]["loss"]
    assert pair_accuracy(model, tok, held_out) == 1.0
