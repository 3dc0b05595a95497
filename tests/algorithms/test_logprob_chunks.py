"""Chunked log-prob + entropy (token_logprobs_and_entropy) and truncated IS weights: hand
numbers, equality with the unchunked functions (values and gradients), and memory at a
150k vocabulary."""
import math

import pytest
import torch

from rlvr.algorithms.grpo import (
    entropy_from_logits,
    token_logprobs,
    token_logprobs_and_entropy,
    truncated_is_weights,
)


def test_hand_values_log_three_logits():
    # softmax([0, log 3]) = [1/4, 3/4]; entropy = -(1/4 log 1/4 + 3/4 log 3/4).
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0]]])
    lp, ent = token_logprobs_and_entropy(logits, torch.tensor([[1, 0]]), chunk_elements=2)
    assert lp.dtype == ent.dtype == torch.float32 and lp.shape == (1, 2)
    assert lp.tolist()[0] == pytest.approx([math.log(0.75), math.log(0.5)], abs=1e-7)
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert ent.tolist()[0] == pytest.approx([h, math.log(2.0)], abs=1e-7)


@pytest.mark.parametrize("chunk_rows", [1, 4, 7, 1000])
@pytest.mark.parametrize("which", ["both", "logprob", "entropy"])
def test_chunked_equals_unchunked_values_and_gradients(chunk_rows, which):
    gen = torch.Generator().manual_seed(0)
    vocab = 50
    logits = (torch.randn(3, 5, vocab, generator=gen) * 3).requires_grad_(True)
    targets = torch.randint(0, vocab, (3, 5), generator=gen)
    a, b = torch.randn(3, 5, generator=gen), torch.randn(3, 5, generator=gen)
    wa, wb = (which != "entropy"), (which != "logprob")

    lp, ent = token_logprobs_and_entropy(logits, targets, chunk_elements=chunk_rows * vocab)
    ((a * lp).sum() * wa + (b * ent).sum() * wb).backward()
    grad = logits.grad.clone()
    logits.grad = None
    lp_ref, ent_ref = token_logprobs(logits, targets), entropy_from_logits(logits)
    ((a * lp_ref).sum() * wa + (b * ent_ref).sum() * wb).backward()

    assert torch.allclose(lp, lp_ref, atol=1e-6, rtol=0)
    assert torch.allclose(ent, ent_ref, atol=1e-6, rtol=0)
    assert torch.allclose(grad, logits.grad, atol=1e-6, rtol=0)
    assert grad.abs().max() > 0.01  # a gradient that could be wrong


def test_bf16_logits_get_bf16_gradients_close_to_fp32_math():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 6, 40, generator=gen).to(torch.bfloat16).requires_grad_(True)
    targets = torch.randint(0, 40, (4, 6), generator=gen)
    lp, ent = token_logprobs_and_entropy(logits, targets, chunk_elements=80)
    (lp.sum() + ent.sum()).backward()
    assert logits.grad.dtype == torch.bfloat16
    x = logits.detach().float().requires_grad_(True)
    (token_logprobs(x, targets).sum() + entropy_from_logits(x).sum()).backward()
    assert torch.allclose(lp, token_logprobs(x, targets), atol=1e-6)
    assert torch.allclose(logits.grad.float(), x.grad, atol=4e-3)  # bf16 rounding of the grad


def test_rejects_targets_of_the_wrong_shape():
    with pytest.raises(ValueError, match="targets shape"):
        token_logprobs_and_entropy(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))


# ---- memory at a real vocabulary ---------------------------------------------------------

VOCAB, ROWS = 151936, 64  # Qwen2's vocabulary; one fp32 copy of the logits = 37 MiB


def _logits_150k():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(ROWS, VOCAB, generator=gen).to(torch.bfloat16).requires_grad_(True)
    return logits, torch.randint(0, VOCAB, (ROWS,), generator=gen)


def test_backward_keeps_no_float32_copy_of_the_logits():
    logits, targets = _logits_150k()
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        token_logprobs_and_entropy(logits, targets)
    new_bytes = sum(t.numel() * t.element_size() for t in saved if t.data_ptr() != logits.data_ptr())
    assert new_bytes <= 4 * 8 * ROWS  # a few numbers per row: no [ROWS, VOCAB] tensor is kept
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):  # what the old path keeps
        token_logprobs(logits, targets), entropy_from_logits(logits)
    old_bytes = sum(t.numel() * t.element_size() for t in saved if t.data_ptr() != logits.data_ptr())
    assert old_bytes >= 2 * ROWS * VOCAB * 4


def _peak_extra_mib(fn) -> float:
    """Peak RSS growth while fn() runs (Linux: VmHWM reset through /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError as err:
        pytest.skip(f"cannot reset the peak RSS here: {err}")

    def field(name):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(name + ":")) / 1024

    base = field("VmRSS")
    fn()
    return field("VmHWM") - base


def test_forward_backward_at_150k_vocabulary_stays_under_two_fp32_copies():
    logits, targets = _logits_150k()
    weights = torch.randn(ROWS)
    fp32_copy_mib = ROWS * VOCAB * 4 / 2**20

    def chunked():
        lp, ent = token_logprobs_and_entropy(logits, targets, chunk_elements=1 << 20)
        (weights * lp + weights * ent).sum().backward()

    def unchunked():
        lp, ent = token_logprobs(logits, targets), entropy_from_logits(logits)
        (weights * lp + weights * ent).sum().backward()

    new = _peak_extra_mib(chunked)  # the bf16 gradient itself is half a copy
    logits.grad = None
    old = _peak_extra_mib(unchunked)
    assert new < 2 * fp32_copy_mib, (new, old, fp32_copy_mib)
    assert old > 3 * fp32_copy_mib, (new, old, fp32_copy_mib)  # the measurement sees copies


# ---- truncated importance sampling -----------------------------------------------------------

def test_truncated_is_weights_hand_values_cap_and_no_grad():
    trainer = torch.tensor([[-1.0, -0.5, -2.0]], requires_grad=True)
    engine = torch.tensor([[-1.5, -1.5, -1.0]])
    w = truncated_is_weights(trainer, engine, cap=2.0)
    # pi_trainer / pi_engine: e^0.5 = 1.6487, e^1 = 2.718 -> capped at 2, e^-1 = 0.3679 (no floor).
    assert w.tolist()[0] == pytest.approx([math.exp(0.5), 2.0, math.exp(-1.0)], rel=1e-6)
    assert not w.requires_grad
