"""How new weights reach the rollout engines (`rollout.weight_sync`), driven from the controller.

collective: trainer rank 0 broadcasts bucketed weights over a process group of its own with
every engine (rlvr/comm/weight_group.py), set up once after the actors start.
ipc: engines on a trainer rank's own machine and device (cluster.colocate) load each bucket from
that rank's buffer by handle (CUDA IPC on GPU, a /dev/shm file on CPU; rlvr/comm/tensor_handles.py).
object_store: rank 0's whole state dict goes through Ray's object store (shared memory).
in_process: the engine lives in trainer rank 0's process (rollout.in_trainer); rank 0 copies.
"""
from __future__ import annotations

import time
from typing import Any, Callable, List, Optional, Sequence

from rlvr.tracking.tracker import progress

DEFAULT_TIMEOUT_S = 600.0  # a member that does not join or send within this fails the group


def _wait_all(named_refs: Sequence[tuple], timeout_s: Optional[float] = None) -> List[Any]:
    """Results of (who, ref) pairs in order; the first failure raises at once, naming who failed.
    With `timeout_s` (cluster.stage_timeout_s), no call finishing for that long is a hang:
    StageTimeout names who had not answered."""
    import ray

    from rlvr.controller.faults import StageTimeout

    who_of = {ref: who for who, ref in named_refs}
    results, pending = {}, [ref for _, ref in named_refs]
    while pending:
        done, pending = ray.wait(pending, num_returns=1, **({"timeout": timeout_s} if timeout_s else {}))
        if not done:
            raise StageTimeout(f"{', '.join(who_of[ref] for ref in pending)} made no progress for "
                               f"cluster.stage_timeout_s = {timeout_s} s (weight sync)")
        for ref in done:
            try:
                results[ref] = ray.get(ref)
            except Exception as err:
                raise RuntimeError(f"weight sync failed in {who_of[ref]}: {err}") from err
    return [results[ref] for _, ref in named_refs]


class ObjectStoreSync:
    """Rank 0's full state dict through the object store; every worker loads it in place."""

    def __init__(self, trainer, rollout: Sequence[Any], stage_timeout_s: Optional[float] = None):
        self.trainer, self.rollout, self.stage_timeout_s = trainer, list(rollout), stage_timeout_s

    def sync(self, version: int) -> None:
        state_ref = self.trainer.full_state_dict_ref()
        _wait_all([(f"rollout worker {i}", w.update_weights.remote(state_ref, version))
                   for i, w in enumerate(self.rollout)], self.stage_timeout_s)

    def close(self) -> None:
        pass


class InProcessSync:
    """rollout.in_trainer: trainer rank 0 copies its weights into the engine in its own process
    (every rank takes part: under ZeRO-3 the full weights are gathered)."""

    def __init__(self, trainer, stage_timeout_s: Optional[float] = None):
        self.trainer, self.stage_timeout_s = trainer, stage_timeout_s
        progress("weight sync: in process (the rollout engine runs inside trainer rank 0)")

    def sync(self, version: int) -> None:
        refs = self.trainer.submit("load_engine_weights", [(version,)] * self.trainer.num_ranks)
        _wait_all([(f"trainer rank {r}", ref) for r, ref in enumerate(refs)], self.stage_timeout_s)

    def close(self) -> None:
        pass


def weight_group_ranks(sizes: Sequence[int]) -> tuple:
    """(first rank of each engine, world size) of a weight group: rank 0 is the trainer, then each
    engine's `sizes[i]` workers (its tensor-parallel shards) in turn: engines x TP + 1 in all."""
    firsts, rank = [], 1
    for size in sizes:
        if int(size) < 1:
            raise ValueError(f"weight sync: an engine brings {size} workers to the weight group")
        firsts.append(rank)
        rank += int(size)
    return firsts, rank


class CollectiveSync:
    """Trainer rank 0 and every rollout engine's workers in one weight group (weight_group_ranks)."""

    def __init__(self, trainer, rollout: Sequence[Any], dtype: str, bucket_mb: float,
                 timeout_s: float = DEFAULT_TIMEOUT_S, stage_timeout_s: Optional[float] = None):
        self.trainer, self.rollout, self.stage_timeout_s = trainer, list(rollout), stage_timeout_s
        start = time.time()
        info = trainer.collect("open_weight_sync", trainer.submit(
            "open_weight_sync", [(dtype, bucket_mb, timeout_s)] * trainer.num_ranks))[0]
        sizes = _wait_all([(f"rollout worker {i}", w.weight_group_size.remote()) for i, w in enumerate(self.rollout)])
        first_ranks, world = weight_group_ranks(sizes)
        joins = [(f"rollout worker {i}", w.join_weight_group.remote(
                      info["host"], info["port"], first, world, info["backend"], info["buckets"], dtype, timeout_s))
                 for i, (w, first) in enumerate(zip(self.rollout, first_ranks))]
        # ranks join concurrently: the group forms only when all of them are in
        trainer_refs = trainer.submit("join_weight_sync", [(world, info["backend"], timeout_s)] * trainer.num_ranks)
        _wait_all(joins + [(f"trainer rank {r}", ref) for r, ref in enumerate(trainer_refs)])
        self.num_buckets = len(info["buckets"])
        progress(f"weight sync: {info['backend']} group of {world} ({info['host']}:{info['port']}), "
                 f"{self.num_buckets} bucket(s) of <= {bucket_mb} MiB in {dtype}, "
                 f"set up in {time.time() - start:.1f} s")

    def sync(self, version: int) -> None:
        trainer_refs = self.trainer.submit("broadcast_weights", [(version,)] * self.trainer.num_ranks)
        receives = [(f"rollout worker {i}", w.receive_weights.remote(version)) for i, w in enumerate(self.rollout)]
        _wait_all(receives + [(f"trainer rank {r}", ref) for r, ref in enumerate(trainer_refs)], self.stage_timeout_s)

    def close(self) -> None:
        """Leave the group on every member (best effort: used on the way out)."""
        import ray

        refs = [w.leave_weight_group.remote() for w in self.rollout]
        try:
            ray.get(refs, timeout=30)
        except Exception:  # noqa: BLE001
            pass
        try:
            self.trainer.collect("leave_weight_sync", self.trainer.submit("leave_weight_sync"))
        except Exception:  # noqa: BLE001
            pass


class IpcSync:
    """Each engine is served by the trainer rank on its node and device (rank 0 when all are on one
    CPU node); that rank hands it every bucket by handle and waits for its acknowledgement."""

    def __init__(self, trainer, rollout: Sequence[Any], dtype: str, bucket_mb: float,
                 stage_timeout_s: Optional[float] = None):
        from rlvr.comm.tensor_handles import assign_senders

        self.trainer, self.rollout, self.stage_timeout_s = trainer, list(rollout), stage_timeout_s
        start = time.time()
        ranks = trainer.collect("weights_location", trainer.submit("weights_location"))
        engines = _wait_all([(f"rollout worker {i}", w.weights_location.remote()) for i, w in enumerate(self.rollout)])
        served = assign_senders(ranks, engines)
        per_rank = [(dtype, bucket_mb, [self.rollout[i] for i in served[r]]) for r in range(trainer.num_ranks)]
        infos = trainer.collect("open_ipc_sync", trainer.submit("open_ipc_sync", per_rank))
        buckets = infos[0]["buckets"]
        _wait_all([(f"rollout worker {i}", w.open_ipc_sync.remote(buckets, dtype)) for i, w in enumerate(self.rollout)])
        self.num_buckets = len(buckets)
        self.shm_files = [info["shm_file"] for info in infos if info["shm_file"]]
        senders = ", ".join(f"rank {r} -> worker(s) {served[r]}" for r in range(len(served)) if served[r])
        progress(f"weight sync: ipc ({senders}), {self.num_buckets} bucket(s) of <= {bucket_mb} MiB in {dtype} "
                 f"through {'CUDA IPC' if engines[0]['gpu'] else '/dev/shm'}, set up in {time.time() - start:.1f} s")

    def sync(self, version: int) -> None:
        refs = self.trainer.submit("send_ipc_weights", [(version,)] * self.trainer.num_ranks)
        _wait_all([(f"trainer rank {r} (serving its engines by handle)", ref) for r, ref in enumerate(refs)],
                  self.stage_timeout_s)
        self.trainer.collect("send_ipc_weights", refs)

    def close(self) -> None:
        """Free the trainer's shared buffers (best effort: used on the way out)."""
        try:
            self.trainer.collect("close_ipc_sync", self.trainer.submit("close_ipc_sync"))
        except Exception:  # noqa: BLE001
            pass


def make_weight_sync(mode: str, trainer, rollout: Sequence[Any], dtype: str, bucket_mb: float,
                     stage_timeout_s: Optional[float] = None):
    """The `rollout.weight_sync` strategy ("collective" | "ipc" | "object_store" | "in_process") over
    started actors.

    "auto" is resolved by load_recipe (ipc when colocated); a config built without it gets collective.
    stage_timeout_s (cluster.stage_timeout_s): a sync with no call finishing for that long raises
    StageTimeout (a hang: the run restarts its actors or fails, naming who hung).
    """
    if mode == "auto":
        mode = "collective"
    if mode == "collective":
        return CollectiveSync(trainer, rollout, dtype, bucket_mb, stage_timeout_s=stage_timeout_s)
    if mode == "ipc":
        return IpcSync(trainer, rollout, dtype, bucket_mb, stage_timeout_s=stage_timeout_s)
    if mode == "object_store":
        return ObjectStoreSync(trainer, rollout, stage_timeout_s)
    if mode == "in_process":
        return InProcessSync(trainer, stage_timeout_s)
    raise ValueError(f"rollout.weight_sync = {mode!r} must be collective, ipc, object_store or in_process")


def _call_all_ray(workers: Sequence[Any], method: str) -> List[Any]:
    return _wait_all([(f"rollout worker {i}", getattr(w, method).remote()) for i, w in enumerate(workers)])


class EngineSleep:
    """rollout.sleep_while_training: colocated engines sleep while the trainer steps (their weights
    off the GPU, the KV cache freed) and wake before the weight sync. A no-op when off.

    The RL step calls `before_train()` after the rollouts it trains on are generated (and before
    the train call), and `before_sync()` after training and before the weight sync; each returns
    the seconds the engines took (perf/engine_sleep_s, perf/engine_wake_s). `call_all(workers,
    method)` runs a method on every worker and waits (Ray actors by default).
    """

    def __init__(self, rollout: Sequence[Any], enabled: bool, call_all: Callable = _call_all_ray):
        self.rollout, self.enabled, self._call_all = list(rollout), bool(enabled), call_all

    def before_train(self) -> float:
        return self._run("sleep")

    def before_sync(self) -> float:
        return self._run("wake_up")

    def _run(self, method: str) -> float:
        if not self.enabled:
            return 0.0
        start = time.perf_counter()
        self._call_all(self.rollout, method)
        return time.perf_counter() - start
