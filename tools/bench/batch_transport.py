# Run: .venv/bin/python tools/bench/batch_transport.py [--rows 256] [--calls 60]
"""What one actor call costs when it carries a TrainBatch: as rlvr sends it (numpy arrays, Ray's
out-of-band buffers) beside the same tensors pickled the torch way, and an empty call.

The batch is the quickstart's shape (32 prompts x 8 samples, prompts of 8-13 tokens, 6 response
tokens). The arms alternate call by call on one embedded Ray cluster with a one-thread actor that
only receives; prints the median ms per call and the ratio.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere: this checkout's rlvr
    sys.path.insert(0, str(ROOT))


def quickstart_batch(rows: int, seed: int = 0):
    import torch

    from rlvr.trainer.batch import make_train_batch

    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(3, 60, (int(torch.randint(8, 14, (1,), generator=g)),), generator=g).tolist()
               for _ in range(max(1, rows // 8))]
    prompt_ids = [prompts[i // 8 % len(prompts)] for i in range(rows)]
    responses = [torch.randint(3, 60, (6,), generator=g).tolist() for _ in range(rows)]
    return make_train_batch(prompt_ids, responses, [[-1.0] * 6 for _ in responses],
                            torch.randn(rows, generator=g).tolist(), pad_id=0)


class TorchPickled:
    """The same tensors, pickled as torch pickles them (what a TrainBatch cost before)."""

    def __init__(self, batch):
        from dataclasses import fields

        self.tensors = {f.name: getattr(batch, f.name) for f in fields(batch)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--calls", type=int, default=60)
    args = parser.parse_args(argv)

    import ray

    from rlvr.config.schema import ClusterConfig
    from rlvr.controller.cluster import shutdown_ray, start_ray

    start_ray(ClusterConfig(num_cpus=2), logical_cpus=2)  # rlvr's embedded cluster, its actors' env

    @ray.remote(num_cpus=1)
    class Receiver:
        def take(self, obj):
            return 0

    try:
        receiver = Receiver.remote()
        ray.get(receiver.take.remote(None))
        batch = quickstart_batch(args.rows)
        arms = {"empty call": None, "TrainBatch (numpy buffers)": batch,
                "same tensors, torch pickling": TorchPickled(batch)}
        times = {name: [] for name in arms}
        for i in range(args.calls + 5):
            for name, obj in arms.items():
                t0 = time.perf_counter()
                ray.get(receiver.take.remote(obj))
                if i >= 5:  # the first calls warm up both sides
                    times[name].append(time.perf_counter() - t0)
    finally:
        shutdown_ray()
    shape = tuple(batch.input_ids.shape)
    print(f"one actor call carrying a [{shape[0]} x {shape[1]}] TrainBatch, median of {args.calls} "
          f"alternating calls:")
    med = {name: statistics.median(v) * 1000 for name, v in times.items()}
    for name, ms in med.items():
        print(f"  {name:<32} {ms:6.2f} ms")
    ours, torch_way = med["TrainBatch (numpy buffers)"], med["same tensors, torch pickling"]
    print(f"numpy buffers / torch pickling = {ours / torch_way:.2f} ({torch_way - ours:+.2f} ms per call)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
