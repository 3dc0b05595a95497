"""The run's Ray cluster and actors: start (or join) Ray, reserve the placement group, launch
the trainer ranks, rollout and reward workers, set up the weight sync, and take it all down.

Start-up order (docs/loop.md, "Start-up, to step 1"): Ray starts on a thread (`begin`) while
the driver reads its prompts; `reserve` waits for it; `launch` creates the actors without
waiting, so they import and load while the driver loads its tokenizer; `wait_ready` waits.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict
from typing import Any, Callable, List, Optional

from rlvr.config import RecipeConfig
from rlvr.controller.cluster import rehearsal
from rlvr.controller.faults import FaultLog
from rlvr.controller.weight_sync import EngineSleep
from rlvr.tracking.tracker import progress


def engines_start_first(cfg: RecipeConfig, gpus: float) -> bool:
    """Whether the rollout engines must finish starting before the trainer ranks start: when they
    share GPU cards (vLLM sizes its KV cache from the free memory it measures while starting)."""
    return bool(gpus) and (cfg.cluster.colocate or 0 < cfg.trainer.num_gpus_per_rank < 1
                           or 0 < cfg.rollout.num_gpus_per_worker < 1)


class ActorPool:
    """Holds the cluster start, placement group, layout and actors of one run."""

    def __init__(self, cfg: RecipeConfig):
        self.cfg = cfg
        self.placement = None
        self.layout = None
        self.trainer = None  # TrainerGroup
        self.rollout: List[Any] = []  # RolloutWorker actors
        self.reward: List[Any] = []  # RewardWorker actors
        self.weight_sync = None  # rlvr/controller/weight_sync.py, once the actors are ready
        self.engine_sleep = EngineSleep([], enabled=False)  # rollout.sleep_while_training, once ready
        self.engine_start_s = 0.0  # the slowest rollout engine's build
        self.threads = 1  # torch threads per trainer rank and rollout worker (cluster.threads_per_actor)
        self._cluster_start = None  # BackgroundStart, kept: `end` releases its thread
        self._launched = None  # the model folder the actors were launched with
        self._pending_ready: List[Any] = []
        self.version = 0  # the policy version the engines hold (a replaced engine gets it too)
        self.faults = FaultLog(cfg.cluster.max_restarts)  # recoveries from lost actors (docs/faults.md)

    # ---- the cluster --------------------------------------------------------------------
    def begin(self) -> None:
        """Start (or join) Ray and reserve the run's placement group on a background thread;
        `reserve` waits for it."""
        from rlvr.controller.cluster import BackgroundStart, node_environment
        from rlvr.controller.layout import layout_for

        if self.placement is None and self._cluster_start is None:
            # Ray's own import (0.5 s) first: the start thread then launches Ray's processes at
            # once instead of sharing the interpreter lock with the driver's imports (measured:
            # Ray up about 0.7 s sooner, 3 interleaved rounds on 2 cores)
            import ray  # noqa: F401
            uses_gpus = layout_for(self.cfg).gpus > 0
            self._cluster_start = BackgroundStart(self._start_cluster,
                                                  node_environment(self.cfg.cluster, uses_gpus))

    def _start_cluster(self):
        from rlvr.controller.cluster import reserve, start_ray
        from rlvr.controller.layout import layout_for

        cfg = self.cfg
        layout = layout_for(cfg)
        start_ray(cfg.cluster, int(layout.cpus), uses_gpus=layout.gpus > 0)
        return layout, reserve(layout, cfg.cluster.placement_strategy, log=progress)

    def reserve(self) -> None:
        """Start or join Ray and hold the run's placement group (waiting for `begin`'s start
        when there is one). The request is compared with the cluster first: a run that
        cannot be placed fails here, naming the resource."""
        if self.placement is not None:
            return
        start = self._cluster_start
        self.layout, self.placement = start.result() if start is not None else self._start_cluster()

    # ---- the actors ---------------------------------------------------------------------
    def wait_ready(self, model_dir: str) -> None:
        """Launch the actors (unless `launch` did) and wait until all are ready."""
        import ray

        if self._launched != model_dir:
            self.launch(model_dir)
        self.trainer.wait_ready()
        ready = ray.get([w.ready_info.remote() for w in self.rollout] + self._pending_ready) or []
        self._pending_ready = []
        self.engine_start_s = max((info["engine_start_s"] for info in ready[:len(self.rollout)]), default=0.0)
        progress(f"all actors ready (rollout engines built in {self.engine_start_s:.1f} s)")
        from rlvr.controller.cluster import niceness_warning
        warning = niceness_warning({f"rollout worker {i}": info.get("nice", 0)
                                    for i, info in enumerate(ready[:len(self.rollout)])})
        if warning:
            progress(f"warning: {warning}")

    def launch(self, model_dir: str) -> None:
        """Create the trainer ranks, rollout and reward workers without waiting for them."""
        import ray

        from rlvr.controller.threads import actor_threads
        from rlvr.rollout.engine_options import engine_kwargs
        from rlvr.trainer.group import TrainerGroup

        cfg = self.cfg
        self.reserve()
        layout = self.layout
        M, N, R = len(layout.trainer), len(layout.rollout), len(layout.reward)
        # auto counts this machine's cores: meant for the embedded cluster (cluster.threads_per_actor)
        self.threads = threads = actor_threads(cfg.cluster.threads_per_actor, cfg.rollout.overlap, M, N)
        engine = cfg.rollout.backend
        if engine == "vllm":  # the engine options that decide its speed and memory, as they will run
            options = engine_kwargs(cfg.rollout, cfg.model.dtype)
            engine += (f": {'eager' if options['enforce_eager'] else 'CUDA graphs'}, max_num_seqs "
                       f"{options['max_num_seqs']}, prefix caching {'on' if options['enable_prefix_caching'] else 'off'}"
                       f"{', sleeps while training' if options['sleep_mode'] else ''}")
        progress(f"starting {M} trainer rank(s), {N} rollout worker(s) ({engine}), {R} reward worker(s)"
                 + (f"; {threads} threads each" if threads > 1 else ""))

        in_trainer = cfg.rollout.in_trainer
        actor_class = None
        if in_trainer:
            from rlvr.trainer.with_engine import TrainerWithEngineActor as actor_class

        def start_trainer():  # trainer rank i sits in bundle i in every layout (rlvr/controller/layout.py)
            self.trainer = TrainerGroup(M, model_dir, asdict(cfg.trainer), asdict(cfg.algorithm),
                                        placement_group=self.placement, num_gpus_per_rank=cfg.trainer.num_gpus_per_rank,
                                        dtype=cfg.model.dtype, wait=False, expect_cuda=not rehearsal(cfg.cluster),
                                        num_threads=threads, actor_class=actor_class)

        shared_cards = engines_start_first(cfg, layout.gpus) and not in_trainer
        if not shared_cards:  # everything starts at once, the slowest (DeepSpeed) first
            start_trainer()
        if in_trainer:  # the engine is built in rank 0 once the rank is up (calls to it run in order)
            self.rollout = [self._engine_in_trainer(model_dir)]
        else:
            self.rollout = [self._rollout_actor(i, model_dir) for i in range(N)]
        self.reward = [self._reward_actor(j) for j in range(R)]
        self._pending_ready = []
        if cfg.reward.colocate:  # training samples are scored where they are generated
            self._pending_ready = [w.enable_scoring.remote(cfg.reward.verifier, dict(cfg.reward.design),
                                                           cfg.reward.timeout_s, list(cfg.plugins))
                                   for w in self.rollout]
        if shared_cards:
            ray.get([w.policy_version.remote() for w in self.rollout] + self._pending_ready)
            start_trainer()
        self._launched = model_dir

    def _rollout_actor(self, i: int, model_dir: str):
        """Rollout worker i, created in its slot of the placement group (not waited for)."""
        from rlvr.controller.cluster import slot_strategy
        from rlvr.rollout.engine_options import engine_kwargs
        from rlvr.rollout.worker import RolloutWorkerActor

        cfg, layout = self.cfg, self.layout
        slot = layout.rollout[i]
        tp = len(slot.shard_bundles)
        env = ({"VLLM_RAY_BUNDLE_INDICES": ",".join(map(str, slot.shard_bundles)),
                "VLLM_RAY_PER_WORKER_GPUS": str(slot.gpus_per_shard)} if tp > 1 else {})
        if tp == 1 and not slot.num_gpus and layout.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU engine in a GPU run: Ray would show it every GPU
        kwargs = engine_kwargs(cfg.rollout, cfg.model.dtype, tp)
        # tp > 1: vLLM's Ray executor starts one worker per shard bundle of this placement group.
        return RolloutWorkerActor.options(
            num_cpus=slot.num_cpus, num_gpus=slot.num_gpus,
            scheduling_strategy=slot_strategy(self.placement, slot.bundle, capture_child_tasks=tp > 1),
            **({"runtime_env": {"env_vars": env}} if env else {}),
        ).remote(model_dir, backend=cfg.rollout.backend, seed=cfg.seed + i, engine_kwargs=kwargs,
                 num_threads=self.threads)

    def _engine_in_trainer(self, model_dir: str):
        """rollout.in_trainer: the engine built inside trainer rank 0 (not waited for), and the
        driver's RolloutWorker-like handle on it."""
        from rlvr.controller.engine_in_trainer import EngineInTrainer
        from rlvr.rollout.engine_options import engine_kwargs

        cfg = self.cfg
        rank0 = self.trainer.actors[0]
        rank0.start_engine.remote(model_dir, backend=cfg.rollout.backend, seed=cfg.seed,
                                  engine_kwargs=engine_kwargs(cfg.rollout, cfg.model.dtype, 1),
                                  num_threads=self.threads)
        return EngineInTrainer(rank0)

    def _reward_actor(self, j: int):
        """Reward worker j, created in its slot of the placement group (not waited for)."""
        from rlvr.controller.cluster import slot_strategy
        from rlvr.rewards.worker import RewardWorkerActor

        cfg, layout = self.cfg, self.layout
        slot = layout.reward[j]
        # a reward worker without a GPU share must not see the node's GPUs (a learned reward
        # model's device: auto would take one)
        hide_gpus = {"runtime_env": {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}}} if layout.gpus else {}
        return RewardWorkerActor.options(num_cpus=slot.num_cpus, num_gpus=slot.num_gpus,
                                         scheduling_strategy=slot_strategy(self.placement, slot.bundle),
                                         **({} if slot.num_gpus else hide_gpus)).remote(
            cfg.reward.verifier, dict(cfg.reward.design), timeout_s=cfg.reward.timeout_s,
            plugins=list(cfg.plugins))

    # ---- recoveries (docs/faults.md) -----------------------------------------------------
    def _wait_placement(self, timeout: Optional[float] = None) -> None:
        """Wait up to `timeout` (cluster.restart_timeout_s) for the placement group: Ray re-creates
        the bundles of a lost node on nodes that offer their resources, if any do."""
        timeout = self.cfg.cluster.restart_timeout_s if timeout is None else timeout
        if self.placement is not None and not self.placement.wait(timeout_seconds=timeout):
            raise RuntimeError(f"the cluster did not offer the run's resources again within "
                               f"cluster.restart_timeout_s = {timeout} s (a lost node not replaced?)")

    def node_of(self, role: str, index: int) -> str:
        """The node (id, first 12 hex digits) of `role` actor `index`'s placement group bundle, or "?"."""
        try:
            import ray

            slots = {"trainer": self.layout.trainer, "rollout": self.layout.rollout, "reward": self.layout.reward}
            bundle = slots[role][index].bundle
            node = ray.util.placement_group_table(self.placement)["bundles_to_node_id"].get(bundle)
            return (node or "?")[:12]
        except Exception:  # noqa: BLE001 - the record is best effort; the recovery is not
            return "?"

    def replace_worker(self, role: str, index: int, version: int) -> None:
        """A new `role` ("rollout" | "reward") worker `index` in the lost one's slot (its placement
        group bundle, re-created by Ray if its node went), ready, and for a rollout worker holding
        the trainer's current weights stamped `version` (the weight group re-formed with it)."""
        import ray

        workers = getattr(self, role)
        if role == "rollout" and self.cfg.rollout.weight_sync not in ("collective", "object_store"):
            raise RuntimeError(f"rollout.weight_sync = {self.cfg.rollout.weight_sync}: a rollout worker is "
                               "not replaced in place (the actors restart from the last checkpoint)")
        try:
            ray.kill(workers[index], no_restart=True)  # a hung one must not come back
        except Exception:  # noqa: BLE001 - already gone
            pass
        worker = self._until_placed(f"{role} worker {index}", lambda timeout: self._start_worker(role, index, timeout))
        workers[index] = worker
        if role == "reward":
            return
        from rlvr.controller.weight_sync import ObjectStoreSync

        timeout = self.cfg.cluster.restart_timeout_s
        if isinstance(self.weight_sync, ObjectStoreSync):
            self.weight_sync.rollout = list(workers)
            ray.get(worker.update_weights.remote(self.trainer.full_state_dict_ref(), version), timeout=timeout)
        else:  # a weight group with a lost member cannot send: every member leaves, a new one forms
            self.weight_sync.close()
            self.open_weight_sync()
            self.weight_sync.sync(version)
        self.engine_sleep = EngineSleep(self.rollout, self.cfg.rollout.sleep_while_training)

    def _start_worker(self, role: str, index: int, timeout: float):
        """A new `role` worker `index` in its bundle, ready (its engine built, scoring enabled)."""
        import ray

        if role == "reward":
            worker = self._reward_actor(index)
            ray.get(worker.stats.remote(), timeout=timeout)
            return worker
        worker = self._rollout_actor(index, self._launched)
        ready = [worker.ready_info.remote()]
        if self.cfg.reward.colocate:
            cfg = self.cfg
            ready.append(worker.enable_scoring.remote(cfg.reward.verifier, dict(cfg.reward.design),
                                                      cfg.reward.timeout_s, list(cfg.plugins)))
        ray.get(ready, timeout=timeout)
        return worker

    def _until_placed(self, what: str, start: Callable[[float], Any]) -> Any:
        """start(seconds left) until it returns, within cluster.restart_timeout_s. Right after a node
        is lost Ray may still count it alive and place a new actor in its old bundle there: that
        actor is lost at once, and the start is tried again once Ray has moved the bundle."""
        from rlvr.controller.faults import is_lost_actor

        deadline = time.monotonic() + self.cfg.cluster.restart_timeout_s
        tries = 0
        while True:
            self._wait_placement(max(1.0, deadline - time.monotonic()))
            try:
                return start(max(1.0, deadline - time.monotonic()))
            except Exception as err:  # noqa: BLE001 - a lost start is tried again; anything else raises
                tries += 1
                if not is_lost_actor(err) or time.monotonic() >= deadline:
                    raise
                progress(f"{what}: its replacement was lost while starting ({type(err).__name__}; its node "
                         f"is probably still being declared dead); try {tries + 1} in 2 s")
                time.sleep(2.0)

    def restart(self) -> None:
        """Every actor anew (the trainer group restarts from the initial model; the caller
        restores a checkpoint): the old ones killed without waiting on them (some may hang),
        the placement group waited for up to cluster.restart_timeout_s (a start lost because
        its node was not yet declared dead is tried again within it)."""
        model_dir = self._launched

        def start(timeout: float) -> None:
            self._kill_all()
            self.launch(model_dir)
            self.wait_ready(model_dir)
            self.open_weight_sync()

        self._until_placed("the actors' restart", start)

    def _kill_all(self) -> None:
        """Every actor killed, not waited on, and forgotten."""
        import ray

        for actor in self.rollout + self.reward + (self.trainer.actors if self.trainer is not None else []):
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if self.trainer is not None:
            self.trainer.shutdown(graceful=False)
        self.weight_sync = None
        self.rollout, self.reward, self.trainer = [], [], None
        self._pending_ready = []
        self._launched = None

    # ---- weights to the engines ---------------------------------------------------------
    def open_weight_sync(self) -> None:
        """Set up `rollout.weight_sync` between the ready trainer and engines."""
        from rlvr.controller.weight_sync import make_weight_sync

        cfg = self.cfg
        self.weight_sync = make_weight_sync(cfg.rollout.weight_sync, self.trainer, self.rollout,
                                            cfg.model.dtype, cfg.rollout.sync_bucket_mb,
                                            stage_timeout_s=cfg.cluster.stage_timeout_s or None)
        self.engine_sleep = EngineSleep(self.rollout, cfg.rollout.sleep_while_training)

    def sync_weights(self, version: int) -> float:
        """Trainer weights -> every rollout engine, stamped `version` (rollout.weight_sync); seconds."""
        start = time.time()
        self.weight_sync.sync(version)
        self.version = version
        return time.time() - start

    # ---- the end ------------------------------------------------------------------------
    def shutdown(self) -> None:
        import ray

        if self.weight_sync is not None:
            self.weight_sync.close()
            self.weight_sync = None

        for name in ("rollout", "reward"):
            for actor in getattr(self, name):
                try:  # engines first: a killed vLLM actor leaks /dev/shm segments
                    ray.get(actor.shutdown.remote() if name == "rollout" else actor.close.remote(),
                            timeout=60)
                except Exception:  # noqa: BLE001 - best effort on the way out
                    pass
        if self.trainer is not None:
            self.trainer.shutdown()
        if self.placement is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self.placement)
        from rlvr.controller.cluster import shutdown_ray

        shutdown_ray()

    def end(self) -> None:
        """Actors, placement group and Ray down, if they are up; a start still under way (the
        run failed while Ray was starting) is waited for first."""
        start = self._cluster_start
        if start is not None and not start.settle():
            progress("Ray was still starting when the run ended; leaving it to end with this process")
            return
        if "ray" in sys.modules and sys.modules["ray"].is_initialized():
            self.shutdown()
        elif start is not None:
            start.release()
