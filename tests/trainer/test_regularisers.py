"""Regulariser directions, on one in-process PolicyTrainer rank (world size 1, gloo, ZeRO-0).

With zero advantages the clipped surrogate is exactly zero, so the update follows the
regularisers alone: a KL penalty must pull the policy back towards the reference and an
entropy bonus must raise the entropy. A sign flipped in the trainer's objective reverses them.
"""
from dataclasses import replace

import pytest

from rlvr.trainer import make_train_batch

PROMPTS = [[20, 21, 15], [22, 15], [23, 24, 25, 15], [26, 15], [27, 28, 15], [29, 15]]
RESPONSES = [[40, 41, 1], [42], [43, 44, 45, 46], [47, 1], [48, 49], [50, 51, 52]]
STEPS = 4


def _zero_advantage_batch():
    logprobs = [[0.0] * len(r) for r in RESPONSES]  # unused: with A = 0 the surrogate is 0
    return make_train_batch(PROMPTS, RESPONSES, logprobs, [0.0] * len(PROMPTS), pad_id=0)


@pytest.fixture(scope="module")
def trainer(make_rank, tiny_model_dir):
    """One rank with a reference model (kl_coef > 0 at start, so the reference exists)."""
    return make_rank(tiny_model_dir, {"zero_stage": 0, "micro_batch_size": 64, "lr": 1e-2, "grad_clip": 1.0},
                     {"kl_coef": 0.1})


def _set(rank, lr, kl_coef, entropy_coef):
    rank.alg = replace(rank.alg, kl_coef=kl_coef, entropy_coef=entropy_coef)
    for group in rank.engine.optimizer.param_groups:
        group["lr"] = lr


def _move_away(rank):
    """Sharpen the policy onto RESPONSES (advantage +1, no regularisers): its entropy falls and
    it leaves the reference. Adam's moments are then reset so no momentum carries over."""
    _set(rank, lr=1e-2, kl_coef=0.0, entropy_coef=0.0)
    logprobs = [[0.0] * len(r) for r in RESPONSES]  # ratio = p(token) < 1: never clipped
    batch = make_train_batch(PROMPTS, RESPONSES, logprobs, [1.0] * len(PROMPTS), pad_id=0)
    for _ in range(6):
        rank.train_step(batch)
    rank.engine.optimizer.state.clear()


def _run(rank, kl_coef, entropy_coef):
    """Metrics of STEPS + 1 zero-advantage steps (each measured before its update)."""
    _move_away(rank)
    _set(rank, lr=1e-3, kl_coef=kl_coef, entropy_coef=entropy_coef)
    return [rank.train_step(_zero_advantage_batch()) for _ in range(STEPS + 1)]


def test_kl_penalty_pulls_the_policy_towards_the_reference(trainer):
    history = _run(trainer, kl_coef=0.1, entropy_coef=0.0)
    kl = [m["policy/kl_to_ref"] for m in history]
    assert kl[0] > 0.5  # sharpening moved the policy away from the reference
    assert all(b < a for a, b in zip(kl, kl[1:])), kl
    assert kl[-1] < 0.8 * kl[0], kl


def test_entropy_bonus_raises_the_entropy(trainer):
    history = _run(trainer, kl_coef=0.0, entropy_coef=0.05)
    entropy = [m["policy/entropy"] for m in history]
    assert all(b > a for a, b in zip(entropy, entropy[1:])), entropy
    assert entropy[-1] > entropy[0] + 0.3, entropy
    # kl_coef = 0: the KL is still measured against the reference, but not optimised
    assert all(m["loss"] == pytest.approx(-0.05 * m["policy/entropy"], rel=1e-5) for m in history)
