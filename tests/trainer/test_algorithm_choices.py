"""Algorithm choices on one in-process PolicyTrainer rank (world size 1, gloo, ZeRO-0).

On-policy (old log-probs recomputed, lr 0) every ratio is 1, so each token's loss is -A and
the aggregated loss has a hand-derived value per `algorithm.loss_agg`; the micro-batch size
must change neither it nor the gradient. The process group is shared with the other
in-process trainer modules and never destroyed (DeepSpeed cannot set up a second one).
"""
import math
from dataclasses import replace

import pytest
import torch

from rlvr.algorithms import compute_advantages
from rlvr.trainer import make_train_batch

PROMPTS = [[20, 21, 15], [22, 15], [23, 24, 25, 15], [26, 15], [27, 28, 15], [29, 15], [30, 31, 15], [32, 15]]
RESPONSES = [[40, 41, 1], [42], [43, 44, 45, 46], [47, 1], [48, 49], [50, 51, 52], [53], [54, 55]]
ADV = [1.0, -1.0, 0.5, 2.0, 0.0, -0.5, 1.0, -2.0]
# sum_b A_b n_b = 3 - 1 + 2 + 4 + 0 - 1.5 + 1 - 4 = 3.5 over 18 tokens; sum_b A_b = 1.0; 8 sequences
EXPECTED_LOSS = {
    "token_mean": -3.5 / 18,
    "seq_mean_token_mean": -1.0 / 8,
    "seq_mean_token_sum": -3.5 / 8,
    "dr_grpo": -3.5 / (8 * 6),  # loss_agg_constant 6
}


def _batch(advantages=ADV):
    logprobs = [[0.0] * len(r) for r in RESPONSES]  # engine's: unused with recomputed old log-probs
    return make_train_batch(PROMPTS, RESPONSES, logprobs, list(advantages), pad_id=0)


@pytest.fixture(scope="module")
def rank(make_rank, tiny_model_dir):
    return make_rank(tiny_model_dir, {"zero_stage": 0, "micro_batch_size": 8, "lr": 0.0, "grad_clip": 1e6},
                     {"loss_agg_constant": 6, "log_kl_to_init": True})


def _step(rank, micro=8, trainer_cfg=None, **alg):
    saved_cfg, saved_alg = rank.cfg, rank.alg
    rank.cfg = replace(rank.cfg, micro_batch_size=micro, **(trainer_cfg or {}))
    rank.alg = replace(rank.alg, **alg)
    try:
        return rank.train_step(_batch())
    finally:
        rank.cfg, rank.alg = saved_cfg, saved_alg


@pytest.mark.parametrize("mode", sorted(EXPECTED_LOSS))
def test_aggregation_loss_and_gradient_do_not_depend_on_micro_batches(rank, mode):
    one = _step(rank, micro=8, loss_agg=mode)
    several = _step(rank, micro=3, loss_agg=mode)  # 3 micro-batches of 3, 3, 2 rows
    assert one["policy/ratio_mean"] == pytest.approx(1.0, abs=1e-6)
    assert one["loss"] == pytest.approx(EXPECTED_LOSS[mode], abs=1e-6)
    assert several["loss"] == pytest.approx(EXPECTED_LOSS[mode], abs=1e-6)
    assert several["policy/grad_norm"] == pytest.approx(one["policy/grad_norm"], rel=1e-5)


def test_aggregation_modes_give_different_gradients(rank):
    norms = {mode: _step(rank, loss_agg=mode)["policy/grad_norm"] for mode in EXPECTED_LOSS}
    assert len({round(v, 6) for v in norms.values()}) == len(norms)


def test_epochs_and_minibatches_run_that_many_steps_with_old_logprobs_recomputed_once(rank):
    before = rank.engine.global_steps
    m = _step(rank, micro=2, trainer_cfg={"ppo_epochs": 2, "minibatches_per_step": 2})
    assert rank.engine.global_steps - before == 4
    assert m["policy/ratio_mean"] == pytest.approx(1.0, abs=1e-6) and m["policy/clip_fraction"] == 0.0
    # token_mean per minibatch: rows 0-3 (10 tokens, sum A n = 8) and rows 4-7 (8 tokens, -4.5)
    assert m["loss"] == pytest.approx((-8 / 10 + 4.5 / 8) / 2, abs=1e-6)


def test_kl_to_init_is_logged_without_kl_in_the_loss(rank):
    m = _step(rank, kl_coef=0.0)
    assert m["policy/kl_to_init"] == pytest.approx(0.0, abs=1e-6)  # lr 0: still the initial policy
    assert "policy/kl_to_ref" not in m and math.isfinite(m["policy/entropy"])


@pytest.mark.parametrize("loss", ["ppo_clip", "pg"])
@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "reinforce", "reinforce_baseline", "reinforce_pp"])
def test_every_advantage_and_loss_trains(rank, name, loss):
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.5, 0.0, 1.0, 0.0]])
    adv = compute_advantages(name, rewards).flatten().tolist()
    before = rank.state_digest()
    for group in rank.engine.optimizer.param_groups:
        group["lr"] = 1e-3
    saved = rank.alg
    rank.alg = replace(rank.alg, name=name, loss=loss, kl_coef=0.01, kl_estimator="k2")
    try:
        m = rank.train_step(_batch(adv))
    finally:
        rank.alg = saved
        for group in rank.engine.optimizer.param_groups:
            group["lr"] = 0.0
    assert rank.state_digest() != before
    assert all(math.isfinite(v) for v in m.values())


@pytest.mark.parametrize("temperature", [0.7, 1.0])
def test_trainer_logprobs_at_t_equal_the_hf_engines_at_t(rank, tiny_model_dir, temperature):
    from rlvr.rollout.hf_engine import HFEngine

    engine = HFEngine(tiny_model_dir, device="cpu")
    engine.load_weights(rank.full_state_dict())  # the smoke steps above moved the policy
    groups = engine.generate(PROMPTS[:4], n=2, max_new_tokens=5, temperature=temperature, seed=3)
    gens = [g for group in groups for g in group]
    batch = make_train_batch([p for p in PROMPTS[:4] for _ in range(2)], [g.token_ids for g in gens],
                             [g.logprobs for g in gens], [1.0] * len(gens), pad_id=0)
    saved = rank.alg
    rank.alg = replace(rank.alg, recompute_logprobs=False)  # the ratio's old log-probs: the engine's
    try:
        at_t = rank.train_step(batch, temperature=temperature)
        at_1 = rank.train_step(batch, temperature=1.0)
    finally:
        rank.alg = saved
    assert at_t["policy/ratio_mean"] == pytest.approx(1.0, abs=1e-4)
    assert at_t["policy/logprob_mismatch_max"] < 1e-4
    if temperature != 1.0:  # scoring at T = 1 what was sampled at 0.7 is off-policy
        assert at_1["policy/logprob_mismatch_mean"] > 1e-2


@pytest.mark.e2e
def test_two_ranks_aggregate_with_global_sequence_counts(ray_cluster, tiny_model_dir):
    """Shards of 4 and 4 rows, micro-batches of 3: seq_mean_token_mean and dr_grpo must
    divide by the 8 sequences of the whole batch, not by each rank's own."""
    from rlvr.trainer import TrainerGroup

    group = TrainerGroup(2, tiny_model_dir, num_cpus_per_rank=0.5,
                         trainer=dict(zero_stage=0, micro_batch_size=3, lr=0.0, grad_clip=1e6),
                         algorithm=dict(loss_agg="seq_mean_token_mean", log_kl_to_init=False))
    try:
        m = group.train_step(_batch())
    finally:
        group.shutdown()
    assert m["policy/ratio_mean"] == pytest.approx(1.0, abs=1e-6)
    assert m["loss"] == pytest.approx(EXPECTED_LOSS["seq_mean_token_mean"], abs=1e-6)
    assert "policy/kl_to_init" not in m


def test_sequence_kl_sums_the_estimator_over_each_response(rank, tiny_model_dir):
    """Once the policy has left the reference, k1 summed per sequence equals
    sum_t (log pi(t) - log ref(t)) from two independent unpadded HF forwards."""
    from transformers import AutoModelForCausalLM

    def per_seq(model):
        out = []
        with torch.no_grad():
            for p, r in zip(PROMPTS, RESPONSES):
                ids = torch.tensor([p + r])
                logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float() / 0.7, dim=-1)
                out.append(logp[torch.arange(ids.shape[1] - 1), ids[0, 1:]][len(p) - 1:].sum().item())
        return out

    for group in rank.engine.optimizer.param_groups:  # move the policy off the reference
        group["lr"] = 1e-2
    try:
        rank.train_step(_batch())
    finally:
        for group in rank.engine.optimizer.param_groups:
            group["lr"] = 0.0
    ref = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    policy.load_state_dict(rank.full_state_dict())
    expected = [a - b for a, b in zip(per_seq(policy), per_seq(ref))]
    saved = rank.alg
    rank.alg = replace(rank.alg, kl_estimator="k1")
    try:
        got = rank.sequence_kl(_batch(), temperature=0.7)
    finally:
        rank.alg = saved
    assert max(abs(e) for e in expected) > 1e-3  # the policy did move
    assert got == pytest.approx(expected, abs=1e-4)
    # kl_in = reward: the controller applies it; the loss has no KL term (the policy moved, so one would show)
    m = _step(rank, kl_coef=0.5, kl_in="reward")
    assert "policy/kl_to_ref" not in m and m["policy/kl_to_init"] > 1e-4
    assert m["loss"] == pytest.approx(EXPECTED_LOSS["token_mean"], abs=1e-6)
    m = _step(rank, kl_coef=0.5, kl_in="loss")
    assert m["loss"] == pytest.approx(EXPECTED_LOSS["token_mean"] + 0.5 * m["policy/kl_to_ref"], abs=1e-6)


def test_the_reference_model_exists_only_for_a_kl_term_or_when_kl_to_init_is_asked_for():
    from rlvr.config.schema import AlgorithmConfig
    from rlvr.trainer.settings import uses_reference

    assert not uses_reference(AlgorithmConfig())  # the default: no frozen copy of the policy
    assert uses_reference(AlgorithmConfig(kl_coef=0.1))
    assert uses_reference(AlgorithmConfig(log_kl_to_init=True))


def test_a_rank_given_a_gpu_where_torch_has_no_cuda_fails_instead_of_training_on_cpu(tiny_model_dir):
    import torch

    from rlvr.trainer.policy_trainer import PolicyTrainer

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    import re

    with pytest.raises(RuntimeError, match=re.escape(f"trainer rank 0 was given a GPU but torch {torch.__version__} "
                                                     "cannot use CUDA")):
        PolicyTrainer(0, 1, "127.0.0.1", 1, tiny_model_dir, {}, {}, expect_cuda=True, env={})
