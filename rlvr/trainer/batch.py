"""The padded tensor batch a PolicyTrainer trains on, and how it is split across ranks.

Layout of one row (B rows, T = longest prompt + longest response columns):

    input_ids       pad pad p0 p1 p2 | r0 r1 r2 pad
    attention_mask   0   0  1  1  1  |  1  1  1  0
    response_mask    0   0  0  0  0  |  1  1  1  0
    old_logprobs     0   0  0  0  0  | l0 l1 l2  0

Prompts are left-padded to a common length and responses right-padded, so every response
starts at the same column. Alignment ("token alignment"): `response_mask[b, t] = 1` exactly
where `input_ids[b, t]` is a response token, and `old_logprobs[b, t]` is that token's
behaviour log-prob log pi_old(input_ids[b, t] | input_ids[b, :t]). The logits that predict
column t sit at column t - 1, so the trainer computes `logprobs[:, 1:] =
token_logprobs(logits[:, :-1], input_ids[:, 1:])`; column 0 is never a response token because
prompts are non-empty.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import List, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor

from rlvr.rollout.generation import flat_values, narrowed


@dataclass
class TrainBatch:
    input_ids: Tensor  # [B, T] int64: left-padded prompt, then right-padded response
    attention_mask: Tensor  # [B, T] int64: 1 at real (prompt or response) tokens
    response_mask: Tensor  # [B, T] float32: 1 where input_ids[b, t] is a response token
    old_logprobs: Tensor  # [B, T] float32: behaviour log-prob of input_ids[b, t] (0 elsewhere)
    advantages: Tensor  # [B] float32: one advantage per sequence

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def position_ids(self) -> Tensor:
        """[B, T] positions counted over real tokens only, so left padding does not shift them."""
        return position_ids_from_mask(self.attention_mask)

    @property
    def num_response_tokens(self) -> int:
        return int(self.response_mask.sum().item())

    def select(self, rows) -> "TrainBatch":
        """The rows `rows` (a slice, index list or bool mask) as a new batch."""
        return TrainBatch(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def to(self, device) -> "TrainBatch":
        return TrainBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def __reduce_ex__(self, protocol):
        """Pickled as numpy arrays when every tensor is a plain CPU tensor: Ray then ships them
        as out-of-band buffers instead of pickling torch storages, which took 1.6-1.8 ms more
        per train call for the quickstart's batch (tools/bench/batch_transport.py). Each array
        travels in the narrowest dtype that holds its values exactly (0/1 masks as bool, token
        ids as int32): 10 bytes per cell instead of 24, which is most of the driver's train call
        at large batches (tools/bench/driver_scaling.py)."""
        tensors = [getattr(self, f.name) for f in fields(self)]
        if all(t.device.type == "cpu" and not t.requires_grad and t.dtype in _NUMPY_DTYPES for t in tensors):
            # contiguous: a column-trimmed shard's views would otherwise be copied in-band
            arrays = [narrowed(np.ascontiguousarray(t.numpy()), _WIRE_DTYPES.get(f.name))
                      for f, t in zip(fields(self), tensors)]
            return _batch_from_arrays, (tuple(arrays), tuple(str(t.dtype).split(".")[-1] for t in tensors))
        return super().__reduce_ex__(protocol)


_NUMPY_DTYPES = (torch.int64, torch.int32, torch.float32, torch.float64, torch.bool)


# the narrower dtype each field is sent in when its values allow it (checked per batch)
_WIRE_DTYPES = {"input_ids": np.int32, "attention_mask": np.bool_, "response_mask": np.bool_}


def _batch_from_arrays(arrays, dtypes) -> TrainBatch:
    # a copy in the field's own dtype: Ray's zero-copy arrays are read-only, and the trainer may
    # write to the batch (np.array copies, converting a narrowed array back)
    return TrainBatch(*(torch.from_numpy(np.array(a, dtype=getattr(np, d))) for a, d in zip(arrays, dtypes)))


def resolve_pad_id(pad_token_id, eos_token_id) -> int:
    """The id to pad with: the pad token, else eos (the first if a list), else 0.

    Tokenizers without a pad token (GPT-2, Llama-3 base) are common; padded positions are
    masked out, so any valid id works. Call with a tokenizer's or a model config's fields.
    """
    if pad_token_id is not None:
        return int(pad_token_id)
    if isinstance(eos_token_id, (list, tuple)):
        eos_token_id = eos_token_id[0] if eos_token_id else None
    return int(eos_token_id) if eos_token_id is not None else 0


def position_ids_from_mask(attention_mask: Tensor) -> Tensor:
    """Position ids [B, T] from an attention mask: 0, 1, ... over real tokens, 0 on left padding."""
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


def make_train_batch(prompt_ids: List[List[int]], response_ids: List[List[int]],
                     behaviour_logprobs: List[List[float]], advantages: List[float],
                     pad_id: int) -> TrainBatch:
    """Pad B (prompt, response) pairs into a TrainBatch (layout in the module docstring).

    `behaviour_logprobs[b]` holds one log-prob per token of `response_ids[b]`, as sampled.
    Responses may be empty (they then contribute no tokens); prompts may not.
    Built with a handful of array ops over all B rows (no per-row or per-token Python loop): it
    sits on the controller's critical path every step.
    """
    n = len(prompt_ids)
    if not (len(response_ids) == len(behaviour_logprobs) == len(advantages) == n):
        raise ValueError(
            f"make_train_batch: prompt_ids ({n}), response_ids ({len(response_ids)}), "
            f"behaviour_logprobs ({len(behaviour_logprobs)}) and advantages ({len(advantages)}) "
            "must have one entry per sequence")
    if n == 0:
        raise ValueError("make_train_batch: empty batch (no sequences)")
    prompt_lens, response_lens, logprob_lens = (np.fromiter(map(len, lists), dtype=np.int64, count=n)
                                                for lists in (prompt_ids, response_ids, behaviour_logprobs))
    if not prompt_lens.all():
        raise ValueError(f"make_train_batch: prompt_ids[{int(np.argmin(prompt_lens))}] is empty; "
                         "every prompt needs a token")
    if (logprob_lens != response_lens).any():
        b = int(np.argmax(logprob_lens != response_lens))
        raise ValueError(
            f"make_train_batch: behaviour_logprobs[{b}] has {logprob_lens[b]} "
            f"values but response_ids[{b}] has {response_lens[b]} tokens; pass one "
            "log-prob per response token")
    prompt_len, response_len = int(prompt_lens.max()), int(response_lens.max())
    # numpy, not torch: torch.tensor parses a list of ints ~3x slower and each small op costs more
    columns = np.arange(prompt_len + response_len)
    real = ((columns >= (prompt_len - prompt_lens)[:, None])
            & (columns < (prompt_len + response_lens)[:, None]))  # [B, T]
    response = real & (columns >= prompt_len)
    # Row-major order fills the cells row by row: the prompt cells take p_0, p_1, ... end to end,
    # the response cells r_0, r_1, ... (rows are lists, or numpy arrays from a PackedGroups)
    input_ids = np.full(real.shape, pad_id, dtype=np.int64)
    input_ids[real & ~response] = flat_values(prompt_ids, int(prompt_lens.sum()), np.int64)
    input_ids[response] = flat_values(response_ids, int(response_lens.sum()), np.int64)
    old_logprobs = np.zeros(real.shape, dtype=np.float32)
    old_logprobs[response] = flat_values(behaviour_logprobs, int(response_lens.sum()), np.float64)  # rounded as torch does
    return TrainBatch(input_ids=torch.from_numpy(input_ids),
                      attention_mask=torch.from_numpy(real).long(),
                      response_mask=torch.from_numpy(response).float(),
                      old_logprobs=torch.from_numpy(old_logprobs),
                      advantages=torch.tensor(advantages, dtype=torch.float32))


def trim_padding(batch: TrainBatch) -> TrainBatch:
    """Drop leading/trailing columns that are padding in every row (alignment is unchanged)."""
    real = batch.attention_mask.bool().any(dim=0).nonzero()
    if real.numel() == 0:
        return batch
    first, last = int(real[0]), int(real[-1]) + 1
    if first == 0 and last == batch.input_ids.shape[1]:
        return batch
    return TrainBatch(**{f.name: (getattr(batch, f.name)[:, first:last]
                                  if f.name != "advantages" else batch.advantages)
                         for f in fields(batch)})


def split_batch(batch: TrainBatch, num_shards: int) -> List[TrainBatch]:
    """Split rows into `num_shards` contiguous shards whose sizes differ by at most one.

    Each shard keeps the full column layout (trim it with `trim_padding` if wanted).
    """
    if num_shards < 1:
        raise ValueError(f"split_batch: num_shards = {num_shards} must be >= 1")
    if len(batch) < num_shards:
        raise ValueError(f"split_batch: a batch of {len(batch)} sequences cannot give each of "
                         f"{num_shards} ranks a sequence; use at least {num_shards} sequences")
    bounds = _even_bounds(len(batch), num_shards)
    return [batch.select(slice(lo, hi)) for lo, hi in bounds]


class MinibatchCounts(NamedTuple):
    """Per minibatch k (of each shard's even split), summed or maxed over every rank's shard."""

    tokens: List[float]  # response tokens in minibatch k of all shards: the token-mean's denominator
    rows: List[float]  # sequences in minibatch k of all shards: the sequence-mean's denominator
    max_rows: List[int]  # the most rows minibatch k has on one shard: every rank runs as many micro-batches


def minibatch_counts(shards: Sequence[TrainBatch], minibatches: int) -> MinibatchCounts:
    """The global counts each rank's train_step needs, from all ranks' shards: the driver
    computes them from the shards it sends, so the ranks need no collective for them."""
    if minibatches < 1:
        raise ValueError(f"minibatch_counts: minibatches = {minibatches} must be >= 1")
    parts = [[(int(shard.response_mask[lo:hi].sum()), hi - lo) for lo, hi in _even_bounds(len(shard), minibatches)]
             for shard in shards]
    return MinibatchCounts(tokens=[float(sum(p[k][0] for p in parts)) for k in range(minibatches)],
                           rows=[float(sum(p[k][1] for p in parts)) for k in range(minibatches)],
                           max_rows=[max(p[k][1] for p in parts) for k in range(minibatches)])


def _even_bounds(n: int, parts: int) -> Sequence[tuple]:
    base, extra = divmod(n, parts)
    bounds, lo = [], 0
    for i in range(parts):
        hi = lo + base + (1 if i < extra else 0)
        bounds.append((lo, hi))
        lo = hi
    return bounds
