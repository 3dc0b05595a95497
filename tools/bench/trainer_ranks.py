# Run: .venv/bin/python tools/bench/trainer_ranks.py [--rounds 2] [--steps 30] [--rows 256]
"""What one train step costs on one and on two trainer ranks, each with every row forwarding its
own prompt and with `trainer.share_prompt_forward` (the G rows of a prompt share its forward),
beside what gloo's collectives cost between two processes on this machine (the floor under
every collective in a multi-rank step).

No Ray: each world size runs its ranks as processes (torch.multiprocessing), each holding rlvr's
PolicyTrainer (DeepSpeed ZeRO-2 over gloo, one thread) on a randomly initialised model of the
quickstart's shape. The batch has the quickstart's shape (`--rows` rows, 6 response tokens each)
and is split over the ranks as TrainerGroup splits it, with the same global counts; its prompts
come in groups of 8 rows, as G = 8 samples. The arms (world size x prompt sharing) alternate in
rounds; prints the median ms of rank 0's train_step per arm. The collectives
table gives the median and the mean microseconds per call between two one-thread processes, for a
6-element tensor and one the size of the quickstart's model.
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT, Path(__file__).resolve().parent):  # run as a script from anywhere: this checkout
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from batch_transport import quickstart_batch  # noqa: E402 - the same batch shape

WARMUP_STEPS = 3
TRAINER = dict(zero_stage=2, lr=1e-4, micro_batch_size=256)
ALGORITHM = dict(name="grpo", kl_coef=0.0, log_kl_to_init=False)
SIZES = {"6 floats": 6, "model-sized (140k floats)": 140_000}  # the quickstart's model: 0.53 MiB


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_rank(rank: int, world: int, share: bool, port: int, model_dir: str, rows: int, steps: int,
                out: str) -> None:
    import time

    import torch

    from rlvr.trainer.batch import minibatch_counts, split_batch, trim_padding
    from rlvr.trainer.policy_trainer import PolicyTrainer

    torch.set_num_threads(1)
    trainer = PolicyTrainer(rank, world, "127.0.0.1", port, model_dir,
                            dict(TRAINER, micro_batch_size=rows, share_prompt_forward=share), ALGORITHM)
    shards = [trim_padding(s) for s in split_batch(quickstart_batch(rows), world)]
    counts = minibatch_counts(shards, 1)
    seconds = []
    for step in range(WARMUP_STEPS + steps):
        start = time.perf_counter()
        trainer.train_step(shards[rank], counts=counts)
        if step >= WARMUP_STEPS:
            seconds.append(time.perf_counter() - start)
    if rank == 0:
        Path(out).write_text(json.dumps(seconds))
    if world > 1:
        torch.distributed.barrier()  # no rank leaves the group while another still needs it


def _collective_rank(rank: int, port: int, calls: int, out: str) -> None:
    import time

    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    peer = 1 - rank

    def round_trip(x):
        if rank == 0:
            dist.send(x, peer), dist.recv(x, peer)
        else:
            dist.recv(x, peer), dist.send(x, peer)

    ops = {"all_reduce": lambda x: dist.all_reduce(x), "broadcast": lambda x: dist.broadcast(x, 0),
           "all_gather": lambda x: dist.all_gather([torch.empty_like(x), torch.empty_like(x)], x),
           "send + recv (round trip)": round_trip}
    results: Dict[str, Dict[str, float]] = {}
    for op, call in ops.items():
        for label, n in SIZES.items():
            x = torch.zeros(n)
            for _ in range(5):
                call(x)
            dist.barrier()
            times = []
            for _ in range(calls):
                start = time.perf_counter()
                call(x)
                times.append(time.perf_counter() - start)
            results.setdefault(op, {})[label] = [statistics.median(times) * 1e6, statistics.mean(times) * 1e6]
    if rank == 0:
        Path(out).write_text(json.dumps(results))
    dist.barrier()
    dist.destroy_process_group()


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds; each runs every arm once")
    parser.add_argument("--steps", type=int, default=30, help="timed train steps per world size and round")
    parser.add_argument("--rows", type=int, default=256, help="rows in the step's batch (all ranks together)")
    parser.add_argument("--calls", type=int, default=300, help="timed calls per collective and size")
    args = parser.parse_args(argv)

    import torch.multiprocessing as mp

    from rlvr.models.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(build_tiny_model(Path(tmp) / "model", hidden_size=64, num_layers=2, num_heads=2,
                                         intermediate_size=256))
        out = str(Path(tmp) / "result.json")
        per_arm: Dict[tuple, List[float]] = {(w, share): [] for w in (1, 2) for share in (False, True)}
        for r in range(args.rounds):
            for world, share in per_arm:
                mp.spawn(_train_rank, args=(world, share, _free_port(), model_dir, args.rows, args.steps, out),
                         nprocs=world)
                per_arm[world, share].extend(json.loads(Path(out).read_text()))
                print(f"[bench] round {r + 1}/{args.rounds}: {world} rank(s), prompt sharing {share} done",
                      file=sys.stderr, flush=True)
        mp.spawn(_collective_rank, args=(_free_port(), args.calls, out), nprocs=2)
        collectives = json.loads(Path(out).read_text())

    print(f"\ntrain_step of {args.rows} rows (quickstart's shape, fp32, ZeRO-2, one thread per rank), rank 0's "
          f"ms: median [min-max] of {args.rounds} x {args.steps} steps")
    print("| ranks | rows per rank | share_prompt_forward | ms per step |\n|---|---|---|---|")
    for (world, share), seconds in per_arm.items():
        ms = sorted(1000 * s for s in seconds)
        print(f"| {world} | {args.rows // world} | {str(share).lower()} | "
              f"{statistics.median(ms):.1f} [{ms[0]:.1f}-{ms[-1]:.1f}] |")
    median = {arm: statistics.median(seconds) for arm, seconds in per_arm.items()}
    for share in (False, True):
        print(f"two ranks / one rank, share_prompt_forward={str(share).lower()}: "
              f"{median[2, share] / median[1, share]:.2f} (ideal on 2 free cores: 0.50)")
    for world in (1, 2):
        print(f"shared / full prompt forward, {world} rank(s): {median[world, True] / median[world, False]:.2f}")
    print(f"\ngloo between 2 one-thread processes, microseconds per call: median / mean of {args.calls} "
          "(the mean is what a step pays: a few calls take milliseconds)")
    print("| collective | " + " | ".join(SIZES) + " |\n|---|" + "---|" * len(SIZES))
    for op, by_size in collectives.items():
        print(f"| {op} | " + " | ".join("{:.0f} / {:.0f}".format(*by_size[label]) for label in SIZES) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
