"""The weight-sync group: trainer rank 0 broadcasts parameters to every rollout engine in buckets.

The group is a process group of its own (rank 0 = trainer rank 0, rank 1 + i = rollout engine i),
built directly from a dedicated TCPStore and a ProcessGroupGloo (CPU) / ProcessGroupNCCL (GPU).
It joins no global torch.distributed world, so a process keeps its DeepSpeed or vLLM default
group beside it. This module is imported inside vLLM's worker: it depends on torch only.

Wire protocol of one sync: for each bucket, a control message int64[6] = (kind, version,
number of buckets, total elements, bucket index, bucket elements), then (socket mode) one flat
tensor in the engine's dtype holding the bucket's tensors in plan order. Sender and receivers
hold the same bucket plan (computed once by the trainer at set-up); every control repeats the
plan's size, so a receiver checks the plan on the first one and then that each bucket is the
next one: a skipped or repeated bucket fails at once instead of after the receive timeout.
A sender that stops part-way (its caller raised, or it skipped a bucket) broadcasts an ABORT
control, and the receivers raise at once too. A sync of an empty plan is one EMPTY control.

Sender memory: the sender packs buckets into two buffers of the largest bucket, used in turn
(double-buffering: bucket k+1 is packed while k is on the wire on a GPU), never one per bucket.

Shared-memory mode (gloo, every member on one host, checked when the group forms): the
buckets' bytes do not travel through sockets. Rank 0 packs each bucket into a shared file
every member mapped at join (unlinked at once, so nothing is left behind), and the control
message alone says "bucket ready"; receivers read views of the file, copying nothing. The
file holds one region per bucket (the model once, in host RAM), because a loader may keep
views of earlier buckets until a layer is complete.
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
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

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
        self._send_buffers: List[torch.Tensor] = []  # rank 0, socket mode: at most two, used in turn
        self.send_buffers_allocated = 0  # how many send buffers were ever allocated (reuse check)
        self._outgoing: Optional[_OutgoingSync] = None  # rank 0: the sync whose buckets are being sent
        self._incoming_first: Optional[List[int]] = None  # receivers: the header's (first bucket's) control

    @property
    def shared_memory(self) -> bool:
        """True when buckets travel through a shared file instead of the sockets."""
        return self._shm is not None

    @property
    def send_buffer_bytes(self) -> int:
        """Bytes rank 0 holds to send buckets: its two buffers (socket/NCCL mode) or the shared file
        (shared-memory mode, one region per bucket)."""
        if self._shm is not None:
            return self._shm.end if self.rank == SENDER else 0
        return sum(b.numel() * b.element_size() for b in self._send_buffers)

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
        self._send_buffers = []
        self._outgoing = None
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


# control message kinds (first element of every int64[6] control)
_BUCKET, _EMPTY, _ABORT = 1, 2, 3


def _plan_size(buckets: Buckets) -> Tuple[int, int]:
    """(number of buckets, total elements) of a plan."""
    return len(buckets), sum(math.prod(shape) for bucket in buckets for _, shape in bucket)


def _bucket_numel(bucket: List[TensorSpec]) -> int:
    return sum(math.prod(shape) for _, shape in bucket)


class _OutgoingSync:
    """Rank 0's sync in progress: which bucket of the plan must go next."""

    def __init__(self, version: int, buckets: Buckets):
        self.version, self.buckets, self.next = int(version), buckets, 0
        self.size = _plan_size(buckets)

    def control(self, kind: int, index: int, numel: int, device) -> torch.Tensor:
        return torch.tensor([kind, self.version, *self.size, index, numel], dtype=torch.int64, device=device)


def synchronize(device: torch.device) -> None:
    """Wait until `device` finished its queued work (a GPU's broadcasts are asynchronous); no-op on CPU.
    Timers of a sync read the clock after this."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _send_buffer(group: "WeightGroup", sync: _OutgoingSync, dtype: torch.dtype) -> torch.Tensor:
    """One of the sender's two buffers, each as large as the plan's largest bucket, taken in turn.

    Reusing a buffer two buckets later is safe on a GPU too: `broadcast` waits on the current
    stream for the collective, so the pack into it is ordered after that bucket left."""
    capacity = max(_bucket_numel(bucket) for bucket in sync.buckets)
    if any(b.dtype != dtype or b.numel() != capacity for b in group._send_buffers):
        group._send_buffers = []  # another plan or dtype: start over (the old ones are freed)
    slot = sync.next % 2
    if slot == len(group._send_buffers):
        group._send_buffers.append(torch.empty(capacity, dtype=dtype, device=group.device))
        group.send_buffers_allocated += 1
    return group._send_buffers[slot]


def abort_sync(group: "WeightGroup") -> bool:
    """Rank 0: tell the receivers the sync in progress will not finish (they raise at once).
    Returns True when there was one to abort."""
    sync, group._outgoing = group._outgoing, None
    if sync is None:
        return False
    group.broadcast(sync.control(_ABORT, sync.next, 0, group.device))
    return True


def send_bucket(group: WeightGroup, bucket: List[TensorSpec], tensors: Sequence[torch.Tensor],
                dtype: torch.dtype) -> None:
    """Rank 0: broadcast the next bucket of the sync `send_header` began: its whole `tensors` (in
    plan order) as one flat `dtype` tensor.

    Checked first (gloo aborts the process on a size mismatch instead of raising): the bucket
    must be the plan's next one and `tensors` its sizes; otherwise the receivers are told to
    fail (ABORT) and this raises. After the plan's last bucket the device is synchronized, so a
    timer read next covers the transfer, not only its enqueue.
    """
    sync = group._outgoing
    if sync is None:
        raise RuntimeError("weight sync: send_bucket without a sync in progress; call send_header first "
                           "(or the plan's buckets were all sent already)")
    index = sync.next
    if index >= len(sync.buckets) or list(bucket) != list(sync.buckets[index]):
        abort_sync(group)
        where = bucket[0][0] if bucket else "?"
        raise RuntimeError(f"weight sync: version {sync.version}: the bucket starting at {where} is not bucket "
                           f"{index} of the plan; buckets must go once each, in plan order (receivers told to fail)")
    try:
        _check_bucket(bucket, tensors, dtype)
    except RuntimeError:
        abort_sync(group)
        raise
    numel = _bucket_numel(bucket)
    if group.shared_memory:
        flat = group._shm.view(_bucket_key(bucket, dtype), numel, dtype, grow=True)
    else:
        flat = _send_buffer(group, sync, dtype)[:numel]
    pack(_views(flat, bucket), tensors)
    group.broadcast(sync.control(_BUCKET, index, numel, group.device))  # shared memory: "bucket ready"
    if not group.shared_memory:
        group.broadcast(flat)
    sync.next += 1
    if sync.next == len(sync.buckets):
        group._outgoing = None
        synchronize(group.device)


def send_header(group: WeightGroup, version: int, buckets: Buckets) -> None:
    """Rank 0: begin a sync of `version`; every bucket follows via `send_bucket`, in plan order.

    Nothing goes on the wire yet (each bucket's control carries the header), except for an empty
    plan. A previous sync left unfinished is aborted first and this raises. Shared-memory mode:
    waits until every receiver finished the previous sync (the file is about to be rewritten)."""
    unfinished = group._outgoing
    if unfinished is not None:
        abort_sync(group)
        raise RuntimeError(f"weight sync: version {unfinished.version} sent {unfinished.next} of its "
                           f"{len(unfinished.buckets)} buckets before version {version} began (receivers told "
                           "to fail); send every bucket of a sync (send_weights does)")
    if group.shared_memory:
        done = torch.zeros(1, dtype=torch.int64)
        for rank in range(1, group.world_size):
            group.receive_from(rank, done)
    sync = _OutgoingSync(version, buckets)
    if buckets:
        group._outgoing = sync
    else:  # nothing follows: the header goes alone
        group.broadcast(sync.control(_EMPTY, 0, 0, group.device))


def send_weights(group: WeightGroup, version: int, buckets: Buckets, whole_buckets: Iterable[Sequence[torch.Tensor]],
                 dtype: torch.dtype) -> None:
    """Rank 0: one whole sync: header, then each bucket's tensors from `whole_buckets` (one
    sequence per bucket, in plan order). If `whole_buckets` raises or gives fewer buckets than the
    plan, the receivers are told to fail (ABORT) and this raises. `whole_buckets` is run to its end
    (a generator that gathers each bucket's ZeRO-3 shards in a context releases the last one)."""
    send_header(group, version, buckets)
    try:
        given = 0
        for tensors in whole_buckets:
            if given == len(buckets):
                raise RuntimeError(f"weight sync: version {version}: more buckets were given than the plan's "
                                   f"{len(buckets)} (receivers told to fail)")
            send_bucket(group, buckets[given], tensors, dtype)
            given += 1
    except BaseException:
        abort_sync(group)
        raise
    sync = group._outgoing
    if sync is not None:
        abort_sync(group)
        raise RuntimeError(f"weight sync: version {version}: {sync.next} of {len(buckets)} buckets were given "
                           "(receivers told to fail)")


def _receive_control(group: WeightGroup) -> List[int]:
    control = torch.zeros(6, dtype=torch.int64, device=group.device)
    group.broadcast(control)
    return control.tolist()


def _check_not_aborted(control: List[int]) -> None:
    if control[0] == _ABORT:
        raise RuntimeError(f"weight sync: the trainer aborted version {control[1]} after {control[4]} of "
                           f"{control[2]} buckets (its own error says why)")


def receive_header(group: WeightGroup, buckets: Buckets) -> int:
    """Receivers: the version rank 0 sends; raises if its plan differs from `buckets`.

    The header is the first bucket's control message (kept for receive_buckets). Shared-memory
    mode: tells rank 0 this member is done with the previous sync first."""
    if group.shared_memory:
        group.send_to_sender(torch.ones(1, dtype=torch.int64))
    control = _receive_control(group)
    _check_not_aborted(control)
    expected = list(_plan_size(buckets))
    if control[2:4] != expected:
        raise RuntimeError(f"weight sync: the trainer sends {control[2]} buckets of {control[3]} "
                           f"elements, this engine expects {expected[0]} of {expected[1]}; both sides must "
                           "use the plan the trainer made at set-up")
    group._incoming_first = control
    return int(control[1])


def receive_buckets(group: WeightGroup, buckets: Buckets, dtype: torch.dtype) -> Iterator[Tuple[str, torch.Tensor]]:
    """Receivers: (name, tensor of its full shape) for every tensor of every bucket, as they arrive.

    Each bucket's control must name the next bucket of the version the header gave, else this
    raises at once (a bucket skipped, repeated or aborted by the sender). Each bucket lands in a
    buffer of its own, valid until this sync's receive ends: loaders may keep the yielded views
    until a layer is complete, not across syncs. Socket mode: a fresh buffer per bucket (freed
    once the loader drops it); shared-memory mode: views of the shared file, nothing copied (one
    file serves every engine: loaders copy out of the views and never write into them).
    """
    first, group._incoming_first = getattr(group, "_incoming_first", None), None
    if first is None:
        raise RuntimeError("weight sync: receive_buckets without receive_header first")
    version = first[1]
    for index, bucket in enumerate(buckets):
        control = first if index == 0 else _receive_control(group)
        _check_not_aborted(control)
        numel = _bucket_numel(bucket)
        if control[0] != _BUCKET or control[1] != version or control[4] != index or control[5] != numel:
            raise RuntimeError(f"weight sync: expected bucket {index} of {len(buckets)} ({numel} elements) of "
                               f"version {version}, the trainer sent bucket {control[4]} ({control[5]} elements) "
                               f"of version {control[1]}: a bucket was skipped or sent twice")
        if group.shared_memory:
            key = _bucket_key(bucket, dtype)
            flat = group._shm.view(key, numel, dtype, grow=False)
            views = group._shm.tensor_views.get(key)
            if views is None:  # the file's regions never move: their views are made once
                views = group._shm.tensor_views[key] = _views(flat, bucket)
            yield from zip((name for name, _ in bucket), views)
            continue
        flat = torch.empty(numel, dtype=dtype, device=group.device)
        group.broadcast(flat)
        yield from unflatten(flat, bucket)
