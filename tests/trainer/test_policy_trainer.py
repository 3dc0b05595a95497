"""PolicyTrainer ranks through TrainerGroup: real Ray actors, real DeepSpeed ZeRO on CPU (gloo).

One ZeRO-3 group of 2 ranks is shared by the module; a ZeRO-0 group of 1 rank replays the
same first step and must land on the same weights (sharding, micro-batching and the ZeRO
stage must not change the update). Actors ask for half a CPU so both groups fit a 2-CPU
cluster; each still runs one thread.
"""
from types import SimpleNamespace

import pytest
import torch

from rlvr.algorithms.grpo import group_advantages
from rlvr.trainer import PolicyTrainer, TrainerGroup, TrainerGroupError, make_train_batch

LR = 1e-3
# 7 sequences: shards of 4 and 3 rows, micro-batches of 2 -> uneven accumulation on each rank.
PROMPTS = [[20, 21, 15], [22, 15], [23, 24, 25, 15], [26, 15], [27, 28, 15], [29, 15], [30, 31, 15]]
RESPONSES = [[40, 41, 1], [42], [43, 44, 45, 46], [47, 1], [48, 49], [50, 51, 52], [53]]
ADVANTAGES = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.5]])).flatten().tolist()

ZERO3 = dict(trainer=dict(zero_stage=3, micro_batch_size=2, lr=LR, grad_clip=1.0),
             algorithm=dict(kl_coef=0.0, clip_eps=0.2, log_kl_to_init=True))


def _hf_model(model_dir, state_dict=None):
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    transformers.utils.logging.disable_progress_bar()

    if state_dict is None:
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    model.load_state_dict(state_dict, strict=True)
    return model.float().eval()


@torch.no_grad()
def _per_token_logprobs(model, prompt, response):
    """Unpadded teacher-forced log-probs of the response tokens (independent of TrainBatch)."""
    ids = torch.tensor([prompt + response])
    logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    targets = ids[0, 1:]
    token_lp = logp[torch.arange(len(targets)), targets]
    return token_lp[len(prompt) - 1:].tolist()


def _batch(model_dir, advantages=ADVANTAGES):
    model = _hf_model(model_dir)
    behaviour = [_per_token_logprobs(model, p, r) for p, r in zip(PROMPTS, RESPONSES)]
    return make_train_batch(PROMPTS, RESPONSES, behaviour, advantages, pad_id=0)


def _max_abs_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def zero3_run(ray_cluster, tiny_model_dir):
    """A 2-rank ZeRO-3 group, and its weights and metrics around one GRPO step."""
    group = TrainerGroup(2, tiny_model_dir, num_cpus_per_rank=0.5, **ZERO3)
    before = group.full_state_dict()
    metrics = group.train_step(_batch(tiny_model_dir))
    after = group.full_state_dict()
    yield SimpleNamespace(group=group, before=before, metrics=metrics, after=after)
    group.shutdown()


@pytest.mark.e2e
def test_step_with_nonzero_advantages_changes_parameters_and_ranks_agree(zero3_run):
    assert set(zero3_run.after) == set(zero3_run.before)
    changed = [k for k in zero3_run.before
               if not torch.equal(zero3_run.before[k], zero3_run.after[k])]
    assert "model.embed_tokens.weight" in changed and len(changed) >= len(zero3_run.before) - 2
    # First Adam step: every moved weight moves by at most lr (|m / sqrt(v)| <= 1).
    assert _max_abs_diff(zero3_run.before, zero3_run.after) <= LR * 1.001
    digests = zero3_run.group.state_digests()
    assert len(digests) == 2 and digests[0] == digests[1]


@pytest.mark.e2e
def test_zero3_partitions_the_reference_like_the_policy(zero3_run):
    group = zero3_run.group
    parts = group.collect("reference_elements", group.submit("reference_elements"))
    full = parts[0]["full"]
    assert full > 0 and [p["full"] for p in parts] == [full, full]
    assert all(0 < p["held"] < full for p in parts), parts  # each rank holds a part, none the whole
    assert sum(p["held"] for p in parts) >= full


@pytest.mark.e2e
def test_first_step_metrics_see_on_policy_data(zero3_run):
    m = zero3_run.metrics
    assert set(m) == {"loss", "policy/entropy", "policy/clip_fraction", "policy/ratio_mean",
                      "policy/approx_kl", "policy/grad_norm", "trainer/response_tokens",
                      "policy/logprob_mismatch_mean", "policy/logprob_mismatch_max", "policy/kl_to_init",
                      "perf/train_compute_s"}
    assert m["trainer/response_tokens"] == sum(len(r) for r in RESPONSES)
    assert m["policy/kl_to_init"] == pytest.approx(0.0, abs=1e-6)  # logged at kl_coef 0; still the initial policy
    # Behaviour log-probs came from an unpadded HF forward: the trainer's padded, shifted
    # log-probs must reproduce them, so the policy is exactly on-policy.
    assert m["policy/ratio_mean"] == pytest.approx(1.0, abs=1e-5)
    assert m["policy/approx_kl"] == pytest.approx(0.0, abs=1e-6)
    assert m["policy/clip_fraction"] == 0.0
    assert m["policy/logprob_mismatch_max"] < 1e-5  # both sides are fp32 forwards of one model
    # At ratio 1 the loss is minus the token-weighted mean advantage.
    weights = [len(r) for r in RESPONSES]
    expected = -sum(a * w for a, w in zip(ADVANTAGES, weights)) / sum(weights)
    assert m["loss"] == pytest.approx(expected, abs=1e-5)
    assert m["policy/grad_norm"] > 0 and m["policy/entropy"] > 0


@pytest.mark.e2e
def test_full_state_dict_loads_into_hf_and_matches_sequence_logprobs(zero3_run, tiny_model_dir):
    model = _hf_model(tiny_model_dir, zero3_run.after)
    expected = [sum(_per_token_logprobs(model, p, r)) for p, r in zip(PROMPTS, RESPONSES)]
    got = zero3_run.group.sequence_logprobs(PROMPTS, RESPONSES)
    assert got == pytest.approx(expected, abs=1e-4)
    initial = _hf_model(tiny_model_dir)
    assert got != pytest.approx([sum(_per_token_logprobs(initial, p, r))
                                 for p, r in zip(PROMPTS, RESPONSES)], abs=1e-4)


@pytest.mark.e2e
def test_sequence_kl_over_uneven_shards_is_each_sequences_own(zero3_run, tiny_model_dir):
    # shards of 4 and 3 rows, micro-batches of 2: the group passes the larger shard's rows, so
    # both ranks run as many (collective) ZeRO-3 forwards, and row b's KL is its own sequence's
    from rlvr.algorithms.losses import kl_penalty

    policy, reference = _hf_model(tiny_model_dir, zero3_run.group.full_state_dict()), _hf_model(tiny_model_dir)
    expected = [float(kl_penalty(torch.tensor(_per_token_logprobs(policy, p, r)),
                                 torch.tensor(_per_token_logprobs(reference, p, r)), "k3").sum())
                for p, r in zip(PROMPTS, RESPONSES)]
    got = zero3_run.group.sequence_kl(_batch(tiny_model_dir))
    assert min(expected) > 0  # the step moved the policy: zeros would match anything
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-6)


@pytest.mark.e2e
def test_save_hf_writes_a_loadable_model_folder(zero3_run, tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    out = zero3_run.group.save_hf(str(tmp_path / "policy"))
    weights = zero3_run.group.full_state_dict()
    model = _hf_model(out)
    assert _max_abs_diff(weights, model.state_dict()) == 0.0
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.pad_token_id == 0 and tok.decode(tok("1+2=")["input_ids"]) == "1+2="


@pytest.mark.e2e
def test_training_state_round_trips_weights_and_optimizer(zero3_run, tiny_model_dir, tmp_path):
    group, batch = zero3_run.group, _batch(tiny_model_dir)
    group.save_training_state(str(tmp_path / "state"))
    saved = group.state_digests()
    first = group.train_step(batch)
    moved = group.full_state_dict()
    assert group.state_digests() != saved
    group.load_training_state(str(tmp_path / "state"))
    assert group.state_digests() == saved
    # The restored optimizer (Adam moments) makes the same step again: same loss, same weights.
    again = group.train_step(batch)
    assert again["loss"] == pytest.approx(first["loss"], abs=1e-7)
    assert _max_abs_diff(moved, group.full_state_dict()) < 1e-7


@pytest.mark.e2e
def test_zero_advantages_without_kl_give_zero_loss(zero3_run, tiny_model_dir):
    metrics = zero3_run.group.train_step(_batch(tiny_model_dir, advantages=[0.0] * len(PROMPTS)))
    assert metrics["loss"] == 0.0
    assert metrics["policy/grad_norm"] == 0.0


@pytest.mark.e2e
def test_zero0_single_rank_matches_zero3_two_ranks(zero3_run, tiny_model_dir):
    # kl_coef > 0 adds a reference model; at the first step policy == reference, so the KL
    # term and its gradient are zero and the update must equal the ZeRO-3 group's.
    group = TrainerGroup(1, tiny_model_dir, num_cpus_per_rank=0.5,
                         trainer=dict(zero_stage=0, micro_batch_size=64, lr=LR, grad_clip=1.0),
                         algorithm=dict(kl_coef=0.05, clip_eps=0.2))
    try:
        metrics = group.train_step(_batch(tiny_model_dir))
        after = group.full_state_dict()
        second = group.train_step(_batch(tiny_model_dir))
        bad = _batch(tiny_model_dir)
        bad.input_ids[0, -1] = 10_000  # outside the ~100-token vocabulary: the rank fails
        with pytest.raises(TrainerGroupError, match="trainer rank 0 failed during train_step"):
            group.train_step(bad)
        assert group.actors == []  # a failed rank takes the whole group down
    finally:
        group.shutdown()
    assert metrics["policy/kl_to_ref"] == 0.0
    for name in ("loss", "policy/grad_norm", "policy/entropy"):
        assert metrics[name] == pytest.approx(zero3_run.metrics[name], rel=1e-5), name
    # Adam's first step is ~lr * sign(g): float-order noise in near-zero grads moves a few
    # weights by a small fraction of lr; a wrong update would move them by ~lr.
    assert _max_abs_diff(after, zero3_run.after) < LR * 1e-2
    assert second["policy/kl_to_ref"] > 0


def test_policy_trainer_rejects_bad_config_before_starting(tiny_model_dir):
    with pytest.raises(ValueError, match="trainer.zero_stage = 5 must be 0, 1, 2 or 3"):
        PolicyTrainer(0, 1, "127.0.0.1", 1, tiny_model_dir, {"zero_stage": 5}, {})
    with pytest.raises(ValueError, match=r"trainer: unknown field\(s\) \['zero'\]"):
        PolicyTrainer(0, 1, "127.0.0.1", 1, tiny_model_dir, {"zero": 3}, {})
