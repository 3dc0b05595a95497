"""The ipc hand-over's CPU twin: a bucket in a /dev/shm buffer, its handle pickled to another
process that maps the same memory; the file is gone once both sides let go. And who serves whom."""
import os
import pickle
import subprocess
import sys

import pytest
import torch

from rlvr.comm.tensor_handles import (
    BucketOrder, assign_senders, fill, open_handle, share, shared_empty, shm_file, unflatten)

# The child maps each handle it reads, checks the bucket's sum, doubles the bucket in place (the
# parent sees it: same memory, no copy) and lets go before acknowledging.
CHILD = r"""
import pickle, sys, torch
from rlvr.comm.tensor_handles import open_handle
def load(line):
    flat = open_handle(pickle.loads(bytes.fromhex(line)))
    total = float(flat.sum())
    flat.mul_(2)
    if flat.is_cuda:
        torch.cuda.synchronize()  # written before the acknowledgement
    return total
for line in sys.stdin:
    print(load(line.strip()), flush=True)
"""


DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU")])]


@pytest.mark.parametrize("device", DEVICES)
def test_a_pickled_handle_maps_the_same_memory_in_another_process_and_the_file_goes_after_close(device):
    buffer = shared_empty(8, torch.float32, device)
    path = shm_file(buffer)
    if device == "cpu":
        assert path.startswith("/dev/shm/") and os.path.exists(path)
    else:
        assert path is None  # CUDA IPC: device memory, no file
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd()] + sys.path)}
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, env=env)
    try:
        for k in range(2):  # the buffer is reused: bucket 1 overwrites bucket 0 after its ack
            flat = fill(buffer, [torch.full((2, 2), 1.0 + k, device=device),
                                 torch.tensor([5.0, 6.0], dtype=torch.float64, device=device)])
            assert flat.shape == (6,) and flat.dtype == torch.float32  # cast to the buffer's dtype
            child.stdin.write(pickle.dumps(share(flat)).hex() + "\n")
            child.stdin.flush()
            assert float(child.stdout.readline()) == 4 * (1.0 + k) + 11.0
            assert flat.tolist() == [2 * (1.0 + k)] * 4 + [10.0, 12.0]
    finally:
        child.stdin.close()
        child.wait(timeout=60)
    assert child.returncode == 0
    del flat, buffer
    assert path is None or not os.path.exists(path)  # every handle was opened once: nothing holds the file


def test_unflatten_gives_views_of_the_plan_and_refuses_another_size():
    buffer = shared_empty(10, torch.float32, "cpu")
    flat = fill(buffer, [torch.arange(6.0), torch.arange(3.0)])
    opened = open_handle(share(flat))  # in this process too (the gpu_check's CPU run)
    views = dict(unflatten(opened, [("a", (2, 3)), ("b", (3,))]))
    assert views["a"].tolist() == [[0, 1, 2], [3, 4, 5]] and views["b"].tolist() == [0, 1, 2]
    with pytest.raises(RuntimeError, match="bucket starting at a has 8 elements"):
        list(unflatten(opened, [("a", (2, 4))]))
    with pytest.raises(ValueError, match="shared_empty"):
        share(torch.zeros(3))


def test_buckets_must_arrive_in_order_each_once():
    order = BucketOrder([["a"], ["b"], ["c"]], "hf")
    assert order.take(0) == (["a"], False) and order.take(1) == (["b"], False) and order.take(2) == (["c"], True)
    assert order.take(0) == (["a"], False)  # the next sync starts over
    with pytest.raises(RuntimeError, match="sent bucket 2 where bucket 1 of 3 was due"):
        order.take(2)
    assert order.take(0) == (["a"], False)


def test_each_engine_is_served_by_the_lowest_rank_on_its_node_and_gpu():
    cpu = [{"node": "n1", "gpu": None}, {"node": "n1", "gpu": None}]
    assert assign_senders(cpu, [{"node": "n1", "gpu": None}] * 3) == [[0, 1, 2], []]
    gpus = [{"node": "n1", "gpu": "GPU-a"}, {"node": "n1", "gpu": "GPU-b"}]  # colocated: shard i with rank i
    assert assign_senders(gpus, [{"node": "n1", "gpu": "GPU-b"}, {"node": "n1", "gpu": "GPU-a"}]) == [[1], [0]]
    with pytest.raises(ValueError, match=r"rollout worker 1 \(node n2, on CPU\) shares no node"):
        assign_senders(cpu, [{"node": "n1", "gpu": None}, {"node": "n2", "gpu": None}])
    with pytest.raises(ValueError, match="on GPU GPU-c.*cluster.colocate = true"):
        assign_senders(gpus, [{"node": "n1", "gpu": "GPU-c"}])
