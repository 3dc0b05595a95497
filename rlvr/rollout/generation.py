"""A sampled response (`Generation`) and how a rollout worker ships a step's worth of them.

`PackedGroups` is a [prompt][sample] list of Generations that pickles as a few flat arrays (every
token id, every log-prob, one length per sample) instead of one Python object per token: the
rollout worker returns it, so the bytes Ray moves and the objects the driver unpickles grow with
the samples, not the tokens (tools/bench/driver_scaling.py). On the far side it unpickles as
Generations whose `token_ids` and `logprobs` are numpy views of those arrays (read-only: Ray hands
them out zero-copy from its object store). Anything that reads a Generation takes either kind.

No torch here: the driver-scaling benchmark's stand-in engines use it without importing torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Sequence

import numpy as np


@dataclass(eq=False)
class Generation:
    """One sampled response."""

    token_ids: Sequence[int]  # response tokens only (a stop token that was sampled is included); a list from an engine, a numpy array after a PackedGroups crossed a process
    logprobs: Sequence[float]  # behaviour logprob of each response token: log-softmax(logits / T) at the sampling temperature T (raw logits when T = 0), before top-p
    text: str  # decoded response, special tokens skipped
    finish_reason: str  # "stop" (a stop/eos token was sampled) | "length" (hit max_new_tokens)

    def __eq__(self, other) -> bool:  # by value whether the fields are lists or arrays
        if not isinstance(other, Generation):
            return NotImplemented
        return (self.text == other.text and self.finish_reason == other.finish_reason
                and as_list(self.token_ids) == as_list(other.token_ids)
                and as_list(self.logprobs) == as_list(other.logprobs))

    def to_json(self) -> dict:
        """The fields as JSON-ready Python values (floats round-trip exactly through json)."""
        return {"token_ids": as_list(self.token_ids), "logprobs": as_list(self.logprobs),
                "text": self.text, "finish_reason": self.finish_reason}


def as_list(values: Sequence) -> list:
    """A list of Python ints or floats from a list or a numpy array."""
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def flat_values(rows: Sequence[Sequence], count: int, dtype) -> np.ndarray:
    """Every row's values end to end as one `dtype` array of `count` values (rows are lists or
    numpy arrays; with arrays this is one concatenation, not a loop over the values)."""
    if rows and isinstance(rows[0], np.ndarray):
        out = np.concatenate(rows).astype(dtype, copy=False) if count else np.zeros(0, dtype)
        if out.size != count:
            raise ValueError(f"flat_values: the rows hold {out.size} values, expected {count}")
        return out
    return np.fromiter(chain.from_iterable(rows), dtype=dtype, count=count)


def narrowed(values: np.ndarray, dtype) -> np.ndarray:
    """`values` as `dtype` (int32 or bool) when that holds every value exactly, else unchanged
    (also when `dtype` is None)."""
    if dtype is None or not values.size or values.dtype == dtype:
        return values
    if np.dtype(dtype) == np.int32:
        info = np.iinfo(np.int32)
        return values.astype(np.int32) if info.min <= values.min() and values.max() <= info.max else values
    narrow = values.astype(dtype)
    return narrow if np.array_equal(narrow, values) else values


class PackedGroups(list):
    """[prompt][sample] Generations: a plain list here, a few flat arrays when pickled (module docstring)."""

    def __reduce_ex__(self, protocol):
        return _unpack_groups, pack_groups(self)


def pack_groups(groups: Sequence[Sequence[Generation]]) -> tuple:
    """(group sizes, lengths, token ids, log-probs, texts, finish reasons): the arrays one per
    sample (sizes: one per group) or one per token, end to end in [prompt][sample] order."""
    flat = [g for group in groups for g in group]
    sizes = np.fromiter(map(len, groups), dtype=np.int64, count=len(groups))
    lengths = np.fromiter((len(g.token_ids) for g in flat), dtype=np.int64, count=len(flat))
    for i, g in enumerate(flat):
        if len(g.logprobs) != lengths[i]:
            raise ValueError(f"pack_groups: sample {i} has {len(g.logprobs)} log-probs for "
                             f"{lengths[i]} tokens; a Generation holds one log-prob per token")
    total = int(lengths.sum())
    ids = narrowed(flat_values([g.token_ids for g in flat], total, np.int64), np.int32)  # half the bytes
    logprobs = flat_values([g.logprobs for g in flat], total, np.float64)  # exact: the engines' floats
    return (sizes, lengths, ids, logprobs, [g.text for g in flat], [g.finish_reason for g in flat])


def _unpack_groups(sizes, lengths, ids, logprobs, texts, reasons) -> PackedGroups:
    ends = np.cumsum(lengths).tolist()
    starts = [0] + ends[:-1]
    flat = [Generation(ids[a:b], logprobs[a:b], text, reason)
            for a, b, text, reason in zip(starts, ends, texts, reasons)]
    bounds = np.cumsum(sizes).tolist()
    return PackedGroups(flat[a:b] for a, b in zip([0] + bounds[:-1], bounds))
