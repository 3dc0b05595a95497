"""Riding through lost actors (docs/faults.md): which errors mean "the actor or its node is gone",
waiting on a stage's calls with the stage timeout, and the run's record of every recovery.

The recoveries themselves live where the actors are driven: a lost reward or rollout worker is
replaced inside the step (StepRunner.score / gather re-issue its work with the same seeds), and
anything else lost (a trainer rank, a worker whose loss broke the weight group) restarts every
actor from the last complete checkpoint (Controller.run). Both are bounded by
`cluster.max_restarts`, which is 0 by default: the first lost actor fails the run, as before.
"""
from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence

from rlvr.tracking.tracker import progress

# Test hook (the e2e tests): "kill:reward:0@3,freeze:rollout:0@2" kills reward worker 0 at the
# start of step 3 and makes rollout worker 0 sleep (a frozen engine) at the start of step 2.
INJECT_ENV = "RLVR_FAULT_INJECT"


class StageTimeout(RuntimeError):
    """A stage's calls made no progress within cluster.stage_timeout_s (a hang): the actor is lost."""


class ActorLost(RuntimeError):
    """An actor found lost by what its loss broke (e.g. the weight broadcast), named in the message."""


class RecoveryExhausted(RuntimeError):
    """An actor was lost after cluster.max_restarts recoveries were used up."""


def is_lost_actor(err: BaseException) -> bool:
    """True when `err` (or what it was raised from) says an actor, its process or its node is
    gone, or a stage hung: what a replacement or a restart recovers from. An error the actor
    raised itself (a bug, a bad input) is not: it would happen again."""
    import ray.exceptions as rex

    lost = (rex.RayActorError, rex.WorkerCrashedError, rex.NodeDiedError, rex.LocalRayletDiedError, StageTimeout,
            ActorLost)
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, lost):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


def lost_actor_name(err: BaseException) -> str:
    """Which actor a lost-actor error names ("rollout worker 0", ...), as far as its message says."""
    import re

    text = str(err)
    found = re.search(r"(trainer rank \d+|rollout worker \d+|reward worker \d+|trainer ranks)", text)
    if found:
        return found.group(1)
    found = re.search(r"class_name: (\w+)", text)
    return found.group(1) if found else type(err).__name__


def wait_each(refs: Sequence[Any], timeout_s: Optional[float], names: Sequence[str]) -> List[Any]:
    """Each ref's value, or the exception its call raised, in order (nothing raised here). With
    `timeout_s`, calls still pending once none finished for that long get a StageTimeout naming
    their actor."""
    import ray

    results: Dict[int, Any] = {}
    index = {_key(ref): i for i, ref in enumerate(refs)}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1, timeout=timeout_s or None)
        if not done:
            for ref in pending:
                i = index[_key(ref)]
                results[i] = StageTimeout(f"{names[i]} made no progress for cluster.stage_timeout_s = {timeout_s} s")
            break
        for ref in done:
            i = index[_key(ref)]
            try:
                results[i] = ray.get(ref)
            except Exception as err:  # noqa: BLE001 - returned to the caller, which decides
                results[i] = err
    return [results[i] for i in range(len(refs))]


def _key(ref):
    return ref.hex() if hasattr(ref, "hex") else id(ref)  # an ObjectRef or a test's stand-in


class FaultLog:
    """The recoveries of one run: counted against cluster.max_restarts, printed one line each,
    kept for summary.json (`events`) and logged as fault/* metrics."""

    def __init__(self, max_restarts: int = 0):
        self.max_restarts = int(max_restarts)
        self.restarts = 0  # trainer-group (whole-actor-set) restarts from a checkpoint
        self.replaced_workers = 0  # rollout/reward workers replaced inside a step
        self.redone_steps = 0  # steps trained again after a restart
        self.events: List[Dict[str, Any]] = []

    @property
    def used(self) -> int:
        return self.restarts + self.replaced_workers

    def allow(self, err: BaseException, actor: str) -> bool:
        """Whether `err` is a lost actor this run may recover from (raises RecoveryExhausted when
        it is one but the budget is spent; False for any other error, which the caller re-raises)."""
        if not is_lost_actor(err):
            return False
        if self.used >= self.max_restarts:
            if self.max_restarts == 0:
                return False  # fail fast, with the original error
            raise RecoveryExhausted(f"{actor} lost after {self.used} recoveries (cluster.max_restarts = "
                                    f"{self.max_restarts}): {type(err).__name__}: {err}") from err
        return True

    def record(self, step: int, actor: str, node: str, action: str, cause: BaseException = None) -> None:
        """One event: into `events`, and one console line."""
        why = f" ({type(cause).__name__}: {str(cause).splitlines()[0][:160] if str(cause) else ''})" if cause else ""
        self.events.append({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "step": step, "actor": actor,
                            "node": node, "action": action, **({"cause": type(cause).__name__} if cause else {})})
        progress(f"fault at step {step}: {actor} on node {node} lost{why}; {action}")

    def metrics(self) -> Dict[str, int]:
        """fault/* (cumulative); empty when recoveries are off and none happened (no new columns)."""
        if not self.max_restarts and not self.events:
            return {}
        return {"fault/restarts": self.restarts, "fault/replaced_workers": self.replaced_workers,
                "fault/redone_steps": self.redone_steps}


def injections(spec: str) -> Dict[int, List[tuple]]:
    """Parse INJECT_ENV: {step: [(action, role, index)]}; "" -> {}."""
    out: Dict[int, List[tuple]] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        try:
            what, at = item.split("@")
            action, role, index = what.split(":")
            assert action in ("kill", "freeze") and role in ("rollout", "reward", "trainer")
            out.setdefault(int(at), []).append((action, role, int(index)))
        except (ValueError, AssertionError):
            raise ValueError(f"{INJECT_ENV} item {item!r} must look like kill|freeze:rollout|reward|trainer:<index>@<step>") from None
    return out


def _sleep_forever(_actor_self):
    time.sleep(3600)


def _wait_dead(actor, timeout_s: float = 30.0) -> None:
    """Return once calls to a killed actor fail (ray.kill takes effect asynchronously)."""
    import ray

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            ray.get(actor.__ray_call__.remote(_noop), timeout=5)
        except ray.exceptions.RayActorError:
            return
        except Exception:  # noqa: BLE001 - a timeout: look again
            pass
        time.sleep(0.1)


def _noop(_actor_self):
    return None


def inject(actors, plan: Dict[int, List[tuple]], step: int) -> None:
    """Do the test hook's faults due at `step` to ActorPool `actors` (each once)."""
    import ray

    for action, role, index in plan.pop(step, []):
        group = actors.trainer.actors if role == "trainer" else getattr(actors, role)
        actor = group[index]
        progress(f"test hook: {action} {role} {index} at step {step}")
        if action == "kill":
            ray.kill(actor, no_restart=True)
            _wait_dead(actor)
        else:  # queued before the step's calls: they wait behind it, as behind a frozen engine
            actor.__ray_call__.remote(_sleep_forever)
