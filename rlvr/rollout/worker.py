"""RolloutWorker: one rollout engine and the policy version it currently holds.

A plain class so it runs and tests without Ray; `RolloutWorkerActor` is the Ray actor.
"""
from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional, Sequence

import ray
import torch

from rlvr.rollout.backends import make_engine
from rlvr.rollout.generation import PackedGroups
from rlvr.rollout.sleep import SleepState


class RolloutWorker:
    """Samples responses with the policy at `policy_version` and takes new weights in place."""

    # never asleep and unable to sleep (so never changed) until __init__ gives the worker its own
    _sleep = SleepState(can_sleep=False)

    def __init__(self, model_dir: str, backend: str = "hf", seed: int = 0,
                 engine_kwargs: Optional[Dict[str, Any]] = None, num_threads: int = 1):
        """`num_threads`: torch threads of this process (cluster.threads_per_actor, resolved by
        rlvr.controller.threads.actor_threads); 1 by default: two busy-waiting OpenMP threads on a
        shared 2-core machine slow each other down."""
        from rlvr.controller.threads import apply_threads

        self.num_threads = apply_threads(int(num_threads))
        self.backend = backend
        start = time.perf_counter()
        self.engine = make_engine(backend, model_dir, seed=seed, **(engine_kwargs or {}))
        self.engine_start_s = time.perf_counter() - start  # model load, KV cache, CUDA graphs
        self._sleep = SleepState(self.engine.can_sleep)
        self._policy_version = 0

    def ready_info(self) -> Dict[str, Any]:
        """What the controller logs once the worker is up: {"backend", "policy_version",
        "engine_start_s" (seconds to build the engine), "weight_group_size", "num_threads" (torch's
        thread count in this process now), "nice" (this process's nice value: Ray's worker_niceness)}."""
        return {"backend": self.backend, "policy_version": self._policy_version,
                "engine_start_s": self.engine_start_s, "weight_group_size": self.engine.weight_group_size(),
                "num_threads": torch.get_num_threads(), "nice": os.getpriority(os.PRIO_PROCESS, 0)}

    def generate(self, prompts: List[List[int]], n: int, max_new_tokens: int,
                 temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                 stop_token_ids: Optional[List[int]] = None,
                 receive_version: Optional[int] = None, score: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Sample n responses per prompt; pass a new seed per call (base_seed + step).

        With `receive_version`, first take the trainer's broadcast of that version (as
        receive_weights does): the weight sync rides on a call the controller makes anyway.
        Returns {"generations": [len(prompts)][n] Generation, "policy_version": int,
        "num_tokens": response tokens generated, "seconds": wall time of the generation},
        plus "receive_s" (seconds in receive_weights, waiting for the trainer included) when receiving.
        With `score` = {"prompts": [(prompt id, gold, meta)], "epoch": int} (reward.colocate, after
        enable_scoring) also "scored": [prompt][sample] scores as RewardWorker.score(...,
        scores_only=True) returns them, and "score_s".
        """
        received = {} if receive_version is None else {"receive_s": self.receive_weights(receive_version)}
        self._sleep.require_awake("generate")
        start = time.perf_counter()
        generations = self.engine.generate(prompts, n, max_new_tokens, temperature=temperature,
                                           top_p=top_p, seed=seed, stop_token_ids=stop_token_ids)
        out = {
            "generations": PackedGroups(generations),  # pickled as flat arrays (rlvr/rollout/generation.py)
            "policy_version": self._policy_version,
            "num_tokens": sum(len(g.token_ids) for group in generations for g in group),
            "seconds": time.perf_counter() - start,
            **received,
        }
        if score is not None:
            from rlvr.rewards.worker import sample_records

            start = time.perf_counter()
            records = sample_records(score["prompts"], generations, score["epoch"])
            # scores only (each sample's key and scores): the driver holds the responses already
            flat = self.scorer.score([r for group in records for r in group], scores_only=True)  # records' order
            out["scored"] = [flat[i * n:(i + 1) * n] for i in range(len(records))]  # n samples per prompt
            out["score_s"] = time.perf_counter() - start
        return out

    def enable_scoring(self, verifier: str, design: Dict[str, Any], timeout_s: float = 5.0,
                       plugins: Sequence[str] = ()) -> None:
        """Score generations in this process (reward.colocate): a RewardWorker's verifier and design."""
        from rlvr.rewards.worker import RewardWorker

        self.scorer = RewardWorker(verifier, design, timeout_s=timeout_s, plugins=plugins)

    def update_weights(self, state_dict: Dict[str, torch.Tensor], version: int) -> float:
        """Load a full HF-named state dict in place and stamp `version`; returns seconds taken."""
        self._sleep.require_awake("update_weights")
        start = time.perf_counter()
        self.engine.load_weights(state_dict)
        self._policy_version = version
        return time.perf_counter() - start

    def join_weight_group(self, host: str, port: int, rank: int, world_size: int, backend: str,
                          buckets: list, dtype: str, timeout_s: float = 600.0) -> None:
        """Join the collective weight-sync group from rank `rank` on (rlvr/comm/weight_group.py): the
        engine takes `weight_group_size()` ranks, one per tensor-parallel shard."""
        self.engine.join_weight_group(host, port, rank, world_size, backend, buckets, dtype, timeout_s)

    def weight_group_size(self) -> int:
        """Ranks this worker's engine takes in the weight group (its tensor-parallel size)."""
        return self.engine.weight_group_size()

    def receive_weights(self, version: int) -> float:
        """Receive trainer rank 0's broadcast of `version`, load it in place, stamp it; returns seconds."""
        self._sleep.require_awake("receive_weights")
        start = time.perf_counter()
        sent = self.engine.receive_weights()
        if sent != version:
            raise RuntimeError(f"weight sync: the trainer sent version {sent}, the controller expected {version}")
        self._policy_version = version
        return time.perf_counter() - start

    def leave_weight_group(self) -> None:
        """Leave the collective weight-sync group (idempotent)."""
        if self.engine is not None:
            self.engine.leave_weight_group()

    # ---- ipc weight sync (rlvr/comm/tensor_handles.py): buckets by handle from a trainer rank here --

    def weights_location(self) -> Dict[str, Any]:
        """{"node", "gpu"} where the engine's weights live (see tensor_handles.location)."""
        from rlvr.comm.tensor_handles import location

        return location(self.engine.weights_device())

    def open_ipc_sync(self, buckets: list, dtype: str) -> None:
        """Take the trainer's bucket plan for ipc syncs (checked against the engine's parameters)."""
        self.engine.open_ipc_sync(buckets, dtype)

    def receive_ipc_bucket(self, version: int, index: int, handle) -> float:
        """Load bucket `index` from the trainer's shared buffer in place; after the last bucket the
        engine holds `version` (stamped). Returns seconds; the buffer is free again on return."""
        self._sleep.require_awake("receive_ipc_bucket")
        start = time.perf_counter()
        if self.engine.load_ipc_bucket(index, handle):
            self._policy_version = version
        return time.perf_counter() - start

    def score(self, prompt_ids: List[int], response_ids: List[int]) -> List[float]:
        """Teacher-forced logprob of each response token under the current weights."""
        self._sleep.require_awake("score")
        return self.engine.score(prompt_ids, response_ids)

    def sleep(self) -> float:
        """rollout.sleep_while_training: free the engine's GPU memory while the trainer steps; seconds.
        Until wake_up, generate/score/weight loads raise. Asleep already: nothing to do."""
        start = time.perf_counter()
        if self._sleep.sleep():
            self.engine.sleep()
        return time.perf_counter() - start

    def wake_up(self) -> float:
        """Bring the engine back (before the weight sync); seconds. Awake already: nothing to do."""
        start = time.perf_counter()
        if self._sleep.asleep:
            self.engine.wake_up()
            self._sleep.wake_up()
        return time.perf_counter() - start

    def is_asleep(self) -> bool:
        return self._sleep.asleep

    def policy_version(self) -> int:
        return self._policy_version

    def shutdown(self) -> None:
        """Shut the engine down; call before killing the actor (vLLM leaks /dev/shm otherwise)."""
        if getattr(self, "scorer", None) is not None:
            self.scorer.close()
            self.scorer = None
        if self.engine is not None:
            self.engine.leave_weight_group()
            self.engine.shutdown()
            self.engine = None


RolloutWorkerActor = ray.remote(RolloutWorker)
