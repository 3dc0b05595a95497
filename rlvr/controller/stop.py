"""A graceful stop: the first SIGINT (Ctrl-C) or SIGTERM asks the run to stop after the step
in progress (which then writes a checkpoint and summary.json with status `stopped`); a second
one aborts at once. Before the steps begin (start-up, warm-up) there is nothing to keep, so the
first signal aborts.

Ray's own processes block SIGINT, so Ctrl-C in a terminal reaches only the driver: the actors
finish the step.
"""
from __future__ import annotations

import signal
import threading
from typing import Optional

from rlvr.tracking.tracker import progress

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Context manager installing the handlers (main thread only; elsewhere it does nothing)."""

    def __init__(self):
        self.requested: Optional[str] = None  # the signal's name once one arrived while armed
        self._armed = False
        self._saved = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._saved = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._saved.items():
            signal.signal(s, handler)
        self._saved = {}

    def arm(self) -> None:
        """From now on the first signal only asks for a stop after the current step."""
        self._armed = True

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if not self._armed or self.requested is not None:
            raise KeyboardInterrupt(name)
        self.requested = name
        progress(f"{name}: stopping after the current step with a checkpoint (again to abort now)")
