"""The weight-sync group: trainer rank 0 broadcasts parameters to every rollout engine in buckets.

The group is a process group of its own (rank 0 = trainer rank 0, rank 1 + i = rollout engine i),
built directly from a dedicated TCPStore and a ProcessGroupGloo (CPU) / ProcessGroupNCCL (GPU).
It joins no global torch.distributed world, so a process keeps its DeepSpeed or vLLM default
group beside it. This module is imported inside vLLM's worker: it depends on torch only.

Wire protocol of one sync: a header int64[3] = (version, number of buckets, total elements),
then one flat tensor per bucket in the engine's dtype, holding the bucket's tensors in order.
Sender and receivers hold the same bucket plan (computed once by the trainer at set-up).

Shared-memory mode (gloo, every member on one host, checked when the group forms): the
buckets' bytes do not travel through sockets. Rank 0 packs each bucket into a shared file
every member mapped at join (unlinked at once, so nothing is left behind), and broadcasts a
small "bucket ready" instead of the bucket: int64[4] = header + the first bucket's size, then
int64[1] = the size for each further bucket; receivers read views of the file, copying nothing.
Each receiver first sends rank 0 a one-number "previous sync done", and rank 0 rewrites the
file only after every receiver's: one message each way per sync for a one-bucket plan.
Bit-exact with the socket mode: the same packed tensor is read.
"""
from __future__ import annotations

import datetime
import math
import mmap
import os
import secrets
import tempfile
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from rlvr.comm.tensor_handles import pack, unflatten

SENDER = 0  # trainer rank 0 is rank 0 of the weight group; rollout engine i is rank 1 + i
_ACK_TAG = 7  # tag of the receivers' "previous sync done" messages (shared-memory mode)
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
                 store: Optional[torch.distributed.Store] = None, timeout_s: float = 600.0,
                 shared_memory: bool = True):
        """Join as `rank` of `world_size`: rank 0 passes its `host_store` store, others its host and port.

        Returns once every member has joined (members must join concurrently). `shared_memory`:
        use the shared-memory mode when every member can map rank 0's file (gloo only; all
        members must pass the same value).
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
        self._shm: Optional[_SharedFile] = None
        if backend == "gloo" and shared_memory and self.world_size > 1:
            self._shm = _SharedFile.join(prefixed, self.rank, self.world_size)
        self.barrier()  # NCCL connects lazily; this makes a broken group fail here, not mid-sync
        self._send_plan: Dict[tuple, Tuple[torch.Tensor, List[torch.Tensor]]] = {}
        self._header: Optional[torch.Tensor] = None  # shared-memory mode: sent with the first bucket

    @property
    def shared_memory(self) -> bool:
        """True when buckets travel through a shared file instead of the sockets."""
        return self._shm is not None

    def broadcast(self, tensor: torch.Tensor) -> None:
        """Rank 0's `tensor` into every member's `tensor` (same shape and dtype everywhere)."""
        self.pg.broadcast([tensor], _broadcast_options()).wait()

    def send_to_sender(self, tensor: torch.Tensor) -> None:
        """A receiver's `tensor` to rank 0 (point to point); rank 0 takes it with `receive_from`."""
        self.pg.send([tensor], SENDER, _ACK_TAG).wait()

    def receive_from(self, rank: int, tensor: torch.Tensor) -> None:
        """Rank 0: `tensor` sent by member `rank` with `send_to_sender`."""
        self.pg.recv([tensor], rank, _ACK_TAG).wait()

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
        shm, self._shm = getattr(self, "_shm", None), None
        if shm is not None:
            shm.close()
        self._send_plan = {}
        self._store = None


class _SharedFile:
    """A file in shared memory (/dev/shm) that every member maps; unlinked once all have it open.

    Buckets get page-aligned regions in the order they are first sent, the same on every member
    (all follow one plan); the file grows as regions are added.
    """

    def __init__(self, fd: int):
        self.fd = fd
        self.regions: Dict[tuple, Tuple[int, int]] = {}  # bucket key -> (offset, bytes)
        self.maps: List[mmap.mmap] = []
        self.views: Dict[tuple, torch.Tensor] = {}
        self.tensor_views: Dict[tuple, List[torch.Tensor]] = {}  # receivers: per-tensor views of a region
        self.end = 0

    @classmethod
    def join(cls, store, rank: int, world_size: int) -> Optional["_SharedFile"]:
        """Rank 0 creates the file and a token in it; a member that cannot open it or read the
        token (another host, another container's /dev/shm) turns the mode off for all."""
        fd, ok = -1, False
        if rank == SENDER:
            folder = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
            token = secrets.token_hex(16)
            try:
                fd, path = tempfile.mkstemp(prefix="rlvr-weight-sync-", dir=folder)
                os.write(fd, token.encode())
                ok = True
            except OSError:
                path = ""
            store.set("shm/path", f"{path}\n{token}")
        else:
            path, token = store.get("shm/path").decode().split("\n")
            try:
                fd = os.open(path, os.O_RDWR)
                ok = os.pread(fd, len(token), 0).decode() == token
            except (OSError, UnicodeDecodeError):
                ok = False
        store.set(f"shm/ok/{rank}", "1" if ok else "0")
        everyone = all(store.get(f"shm/ok/{r}") == b"1" for r in range(world_size))
        if rank == SENDER:
            # every member holds the file open (or the mode is off): nothing to leave behind
            if path:
                os.unlink(path)
            store.set("shm/opened", "1")
        else:
            store.get("shm/opened")  # members leave join together
        if not everyone:
            if fd >= 0:
                os.close(fd)
            return None
        return cls(fd)

    def view(self, key: tuple, numel: int, dtype: torch.dtype, grow: bool) -> torch.Tensor:
        """Flat `dtype` tensor of `numel` over bucket `key`'s region (added at the end on first use;
        `grow`: this member sizes the file, the others map what rank 0 already sized)."""
        cached = self.views.get(key)
        if cached is not None:
            return cached
        nbytes = numel * dtype.itemsize
        offset = self.end
        self.end = offset + -(-max(nbytes, 1) // mmap.ALLOCATIONGRANULARITY) * mmap.ALLOCATIONGRANULARITY
        if grow:
            os.ftruncate(self.fd, self.end)
        mapped = mmap.mmap(self.fd, self.end - offset, offset=offset)
        self.maps.append(mapped)
        self.regions[key] = (offset, nbytes)
        flat = torch.frombuffer(mapped, dtype=dtype, count=numel) if numel else torch.empty(0, dtype=dtype)
        self.views[key] = flat
        return flat

    def close(self) -> None:
        self.views.clear()
        self.tensor_views.clear()
        for mapped in self.maps:
            try:
                mapped.close()
            except BufferError:  # a caller still holds a view: the mapping goes with it
                pass
        self.maps = []
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _refuse_shared_gpu(store, rank: int, world_size: int) -> None:
    """NCCL cannot put two ranks on one GPU (an engine on the trainer's own GPU takes its weights by
    CUDA IPC handle instead, rollout.weight_sync=ipc): fail before NCCL hangs."""
    uuid = str(torch.cuda.get_device_properties(torch.cuda.current_device()).uuid)
    store.set(f"gpu/{rank}", uuid)
    uuids = [store.get(f"gpu/{r}").decode() for r in range(world_size)]
    shared = sorted({r for r in range(world_size) if uuids.count(uuids[r]) > 1})
    if shared:
        raise RuntimeError(
            f"weight sync: ranks {shared} of the weight group share a GPU; NCCL needs one GPU per rank: "
            "set rollout.weight_sync=ipc (an engine on the trainer's own GPU) or give each rollout worker "
            "its own GPU")


def _broadcast_options():
    options = torch.distributed.BroadcastOptions()
    options.rootRank, options.rootTensor = SENDER, 0
    return options


def _header(version: int, buckets: Buckets, device) -> torch.Tensor:
    total = sum(math.prod(shape) for bucket in buckets for _, shape in bucket)
    return torch.tensor([int(version), len(buckets), total], dtype=torch.int64, device=device)


def _bucket_key(bucket: List[TensorSpec], dtype: torch.dtype) -> tuple:
    return (bucket[0][0] if bucket else "", len(bucket), sum(math.prod(shape) for _, shape in bucket), dtype)


def _check_bucket(bucket: List[TensorSpec], tensors: Sequence[torch.Tensor], dtype: torch.dtype) -> None:
    """Raise unless `tensors` have the plan's sizes: gloo aborts the process on a size mismatch."""
    numel = sum(math.prod(shape) for _, shape in bucket)
    got = sum(t.numel() for t in tensors)
    if got != numel or len(tensors) != len(bucket) or any(
            t.numel() != math.prod(shape) for t, (_, shape) in zip(tensors, bucket)):
        raise RuntimeError(f"weight sync: bucket starting at {bucket[0][0] if bucket else '?'} has {got} {dtype} "
                           f"elements in {len(tensors)} tensors, the plan says {numel} {dtype} in {len(bucket)} "
                           "(a ZeRO-3 shard not gathered?)")


def _views(flat: torch.Tensor, bucket: List[TensorSpec]) -> List[torch.Tensor]:
    """Each tensor's full-shape view of the bucket laid out in `flat` (the layout the ipc sync uses too)."""
    return [view for _, view in unflatten(flat, bucket)]


def send_bucket(group: WeightGroup, bucket: List[TensorSpec], tensors: Sequence[torch.Tensor],
                dtype: torch.dtype) -> None:
    """Rank 0: broadcast one bucket's whole `tensors` (in plan order) as one flat `dtype` tensor.

    Checked against the plan first: gloo aborts the process on a size mismatch instead of raising.
    The flat buffer (a shared-memory region in that mode) is allocated once per bucket and reused.
    """
    _check_bucket(bucket, tensors, dtype)
    key = _bucket_key(bucket, dtype)
    planned = group._send_plan.get(key)
    if planned is None:
        numel = key[2]
        flat = (group._shm.view(key, numel, dtype, grow=True) if group.shared_memory
                else torch.empty(numel, dtype=dtype, device=group.device))
        planned = group._send_plan[key] = (flat, _views(flat, bucket))
    flat, views = planned
    pack(views, tensors)
    if group.shared_memory:
        header, group._header = group._header, None
        size = torch.tensor([flat.numel()], dtype=torch.int64)
        group.broadcast(size if header is None else torch.cat([header, size]))  # "bucket ready"
    else:
        group.broadcast(flat)


def send_header(group: WeightGroup, version: int, buckets: Buckets) -> None:
    """Rank 0: announce a sync of `version`; every bucket follows via `send_bucket`, in plan order.

    Shared-memory mode: waits until every receiver finished the previous sync (the file is about
    to be rewritten); the header itself goes out with the first bucket."""
    header = _header(version, buckets, group.device)
    if not group.shared_memory:
        group.broadcast(header)
        return
    done = torch.zeros(1, dtype=torch.int64)
    for rank in range(1, group.world_size):
        group.receive_from(rank, done)
    if buckets:
        group._header = header
    else:  # nothing follows: the header goes alone
        group.broadcast(torch.cat([header, torch.zeros(1, dtype=torch.int64)]))


def receive_header(group: WeightGroup, buckets: Buckets) -> int:
    """Receivers: the version rank 0 sends; raises if its plan differs from `buckets`.

    Shared-memory mode: tells rank 0 this member is done with the previous sync first, then
    waits for the header, which comes with the first bucket's "ready"."""
    header = _header(-1, buckets, group.device)
    expected = header[1:].tolist()
    if group.shared_memory:
        group.send_to_sender(torch.ones(1, dtype=torch.int64))
        message = torch.zeros(4, dtype=torch.int64)
        group.broadcast(message)
        header, group._first_ready = message[:3], int(message[3])
    else:
        group.broadcast(header)
    if header[1:].tolist() != expected:
        raise RuntimeError(f"weight sync: the trainer sends {header[1].item()} buckets of {header[2].item()} "
                           f"elements, this engine expects {expected[0]} of {expected[1]}; both sides must "
                           "use the plan the trainer made at set-up")
    return int(header[0])


def receive_buckets(group: WeightGroup, buckets: Buckets, dtype: torch.dtype) -> Iterator[Tuple[str, torch.Tensor]]:
    """Receivers: (name, tensor of its full shape) for every tensor of every bucket, as they arrive.

    Each bucket lands in a buffer of its own, valid until this sync's receive ends: loaders may
    keep the yielded views until a layer is complete, not across syncs. Socket mode: a fresh
    buffer per bucket; shared-memory mode: views of the shared file, nothing copied (one file
    serves every engine: loaders copy out of the views and never write into them).
    """
    for index, bucket in enumerate(buckets):
        numels = [math.prod(shape) for _, shape in bucket]
        if group.shared_memory:
            if index == 0:  # its "ready" came with the header
                ready = getattr(group, "_first_ready", -1)
            else:
                message = torch.zeros(1, dtype=torch.int64)
                group.broadcast(message)
                ready = int(message[0])
            key = _bucket_key(bucket, dtype)
            flat = group._shm.view(key, sum(numels), dtype, grow=False)
            if ready != flat.numel():
                raise RuntimeError(f"weight sync: the trainer's bucket at {bucket[0][0]} holds {ready} "
                                   f"elements, this engine's plan {flat.numel()}")
            views = group._shm.tensor_views.get(key)
            if views is None:  # the file's regions never move: their views are made once
                views = group._shm.tensor_views[key] = _views(flat, bucket)
            yield from zip((name for name, _ in bucket), views)
            continue
        flat = torch.empty(sum(numels), dtype=dtype, device=group.device)
        group.broadcast(flat)
        yield from unflatten(flat, bucket)
