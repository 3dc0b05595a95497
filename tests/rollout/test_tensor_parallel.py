"""Tensor-parallel vLLM engines in the weight group, through a stand-in executor: vLLM's
`collective_rpc` runs a method on every shard's worker at once and returns one result each.

vLLM's CPU backend at TP = 2 is too slow to start for a test on a 2-core machine (it refuses by
default: its workers bind OpenMP threads per NUMA node, one node here; with
VLLM_CPU_OMP_THREADS_BIND=nobind it started in 178 s), so the workers are WeightReloadExtension
objects like vLLM's (a `rank`, a model runner), joined to a real gloo weight group.
"""
import os
import threading
import types

import pytest
import torch

from rlvr.comm.weight_group import WeightGroup, host_store, plan_tensor_buckets, send_weights
from rlvr.controller.weight_sync import weight_group_ranks
from rlvr.rollout.vllm_engine import VLLMEngine
from rlvr.rollout.vllm_extension import WeightReloadExtension

SHAPES = {"embed": (16, 8), "q": (8, 8), "k": (8, 8), "norm": (8,)}


@pytest.fixture(autouse=True)
def _no_vllm_platform(monkeypatch):
    """The workers' loader is the stand-in's recorder (importing vLLM's platform takes seconds)."""
    from rlvr.rollout import vllm_extension

    monkeypatch.setattr(vllm_extension, "_load_in_place", lambda worker, weights: worker.reload_weights(weights))


class StandInWorker(WeightReloadExtension):
    """One shard's worker: vLLM's `rank` attribute, and a loader that records what it is given."""

    def __init__(self, rank):
        self.rank = rank
        self.model_runner = types.SimpleNamespace(model=torch.nn.Module())
        self.loads = []  # one {name: tensor} per load call
        self.file_bytes = []

    def reload_weights(self, weights_iterator):  # what the worker's loader is given
        self.loads.append({name: tensor.clone() for name, tensor in weights_iterator})

    def rlvr_load_weights_from_file(self, path):
        self.file_bytes.append(os.path.getsize(path))
        return super().rlvr_load_weights_from_file(path)


class StandInExecutor:
    """vLLM's LLM as seen by the engine: collective_rpc runs on every worker concurrently (each
    shard is its own process in vLLM) and returns their results in worker order."""

    def __init__(self, workers):
        self.workers, self.prefix_resets = workers, 0

    def collective_rpc(self, method, args=(), kwargs=None):
        results, errors = [None] * len(self.workers), []

        def run(i):
            try:
                results[i] = getattr(self.workers[i], method)(*args, **(kwargs or {}))
            except Exception as err:  # noqa: BLE001
                errors.append(err)

        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(self.workers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        if errors:
            raise errors[0]
        return results

    def reset_prefix_cache(self):
        self.prefix_resets += 1


def _engine(workers, on_cpu=True, load_chunk_mb=512.0):
    engine = VLLMEngine.__new__(VLLMEngine)  # no vLLM start: the executor is the stand-in
    engine.llm = StandInExecutor(workers)
    engine.tensor_parallel_size = len(workers)
    engine._param_names, engine._aliased = set(SHAPES), set()
    engine.dtype, engine.on_cpu, engine.load_chunk_mb = torch.float32, on_cpu, load_chunk_mb
    return engine


def test_weight_group_ranks_give_each_shard_its_own_rank():
    # trainer 0; engine A (TP 2) 1-2; engine B (TP 1) 3; engine C (TP 4) 4-7
    assert weight_group_ranks([2, 1, 4]) == ([1, 3, 4], 8)
    assert weight_group_ranks([1, 1]) == ([1, 2], 3)
    with pytest.raises(ValueError, match="brings 0 workers"):
        weight_group_ranks([2, 0])


def test_two_tp2_engines_join_with_distinct_ranks_and_every_shard_loads_every_sync():
    torch.manual_seed(0)
    specs = list(SHAPES.items())
    buckets = plan_tensor_buckets(specs, "float32", 512 / 2**20)  # 128 floats per bucket: several buckets
    assert len(buckets) > 1
    engines = [_engine([StandInWorker(0), StandInWorker(1)]) for _ in range(2)]
    firsts, world = weight_group_ranks([e.weight_group_size() for e in engines])
    assert (firsts, world) == ([1, 3], 5)
    store, host, port = host_store(30)
    errors = []

    def in_threads(calls):
        threads = [threading.Thread(target=call, daemon=True) for call in calls]
        for t in threads:
            t.start()
        return threads

    def guarded(fn):
        def run():
            try:
                fn()
            except Exception as err:  # noqa: BLE001
                errors.append(err)
        return run

    joins = in_threads([guarded(lambda e=e, f=f: e.join_weight_group(host, port, f, world, "gloo", buckets,
                                                                       "float32", 30))
                        for e, f in zip(engines, firsts)])
    sender = WeightGroup(0, world, "gloo", store=store, timeout_s=30)  # shared memory, as the trainer
    for t in joins:
        t.join(timeout=30)
    assert not errors
    ranks = [[w._rlvr_sync[0].rank for w in e.llm.workers] for e in engines]
    assert ranks == [[1, 2], [3, 4]]
    assert {w._rlvr_sync[0].world_size for e in engines for w in e.llm.workers} == {5}

    versions = {}
    for version in (1, 2):
        sent = {name: torch.randn(shape) for name, shape in SHAPES.items()}
        receives = in_threads([guarded(lambda e=e, i=i: versions.__setitem__((i, version), e.receive_weights()))
                               for i, e in enumerate(engines)])
        send_weights(sender, version, buckets, ([sent[n] for n, _ in b] for b in buckets), torch.float32)
        for t in receives:
            t.join(timeout=30)
        assert not errors
        for engine in engines:
            for worker in engine.llm.workers:  # every shard got every full tensor (the loader slices it)
                assert set(worker.loads[-1]) == set(SHAPES)
                assert all(torch.equal(worker.loads[-1][n], sent[n]) for n in SHAPES)
    assert versions == {(0, 1): 1, (1, 1): 1, (0, 2): 2, (1, 2): 2}
    assert all(e.llm.prefix_resets == 2 for e in engines)
    for engine in engines:
        engine.leave_weight_group()
    sender.close()


def test_results_of_every_worker_are_checked():
    engine = _engine([StandInWorker(0), StandInWorker(1)])
    engine.llm.collective_rpc = lambda method, args=(), kwargs=None: [3, 4]
    with pytest.raises(RuntimeError, match=r"received versions \[3, 4\]"):
        engine.receive_weights()
    engine.llm.collective_rpc = lambda method, args=(), kwargs=None: [7]
    with pytest.raises(RuntimeError, match="answered from 1 workers, the engine has tensor_parallel_size = 2"):
        engine.receive_weights()
    # two shards taking one rank (the hang NCCL would give) is caught when they answer
    engine.llm.collective_rpc = lambda method, args=(), kwargs=None: [1, 1]
    buckets = plan_tensor_buckets(list(SHAPES.items()), "float32", 1)
    with pytest.raises(RuntimeError, match=r"joined the weight group as ranks \[1, 1\], expected \[1, 2\]"):
        engine.join_weight_group("127.0.0.1", 1, 1, 3, "gloo", buckets, "float32")


def test_object_store_loads_stream_through_small_files_on_gpu_and_one_file_on_cpu():
    torch.manual_seed(1)
    state = {name: torch.randn(shape) for name, shape in SHAPES.items()}
    gpu = _engine([StandInWorker(0), StandInWorker(1)], on_cpu=False, load_chunk_mb=300 / 2**20)
    gpu.load_weights(state)
    for worker in gpu.llm.workers:
        # chunks of <= 300 bytes of tensors: embed (512 B) alone, q, k, norm...; each shard loads each
        assert len(worker.loads) == len(worker.file_bytes) >= 3
        assert max(worker.file_bytes) < 512 + 1024  # one chunk (plus the safetensors header), never the model
        merged = {n: t for load in worker.loads for n, t in load.items()}
        assert set(merged) == set(SHAPES) and all(torch.equal(merged[n], state[n]) for n in SHAPES)
    cpu = _engine([StandInWorker(0)], on_cpu=True)
    cpu.load_weights(state)
    assert len(cpu.llm.workers[0].loads) == 1  # the CPU reload must see whole layers in one pass
    assert not [f for f in os.listdir("/dev/shm") if f.startswith(f"rlvr-weights-{os.getpid()}-")]
