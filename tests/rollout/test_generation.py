"""PackedGroups: a step's generations cross a process as flat arrays and come back equal."""
import pickle
import tracemalloc

import numpy as np
import pytest

from rlvr.controller.step import generations_from_json, generations_to_json
from rlvr.rollout.generation import Generation, PackedGroups, pack_groups
from rlvr.trainer.batch import make_train_batch


def groups_of(sizes, vocab=50):
    """[prompt][sample] Generations with lists, sample k of length k % 5 (0 included)."""
    rng, out, k = np.random.default_rng(0), [], 0
    for n in sizes:
        group = []
        for _ in range(n):
            length = k % 5
            group.append(Generation(rng.integers(0, vocab, length).tolist(), (-rng.random(length)).tolist(),
                                    f"text {k}", "stop" if k % 2 else "length"))
            k += 1
        out.append(group)
    return out


def test_round_trip_gives_equal_generations_as_views_of_shared_arrays():
    groups = groups_of([3, 1, 4])
    back = pickle.loads(pickle.dumps(PackedGroups(groups), protocol=5))
    assert isinstance(back, PackedGroups) and [len(g) for g in back] == [3, 1, 4]
    assert back == groups  # Generation compares by value, lists against arrays
    flat = [g for group in back for g in group]
    assert all(isinstance(g.token_ids, np.ndarray) for g in flat)
    assert flat[1].token_ids.dtype == np.int32 and flat[1].logprobs.dtype == np.float64
    assert flat[1].logprobs.tolist() == groups[0][1].logprobs  # exact, not rounded to float32
    assert flat[1].token_ids.base is flat[2].token_ids.base  # one buffer for every sample
    assert [g.finish_reason for g in flat] == [g.finish_reason for group in groups for g in group]


def test_a_vocabulary_beyond_int32_keeps_int64():
    big = [[Generation([2**31 + 5, 1], [-0.5, -0.25], "x", "stop")]]
    back = pickle.loads(pickle.dumps(PackedGroups(big)))
    assert back[0][0].token_ids.dtype == np.int64 and back[0][0].token_ids.tolist() == [2**31 + 5, 1]


def test_the_receiver_holds_about_12_bytes_per_token_not_a_python_object_each():
    rng = np.random.default_rng(1)
    groups = [[Generation(rng.integers(300, 32_000, 512).tolist(), (-rng.random(512)).tolist(), "", "length")
               for _ in range(16)] for _ in range(4)]
    tokens = 64 * 512

    def held(data: bytes) -> int:  # bytes allocated by unpickling (numpy's buffers are traced too)
        tracemalloc.start()
        try:
            kept = pickle.loads(data)  # noqa: F841 - held while measured
            return tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()

    packed, plain = held(pickle.dumps(PackedGroups(groups), protocol=5)), held(pickle.dumps(groups, protocol=5))
    assert packed < 12 * tokens + 1024 * 64  # int32 ids + float64 log-probs + under 1 KB per sample
    assert plain > 4 * packed  # an int and a float object per token


def test_mismatched_logprobs_name_the_sample():
    bad = [[Generation([1, 2], [-0.1, -0.2], "", "stop"), Generation([1, 2], [-0.1], "", "stop")]]
    with pytest.raises(ValueError, match="sample 1 has 1 log-probs for 2 tokens"):
        pack_groups(bad)


def test_the_train_batch_is_the_same_from_arrays_as_from_lists():
    groups = groups_of([4, 4])
    back = pickle.loads(pickle.dumps(PackedGroups(groups)))
    prompts = [[7, 8, 9], [5]]

    def batch(gens):
        flat = [g for group in gens for g in group]
        return make_train_batch([p for p in prompts for _ in range(4)], [g.token_ids for g in flat],
                                [g.logprobs for g in flat], [0.5] * 8, pad_id=0)

    a, b = batch(groups), batch(back)
    for name in ("input_ids", "attention_mask", "response_mask", "old_logprobs", "advantages"):
        assert getattr(a, name).equal(getattr(b, name)), name
    assert a.input_ids[2].tolist()[:4] == [7, 8, 9] + groups[0][2].token_ids[:1]


def test_checkpointed_generations_round_trip_from_arrays():
    back = pickle.loads(pickle.dumps(PackedGroups(groups_of([2, 2]))))
    generated = {"generations": back, "policy_version": 3, "seconds": 0.5}
    again = generations_from_json(generations_to_json(generated))
    assert again["generations"] == back and again["num_tokens"] == sum(len(g.token_ids) for gr in back for g in gr)

