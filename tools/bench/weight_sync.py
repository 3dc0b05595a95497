# Run: OMP_NUM_THREADS=1 .venv/bin/python tools/bench/weight_sync.py [--sizes quickstart,1M,10M --reps 20 --bucket-mb 512]
"""Seconds per weight sync against bytes: collective group vs ipc handles vs object store, beside a memcpy.

Per model size: one trainer rank (DeepSpeed, ZeRO stage --zero-stage) and one hf rollout worker
as Ray actors, as in a run; every sync path set up once, then alternated `--reps` times (so
background load hits both alike). Columns, all medians over the same rounds:
  memcpy      the state dict's tensors copied into one preallocated flat buffer in this process
              (`copy_` per tensor, as a sync's sender must at least do): the floor for those bytes
  raw bcast   a bare gloo broadcast of one flat tensor of those bytes between two processes of
              this machine (rlvr's WeightGroup, no Ray, no packing, no loading)
  proto sock, rlvr's whole bucket protocol between two processes, no Ray: header, pack, send,
  proto shm   receive, copy into the receiver's tensors; through the sockets, or through the
              shared file (the mode the collective sync uses on one host)
  send, recv  the collective sync inside the actors, no Ray calls: the trainer's
              `broadcast_weights` (header, pack, send) and the engine's `receive_weights`
              (receive, load into the model; includes waiting for the sender's call)
  collective  the whole collective sync timed from the controller as `perf/weight_sync_s` is
              (two Ray calls around the above)
  ipc         buckets handed over by /dev/shm handle (CUDA IPC on a GPU), timed the same way
  obj.store   the state dict through Ray's object store, timed the same way
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import torch  # noqa: E402

torch.set_num_threads(1)

# Llama-style tiny models; parameters ~ 16 * hidden^2 * layers (+ a small char vocabulary).
SIZES = {
    "quickstart": dict(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=256),
    "1M": dict(hidden_size=128, num_layers=4, num_heads=2, intermediate_size=512),
    "10M": dict(hidden_size=256, num_layers=10, num_heads=4, intermediate_size=1024),
    "50M": dict(hidden_size=512, num_layers=12, num_heads=8, intermediate_size=2048),
}


def memcpy_seconds(state: dict, reps: int) -> float:
    """Median seconds to copy every distinct tensor of `state` into one preallocated flat buffer."""
    tensors = list({id(t): t for t in state.values()}.values())
    flat = torch.empty(sum(t.numel() for t in tensors), dtype=torch.float32)
    views, offset = [], 0
    for t in tensors:
        views.append(flat[offset:offset + t.numel()].view(t.shape))
        offset += t.numel()
    times = []
    for _ in range(reps + 1):  # the first pass touches the pages
        start = time.perf_counter()
        for view, t in zip(views, tensors):
            view.copy_(t)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def _receiver(host: str, port: int, mode: str, buckets, reps: int) -> None:
    torch.set_num_threads(1)
    from rlvr.comm.weight_group import WeightGroup, receive_buckets, receive_header

    group = WeightGroup(1, 2, "gloo", host=host, port=port, timeout_s=120, shared_memory=mode == "shm")
    numel = sum(math.prod(shape) for bucket in buckets for _, shape in bucket)
    flat = torch.empty(numel)
    params = {name: torch.empty(shape) for bucket in buckets for name, shape in bucket}
    for _ in range(reps + 1):
        if mode == "raw":
            group.broadcast(flat)
        else:
            receive_header(group, buckets)
            for name, tensor in receive_buckets(group, buckets, torch.float32):
                params[name].copy_(tensor)  # what the hf engine does with each received tensor
    group.close()


def transport_seconds(state: dict, bucket_mb: float, mode: str, reps: int) -> float:
    """Median seconds per sync between this process and a second one, no Ray: `mode` "raw" is one
    bare gloo broadcast of a flat tensor of the state's size; "socket" and "shm" are rlvr's whole
    protocol (header, pack, send, receive, copy into the receiver's tensors) in that mode, timed
    back to back on the sender (in shm mode each header waits for the previous receive to end)."""
    import multiprocessing

    from rlvr.comm.weight_group import WeightGroup, host_store, plan_tensor_buckets, send_bucket, send_header

    tensors = dict({id(t): (n, t) for n, t in state.items()}.values())
    buckets = plan_tensor_buckets([(n, tuple(t.shape)) for n, t in tensors.items()], "float32", bucket_mb)
    store, host, port = host_store(120)
    proc = multiprocessing.get_context("spawn").Process(target=_receiver, args=(host, port, mode, buckets, reps))
    proc.start()
    group = WeightGroup(0, 2, "gloo", store=store, timeout_s=120, shared_memory=mode == "shm")
    flat = torch.randn(sum(t.numel() for t in tensors.values()))
    times = []
    for version in range(reps + 1):  # the first is a warm-up
        start = time.perf_counter()
        if mode == "raw":
            group.broadcast(flat)
        else:
            send_header(group, version, buckets)
            for bucket in buckets:
                send_bucket(group, bucket, [tensors[n] for n, _ in bucket], torch.float32)
        times.append(time.perf_counter() - start)
    proc.join(60)
    group.close()
    return statistics.median(times[1:])


def _inside_actors(trainer, worker, version: int):
    """One collective sync driven as CollectiveSync.sync does: (sender s, receiver s) measured
    inside the actors (the receiver's includes waiting for the sender's call to arrive)."""
    import ray

    sent = trainer.submit("broadcast_weights", [(version,)] * trainer.num_ranks)
    received = worker.receive_weights.remote(version)
    return max(trainer.collect("broadcast_weights", sent)), ray.get(received)


def bench_size(name: str, size: dict, args) -> dict:
    import ray

    from rlvr.controller.weight_sync import CollectiveSync, IpcSync, ObjectStoreSync
    from rlvr.models.tiny import build_tiny_model
    from rlvr.rollout.worker import RolloutWorkerActor
    from rlvr.trainer import TrainerGroup

    with tempfile.TemporaryDirectory() as folder:
        model_dir = str(build_tiny_model(folder, **size))
        worker = RolloutWorkerActor.options(num_cpus=1).remote(model_dir, "hf", 0)
        trainer = TrainerGroup(1, model_dir, dict(zero_stage=args.zero_stage), dict(), num_cpus_per_rank=1)
        try:
            ray.get(worker.policy_version.remote())
            collective = CollectiveSync(trainer, [worker], "float32", args.bucket_mb)
            ipc = IpcSync(trainer, [worker], "float32", args.bucket_mb)  # CPU: through one /dev/shm buffer
            syncs = {"collective": collective, "ipc": ipc, "object_store": ObjectStoreSync(trainer, [worker])}
            state = trainer.full_state_dict()
            params = sum(t.numel() for t in {id(t): t for t in state.values()}.values())
            nbytes = params * 4
            version, times = 0, {k: [] for k in [*syncs, "send", "recv"]}
            for rep in range(args.reps + 1):  # rep 0 is a warm-up
                for mode, sync in syncs.items():
                    version += 1
                    start = time.perf_counter()
                    sync.sync(version)
                    if rep:
                        times[mode].append(time.perf_counter() - start)
                version += 1
                send, recv = _inside_actors(trainer, worker, version)
                if rep:
                    times["send"].append(send)
                    times["recv"].append(recv)
            collective.close()
            ipc.close()
        finally:
            ray.get(worker.shutdown.remote())
            ray.kill(worker)
            trainer.shutdown()
    row = {"size": name, "params": params, "mb": nbytes / 2**20, "buckets": collective.num_buckets,
           "memcpy": memcpy_seconds(state, args.reps),
           **{mode: transport_seconds(state, args.bucket_mb, mode, args.reps) for mode in ("raw", "socket", "shm")}}
    row.update({mode: statistics.median(t) for mode, t in times.items()})
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="quickstart,1M,10M", help=f"comma list of {list(SIZES)}")
    parser.add_argument("--reps", type=int, default=20, help="timed syncs per path and size")
    parser.add_argument("--bucket-mb", type=float, default=512.0, help="rollout.sync_bucket_mb")
    parser.add_argument("--zero-stage", type=int, default=0, help="trainer.zero_stage (one rank)")
    args = parser.parse_args(argv)
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows = []
    try:
        for name in args.sizes.split(","):
            print(f"[bench] {name}: starting a trainer rank and an hf rollout worker", file=sys.stderr, flush=True)
            rows.append(bench_size(name, SIZES[name], args))
    finally:
        ray.shutdown()
    print(f"\nweight sync, fp32, trainer ZeRO-{args.zero_stage} x1 -> 1 hf engine, buckets <= {args.bucket_mb} MiB, "
          f"median of {args.reps}; seconds per sync, ratios to memcpy")
    cols = [("memcpy", "memcpy"), ("raw", "raw bcast"), ("socket", "proto sock"), ("shm", "proto shm"), ("send", "send"), ("recv", "recv"), ("collective", "collective"), ("ipc", "ipc"),
            ("object_store", "obj.store")]
    print(f"{'size':>10} {'params':>10} {'MiB':>6} {'bkts':>4} " + " ".join(f"{h:>10}" for _, h in cols)
          + " " + " ".join(f"{h + '/m':>12}" for _, h in cols[1:]) + f" {'obj/coll':>8}")
    for r in rows:
        print(f"{r['size']:>10} {r['params']:>10,} {r['mb']:>6.2f} {r['buckets']:>4} "
              + " ".join(f"{r[k]:>10.5f}" for k, _ in cols)
              + " " + " ".join(f"{r[k] / r['memcpy']:>12.1f}" for k, _ in cols[1:])
              + f" {r['object_store'] / r['collective']:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
