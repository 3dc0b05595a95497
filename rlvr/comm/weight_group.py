"""The weight-sync group: trainer rank 0 broadcasts parameters to every rollout engine in buckets.

The group is a process group of its own (rank 0 = trainer rank 0, rank 1 + i = rollout engine i),
built directly from a dedicated TCPStore and a ProcessGroupGloo (CPU) / ProcessGroupNCCL (GPU).
It joins no global torch.distributed world, so a process keeps its DeepSpeed or vLLM default
group beside it. This module is imported inside vLLM's worker: it depends on torch only.

Wire protocol of one sync: a header int64[3] = (version, number of buckets, total elements),
then one flat tensor per bucket in the engine's dtype, holding the bucket's tensors in order.
Sender and receivers hold the same bucket plan (computed once by the trainer at set-up).
"""
from __future__ import annotations

import datetime
import math
from typing import Iterator, List, Optional, Sequence, Tuple

import torch

SYNC_MODES = ("collective", "object_store")
SENDER = 0  # trainer rank 0 is rank 0 of the weight group; rollout engine i is rank 1 + i
_STORE_PREFIX = "rlvr-weight-sync"

TensorSpec = Tuple[str, Tuple[int, ...]]  # (HF state-dict name, full shape)
Buckets = List[List[TensorSpec]]


def plan_buckets(sizes: Sequence[Tuple[str, int]], cap_bytes: int) -> List[List[str]]:
    """Split (name, bytes) pairs, in order, into buckets of at most `cap_bytes` bytes each.

    Order is preserved (the buckets concatenated give the input names); a tensor larger than
    the cap gets a bucket of its own.
    """
    if cap_bytes <= 0:
        raise ValueError(f"bucket cap must be > 0 bytes, got {cap_bytes}")
    buckets: List[List[str]] = []
    current: List[str] = []
    used = 0
    for name, size in sizes:
        if current and used + size > cap_bytes:
            buckets.append(current)
            current, used = [], 0
        current.append(name)
        used += size
    if current:
        buckets.append(current)
    return buckets


def wire_dtype(name: str) -> torch.dtype:
    """torch dtype of a `model.dtype` string; weights travel in floating dtypes only."""
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"weight sync dtype {name!r} is not a floating torch dtype (e.g. float32, bfloat16)")
    return dtype


def plan_tensor_buckets(specs: Sequence[TensorSpec], dtype: str, bucket_mb: float) -> Buckets:
    """Buckets of (name, shape) whose size in `dtype` is at most `bucket_mb` MiB each (see plan_buckets)."""
    itemsize = wire_dtype(dtype).itemsize
    shapes = dict(specs)
    names = plan_buckets([(name, math.prod(shape) * itemsize) for name, shape in specs],
                         max(1, int(bucket_mb * 2**20)))
    return [[(name, tuple(shapes[name])) for name in bucket] for bucket in names]


def node_ip() -> str:
    """This node's address as Ray sees it (what other nodes can reach), else loopback."""
    try:
        import ray

        if ray.is_initialized():
            return ray.util.get_node_ip_address()
    except ImportError:
        pass
    return "127.0.0.1"


def host_store(timeout_s: float) -> Tuple[torch.distributed.TCPStore, str, int]:
    """Rank 0's rendezvous store on a port the OS picks: (store, host, port) to hand to the others.

    On a loopback node (a local cluster) the store listens on 127.0.0.1 only: torch's TCPStore
    would listen on every interface, so it is handed a socket already bound to loopback.
    """
    host, timeout = node_ip(), datetime.timedelta(seconds=timeout_s)
    if host.startswith("127."):
        import socket

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((host, 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        # detach: the store serves on this fd from now on; a closed Python socket must not close it
        store = torch.distributed.TCPStore(host, port, None, True, timeout,
                                           wait_for_workers=False, master_listen_fd=sock.detach())
    else:
        store = torch.distributed.TCPStore(host, 0, None, True, timeout, wait_for_workers=False)
    return store, host, store.port


class WeightGroup:
    """One member of the weight-sync group; collective calls block until every member makes them."""

    def __init__(self, rank: int, world_size: int, backend: str, *, host: str = "", port: int = 0,
                 store: Optional[torch.distributed.Store] = None, timeout_s: float = 600.0):
        """Join as `rank` of `world_size`: rank 0 passes its `host_store` store, others its host and port.

        Returns once every member has joined (members must join concurrently).
        """
        self.rank, self.world_size, self.backend = int(rank), int(world_size), backend
        timeout = datetime.timedelta(seconds=timeout_s)
        if store is None:
            store = torch.distributed.TCPStore(host, int(port), None, False, timeout)
        self._store = store
        prefixed = torch.distributed.PrefixStore(_STORE_PREFIX, store)
        if backend == "gloo":
            self.pg = torch.distributed.ProcessGroupGloo(prefixed, self.rank, self.world_size, timeout)
            self.device = torch.device("cpu")
        elif backend == "nccl":
            # GPU path: NOT TESTED on the CPU dev machine (its CPU twin is gloo above).
            _refuse_shared_gpu(prefixed, self.rank, self.world_size)
            options = torch.distributed.ProcessGroupNCCL.Options()
            options._timeout = timeout
            self.pg = torch.distributed.ProcessGroupNCCL(prefixed, self.rank, self.world_size, options)
            self.device = torch.device("cuda", torch.cuda.current_device())
        else:
            raise ValueError(f"weight sync backend {backend!r} must be gloo or nccl")
        self.barrier()  # NCCL connects lazily; this makes a broken group fail here, not mid-sync

    def broadcast(self, tensor: torch.Tensor) -> None:
        """Rank 0's `tensor` into every member's `tensor` (same shape and dtype everywhere)."""
        self.pg.broadcast([tensor], _broadcast_options()).wait()

    def barrier(self) -> None:
        flag = torch.zeros(1, device=self.device)
        self.broadcast(flag)

    def close(self) -> None:
        pg, self.pg = getattr(self, "pg", None), None
        if pg is not None and hasattr(pg, "shutdown"):
            try:
                pg.shutdown()
            except Exception:  # noqa: BLE001 - leaving a group whose peers are gone
                pass
        self._store = None


def _refuse_shared_gpu(store, rank: int, world_size: int) -> None:
    """NCCL cannot put two ranks on one GPU; an engine on the trainer's own GPU would need CUDA IPC
    handles instead, which are NOT IMPLEMENTED (no CPU twin to test them): fail before NCCL hangs."""
    uuid = str(torch.cuda.get_device_properties(torch.cuda.current_device()).uuid)
    store.set(f"gpu/{rank}", uuid)
    uuids = [store.get(f"gpu/{r}").decode() for r in range(world_size)]
    shared = sorted({r for r in range(world_size) if uuids.count(uuids[r]) > 1})
    if shared:
        raise NotImplementedError(
            f"weight sync: ranks {shared} of the weight group share a GPU; NCCL needs one GPU per rank and "
            "same-GPU CUDA IPC hand-over is not implemented: give each rollout worker its own GPU or set "
            "rollout.weight_sync=object_store")


def _broadcast_options():
    options = torch.distributed.BroadcastOptions()
    options.rootRank, options.rootTensor = SENDER, 0
    return options


def _header(version: int, buckets: Buckets, device) -> torch.Tensor:
    total = sum(math.prod(shape) for bucket in buckets for _, shape in bucket)
    return torch.tensor([int(version), len(buckets), total], dtype=torch.int64, device=device)


def flatten_bucket(tensors: Sequence[torch.Tensor], dtype: torch.dtype, device) -> torch.Tensor:
    """One flat tensor in `dtype` on `device` holding `tensors` (whole, not ZeRO shards) in order."""
    return torch.cat([t.detach().reshape(-1).to(device=device, dtype=dtype) for t in tensors])


def send_bucket(group: WeightGroup, bucket: List[TensorSpec], tensors: Sequence[torch.Tensor],
                dtype: torch.dtype) -> None:
    """Rank 0: broadcast one bucket's whole `tensors` (in plan order) as one flat `dtype` tensor.

    Checked against the plan first: gloo aborts the process on a size mismatch instead of raising.
    """
    flat = flatten_bucket(tensors, dtype, group.device)
    numel = sum(math.prod(shape) for _, shape in bucket)
    if flat.numel() != numel or flat.dtype != dtype:
        raise RuntimeError(f"weight sync: bucket starting at {bucket[0][0]} has {flat.numel()} {flat.dtype} "
                           f"elements, the plan says {numel} {dtype} (a ZeRO-3 shard not gathered?)")
    group.broadcast(flat)


def send_header(group: WeightGroup, version: int, buckets: Buckets) -> None:
    """Rank 0: announce a sync of `version`; every bucket follows via `send_bucket`, in plan order."""
    group.broadcast(_header(version, buckets, group.device))


def receive_header(group: WeightGroup, buckets: Buckets) -> int:
    """Receivers: the version rank 0 sends; raises if its plan differs from `buckets`."""
    header = _header(-1, buckets, group.device)
    expected = header[1:].tolist()
    group.broadcast(header)
    if header[1:].tolist() != expected:
        raise RuntimeError(f"weight sync: the trainer sends {header[1].item()} buckets of {header[2].item()} "
                           f"elements, this engine expects {expected[0]} of {expected[1]}; both sides must "
                           "use the plan the trainer made at set-up")
    return int(header[0])


def receive_buckets(group: WeightGroup, buckets: Buckets, dtype: torch.dtype) -> Iterator[Tuple[str, torch.Tensor]]:
    """Receivers: (name, tensor of its full shape) for every tensor of every bucket, as they arrive.

    Each bucket lands in a fresh buffer: loaders may keep the yielded views until a layer is complete.
    """
    for bucket in buckets:
        numels = [math.prod(shape) for _, shape in bucket]
        flat = torch.empty(sum(numels), dtype=dtype, device=group.device)
        group.broadcast(flat)
        offset = 0
        for (name, shape), numel in zip(bucket, numels):
            yield name, flat[offset:offset + numel].view(shape)
            offset += numel
