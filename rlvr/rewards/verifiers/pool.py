"""VerifierPool: run a verifier over many samples with a per-sample timeout and memory cap.

A pathological output (an exponent tower, a 10^6-digit number) can keep math-verify busy for
minutes while its memory grows. The pool runs the verifier in single-threaded worker
processes (fresh interpreters, safe when the caller is a threaded Ray actor),
kills a worker whose current sample exceeds `timeout_s`, scores that sample 0 with reason
"timeout", starts a replacement and goes on with the rest.

Verifiers flagged in_process in the registry (arithmetic, arithmetic_graded, constraints:
linear-time string work) run in the caller's process unless `in_process=False`.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import Connection, wait
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from rlvr.rewards.errors import RewardConfigError
from rlvr.rewards.types import GroundTruth

Item = Tuple[str, str, Optional[Mapping[str, Any]]]  # (response, gold, meta)

MAX_CHUNK = 64  # samples sent to a worker per message (results still come back one by one)


def _run_one(verify, index: int, response: str, gold: str, meta) -> tuple:
    """("result", index, GroundTruth) or ("error", index, message) for a config error."""
    try:
        return ("result", index, verify(response, gold, meta or {}))
    except RewardConfigError as err:
        return ("error", index, str(err))
    except MemoryError:
        return ("result", index, GroundTruth(0.0, "timeout", None, {"limit": "memory"}))
    except Exception as err:  # a verifier bug on one odd sample must not stop training
        return ("result", index, GroundTruth(0.0, "parse_error", None,
                                             {"error": f"{type(err).__name__}: {err}"[:200]}))


class _Worker:
    """One verifier process, its pipes, and the samples sent to it but not yet answered.

    The process is a fresh interpreter (fork+exec through subprocess, like multiprocessing's
    "spawn" but without re-importing the caller's __main__), so a threaded caller such as a
    Ray actor is safe and a script without a main guard still works.
    """

    def __init__(self, verifier: str, memory_limit_mb: int):
        child_in, to_child = os.pipe()
        from_child, child_out = os.pipe()
        env = dict(os.environ, OMP_NUM_THREADS="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rlvr.rewards.verifiers.worker_process", str(child_in),
             str(child_out), verifier, str(int(memory_limit_mb))],
            pass_fds=(child_in, child_out), stdin=subprocess.DEVNULL, env=env)
        os.close(child_in)
        os.close(child_out)
        self.to_child = Connection(to_child, readable=False)
        self.conn = Connection(from_child, writable=False)  # EOF here = the process is gone
        self.ready = False
        self.inflight: deque = deque()
        self.clock = time.monotonic()  # when the current sample (or start-up) began

    def send(self, chunk: List[tuple]) -> None:
        self.inflight.extend(index for index, *_ in chunk)
        self.clock = time.monotonic()
        self.to_child.send(chunk)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, kill: bool) -> None:
        if not kill and self.alive() and self.ready:  # a starting worker is not listening yet
            try:
                self.to_child.send(None)
                self.process.wait(timeout=2.0)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        if self.alive():
            self.process.kill()
        self.process.wait()
        self.to_child.close()
        self.conn.close()


def _meta_key(meta) -> str:
    return json.dumps(meta or {}, sort_keys=True, default=str)


class VerifierPool:
    """Scores (response, gold, meta) items with the named verifier under a per-sample timeout.

    verify_many(items) -> list[GroundTruth], same order. A sample that runs past `timeout_s`
    (or past the memory cap, or that crashes its worker) scores 0.0 with reason "timeout"
    and details {"limit": "time" | "memory" | "crash"}. `memory_limit_mb` caps how far a
    worker's address space (RLIMIT_AS) may grow beyond its size after start-up.
    `in_process`: None = the registry's flag for this verifier. Use as a context manager or
    call close(). Identical items in one call are verified once.
    """

    def __init__(self, verifier: str, num_procs: int = 1, timeout_s: float = 5.0,
                 memory_limit_mb: int = 1024, in_process: Optional[bool] = None,
                 start_timeout_s: float = 120.0):
        from rlvr.rewards.verifiers import get_verifier, runs_in_process

        if num_procs < 1:
            raise RewardConfigError(f"VerifierPool: num_procs = {num_procs} must be at least 1")
        if not timeout_s > 0:
            raise RewardConfigError(f"reward.timeout_s = {timeout_s} must be positive")
        self.verifier = verifier
        default = runs_in_process(verifier)  # fails early on an unknown name
        self.in_process = default if in_process is None else bool(in_process)
        # the caller imports the verifier only when it runs it (math-verify takes ~1 s)
        self._verify = get_verifier(verifier) if self.in_process else None
        self.num_procs = int(num_procs)
        self.timeout_s = float(timeout_s)
        self.memory_limit_mb = int(memory_limit_mb)
        self.start_timeout_s = float(start_timeout_s)
        self.stats: Dict[str, int] = {"samples": 0, "timeouts": 0, "restarts": 0}
        self._lock = threading.Lock()
        self._workers: List[_Worker] = []
        self._closed = False
        if not self.in_process:
            self._workers = [self._start() for _ in range(self.num_procs)]

    def _start(self) -> _Worker:
        from rlvr.rewards.verifiers import verifier_target

        return _Worker(verifier_target(self.verifier), self.memory_limit_mb)

    # -- public -----------------------------------------------------------------------------
    def verify_many(self, items: Sequence[Item]) -> List[GroundTruth]:
        """Ground truth for each (response, gold, meta), in order."""
        if self._closed:
            raise RuntimeError("VerifierPool.verify_many called after close()")
        keys: Dict[tuple, int] = {}
        unique: List[Item] = []
        slots = []
        for response, gold, meta in items:
            key = (response, gold, _meta_key(meta))
            if key not in keys:
                keys[key] = len(unique)
                unique.append((response, gold, meta))
            slots.append(keys[key])
        with self._lock:
            results = self._run_in_process(unique) if self.in_process else self._run_in_workers(unique)
            self.stats["samples"] += len(items)
            self.stats["timeouts"] += sum(gt.reason == "timeout" for gt in results)
        return [results[slot] for slot in slots]

    def close(self) -> None:
        """Stop the worker processes (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for worker in self._workers:
            worker.stop(kill=False)
        self._workers = []

    def __enter__(self) -> "VerifierPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- internals --------------------------------------------------------------------------
    def _run_in_process(self, items: Sequence[Item]) -> List[GroundTruth]:
        out = []
        for index, (response, gold, meta) in enumerate(items):
            kind, _, value = _run_one(self._verify, index, response, gold, meta)
            if kind == "error":
                raise RewardConfigError(value)
            out.append(value)
        return out

    def _replace(self, slot: int, kill: bool) -> None:
        self._workers[slot].stop(kill=kill)
        self._workers[slot] = self._start()
        self.stats["restarts"] += 1

    def _deadline(self, worker: _Worker) -> float:
        return worker.clock + (self.timeout_s if worker.ready else self.start_timeout_s)

    def _run_in_workers(self, items: Sequence[Item]) -> List[GroundTruth]:
        results: List[Optional[GroundTruth]] = [None] * len(items)
        pending = deque(range(len(items)))
        errors: List[str] = []
        remaining = len(items)
        while remaining:
            for slot, worker in enumerate(list(self._workers)):
                if worker.ready and not worker.inflight and pending:
                    size = min(MAX_CHUNK, math.ceil(len(pending) / self.num_procs))
                    chunk = [(i, *items[i]) for i in (pending.popleft() for _ in range(size))]
                    try:
                        worker.send(chunk)
                    except OSError:  # it died while idle (e.g. killed): no sample is to blame
                        pending.extendleft(reversed([i for i, *_ in chunk]))
                        self._replace(slot, kill=True)
            busy = [w for w in self._workers if w.inflight or not w.ready]
            timeout = min(self._deadline(w) for w in busy) - time.monotonic()
            wait([w.conn for w in busy], timeout=max(0.0, timeout))
            for slot in range(len(self._workers)):
                worker = self._workers[slot]
                was_alive = worker.alive()  # checked first: a dead worker's pipe is complete
                remaining -= self._drain(worker, results, errors)
                if not was_alive:
                    remaining -= self._lost(slot, "crash", results, pending)
                elif (worker.inflight or not worker.ready) and time.monotonic() > self._deadline(worker):
                    remaining -= self._lost(slot, "time", results, pending)
        if errors:
            raise RewardConfigError(errors[0])
        return results  # type: ignore[return-value]

    def _drain(self, worker: _Worker, results, errors) -> int:
        """Read every waiting message; the number of new results."""
        count = 0
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                worker.clock = time.monotonic()
                if message[0] == "ready":
                    worker.ready = True
                    continue
                kind, index, value = message
                if worker.inflight and worker.inflight[0] == index:
                    worker.inflight.popleft()
                if kind == "error":
                    errors.append(value)
                    value = GroundTruth(0.0, "parse_error", None, {"error": value})
                if results[index] is None:
                    count += 1
                results[index] = value
        except (EOFError, OSError):
            pass  # the worker died; the caller sees it through is_alive
        return count

    def _lost(self, slot: int, limit: str, results, pending) -> int:
        """A worker died or ran out of time: its current sample times out, the rest go back.

        Returns the number of samples resolved (0 or 1)."""
        worker = self._workers[slot]
        if not worker.ready:
            worker.stop(kill=True)
            self.close()
            why = (f"exited with code {worker.process.returncode}" if limit == "crash"
                   else f"did not start within {self.start_timeout_s:.0f} s")
            raise RuntimeError(
                f"verifier {self.verifier!r}: a worker process {why}; check that "
                f"`python -c 'from rlvr.rewards.verifiers import get_verifier; "
                f"get_verifier(\"{self.verifier}\")(\"1\", \"1\", {{}})'` runs")
        resolved = 0
        if worker.inflight:
            index = worker.inflight.popleft()
            details: Dict[str, Any] = {"limit": limit}
            if limit == "time":
                details["timeout_s"] = self.timeout_s
            else:
                details["exitcode"] = worker.process.returncode
            results[index] = GroundTruth(0.0, "timeout", None, details)
            resolved = 1
            pending.extendleft(reversed(worker.inflight))
            worker.inflight.clear()
        self._replace(slot, kill=True)
        return resolved
