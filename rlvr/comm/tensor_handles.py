"""Same-machine weight hand-over by handle (`rollout.weight_sync: ipc`): no copy through a socket.

The trainer writes one bucket at a time into a flat buffer it owns and sends a small picklable
handle `(rebuild function, args)` that names the buffer's memory; the engine rebuilds a tensor
over that same memory, copies the bucket's parameters into its model, and acknowledges; only
then does the trainer overwrite the buffer with the next bucket.

- CUDA: `torch.multiprocessing.reductions.reduce_tensor` gives a CUDA IPC handle (as verl and
  OpenRLHF do for a colocated vLLM); torch counts the engine's references and records an event
  the engine waits on. The engine must be on the same GPU (its device index is substituted).
- CPU (the twin CI runs): the buffer lives in a /dev/shm file opened by name ("file_system"
  sharing). torch's default "file_descriptor" sharing hands over a file descriptor that only
  multiprocessing's own pipes can carry, so its handle is useless through Ray or any pickle.

This module is imported inside vLLM's worker: it depends on torch only.
"""
from __future__ import annotations

import contextlib
import math
import os
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.multiprocessing as torch_mp
from torch.multiprocessing.reductions import rebuild_cuda_tensor, reduce_storage, reduce_tensor

Handle = Tuple[Any, tuple]  # (rebuild function, its args): pickles by reference to torch / this module
SHM_DIR = "/dev/shm"
_CUDA_DEVICE_ARG = 6  # rebuild_cuda_tensor(cls, size, stride, offset, storage_cls, dtype, DEVICE, handle, ...)


@contextlib.contextmanager
def _file_system_sharing():
    """Share CPU storages through named /dev/shm files within this block (restored after)."""
    previous = torch_mp.get_sharing_strategy()
    torch_mp.set_sharing_strategy("file_system")
    try:
        yield
    finally:
        torch_mp.set_sharing_strategy(previous)


def shared_empty(numel: int, dtype: torch.dtype, device) -> torch.Tensor:
    """A flat [numel] buffer other processes on this machine can map: device memory on CUDA, a
    named /dev/shm file on CPU (released when every process holding it has let go)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.empty(int(numel), dtype=dtype, device=device)
    if device.type != "cpu":
        raise ValueError(f"ipc weight sync: cannot share {device} memory; the trainer must be on CUDA or CPU")
    with _file_system_sharing():
        return torch.empty(int(numel), dtype=dtype).share_memory_()


def shm_file(tensor: torch.Tensor) -> Optional[str]:
    """Path of the /dev/shm file behind a `shared_empty` CPU tensor (None on CUDA); for leak checks."""
    if tensor.device.type != "cpu":
        return None
    with _file_system_sharing():
        name = tensor.untyped_storage()._share_filename_cpu_()[1]
    return os.path.join(SHM_DIR, name.decode().lstrip("/"))


def share(tensor: torch.Tensor) -> Handle:
    """A picklable handle to `tensor`'s memory, for exactly one `open_handle` in one process.

    `tensor` must live in `shared_empty` memory (CPU) or on a CUDA device; the owner must keep it
    alive, unchanged, until the receiver acknowledges. Each handle holds one reference to the
    memory that its `open_handle` releases, so make one handle per receiver.
    """
    if tensor.is_cuda:
        return reduce_tensor(tensor.detach())
    if not tensor.is_shared():
        raise ValueError("ipc weight sync: a CPU tensor must be allocated with shared_empty before share()")
    with _file_system_sharing():
        storage_fn, storage_args = reduce_storage(tensor.untyped_storage())
    return _rebuild_cpu, (storage_fn, storage_args, tensor.dtype, tensor.storage_offset(),
                          tuple(tensor.shape), tuple(tensor.stride()))


def _rebuild_cpu(storage_fn, storage_args, dtype, offset, shape, stride) -> torch.Tensor:
    storage = storage_fn(*storage_args)
    return torch.empty(0, dtype=dtype).set_(storage, offset, shape, stride)


def open_handle(handle: Handle, device: Optional[torch.device] = None) -> torch.Tensor:
    """The tensor a `share` handle names, over the sender's memory (no copy).

    On CUDA the tensor is opened on `device` (default: the current one), which must be the
    sender's GPU: processes number the same card differently when their CUDA_VISIBLE_DEVICES
    differ, so the sender's index is replaced by this process's.
    """
    fn, args = handle
    if fn is rebuild_cuda_tensor:
        index = torch.device(device).index if device is not None else None
        args = list(args)
        args[_CUDA_DEVICE_ARG] = torch.cuda.current_device() if index is None else index
    return fn(*args)


def unflatten(flat: torch.Tensor, bucket: Sequence[Tuple[str, Tuple[int, ...]]]) -> Iterator[Tuple[str, torch.Tensor]]:
    """(name, view of its full shape) for each (name, shape) of a bucket laid out in `flat` in order."""
    offset = 0
    for name, shape in bucket:
        numel = math.prod(shape)
        yield name, flat[offset:offset + numel].view(shape)
        offset += numel
    if offset != flat.numel():
        raise RuntimeError(f"weight sync: the bucket starting at {bucket[0][0]} has {offset} elements, "
                           f"the flat buffer holds {flat.numel()}; both sides must use the trainer's plan")


@torch.no_grad()
def pack(views: Sequence[torch.Tensor], tensors: Sequence[torch.Tensor]) -> None:
    """Copy each tensor into its view of a flat buffer (converting dtype/device) in one op.

    Sizes must match (weight_group checks them against the plan first); a shape that only
    differs by size-1 dimensions broadcasts in element order, any other falls back to one
    reshaped copy each."""
    try:
        torch._foreach_copy_(list(views), list(tensors))
    except (RuntimeError, AttributeError, TypeError):  # other shapes, mixed devices or dtypes
        for view, tensor in zip(views, tensors):
            view.copy_(tensor.detach().reshape(view.shape))


def fill(buffer: torch.Tensor, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Write `tensors` (whole, not ZeRO shards), cast to the buffer's dtype, one after another at the
    start of `buffer`; returns the filled prefix (a view, the bucket's flat tensor)."""
    flat = buffer[:sum(t.numel() for t in tensors)]
    pack([view for _, view in unflatten(flat, [("", tuple(t.shape)) for t in tensors])], tensors)
    return flat


class BucketOrder:
    """The ipc buckets an engine has loaded in this sync: they must come as 0, 1, ..., last, each once."""

    def __init__(self, buckets: list, backend: str):
        self.buckets, self.backend, self.next = buckets, backend, 0

    def take(self, index: int) -> tuple:
        """(the bucket's (name, shape) list, whether it is the last); raises on a bucket out of order."""
        if index != self.next:
            expected, self.next = self.next, 0  # the sync is broken: the next one starts afresh
            raise RuntimeError(f"{self.backend} engine: ipc weight sync sent bucket {index} where bucket {expected} "
                               f"of {len(self.buckets)} was due; a skipped bucket would leave stale weights")
        last = index == len(self.buckets) - 1
        self.next = 0 if last else index + 1
        return self.buckets[index], last


def device_uuid(device: torch.device) -> Optional[str]:
    """The GPU's UUID (the same card has one UUID in every process), None for CPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    return str(torch.cuda.get_device_properties(index).uuid)


def location(device: torch.device) -> dict:
    """Where a process's weights live: {"node": Ray node id (or hostname), "gpu": UUID or None}."""
    node = None
    try:
        import ray

        if ray.is_initialized():
            node = ray.get_runtime_context().get_node_id()
    except ImportError:
        pass
    return {"node": node or os.uname().nodename, "gpu": device_uuid(device)}


def assign_senders(trainer_locations: Sequence[dict], engine_locations: Sequence[dict]) -> List[List[int]]:
    """Which trainer rank hands weights to which engine: per rank, the engine indices it serves.

    Each engine gets the lowest rank on its node and, on GPU, on its card (on CPU every engine of
    trainer rank 0's node goes to rank 0). Raises ValueError naming the first engine with none.
    """
    served: List[List[int]] = [[] for _ in trainer_locations]
    for i, where in enumerate(engine_locations):
        rank = next((r for r, t in enumerate(trainer_locations)
                     if t["node"] == where["node"] and t["gpu"] == where["gpu"]), None)
        if rank is None:
            here = "on CPU" if where["gpu"] is None else f"on GPU {where['gpu']}"
            ranks = "; ".join(f"rank {r}: node {t['node']} {'CPU' if t['gpu'] is None else 'GPU ' + t['gpu']}"
                              for r, t in enumerate(trainer_locations))
            raise ValueError(f"rollout.weight_sync = ipc: rollout worker {i} (node {where['node']}, {here}) shares "
                             f"no node and device with a trainer rank ({ranks}); set cluster.colocate = true or "
                             "rollout.weight_sync = collective")
        served[rank].append(i)
    return served
