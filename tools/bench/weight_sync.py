# Run: OMP_NUM_THREADS=1 .venv/bin/python tools/bench/weight_sync.py [--sizes 1M,10M,50M --reps 5 --bucket-mb 512]
"""Seconds per weight sync against bytes: collective group vs ipc handles vs object store, beside a memcpy.

Per model size: one trainer rank (DeepSpeed, ZeRO stage --zero-stage) and one hf rollout worker
as Ray actors, as in a run; every sync path set up once, then alternated `--reps` times (so
background load hits both alike), each timed from the controller as `perf/weight_sync_s` is.
The memcpy column is a `torch.Tensor.copy_` of the same bytes in this process: the floor any
sync of that many bytes pays. Prints medians and the ratios measured side by side.
"""
from __future__ import annotations

import argparse
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
    "1M": dict(hidden_size=128, num_layers=4, num_heads=2, intermediate_size=512),
    "10M": dict(hidden_size=256, num_layers=10, num_heads=4, intermediate_size=1024),
    "50M": dict(hidden_size=512, num_layers=12, num_heads=8, intermediate_size=2048),
}


def memcpy_seconds(nbytes: int, reps: int) -> float:
    src = torch.randn(nbytes // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)  # first touch of the pages
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
            version, times = 0, {k: [] for k in syncs}
            for rep in range(args.reps + 1):  # rep 0 is a warm-up
                for mode, sync in syncs.items():
                    version += 1
                    start = time.perf_counter()
                    sync.sync(version)
                    if rep:
                        times[mode].append(time.perf_counter() - start)
            collective.close()
            ipc.close()
        finally:
            ray.get(worker.shutdown.remote())
            ray.kill(worker)
            trainer.shutdown()
    row = {"size": name, "params": params, "mb": nbytes / 2**20, "buckets": collective.num_buckets,
           "memcpy": memcpy_seconds(nbytes, args.reps)}
    row.update({mode: statistics.median(t) for mode, t in times.items()})
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,10M,50M", help=f"comma list of {list(SIZES)}")
    parser.add_argument("--reps", type=int, default=5, help="timed syncs per path and size")
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
          f"median of {args.reps}")
    print(f"{'size':>5} {'params':>10} {'MiB':>7} {'bkts':>4} {'memcpy s':>9} {'collect. s':>10} {'obj.st. s':>9} "
          f"{'ipc s':>8} {'coll/memcpy':>11} {'obj/memcpy':>10} {'obj/coll':>8} {'coll/ipc':>8} {'coll GB/s':>9}")
    for r in rows:
        print(f"{r['size']:>5} {r['params']:>10,} {r['mb']:>7.1f} {r['buckets']:>4} {r['memcpy']:>9.5f} "
              f"{r['collective']:>10.4f} {r['object_store']:>9.4f} {r['ipc']:>8.4f} {r['collective'] / r['memcpy']:>11.0f} "
              f"{r['object_store'] / r['memcpy']:>10.0f} {r['object_store'] / r['collective']:>8.2f} "
              f"{r['collective'] / r['ipc']:>8.2f} "
              f"{r['mb'] / 1024 / r['collective']:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
