"""Kill an embedded Ray cluster's processes when the driver that started it dies.

Ray 2.60 stops gcs_server and raylet when their driver is killed (kill -9), but the agents
the raylet started (ray::DashboardAgent, ray::RuntimeEnvAgent) stay behind as orphans. The
driver starts this module as a watcher in its own session, with a pipe on its stdin: it
records the cluster's process tree every second while the driver lives, and when the pipe
closes (the driver exited, however it died) it terminates every recorded process still
running (SIGTERM, then SIGKILL after a grace period).

    python -m rlvr.controller.reaper ROOT_PID [ROOT_PID ...]
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Dict, Iterable, List, Optional, Tuple

POLL_S = 1.0  # how often the process tree is recorded
GRACE_S = 3.0  # between SIGTERM and SIGKILL

_watcher: Optional[subprocess.Popen] = None


def record(roots: Iterable[int], seen: Dict[int, float]) -> None:
    """Add the roots and all their descendants, as {pid: create_time}, to `seen`."""
    import psutil

    for pid in roots:
        try:
            root = psutil.Process(pid)
            for p in [root, *root.children(recursive=True)]:
                seen.setdefault(p.pid, p.create_time())
        except psutil.Error:
            continue


def terminate(seen: Dict[int, float], grace_s: float = GRACE_S) -> List[int]:
    """SIGTERM then SIGKILL every recorded process still running (same pid AND start time, so
    a reused pid is never hit). Returns the pids that were signalled."""
    import psutil

    alive: List["psutil.Process"] = []
    for pid, created in seen.items():
        try:
            p = psutil.Process(pid)
            if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.Error:
            continue
    for p in alive:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, left = psutil.wait_procs(alive, timeout=grace_s)
    for p in left:
        try:
            p.kill()
        except psutil.Error:
            pass
    return [p.pid for p in alive]


def watch(roots: List[int]) -> None:
    """Record the tree until stdin closes, then terminate what is left of it."""
    seen: Dict[int, float] = {}
    closed = threading.Event()

    def wait_for_eof() -> None:
        try:
            while sys.stdin.buffer.read(1024):
                pass
        finally:
            closed.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    while not closed.wait(POLL_S):
        record(roots, seen)
    terminate(seen)


def start_watcher(roots: List[int]) -> subprocess.Popen:
    """Start the watcher for the processes `roots` (and their descendants) of this driver.

    It runs in a session of its own (a signal to the driver's process group does not reach
    it); the write end of its stdin pipe lives only in this process, so it closes when this
    process ends, however it ends.
    """
    global _watcher
    stop_watcher()
    _watcher = subprocess.Popen([sys.executable, "-m", "rlvr.controller.reaper", *map(str, roots)],
                                stdin=subprocess.PIPE, start_new_session=True, close_fds=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
    return _watcher


def stop_watcher(timeout_s: float = 10.0) -> None:
    """After ray.shutdown(): close the watcher's pipe; it ends what the shutdown left behind."""
    global _watcher
    if _watcher is None:
        return
    watcher, _watcher = _watcher, None
    try:
        watcher.stdin.close()
        watcher.wait(timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        watcher.kill()


def new_children(before: Iterable[int]) -> List[int]:
    """Pids of this process's children that are not in `before`."""
    import psutil

    old = set(before)
    return [p.pid for p in psutil.Process().children() if p.pid not in old]


def children_now() -> Tuple[int, ...]:
    import psutil

    return tuple(p.pid for p in psutil.Process().children())


if __name__ == "__main__":
    watch([int(pid) for pid in sys.argv[1:]])
