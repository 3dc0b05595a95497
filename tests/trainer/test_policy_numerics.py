"""PolicyTrainer numerics in-process (one rank, gloo, no Ray): recomputed old log-probs,
the engine-vs-trainer mismatch metric, truncated IS, bf16 mixed precision, dropout off,
gradient checkpointing and the pad-token fallback, against hand-derived numbers.

Trainers built here share this process's one-rank process group (DeepSpeed caches its
groups, so it is created once and left until the module ends).
"""
import json
import math
import os
import shutil
from dataclasses import replace

import pytest
import torch

from rlvr.trainer.batch import make_train_batch
from rlvr.trainer.deepspeed_setup import disable_dropout

PROMPTS = [[20, 21, 15], [22, 15], [23, 24, 25, 15], [26, 15], [27, 28, 15], [29, 15], [30, 31, 15]]
RESPONSES = [[40, 41, 1], [42], [43, 44, 45, 46], [47, 1], [48, 49], [50, 51, 52], [53]]
N_TOKENS = 16  # 8 at even positions of the flattened responses, 8 at odd ones
EVEN, ODD = -0.5, 0.3  # engine log-prob minus the true one, per token position parity


@pytest.fixture(scope="module")
def make_trainer(make_rank):
    def make(model_dir, dtype="float32", algorithm=None, **trainer):
        cfg = {"zero_stage": 0, "micro_batch_size": 2, "lr": 0.0, "grad_clip": 1.0, **trainer}
        return make_rank(model_dir, cfg, algorithm, dtype=dtype)

    return make


@pytest.fixture(scope="module")
def odd_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with attention dropout 0.5 and no pad token (GPT-2 / Llama-3 style)."""
    out = tmp_path_factory.mktemp("odd_model")
    for f in os.listdir(tiny_model_dir):
        shutil.copy2(os.path.join(tiny_model_dir, f), out / f)
    config = json.loads((out / "config.json").read_text())
    config.update(attention_dropout=0.5, pad_token_id=None)
    (out / "config.json").write_text(json.dumps(config))
    return str(out)


@torch.no_grad()
def _true_logprobs(model_dir):
    """Per-token response log-probs from an unpadded fp32 HF forward (eval: no dropout)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    out = []
    for p, r in zip(PROMPTS, RESPONSES):
        ids = torch.tensor([p + r])
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], dim=-1)
        out.append(logp[torch.arange(ids.shape[1] - 1), ids[0, 1:]][len(p) - 1:].tolist())
    return out


def _perturbed_batch(model_dir, advantages=None):
    """Engine log-probs = true + EVEN / ODD by token parity; advantages +1 (clipping is one-sided)."""
    flat_index = 0
    engine = []
    for row in _true_logprobs(model_dir):
        engine.append([])
        for lp in row:
            engine[-1].append(lp + (EVEN if flat_index % 2 == 0 else ODD))
            flat_index += 1
    return make_train_batch(PROMPTS, RESPONSES, engine, advantages or [1.0] * len(PROMPTS), pad_id=0)


@pytest.fixture(scope="module")
def fp32_trainer(make_trainer, tiny_model_dir):
    return make_trainer(tiny_model_dir)  # lr 0: every call below sees the same policy


@pytest.mark.parametrize("updates", [1, 2])  # 2: a separate no-grad pass before the updates
def test_recomputed_old_logprobs_keep_the_ratio_at_one_and_measure_the_gap(fp32_trainer, tiny_model_dir, updates):
    fp32_trainer.cfg = replace(fp32_trainer.cfg, updates_per_step=updates)
    try:
        m = fp32_trainer.train_step(_perturbed_batch(tiny_model_dir))
    finally:
        fp32_trainer.cfg = replace(fp32_trainer.cfg, updates_per_step=1)
    assert m["policy/ratio_mean"] == 1.0 and m["policy/clip_fraction"] == 0.0
    assert m["policy/approx_kl"] == 0.0
    assert m["loss"] == pytest.approx(-1.0, abs=1e-6)  # ratio 1, advantage 1 on every token
    assert m["policy/logprob_mismatch_mean"] == pytest.approx((8 * 0.5 + 8 * 0.3) / N_TOKENS, abs=1e-5)
    assert m["policy/logprob_mismatch_max"] == pytest.approx(0.5, abs=1e-5)
    assert "policy/tis_weight_mean" not in m


def test_without_recompute_the_ratio_uses_engine_logprobs(fp32_trainer, tiny_model_dir):
    fp32_trainer.alg = replace(fp32_trainer.alg, recompute_logprobs=False)
    try:
        m = fp32_trainer.train_step(_perturbed_batch(tiny_model_dir))
    finally:
        fp32_trainer.alg = replace(fp32_trainer.alg, recompute_logprobs=True)
    # ratio = exp(-delta): e^0.5 = 1.649 is clipped to 1.2 (A > 0); e^-0.3 = 0.741 is not.
    assert m["policy/clip_fraction"] == pytest.approx(8 / N_TOKENS)
    assert m["policy/ratio_mean"] == pytest.approx((8 * math.exp(0.5) + 8 * math.exp(-0.3)) / N_TOKENS, abs=1e-5)
    assert m["loss"] == pytest.approx(-(8 * 1.2 + 8 * math.exp(-0.3)) / N_TOKENS, abs=1e-5)
    # the gap is still measured (from the first update's forward, before any step)
    assert m["policy/logprob_mismatch_mean"] == pytest.approx((8 * 0.5 + 8 * 0.3) / N_TOKENS, abs=1e-5)


def test_truncated_is_weights_the_loss_by_trainer_over_engine(fp32_trainer, tiny_model_dir):
    fp32_trainer.alg = replace(fp32_trainer.alg, tis_cap=1.5)
    try:
        m = fp32_trainer.train_step(_perturbed_batch(tiny_model_dir))
    finally:
        fp32_trainer.alg = replace(fp32_trainer.alg, tis_cap=0.0)
    # weight = min(pi_trainer / pi_engine, 1.5) = min(exp(-delta), 1.5): 1.5 (e^0.5 capped), e^-0.3.
    mean_weight = (8 * 1.5 + 8 * math.exp(-0.3)) / N_TOKENS
    assert m["policy/tis_weight_mean"] == pytest.approx(mean_weight, abs=1e-5)
    assert m["loss"] == pytest.approx(-mean_weight, abs=1e-5)  # ratio 1, advantage 1
    assert m["policy/ratio_mean"] == 1.0


def test_dropout_is_off_in_the_training_forward_and_missing_pad_falls_back_to_eos(make_trainer, odd_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(odd_model_dir)
    assert disable_dropout(model) > 0 and model.config.attention_dropout == 0.0
    assert all(getattr(m, "attention_dropout", 0.0) == 0.0 for m in model.modules())

    trainer = make_trainer(odd_model_dir, algorithm={"recompute_logprobs": False})
    assert trainer.pad_id == 1  # the tiny tokenizer's eos
    batch = make_train_batch(PROMPTS, RESPONSES, _true_logprobs(odd_model_dir), [1.0] * len(PROMPTS),
                             pad_id=trainer.pad_id)
    m = trainer.train_step(batch)
    # The train-mode forward reproduces eval-mode log-probs: with dropout 0.5 the ratio would
    # be far from 1 and clipping would fire.
    assert m["policy/ratio_mean"] == pytest.approx(1.0, abs=1e-5)
    assert m["policy/clip_fraction"] == 0.0
    assert m["policy/logprob_mismatch_max"] < 1e-5


def _master_dtypes(optimizer):
    """dtypes of the master weights a DeepSpeed optimizer wrapper steps (stage 0, 1-2, 3)."""
    for attr in ("fp32_groups", "single_partition_of_fp32_groups", "fp32_partitioned_groups_flat"):
        groups = getattr(optimizer, attr, None)
        if groups:
            return {t.dtype for g in groups for t in (g if isinstance(g, (list, tuple)) else [g])}
    raise AssertionError(f"{type(optimizer).__name__} holds no master weights")


@pytest.mark.parametrize("zero_stage", [0, 3])
def test_bf16_mixed_precision_keeps_fp32_masters_and_the_ratio_at_one(make_trainer, tiny_model_dir, zero_stage):
    trainer = make_trainer(tiny_model_dir, dtype="bfloat16", zero_stage=zero_stage, lr=1e-3)
    assert trainer.engine.bfloat16_enabled()
    from rlvr.trainer.deepspeed_setup import whole_parameters

    with whole_parameters(trainer.engine.module, trainer.cfg.zero_stage):
        assert {p.dtype for p in trainer.engine.module.parameters()} == {torch.bfloat16}
    assert _master_dtypes(trainer.engine.optimizer) == {torch.float32}
    before = trainer.full_state_dict()

    batch = make_train_batch(PROMPTS, RESPONSES, _true_logprobs(tiny_model_dir), [1.0, -1.0] * 3 + [0.5],
                             pad_id=trainer.pad_id)
    m = trainer.train_step(batch)
    # fp32 behaviour log-probs vs the bf16 trainer: a real gap, yet the ratio is exactly 1
    assert 1e-4 < m["policy/logprob_mismatch_mean"] < 0.1
    assert m["policy/ratio_mean"] == 1.0 and m["policy/clip_fraction"] == 0.0
    assert math.isfinite(m["loss"]) and m["policy/grad_norm"] > 0
    after = trainer.full_state_dict()
    assert after["model.embed_tokens.weight"].dtype == torch.bfloat16
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_gradient_checkpointing_gives_the_same_gradients(make_trainer, tiny_model_dir):
    batch = make_train_batch(PROMPTS, RESPONSES, _true_logprobs(tiny_model_dir), [1.0, -1.0] * 3 + [0.5],
                             pad_id=0)
    results = []
    for checkpointing in (False, True):
        trainer = make_trainer(tiny_model_dir, lr=1e-3, gradient_checkpointing=checkpointing)
        assert trainer.engine.module.is_gradient_checkpointing == checkpointing
        metrics = trainer.train_step(batch)
        results.append((metrics, trainer.full_state_dict()))
    (plain, plain_weights), (ckpt, ckpt_weights) = results
    assert ckpt["policy/grad_norm"] == pytest.approx(plain["policy/grad_norm"], rel=1e-6)
    assert ckpt["loss"] == pytest.approx(plain["loss"], abs=1e-7)
    # Adam's first step is ~lr * sign(g): equal gradients give (near-)equal weights
    assert max((plain_weights[k] - ckpt_weights[k]).abs().max().item() for k in plain_weights) < 1e-5
