"""One forward per distinct prompt (rlvr.trainer.prompt_sharing): which rows share a prompt, and
log-probs, entropies, gradients and a whole train step equal to the full forward's."""
import pytest
import torch

from rlvr.trainer.batch import make_train_batch, trim_padding
from rlvr.trainer.loss import sequence_token_stats
from rlvr.trainer.prompt_sharing import can_share, distinct_prompts, first_response_column, shared_prompt_logits

# groups of uneven prompt lengths and sizes; one empty and one long response; the last prompt
# comes back (rows 6 and 8) after another one
PROMPTS = [[20, 21, 15]] * 3 + [[22, 15]] * 3 + [[23, 24, 25, 15], [22, 15], [23, 24, 25, 15]]
RESPONSES = [[40, 41, 1], [42], [43, 44, 45, 46], [47, 1], [], [50, 51, 52], [53], [54, 55], [56, 57, 58, 59, 60]]


@pytest.fixture(scope="module")
def sharp_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with weights of std 0.3 instead of 0.02: its next-token distributions
    depend on the prompt (the near-uniform initial model's hardly do, which would hide a row
    attending to another row's prompt)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    out = tmp_path_factory.mktemp("sharp_model")
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(str(out))
    return str(out)


def _batch(prompts=PROMPTS, responses=RESPONSES):
    return make_train_batch(prompts, responses, [[-1.0] * len(r) for r in responses],
                            [float(i % 3) - 1.0 for i in range(len(prompts))], pad_id=0)


def test_consecutive_rows_with_one_prompt_share_it():
    batch = _batch()
    start = first_response_column(batch.response_mask)
    assert start == 4  # the longest prompt's width
    first, inverse = distinct_prompts(batch.input_ids, batch.attention_mask, start)
    groups = {}
    for row, u in enumerate(inverse.tolist()):
        groups.setdefault(u, []).append(row)
    # a prompt that comes back after another (rows 7 and 8) starts a run of its own
    assert list(groups.values()) == [[0, 1, 2], [3, 4, 5], [6], [7], [8]]
    assert first.tolist() == [0, 3, 6, 7, 8]


def test_same_ids_with_other_padding_are_different_prompts():
    # [0, 15] with both columns real vs [15] left-padded with pad id 0: equal ids, other masks
    batch = _batch([[0, 15], [15], [0, 15]], [[40], [41], [42]])
    _, inverse = distinct_prompts(batch.input_ids, batch.attention_mask, 2)
    assert inverse.tolist() == [0, 1, 2]
    _, inverse = distinct_prompts(batch.input_ids[[0, 2, 1]], batch.attention_mask[[0, 2, 1]], 2)
    assert inverse.tolist() == [0, 0, 1]


def test_nothing_to_share_gives_none(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert shared_prompt_logits(model, _batch(PROMPTS[:1] + PROMPTS[3:4], RESPONSES[:2])) is None  # distinct
    assert shared_prompt_logits(model, _batch(PROMPTS[:2], [[], []])) is None  # no response token
    assert first_response_column(_batch(PROMPTS[:2], [[], []]).response_mask) is None


def _stats_and_grads(model, batch, share):
    model.zero_grad(set_to_none=True)
    if share:
        logits, start = shared_prompt_logits(model, batch)
    else:
        logits, start = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                              position_ids=batch.position_ids, use_cache=False).logits, 1
    logprobs, entropy = sequence_token_stats(logits / 0.7, batch.input_ids[:, start - 1:])
    mask = batch.response_mask[:, start - 1:]
    loss = (logprobs * mask * batch.advantages[:, None]).sum() + 0.1 * (entropy * mask).sum()
    loss.backward()
    keep = batch.response_mask[:, start - 1:].bool()
    return (logprobs[keep].detach(), entropy[keep].detach(),
            {n: p.grad.clone() for n, p in model.named_parameters()})


def test_log_probs_entropies_and_gradients_equal_the_full_forward(sharp_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(sharp_model_dir, dtype=torch.float32).train()
    assert can_share(model)
    batch = trim_padding(_batch())
    full_lp, full_ent, full_grads = _stats_and_grads(model, batch, share=False)
    lp, ent, grads = _stats_and_grads(model, batch, share=True)
    assert len(lp) == int(batch.response_mask.sum()) == 21
    torch.testing.assert_close(lp, full_lp, atol=1e-5, rtol=0)
    torch.testing.assert_close(ent, full_ent, atol=1e-5, rtol=0)
    assert set(grads) == set(full_grads)
    for name, grad in grads.items():  # every prompt's gradient summed over its rows
        gap = float((grad - full_grads[name]).norm() / full_grads[name].norm())
        assert gap < 1e-5, (name, gap)
    assert any(g.abs().sum() > 0 for g in grads.values())


def test_gradient_checkpointing_runs_the_full_forward(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.gradient_checkpointing_enable()
    assert not can_share(model)


@pytest.fixture(scope="module")
def trainers(make_rank, sharp_model_dir):
    cfg = {"zero_stage": 0, "micro_batch_size": 5, "lr": 1e-2, "grad_clip": 1.0}
    return {share: make_rank(sharp_model_dir, dict(cfg, share_prompt_forward=share)) for share in (False, True)}


def test_train_step_and_sequence_logprobs_agree_with_the_full_forward(trainers):
    """Micro-batches of 5 and 4 rows cut the groups apart; the empty response sums to 0."""
    sums = [trainers[share].sequence_logprobs(PROMPTS, RESPONSES) for share in (False, True)]
    assert sums[1] == pytest.approx(sums[0], rel=1e-5)
    assert sums[0][4] == 0.0
    full, shared = (trainers[share].train_step(_batch(), temperature=0.7) for share in (False, True))
    for name, value in full.items():
        if not name.startswith("perf/"):
            assert shared[name] == pytest.approx(value, abs=1e-6, rel=1e-5), name
    assert full["policy/entropy"] > 0 and full["policy/grad_norm"] > 0


def test_cache_rows_by_index_select_or_by_transformers_own_method():
    from transformers import DynamicCache

    from rlvr.trainer.prompt_sharing import _rows_of

    keys, values = torch.randn(2, 1, 3, 4), torch.randn(2, 1, 3, 4)
    cache = DynamicCache()
    cache.update(keys, values, 0)
    inverse = torch.tensor([0, 0, 1, 1, 1])
    _rows_of(cache, inverse)
    assert torch.equal(cache.layers[0].keys, keys[inverse]) and torch.equal(cache.layers[0].values, values[inverse])

    class OtherLayout:  # no per-layer keys/values: transformers' batch_select_indices does it
        def batch_select_indices(self, indices):
            self.selected = indices

    other = OtherLayout()
    _rows_of(other, inverse)
    assert other.selected is inverse
