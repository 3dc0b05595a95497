"""TrainerGroup: the driver-side handle on N PolicyTrainer actors forming one DeepSpeed group.

Rank i runs in placement-group bundle i when a placement group is given, otherwise every
rank runs on the driver's node. Calls fan out to all ranks (every PolicyTrainer method is
collective) and wait for all of them; if any rank fails, the whole group is torn down and
the error re-raised naming the rank, instead of the others hanging in a collective.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Dict, List, Mapping, Optional

import ray
from ray.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)

from rlvr.config.schema import TrainerConfig
from rlvr.trainer.batch import TrainBatch, minibatch_counts, split_batch, trim_padding
from rlvr.trainer.policy_trainer import PolicyTrainerActor, combine_rank_metrics


@ray.remote(num_cpus=0)
def _master_address():
    """(ip, free TCP port) on the node this runs on: rank 0's rendezvous address."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        port = s.getsockname()[1]
    return ray.util.get_node_ip_address(), port


def loopback_store(timeout_s: float):
    """(store, port): a TCPStore server in this process listening on 127.0.0.1 only.

    torch's own rendezvous store (rank 0's, under init_process_group) listens on every
    interface and has no authentication; on a loopback-only (local) cluster the driver hosts
    the store instead, on a socket bound to 127.0.0.1, and the ranks join it as clients
    (TORCHELASTIC_USE_AGENT_STORE, torchrun's agent-store mode).
    """
    import datetime
    import socket

    import torch.distributed as dist

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    # detach: the store serves on this fd from now on; a closed Python socket must not close it
    store = dist.TCPStore("127.0.0.1", port, None, True, datetime.timedelta(seconds=timeout_s),
                          wait_for_workers=False, master_listen_fd=sock.detach())
    return store, port


class TrainerGroupError(RuntimeError):
    """A trainer rank failed; the group has been shut down."""


def _rendezvous_node(placement_group, bundle_index: int = 0) -> Optional[str]:
    """Node id holding `bundle_index` of a ready placement group, None when Ray does not say."""
    try:
        table = ray.util.placement_group_table(placement_group)
    except Exception:  # noqa: BLE001 - an unknown group: ask the node itself (a task)
        return None
    return (table.get("bundles_to_node_id") or {}).get(bundle_index)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class TrainerGroup:
    """N PolicyTrainer actors in one torch.distributed group, driven from the driver.

    The constructor starts every rank at once and, with `wait` (the default), returns once all
    are ready; with `wait=False` it returns at once so the caller can start other actors beside
    them, and `wait_ready()` finishes the start (any rank's failure fails the group, naming it).
    """

    def __init__(self, num_ranks: int, model_dir: str, trainer: Mapping[str, Any],
                 algorithm: Mapping[str, Any], placement_group=None,
                 num_cpus_per_rank: float = 1, num_gpus_per_rank: float = 0,
                 startup_timeout_s: float = 900.0, dtype: str = "float32", wait: bool = True,
                 expect_cuda: Optional[bool] = None, num_threads: Optional[int] = None, actor_class=None):
        """expect_cuda: ranks given a GPU (num_gpus_per_rank > 0) fail without CUDA, unless it is
        False (a layout rehearsed on CPU with declared GPUs). num_threads: torch threads per rank
        (cluster.threads_per_actor, resolved by rlvr.controller.threads.actor_threads); None: one
        per logical CPU of the rank. actor_class: the ranks' Ray actor class, PolicyTrainerActor
        unless given (rollout.in_trainer: rlvr.trainer.with_engine.TrainerWithEngineActor)."""
        if num_ranks < 1:
            raise ValueError(f"trainer.num_ranks = {num_ranks} must be >= 1")
        self.num_ranks = int(num_ranks)
        self.minibatches_per_step = int(trainer.get("minibatches_per_step", TrainerConfig.minibatches_per_step))
        self.actors: List[Any] = []
        self.startup: List[Dict[str, Any]] = []  # per rank: PolicyTrainer.ping()["startup"]
        self._started = time.time()
        here_id = ray.get_runtime_context().get_node_id()
        if placement_group is not None:
            strategies = [PlacementGroupSchedulingStrategy(placement_group=placement_group,
                                                           placement_group_bundle_index=i)
                          for i in range(self.num_ranks)]
            rank0_node = _rendezvous_node(placement_group)
        else:
            here = NodeAffinitySchedulingStrategy(here_id, soft=False)
            strategies = [here] * self.num_ranks
            rank0_node = here_id
        if rank0_node == here_id:
            # rank 0 runs on this node: its address is this node's, no task (a worker process
            # importing torch, seconds on a small machine) needed to ask for it
            master_addr, master_port = ray.util.get_node_ip_address(), _free_port()
        else:
            master_addr, master_port = ray.get(
                _master_address.options(scheduling_strategy=strategies[0]).remote())

        num_threads = max(1, int(num_threads if num_threads is not None else num_cpus_per_rank))
        env = {"OMP_NUM_THREADS": str(num_threads)}
        self._store = None
        if master_addr == "127.0.0.1":  # a loopback-only cluster: the driver hosts the rendezvous
            self._store, master_port = loopback_store(startup_timeout_s)
            env["TORCHELASTIC_USE_AGENT_STORE"] = "True"
        options: Dict[str, Any] = {}
        if not num_gpus_per_rank and ray.cluster_resources().get("GPU"):
            # Ray shows a zero-GPU actor every GPU of its node: hide them before the process starts
            options["runtime_env"] = {"env_vars": {**env, "CUDA_VISIBLE_DEVICES": ""}}
        # Otherwise the variables go to __init__, so ranks may take Ray's already started
        # (pooled) worker processes: a runtime_env of their own would make Ray start new ones.
        for rank in range(self.num_ranks):
            actor = (actor_class or PolicyTrainerActor).options(
                num_cpus=num_cpus_per_rank, num_gpus=num_gpus_per_rank,
                scheduling_strategy=strategies[rank], **options,
            ).remote(rank, self.num_ranks, master_addr, master_port, str(model_dir),
                     dict(trainer), dict(algorithm),
                     # Ray gives each GPU actor exactly its own device, visible as cuda:0.
                     local_rank=0 if num_gpus_per_rank else rank, num_threads=num_threads,
                     dtype=dtype,  # model.dtype: bfloat16 = DeepSpeed bf16 mixed precision
                     env=env, expect_cuda=bool(num_gpus_per_rank) and expect_cuda is not False)
            self.actors.append(actor)
        self._rendezvous = (startup_timeout_s, master_addr, master_port)
        print(f"[rlvr.trainer] starting {self.num_ranks} trainer rank(s), rendezvous "
              f"{master_addr}:{master_port}", file=sys.stderr, flush=True)
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Block until every rank is ready (idempotent); a failed or stuck rank shuts the group
        down and raises TrainerGroupError naming the rank."""
        if getattr(self, "_rendezvous", None) is None:
            return
        timeout_s, addr, port = self._rendezvous
        self._wait_ready(timeout_s, addr, port)
        self._rendezvous = None

    def _wait_ready(self, timeout_s: float, addr: str, port: int) -> None:
        start = time.monotonic()
        if not self.actors:
            raise TrainerGroupError("TrainerGroup.wait_ready: the group has been shut down")
        pending = {a.ping.remote(): rank for rank, a in enumerate(self.actors)}
        pings: Dict[int, Dict[str, Any]] = {}
        ready, last_report = 0, 0.0
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=5.0)
            for ref in done:
                rank = pending.pop(ref)
                pings[rank] = self._get(ref, rank, "start")
                ready += 1
            elapsed = time.monotonic() - start
            if done or elapsed - last_report >= 15.0:
                last_report = elapsed
                print(f"[rlvr.trainer] {ready}/{self.num_ranks} trainer ranks ready after "
                      f"{time.time() - self._started:.0f} s", file=sys.stderr, flush=True)
            if pending and elapsed > timeout_s:
                waiting = sorted(pending.values())
                self.shutdown()
                raise TrainerGroupError(
                    f"trainer ranks {waiting} not ready after {timeout_s:.0f} s (DeepSpeed init "
                    "or rendezvous stuck?); see the actors' logs")
        self.startup = [pings[r].get("startup", {}) for r in range(self.num_ranks)]
        if self.startup and self.startup[0].get("phases"):
            info = self.startup[0]
            phases = ", ".join(f"{name} {s:.1f}" for name, s in info["phases"])
            print(f"[rlvr.trainer] rank 0 ready {info['ready'] - self._started:.1f} s after the group "
                  f"started: {info['init_start'] - self._started:.1f} s to its __init__ (worker process, "
                  f"imports), then {phases} s", file=sys.stderr, flush=True)

    def _get(self, ref, rank: int, what: str):
        try:
            return ray.get(ref)
        except Exception as err:
            self.shutdown(graceful=False)
            raise TrainerGroupError(f"trainer rank {rank} failed during {what}: {err}") from err

    def _call_all(self, what: str, per_rank_args: Optional[List[tuple]] = None) -> List[Any]:
        """Call method `what` on every rank and wait; fail fast if any rank fails."""
        return self.collect(what, self.submit(what, per_rank_args))

    def submit(self, what: str, per_rank_args: Optional[List[tuple]] = None) -> List["ray.ObjectRef"]:
        """Start method `what` on every rank without waiting (for calls that need peers outside
        the group, e.g. the weight sync with the rollout engines); finish with `collect`."""
        if not self.actors:
            raise TrainerGroupError(f"TrainerGroup.{what}: the group has been shut down")
        return [getattr(a, what).remote(*(per_rank_args[i] if per_rank_args else ()))
                for i, a in enumerate(self.actors)]

    def collect(self, what: str, refs: List["ray.ObjectRef"]) -> List[Any]:
        """Per-rank results of `submit(what)`; fail fast (group shut down) if any rank fails."""
        rank_of = {ref: i for i, ref in enumerate(refs)}
        results: Dict[int, Any] = {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                results[rank_of[ref]] = self._get(ref, rank_of[ref], what)
        return [results[i] for i in range(len(refs))]

    def train_step(self, batch: TrainBatch, temperature: float = 1.0, broadcast_version: Optional[int] = None,
                   wait: bool = True):
        """Split `batch` across ranks, run one train_step on each (log-probs at sampling
        temperature `temperature`); metrics are global means. With `broadcast_version` the ranks
        then send the new weights to the engines (PolicyTrainer.train_step); wait=False returns
        the per-rank refs at once, for `train_metrics(refs)`.

        The minibatches' global token and row counts go with the shards (minibatch_counts), and
        the ranks' metric shares are added here: the ranks' only collectives in a step are
        DeepSpeed's own (a gloo all-reduce costs about 1 ms on a small CPU machine, whatever
        its size)."""
        shards = [trim_padding(s) for s in split_batch(batch, self.num_ranks)]
        counts = minibatch_counts(shards, self.minibatches_per_step)
        refs = self.submit("train_step", [(s, temperature, broadcast_version, counts) for s in shards])
        return self.train_metrics(refs) if wait else refs

    def train_metrics(self, refs: List["ray.ObjectRef"]) -> Dict[str, float]:
        """The global metrics of a train_step submitted with wait=False (every rank's result)."""
        return combine_rank_metrics(self.collect("train_step", refs))

    def sequence_kl(self, batch: TrainBatch, temperature: float = 1.0) -> List[float]:
        """Per-sequence KL(policy || reference) estimate [B] (PolicyTrainer.sequence_kl), in batch order."""
        shards = [trim_padding(s) for s in split_batch(batch, self.num_ranks)]
        rows = max(len(s) for s in shards)
        return [kl for part in self._call_all("sequence_kl", [(s, temperature, rows) for s in shards]) for kl in part]

    def full_state_dict(self):
        """Full CPU state dict with HF names (from rank 0)."""
        return self._call_all("full_state_dict")[0]

    def full_state_dict_ref(self) -> "ray.ObjectRef":
        """Rank 0's full state dict left in the object store: rollout workers fetch it
        directly, so the weights never pass through the driver."""
        refs = [a.full_state_dict.remote() for a in self.actors]
        for rank, ref in enumerate(refs):
            ray.wait([ref], fetch_local=False)
            if rank:
                self._get(ref, rank, "full_state_dict")  # surfaces a failed rank; returns None
        return refs[0]

    def state_digests(self) -> List[str]:
        """Per-rank sha256 of the full parameters (all equal when ranks agree)."""
        return self._call_all("state_digest")

    def sequence_logprobs(self, prompt_ids: List[List[int]],
                          response_ids: List[List[int]]) -> List[float]:
        """Teacher-forced summed response log-probs under the current policy."""
        return self._call_all("sequence_logprobs", [(prompt_ids, response_ids)] * self.num_ranks)[0]

    def save_hf(self, out_dir: str) -> str:
        """Write a HF model folder (weights + config + tokenizer files) to `out_dir`."""
        return self._call_all("save_hf", [(str(out_dir),)] * self.num_ranks)[0]

    def save_training_state(self, out_dir: str) -> None:
        """Weights + optimizer state of every rank (DeepSpeed checkpoint) for resuming."""
        self._call_all("save_training_state", [(str(out_dir),)] * self.num_ranks)

    def load_training_state(self, in_dir: str) -> None:
        self._call_all("load_training_state", [(str(in_dir),)] * self.num_ranks)

    def ping(self) -> List[Dict[str, Any]]:
        return self._call_all("ping")

    def shutdown(self, graceful: bool = True) -> None:
        """Leave the process group and kill the actors (idempotent)."""
        actors, self.actors = self.actors, []
        self._store = None  # the driver-hosted rendezvous store, if any, goes with the group
        if graceful and actors:
            try:
                ray.get([a.close.remote() for a in actors], timeout=30)
            except Exception:
                pass  # killing below is what matters
        for a in actors:
            try:
                ray.kill(a)
            except Exception:
                pass
