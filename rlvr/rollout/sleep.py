"""Whether a rollout engine is asleep (rollout.sleep_while_training), and what it may do then.

A colocated engine sleeps while the trainer steps on the same GPU and wakes before the weight
sync; asleep it holds no weights on the GPU and no KV cache, so anything that reads them
(generate, score, taking new weights) is refused instead of reading freed memory.
"""
from __future__ import annotations


class EngineAsleep(RuntimeError):
    """Work asked of an engine that is asleep."""


class SleepState:
    """awake -> sleep() -> asleep -> wake_up() -> awake; `require_awake` guards every other call."""

    def __init__(self, can_sleep: bool):
        self.can_sleep = bool(can_sleep)
        self.asleep = False

    def sleep(self) -> bool:
        """Mark asleep; False when it already was (nothing to do)."""
        if not self.can_sleep:
            raise RuntimeError("rollout engine: built without sleep mode (rollout.sleep_while_training = false, "
                               "or an engine that has none)")
        if self.asleep:
            return False
        self.asleep = True
        return True

    def wake_up(self) -> bool:
        """Mark awake; False when it already was."""
        if not self.asleep:
            return False
        self.asleep = False
        return True

    def require_awake(self, what: str) -> None:
        if self.asleep:
            raise EngineAsleep(f"rollout engine: {what} while asleep (its weights and KV cache are off the GPU); "
                               "wake it first (wake_up before the weight sync)")
