"""Rollout engines (transformers, vLLM) behind one interface, and the RolloutWorker actor.

Names are imported on first use, so `rlvr.rollout.engine_options` (read by the config loader)
does not pull in torch and Ray.
"""
import importlib

_HOMES = {"BACKENDS": "backends", "Generation": "generation", "PackedGroups": "generation",
          "RolloutEngine": "engine", "make_engine": "backends", "RolloutWorker": "worker", "RolloutWorkerActor": "worker"}

__all__ = list(_HOMES)


def __getattr__(name):
    if name in _HOMES:
        return getattr(importlib.import_module(f"rlvr.rollout.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'rlvr.rollout' has no attribute {name!r}")
