"""How many threads each actor computes with (`cluster.threads_per_actor`).

In a synchronous step only one stage computes at a time (rollout, then reward, then train), so
the stage that runs may use the cores the others leave idle. "auto" gives every actor
cores // (the most actors of one stage that compute at once), with OpenMP's passive waiting
(ACTOR_ENV's OMP_WAIT_POLICY=PASSIVE) so that an idle actor's threads sleep instead of spinning
on cores the active stage needs. With rollout.overlap stages run side by side: one thread
each. An integer N gives every actor N threads whatever the schedule.
"""
from __future__ import annotations

import os
from typing import Optional


def node_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS says, else cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def actor_threads(setting, overlap: bool, trainer_ranks: int, rollout_workers: int,
                  cores: Optional[int] = None) -> int:
    """Threads per trainer rank and rollout worker for `cluster.threads_per_actor` = setting
    ("auto" or a positive integer, as a string or int); cores: of the node (default: this one's)."""
    text = str(setting).strip().lower()
    if text != "auto":
        try:
            n = int(text)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"cluster.threads_per_actor = {setting!r} must be auto or an integer >= 1")
        return n
    if overlap:  # rollout, reward and train run at once: a thread each keeps them off each other's cores
        return 1
    cores = node_cores() if cores is None else int(cores)
    return max(1, cores // max(1, trainer_ranks, rollout_workers))


def apply_threads(n: int) -> int:
    """Run this process's torch with n intra-op threads (OMP/MKL env for libraries read later);
    returns torch's thread count now, as the actor reports it."""
    import torch

    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)
    return torch.get_num_threads()
