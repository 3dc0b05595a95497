"""A trainer rank that also holds the run's rollout engine (rollout.in_trainer: a hybrid engine).

One process instead of two: the run starts one actor fewer (on a small machine, the seconds a
second process spends importing torch and transformers), and the new weights reach the engine by
a copy in memory instead of a broadcast. Generation and training take turns in the process, so
this suits the synchronous loop. The controller reaches the engine through
rlvr.controller.engine_in_trainer.EngineInTrainer, which looks like a RolloutWorker actor.

    rank = TrainerWithEngine(...)                      # as PolicyTrainer
    rank.start_engine(model_dir, "hf", seed=0)         # rank 0 only
    rank.engine_call("generate", prompts, n, 16)       # any RolloutWorker method
    rank.load_engine_weights(version)                  # every rank calls (ZeRO-3 gathers)
    rank.train_step(batch, broadcast_version=version)  # ... or at the end of the step (the fused sync)
"""
from __future__ import annotations

import time
from typing import Any, Dict, Optional

from rlvr.trainer.policy_trainer import PolicyTrainer, remote_class


class TrainerWithEngine(PolicyTrainer):
    """PolicyTrainer plus, once `start_engine` ran, a RolloutWorker in the same process."""

    rollout_worker = None
    _engine_error: Optional[str] = None  # why start_engine failed: every later engine call says it

    def start_engine(self, model_dir: str, backend: str = "hf", seed: int = 0,
                     engine_kwargs: Optional[Dict[str, Any]] = None, num_threads: int = 1) -> None:
        """Build the rollout engine here (RolloutWorker's arguments)."""
        from rlvr.rollout.worker import RolloutWorker

        try:
            self.rollout_worker = RolloutWorker(model_dir, backend=backend, seed=seed,
                                                engine_kwargs=engine_kwargs, num_threads=num_threads)
        except Exception as err:
            self._engine_error = f"{type(err).__name__}: {err}"
            raise

    def engine_call(self, method: str, *args, **kwargs) -> Any:
        """RolloutWorker.`method`(*args, **kwargs) on this process's engine."""
        if self.rollout_worker is None:
            if self._engine_error:
                raise RuntimeError(f"the rollout engine in trainer rank {self.rank} failed to start: "
                                   f"{self._engine_error}")
            raise RuntimeError(f"trainer rank {self.rank} holds no rollout engine (rollout.in_trainer puts it "
                               f"in rank 0); it was asked for {method}")
        return getattr(self.rollout_worker, method)(*args, **kwargs)

    def load_engine_weights(self, version: int) -> float:
        """The rank's current weights into the engine here, stamped `version` (rank 0; every rank
        calls: under ZeRO-3 the full weights are gathered from all). Returns the seconds of the
        gather and the load."""
        start = time.perf_counter()
        state = self.full_state_dict()
        if self.rollout_worker is not None:
            self.rollout_worker.update_weights(state, version)
        return time.perf_counter() - start

    def broadcast_weights(self, version: int) -> float:
        """The fused sync at the end of train_step (broadcast_version): the copy into this
        process's engine, which every later engine call then sees."""
        return self.load_engine_weights(version)

    def close(self) -> None:
        if self.rollout_worker is not None:
            self.rollout_worker.shutdown()
            self.rollout_worker = None
        super().close()


def __getattr__(name: str):
    """`TrainerWithEngineActor`, the Ray actor class (made on first use, as PolicyTrainerActor)."""
    if name == "TrainerWithEngineActor":
        return remote_class(TrainerWithEngine)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
