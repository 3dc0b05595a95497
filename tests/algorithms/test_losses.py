"""Policy losses, KL estimators and loss aggregation against hand-derived numbers."""
import math

import pytest
import torch

from rlvr.algorithms import aggregate, aggregation_weights, kl_penalty, policy_loss_terms

# four one-token sequences: ratios r = exp(lp - old) and one advantage each
RATIOS = [1.5, 0.5, 1.1, 4.0]
ADV = torch.tensor([1.0, -1.0, 1.0, -1.0])


def _lp(requires_grad=False):
    return torch.tensor([[math.log(r)] for r in RATIOS], requires_grad=requires_grad)


def test_symmetric_clip():
    loss, ratio, clipped = policy_loss_terms(_lp(), torch.zeros(4, 1), ADV, "ppo_clip", 0.2, 0.2)
    assert torch.allclose(ratio[:, 0], torch.tensor(RATIOS))
    # -min(rA, clip(r, .8, 1.2) A): 1.5,+ -> -1.2 (clipped); 0.5,- -> 0.8 (clipped);
    # 1.1,+ -> -1.1; 4.0,- -> max(4.0, 1.2) = 4.0 (unclipped branch)
    assert torch.allclose(loss[:, 0], torch.tensor([-1.2, 0.8, -1.1, 4.0]))
    assert clipped[:, 0].tolist() == [1.0, 1.0, 0.0, 0.0]


def test_clip_higher_moves_only_the_upper_bound():
    loss, _, clipped = policy_loss_terms(_lp(), torch.zeros(4, 1), ADV, "ppo_clip", 0.2, 0.28)
    assert torch.allclose(loss[:, 0], torch.tensor([-1.28, 0.8, -1.1, 4.0]))
    loss, _, _ = policy_loss_terms(_lp(), torch.zeros(4, 1), ADV, "ppo_clip", 0.4, 0.2)
    assert torch.allclose(loss[:, 0], torch.tensor([-1.2, 0.6, -1.1, 4.0]))  # 0.5 -> clip at 0.6


def test_dual_clip_caps_negative_advantage_loss_at_c():
    lp = _lp(requires_grad=True)
    loss, _, clipped = policy_loss_terms(lp, torch.zeros(4, 1), ADV, "ppo_clip", 0.2, 0.2, clip_ratio_c=3.0)
    assert torch.allclose(loss[:, 0], torch.tensor([-1.2, 0.8, -1.1, 3.0]))  # 4.0 -> -c A = 3
    assert clipped[:, 0].tolist() == [1.0, 1.0, 0.0, 1.0]
    loss.sum().backward()
    # d(-rA)/dlp = -A r: only the unclipped token 1.1 (A = +1) gets a gradient
    assert torch.allclose(lp.grad[:, 0], torch.tensor([0.0, 0.0, -1.1, 0.0]))
    # without the dual clip the 4.0 token's gradient is -A r = 4
    lp2 = _lp(requires_grad=True)
    policy_loss_terms(lp2, torch.zeros(4, 1), ADV, "ppo_clip", 0.2, 0.2)[0].sum().backward()
    assert lp2.grad[3, 0].item() == pytest.approx(4.0)


def test_dual_clip_needs_c_above_one():
    with pytest.raises(ValueError, match="clip_ratio_c"):
        policy_loss_terms(_lp(), torch.zeros(4, 1), ADV, "ppo_clip", 0.2, 0.2, clip_ratio_c=0.9)


def test_pg_is_ratio_times_advantage_without_clip():
    loss, _, clipped = policy_loss_terms(_lp(), torch.zeros(4, 1), ADV, "pg", 0.2, 0.2, clip_ratio_c=3.0)
    assert torch.allclose(loss[:, 0], torch.tensor([-1.5, 0.5, -1.1, 4.0]))
    assert clipped.sum().item() == 0.0


def test_on_policy_clipped_gradient_equals_plain_policy_gradient():
    grads = []
    for loss_name in ("ppo_clip", "pg"):
        lp = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]], requires_grad=True)
        loss, ratio, _ = policy_loss_terms(lp, lp.detach(), torch.tensor([2.0, -1.0]), loss_name, 0.2, 0.28)
        assert torch.equal(ratio, torch.ones(2, 2))
        loss.sum().backward()
        grads.append(lp.grad.clone())
    assert torch.equal(grads[0], grads[1])
    assert torch.allclose(grads[0], torch.tensor([[-2.0, -2.0], [1.0, 1.0]]))  # -A per token


def test_kl_estimators():
    lp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    d = math.log(0.5)  # ref - lp
    assert kl_penalty(lp, ref, "k1").item() == pytest.approx(-d)
    assert kl_penalty(lp, ref, "k2").item() == pytest.approx(0.5 * d * d)
    assert kl_penalty(lp, ref, "k3").item() == pytest.approx(0.5 - d - 1.0)  # 0.19315
    with pytest.raises(ValueError, match="kl_estimator"):
        kl_penalty(lp, ref, "k4")


# ragged batch: lengths 3, 1, 0 (an empty response); NaN where masked must not leak
LOSS_TOK = torch.tensor([[1.0, 2.0, 3.0, float("nan")], [4.0, 9.0, 9.0, 9.0], [5.0, 5.0, 5.0, 5.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])


@pytest.mark.parametrize("mode, expected", [
    ("token_mean", (1 + 2 + 3 + 4) / 4),  # 2.5
    ("seq_mean_token_mean", (2.0 + 4.0 + 0.0) / 3),  # per-sequence means 2, 4, 0 (empty)
    ("seq_mean_token_sum", (6.0 + 4.0 + 0.0) / 3),
    ("dr_grpo", (6.0 + 4.0) / (3 * 4)),  # constant 4
])
def test_aggregation_on_a_ragged_batch(mode, expected):
    assert aggregate(LOSS_TOK, MASK, mode, constant=4).item() == pytest.approx(expected)
    # split into row shards with global counts: the shares sum to the same value
    shares = 0.0
    for rows in (slice(0, 1), slice(1, 3)):
        w = aggregation_weights(MASK[rows], mode, global_tokens=4, global_sequences=3, constant=4)
        shares += torch.where(MASK[rows].bool(), LOSS_TOK[rows] * w, torch.zeros_like(w)).sum().item()
    assert shares == pytest.approx(expected)


def test_dr_grpo_aggregation_needs_its_constant():
    with pytest.raises(ValueError, match="loss_agg_constant"):
        aggregate(LOSS_TOK, MASK, "dr_grpo")
