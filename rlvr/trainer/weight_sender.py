"""The trainer's side of every weight sync: the bucket plan (the same on every rank), rank 0's
broadcast over the weight group (rlvr/comm/weight_group.py), and the shared buffer that ipc
receivers on this rank's machine and device load from (rlvr/comm/tensor_handles.py).

Every method that walks the buckets is collective: under ZeRO-3 all ranks gather each bucket's
shards in turn, so all must call, in the same order.
"""
from __future__ import annotations

import contextlib
import math
import os
from typing import Any, Dict, Iterator, List, Optional

import torch

from rlvr.trainer.deepspeed_setup import whole_tensors


class WeightSender:
    """One rank's weight-sync state over its policy `module` (HF names)."""

    def __init__(self, module: torch.nn.Module, rank: int, device: torch.device, zero_stage: int):
        self.module, self.rank, self.device, self.zero_stage = module, rank, device, zero_stage
        self._plan = None  # (dtype, [[(name, shape)]])
        self._store = None  # rank 0: the weight group's rendezvous store
        self._group = None  # rank 0: the WeightGroup, once joined
        self._ipc_buffer = None
        self._ipc_shm = None
        self._ipc_receivers: Optional[List[Any]] = None  # None: no ipc sync open

    def _tensors(self) -> List[tuple]:
        """(HF name, tensor) of every parameter (tied ones once) and persistent buffer, in module order."""
        module = self.module
        tensors = list(module.named_parameters())
        for name, buf in module.named_buffers():
            owner_name, _, leaf = name.rpartition(".")
            owner = module.get_submodule(owner_name) if owner_name else module
            if leaf not in owner._non_persistent_buffers_set:
                tensors.append((name, buf))
        return tensors

    def plan(self, dtype: str, bucket_mb: float):
        """The bucket plan of every weight sync mode (same on every rank): (dtype, [[(name, shape)]])."""
        from rlvr.comm.weight_group import plan_tensor_buckets

        specs = [(name, tuple(getattr(t, "ds_shape", t.shape))) for name, t in self._tensors()]
        self._plan = (dtype, plan_tensor_buckets(specs, dtype, bucket_mb))
        return self._plan

    def _whole_buckets(self) -> Iterator[tuple]:
        """(bucket index, bucket, its whole tensors) in plan order, on every rank; under ZeRO-3 only
        this bucket's shards are gathered while it is yielded. All ranks must iterate to the end."""
        _, buckets = self._plan
        tensors = dict(self._tensors())
        for index, bucket in enumerate(buckets):
            members = [tensors[name] for name, _ in bucket]
            with whole_tensors(members, self.zero_stage):
                yield index, bucket, members

    # ---- the collective group -------------------------------------------------------------
    def open_group(self, dtype: str, bucket_mb: float, timeout_s: float = 600.0) -> Optional[Dict[str, Any]]:
        """Plan the buckets (all ranks) and host the group's rendezvous (rank 0); all ranks must call.

        Returns on rank 0 {"host", "port", "backend", "dtype", "buckets": [[(name, shape)]]}, else None.
        """
        from rlvr.comm.weight_group import host_store

        self.plan(dtype, bucket_mb)
        if self.rank != 0:
            return None
        self._store, host, port = host_store(timeout_s)
        return {"host": host, "port": port, "dtype": dtype, "buckets": self._plan[1],
                "backend": "nccl" if self.device.type == "cuda" else "gloo"}

    def join_group(self, world_size: int, backend: str, timeout_s: float = 600.0) -> None:
        """Rank 0 joins the weight group as its sender (returns once every engine joined); others no-op."""
        from rlvr.comm.weight_group import WeightGroup

        if self.rank == 0:
            self._group = WeightGroup(0, world_size, backend, store=self._store, timeout_s=timeout_s)

    def broadcast(self, version: int) -> float:
        """Rank 0 sends every bucket to the engines; under ZeRO-3 all ranks gather each bucket's
        shards in turn, so at most one bucket is whole at a time. All ranks must call; returns seconds."""
        import time

        from rlvr.comm.weight_group import send_weights, synchronize, wire_dtype

        dtype, buckets = self._plan
        if self.rank == 0 and self._group is None:
            raise RuntimeError("broadcast_weights before join_weight_sync: set up the weight group first")
        synchronize(self.device)  # the update's queued GPU work is not the broadcast's
        start = time.perf_counter()
        whole = (members for _, _, members in self._whole_buckets())
        if self.rank == 0:  # every bucket once, in order; the receivers are told to fail if not
            send_weights(self._group, version, buckets, whole, wire_dtype(dtype))
        else:
            for _ in whole:  # ZeRO-3: this rank's part of each bucket's gather
                pass
        return time.perf_counter() - start  # send_weights synchronized the device after the last bucket

    def leave_group(self) -> None:
        """Close this rank's weight group membership (idempotent)."""
        group, self._group = self._group, None
        if group is not None:
            group.close()
        self._store = None

    # ---- by handle, to engines on this machine and device -----------------------------------
    def open_ipc(self, dtype: str, bucket_mb: float, receivers: Optional[List[Any]] = None) -> Dict[str, Any]:
        """Plan the buckets (all ranks must call) and, on a rank that serves engines (`receivers`:
        RolloutWorker actors on its node and device), allocate the one shareable buffer every bucket
        passes through (as many elements as the largest bucket, in `dtype`, on this rank's device).

        Returns {"buckets": [[(name, shape)]], "shm_file": the buffer's /dev/shm file or None}.
        """
        from rlvr.comm.tensor_handles import shared_empty, shm_file
        from rlvr.comm.weight_group import wire_dtype

        self.close_ipc()
        _, buckets = self.plan(dtype, bucket_mb)
        self._ipc_receivers = list(receivers or [])
        self._ipc_buffer, self._ipc_shm = None, None
        if self._ipc_receivers or receivers is None:  # None: a caller outside Ray takes ipc_buckets itself
            largest = max(sum(math.prod(shape) for _, shape in bucket) for bucket in buckets)
            self._ipc_buffer = shared_empty(largest, wire_dtype(dtype), self.device)
            self._ipc_shm = shm_file(self._ipc_buffer)
        return {"buckets": buckets, "shm_file": self._ipc_shm}

    def ipc_buckets(self) -> Iterator[tuple]:
        """(bucket index, flat tensor of that bucket in the shared buffer) in plan order; the flat
        tensor is None on ranks without a buffer. The buffer is rewritten when the iteration resumes,
        so hand each bucket over (and wait for its receivers) before asking for the next one.
        All ranks must iterate to the end (ZeRO-3 gathers every bucket's shards on every rank)."""
        from rlvr.comm.tensor_handles import fill

        buffer = self._ipc_buffer
        for index, _, members in self._whole_buckets():
            flat = fill(buffer, members) if buffer is not None else None
            if flat is not None and flat.is_cuda:
                torch.cuda.current_stream(flat.device).synchronize()  # written before a receiver reads it
            yield index, flat

    def send_ipc(self, version: int) -> float:
        """Hand every bucket to this rank's receivers by handle, one bucket at a time, each waiting
        for every receiver to load it; the last bucket stamps `version`. All ranks must call; seconds."""
        import time

        import ray

        from rlvr.comm.tensor_handles import share

        if self._ipc_receivers is None:
            raise RuntimeError("send_ipc_weights before open_ipc_sync: set up the ipc weight sync first")
        start = time.perf_counter()
        try:
            for index, flat in self.ipc_buckets():
                if self._ipc_receivers:
                    ray.get([w.receive_ipc_bucket.remote(version, index, share(flat)) for w in self._ipc_receivers])
        except BaseException:
            self.close_ipc()  # a failed sync ends the run: do not leave the /dev/shm file behind
            raise
        return time.perf_counter() - start

    def close_ipc(self) -> None:
        """Release the shared buffer and remove its /dev/shm file (mappings still open stay valid; idempotent)."""
        self._ipc_buffer = None
        path, self._ipc_shm = self._ipc_shm, None
        if path is not None:
            # torch removes the file when the last reference goes; a handle never opened (a failed
            # sync) would keep it, and torch's clean-up daemon dies with a killed actor
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self._ipc_receivers = None
