"""TrainBatch layout and alignment on a hand-built example; split_batch; trim_padding."""
import pytest
import torch

from rlvr.trainer.batch import (
    make_train_batch,
    minibatch_counts,
    position_ids_from_mask,
    split_batch,
    trim_padding,
)

PAD = 0


def _example():
    # Row 0: prompt [5, 6], response [7, 8, 9]; row 1: prompt [3, 4, 5], response [6].
    return make_train_batch(prompt_ids=[[5, 6], [3, 4, 5]], response_ids=[[7, 8, 9], [6]],
                            behaviour_logprobs=[[-0.1, -0.2, -0.3], [-0.4]],
                            advantages=[1.5, -0.5], pad_id=PAD)


def test_make_train_batch_layout_and_token_alignment():
    b = _example()
    # prompts left-padded to 3 columns, responses right-padded to 3 columns.
    assert b.input_ids.tolist() == [[0, 5, 6, 7, 8, 9],
                                    [3, 4, 5, 6, 0, 0]]
    assert b.attention_mask.tolist() == [[0, 1, 1, 1, 1, 1],
                                         [1, 1, 1, 1, 0, 0]]
    # response_mask is 1 exactly where input_ids holds a response token ...
    assert b.response_mask.tolist() == [[0, 0, 0, 1, 1, 1],
                                        [0, 0, 0, 1, 0, 0]]
    # ... and old_logprobs holds that token's behaviour log-prob at the same column.
    assert torch.allclose(b.old_logprobs, torch.tensor([[0, 0, 0, -0.1, -0.2, -0.3],
                                                        [0, 0, 0, -0.4, 0, 0]]))
    assert b.advantages.tolist() == [1.5, -0.5]
    assert (b.input_ids.dtype, b.attention_mask.dtype) == (torch.long, torch.long)
    assert (b.response_mask.dtype, b.old_logprobs.dtype) == (torch.float32, torch.float32)
    assert len(b) == 2 and b.num_response_tokens == 4


def test_response_tokens_are_those_selected_by_mask():
    b = _example()
    assert b.input_ids[b.response_mask.bool()].tolist() == [7, 8, 9, 6]


def test_position_ids_ignore_left_padding():
    b = _example()
    # Right padding repeats the last position; those columns are masked out anyway.
    assert b.position_ids.tolist() == [[0, 0, 1, 2, 3, 4],
                                       [0, 1, 2, 3, 3, 3]]
    # The first real token of every row is position 0, whatever its padding.
    first = b.attention_mask.argmax(dim=1)
    assert b.position_ids[torch.arange(2), first].tolist() == [0, 0]
    assert position_ids_from_mask(torch.tensor([[0, 0, 1]])).tolist() == [[0, 0, 0]]


def test_empty_response_contributes_no_tokens():
    b = make_train_batch([[5], [6, 7]], [[], [8]], [[], [-1.0]], [0.0, 1.0], PAD)
    assert b.input_ids.tolist() == [[0, 5, 0], [6, 7, 8]]
    assert b.response_mask.tolist() == [[0, 0, 0], [0, 0, 1]]


def _reference_batch(prompt_ids, response_ids, behaviour_logprobs, advantages, pad_id):
    """The row-by-row construction make_train_batch replaced (kept here as the reference)."""
    n = len(prompt_ids)
    prompt_len = max(len(p) for p in prompt_ids)
    total = prompt_len + max(len(r) for r in response_ids)
    input_ids = torch.full((n, total), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((n, total), dtype=torch.long)
    response_mask = torch.zeros((n, total), dtype=torch.float32)
    old_logprobs = torch.zeros((n, total), dtype=torch.float32)
    for b, (prompt, response) in enumerate(zip(prompt_ids, response_ids)):
        start, end = prompt_len - len(prompt), prompt_len + len(response)
        input_ids[b, start:prompt_len] = torch.tensor(prompt, dtype=torch.long)
        attention_mask[b, start:end] = 1
        if response:
            input_ids[b, prompt_len:end] = torch.tensor(response, dtype=torch.long)
            response_mask[b, prompt_len:end] = 1.0
            old_logprobs[b, prompt_len:end] = torch.tensor(behaviour_logprobs[b], dtype=torch.float32)
    return [input_ids, attention_mask, response_mask, old_logprobs,
            torch.tensor(advantages, dtype=torch.float32)]


@pytest.mark.parametrize("seed", range(20))
def test_make_train_batch_matches_the_row_by_row_reference_bit_for_bit(seed):
    import random

    rng = random.Random(seed)
    n = rng.randint(1, 40)
    max_response = rng.choice([0, 1, 6, 30])  # 0: every response empty
    prompts = [[rng.randrange(50_000) for _ in range(rng.randint(1, 15))] for _ in range(n)]
    responses = [[rng.randrange(50_000) for _ in range(rng.randint(0, max_response))] for _ in range(n)]
    # doubles that do not fit float32 exactly, plus -inf and 0 (an impossible / certain token)
    logprobs = [[rng.choice([-rng.random() * 20, -rng.expovariate(1e-3), float("-inf"), 0.0, -1e-45])
                 for _ in r] for r in responses]
    advantages = [rng.gauss(0, 1) for _ in range(n)]
    pad = rng.choice([0, 2, 50_001])
    got = make_train_batch(prompts, responses, logprobs, advantages, pad)
    fields = [got.input_ids, got.attention_mask, got.response_mask, got.old_logprobs, got.advantages]
    for name, ours, ref in zip(["input_ids", "attention_mask", "response_mask", "old_logprobs", "advantages"],
                               fields, _reference_batch(prompts, responses, logprobs, advantages, pad)):
        assert ours.dtype == ref.dtype and ours.shape == ref.shape, name
        assert torch.equal(ours.view(-1).view(torch.int32 if ours.dtype == torch.float32 else ours.dtype),
                           ref.view(-1).view(torch.int32 if ref.dtype == torch.float32 else ref.dtype)), name


def test_make_train_batch_takes_tuples_and_numpy_rows():
    import numpy as np

    got = make_train_batch([(5,), np.array([6, 7])], [(), np.array([8])], [(), np.array([-1.5])],
                           (0.0, 1.0), PAD)
    assert got.input_ids.tolist() == [[0, 5, 0], [6, 7, 8]]
    assert got.old_logprobs.tolist() == [[0, 0, 0], [0, 0, -1.5]]


@pytest.mark.parametrize("kwargs, match", [
    (dict(prompt_ids=[[1]], response_ids=[[2]], behaviour_logprobs=[[0.0, 0.0]], advantages=[0.0]),
     r"behaviour_logprobs\[0\] has 2 values but response_ids\[0\] has 1"),
    (dict(prompt_ids=[[]], response_ids=[[2]], behaviour_logprobs=[[0.0]], advantages=[0.0]),
     r"prompt_ids\[0\] is empty"),
    (dict(prompt_ids=[[1]], response_ids=[[2]], behaviour_logprobs=[[0.0]], advantages=[]),
     r"one entry per sequence"),
    (dict(prompt_ids=[[1], [1], []], response_ids=[[2]] * 3, behaviour_logprobs=[[0.0]] * 3, advantages=[0.0] * 3),
     r"prompt_ids\[2\] is empty"),
    (dict(prompt_ids=[[1]] * 3, response_ids=[[2], [], [3, 4]], behaviour_logprobs=[[0.0], [], [0.0]],
          advantages=[0.0] * 3), r"behaviour_logprobs\[2\] has 1 values but response_ids\[2\] has 2"),
    (dict(prompt_ids=[], response_ids=[], behaviour_logprobs=[], advantages=[]), r"empty batch"),
])
def test_make_train_batch_errors_name_the_problem(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_train_batch(pad_id=PAD, **kwargs)


def _batch_of(n):
    return make_train_batch([[1, 2]] * n, [[3 + i] for i in range(n)], [[-1.0]] * n,
                            [float(i) for i in range(n)], PAD)


@pytest.mark.parametrize("n, shards, sizes", [(5, 2, [3, 2]), (4, 2, [2, 2]), (7, 3, [3, 2, 2]),
                                              (3, 1, [3]), (3, 3, [1, 1, 1])])
def test_split_batch_sizes_differ_by_at_most_one_and_keep_order(n, shards, sizes):
    parts = split_batch(_batch_of(n), shards)
    assert [len(p) for p in parts] == sizes
    assert torch.cat([p.advantages for p in parts]).tolist() == [float(i) for i in range(n)]
    assert torch.cat([p.input_ids for p in parts]).tolist() == _batch_of(n).input_ids.tolist()


def test_split_batch_refuses_fewer_rows_than_shards():
    with pytest.raises(ValueError, match="cannot give each of 3 ranks"):
        split_batch(_batch_of(2), 3)


def test_minibatch_counts_sum_tokens_and_rows_over_shards_and_max_rows_per_shard():
    # Shard A: responses of 3, 1, 2, 0 tokens; shard B: 2, 2, 1. Split into 2 minibatches each:
    # A -> rows [0, 1] (4 tokens), [2, 3] (2 tokens); B -> rows [0, 1] (4 tokens), [2] (1 token).
    def shard(lengths):
        return make_train_batch([[5]] * len(lengths), [[7] * n for n in lengths],
                                [[-0.1] * n for n in lengths], [0.0] * len(lengths), PAD)

    counts = minibatch_counts([shard([3, 1, 2, 0]), shard([2, 2, 1])], 2)
    assert counts.tokens == [8.0, 3.0]
    assert counts.rows == [4.0, 3.0]
    assert counts.max_rows == [2, 2]
    alone = minibatch_counts([shard([2, 2, 1])], 1)
    assert (alone.tokens, alone.rows, alone.max_rows) == ([5.0], [3.0], [3])
    with pytest.raises(ValueError, match="minibatches = 0"):
        minibatch_counts([shard([1])], 0)


def test_trim_padding_drops_all_pad_columns_and_keeps_alignment():
    b = make_train_batch([[5], [3, 4, 5], [6]], [[7], [6, 6, 6], [8, 9]], [[-1.0], [-2.0] * 3,
                                                                           [-3.0, -4.0]],
                         [1.0, 2.0, 3.0], PAD)
    rows = b.select([0, 2])  # the long prompt and long response are gone
    trimmed = trim_padding(rows)
    assert trimmed.input_ids.tolist() == [[5, 7, 0], [6, 8, 9]]
    assert trimmed.response_mask.tolist() == [[0, 1, 0], [0, 1, 1]]
    assert trimmed.old_logprobs.tolist() == [[0, -1.0, 0], [0, -3.0, -4.0]]
    assert trimmed.position_ids.tolist() == [[0, 1, 1], [0, 1, 2]]
    assert trimmed.advantages.tolist() == [1.0, 3.0]
    assert trim_padding(b) is b


def test_resolve_pad_id_falls_back_to_eos_then_zero():
    from rlvr.trainer.batch import resolve_pad_id

    assert resolve_pad_id(3, 5) == 3
    assert resolve_pad_id(None, 5) == 5
    assert resolve_pad_id(None, [7, 8]) == 7  # generation configs may list several eos ids
    assert resolve_pad_id(None, None) == 0


def test_tokenizer_without_pad_token_pads_with_eos(tmp_path):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from rlvr.trainer.batch import resolve_pad_id

    core = Tokenizer(models.WordLevel(vocab={"<eos>": 0, "<unk>": 1, "a": 2, "b": 3}, unk_token="<unk>"))
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>", unk_token="<unk>")
    assert tok.pad_token_id is None  # GPT-2 / Llama-3 base style
    batch = make_train_batch([[2, 3], [2]], [[3], [2, 2]], [[-0.1], [-0.2, -0.3]], [1.0, -1.0],
                             pad_id=resolve_pad_id(tok.pad_token_id, tok.eos_token_id))
    assert batch.input_ids.tolist() == [[2, 3, 3, 0], [0, 2, 2, 2]]


def test_a_batch_pickles_as_numpy_arrays_and_comes_back_equal_and_writable():
    import pickle

    import numpy as np

    b = _example()
    rebuild, (arrays, dtypes) = b.__reduce_ex__(5)
    # the arrays travel, not torch storages: Ray ships them as out-of-band buffers, each in the
    # narrowest dtype that holds it exactly
    assert all(isinstance(a, np.ndarray) for a in arrays) and len(arrays) == 5
    assert [a.dtype.name for a in arrays] == ["int32", "bool", "bool", "float32", "float32"]
    assert dtypes == ("int64", "int64", "float32", "float32", "float32")
    back = pickle.loads(pickle.dumps(b, protocol=5))
    for name in ("input_ids", "attention_mask", "response_mask", "old_logprobs", "advantages"):
        assert getattr(back, name).dtype == getattr(b, name).dtype
        assert torch.equal(getattr(back, name), getattr(b, name)), name
    # a copy of its own: writing to it leaves the sender's batch alone
    back.response_mask[0, 3] = 0.0
    assert b.response_mask[0, 3] == 1.0
    # read-only arrays (what Ray's zero-copy get gives) still make a writable batch
    frozen = [a.copy() for a in arrays]
    for a in frozen:
        a.setflags(write=False)
    rebuilt = rebuild(tuple(frozen), dtypes)
    rebuilt.old_logprobs.add_(1.0)
    assert torch.equal(rebuilt.old_logprobs, b.old_logprobs + 1.0)


def test_a_column_trimmed_shard_pickles_as_contiguous_arrays_and_comes_back_equal():
    import pickle

    # the first two rows' shard: the third row's longer prompt left a pad column in both
    full = make_train_batch(prompt_ids=[[5, 6], [4, 5], [1, 2, 3]], response_ids=[[7], [8], [9]],
                            behaviour_logprobs=[[-0.1], [-0.2], [-0.3]], advantages=[1.0, -1.0, 0.5],
                            pad_id=PAD)
    b = trim_padding(full.select(slice(0, 2)))
    assert not b.input_ids.is_contiguous()  # a view: columns 1.. of the shard
    _, (arrays, _) = b.__reduce_ex__(5)
    assert all(a.flags["C_CONTIGUOUS"] for a in arrays)  # Ray ships them out-of-band
    back = pickle.loads(pickle.dumps(b, protocol=5))
    assert back.input_ids.tolist() == [[5, 6, 7], [4, 5, 8]]
    assert torch.equal(back.old_logprobs, b.old_logprobs) and torch.equal(back.advantages, b.advantages)


def test_values_that_a_narrower_dtype_cannot_hold_travel_as_they_are():
    import pickle

    b = _example()
    b.input_ids[0, 0] = 2**40  # past int32
    b.response_mask[0, -1] = 0.5  # a weight, not 0/1
    _, (arrays, _) = b.__reduce_ex__(5)
    assert arrays[0].dtype.name == "int64" and arrays[2].dtype.name == "float32"
    back = pickle.loads(pickle.dumps(b, protocol=5))
    assert torch.equal(back.input_ids, b.input_ids) and torch.equal(back.response_mask, b.response_mask)


def test_a_batch_that_numpy_cannot_hold_pickles_the_torch_way():
    import pickle

    b = _example()
    b.old_logprobs = b.old_logprobs.to(torch.bfloat16)  # numpy has no bfloat16
    b.advantages.requires_grad_(True)
    back = pickle.loads(pickle.dumps(b))
    assert back.old_logprobs.dtype == torch.bfloat16 and back.advantages.requires_grad
    assert torch.equal(back.input_ids, b.input_ids)
