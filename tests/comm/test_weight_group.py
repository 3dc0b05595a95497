"""The weight-sync group's pure parts (bucket plans) and its wire protocol over gloo, in threads."""
import threading

import pytest
import torch

from rlvr.comm.weight_group import (
    WeightGroup, host_store, plan_buckets, plan_tensor_buckets, receive_buckets, receive_header,
    send_bucket, send_header)


def test_plan_buckets_bounds_each_bucket_keeps_order_and_isolates_oversized_tensors():
    sizes = [("a", 40), ("b", 50), ("c", 20), ("d", 250), ("e", 100), ("f", 1), ("g", 99), ("h", 100)]
    # cap 100: a+b = 90 (+c would be 110); c alone then d (250 > cap) alone; e = 100 exactly;
    # f+g = 100; h.
    assert plan_buckets(sizes, 100) == [["a", "b"], ["c"], ["d"], ["e"], ["f", "g"], ["h"]]
    assert plan_buckets(sizes, 10_000) == [list("abcdefgh")]
    assert plan_buckets(sizes, 1) == [[n] for n in "abcdefgh"]
    assert plan_buckets([], 100) == []
    with pytest.raises(ValueError, match="cap"):
        plan_buckets(sizes, 0)


def test_tensor_buckets_are_sized_in_the_wire_dtype():
    specs = [("w1", (256, 256)), ("w2", (256, 256)), ("b", (256,))]  # 65536, 65536, 256 elements
    # 0.25 MiB = 262144 B: in fp32 w1 (262144 B) and w2 each fill a bucket; in bf16 w1 + w2 fit one.
    assert [[n for n, _ in b] for b in plan_tensor_buckets(specs, "float32", 0.25)] == [["w1"], ["w2"], ["b"]]
    assert [[n for n, _ in b] for b in plan_tensor_buckets(specs, "bfloat16", 0.25)] == [["w1", "w2"], ["b"]]
    assert plan_tensor_buckets(specs, "float32", 1)[0][0] == ("w1", (256, 256))
    with pytest.raises(ValueError, match="int64"):
        plan_tensor_buckets(specs, "int64", 1)


def _round_trip(send_buckets, receive_plan, tensors, dtype):
    """Rank 0 sends `tensors` per `send_buckets` (thread); rank 1 receives per `receive_plan`."""
    store, host, port = host_store(30)
    out, errors = {}, []

    def receive():
        try:
            group = WeightGroup(1, 2, "gloo", host=host, port=port, timeout_s=30)
            out["version"] = receive_header(group, receive_plan)
            out["tensors"] = {n: t.clone() for n, t in receive_buckets(group, receive_plan, dtype)}
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    group = WeightGroup(0, 2, "gloo", store=store, timeout_s=30)
    send_header(group, 5, send_buckets)
    if not errors and send_buckets == receive_plan:
        for bucket in send_buckets:
            send_bucket(group, bucket, [tensors[n] for n, _ in bucket], dtype)
    thread.join(timeout=30)
    group.close()
    return out, errors


def test_gloo_round_trip_delivers_every_tensor_in_the_wire_dtype():
    torch.manual_seed(0)
    tensors = {"w1": torch.randn(256, 256), "w2": torch.randn(256, 256), "b": torch.randn(256), "s": torch.randn(3, 1, 2)}
    specs = [(n, tuple(t.shape)) for n, t in tensors.items()]
    buckets = plan_tensor_buckets(specs, "bfloat16", 0.25)
    out, errors = _round_trip(buckets, buckets, tensors, torch.bfloat16)
    assert not errors and out["version"] == 5
    assert list(out["tensors"]) == list(tensors)
    for name, t in tensors.items():
        assert out["tensors"][name].dtype == torch.bfloat16 and torch.equal(out["tensors"][name], t.bfloat16())


def test_receiver_with_another_plan_fails_loudly():
    tensors = {"w1": torch.randn(4, 4), "w2": torch.randn(4)}
    specs = [(n, tuple(t.shape)) for n, t in tensors.items()]
    out, errors = _round_trip(plan_tensor_buckets(specs, "float32", 1), plan_tensor_buckets(specs[:1], "float32", 1),
                              tensors, torch.float32)
    assert len(errors) == 1 and "trainer sends 1 buckets of 20 elements" in str(errors[0])


def test_sender_refuses_a_bucket_that_does_not_match_the_plan():
    store, _, _ = host_store(30)
    group = WeightGroup(0, 1, "gloo", store=store, timeout_s=30)  # a group of one: nothing blocks
    bucket = [("w", (2, 3))]
    with pytest.raises(RuntimeError, match="has 0 torch.float32 elements, the plan says 6"):
        send_bucket(group, bucket, [torch.zeros(0)], torch.float32)  # an ungathered ZeRO-3 shard
    send_bucket(group, bucket, [torch.zeros(2, 3)], torch.float32)
    group.close()
