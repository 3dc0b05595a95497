"""The driver's handle on a rollout engine that lives inside trainer rank 0 (rollout.in_trainer).

It answers as a RolloutWorker actor does (`worker.generate.remote(...)`, `worker.score.remote(...)`),
so the step, the evaluation and the shutdown drive it unchanged: each call becomes the rank's
`engine_call` (rlvr/trainer/with_engine.py). Calls to the rank run one at a time, in order.
"""
from __future__ import annotations

from typing import Any


class _EngineMethod:
    def __init__(self, actor, name: str):
        self._actor, self._name = actor, name

    def remote(self, *args, **kwargs):
        return self._actor.engine_call.remote(self._name, *args, **kwargs)


class EngineInTrainer:
    """A RolloutWorker actor's methods, served by the trainer rank actor `actor`."""

    def __init__(self, actor: Any):
        self.actor = actor  # the trainer rank's Ray actor: killing it is what loses the engine

    def __getattr__(self, name: str) -> _EngineMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _EngineMethod(self.actor, name)

    def __repr__(self) -> str:
        return f"EngineInTrainer({self.actor!r})"
