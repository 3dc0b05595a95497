"""The run folder contract (DESIGN.md): config.yaml, metrics.jsonl, summary.json, samples/,
checkpoints/. Metric lines are flushed as they are written so nothing is lost if a run dies;
sample files are written by one background thread, off the training loop's critical path, and
are all on disk before a checkpoint folder is handed out and when the folder is closed."""
from __future__ import annotations

import json
import math
import queue
import re
import shutil
import struct
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

_CHECKPOINT = re.compile(r"^step_(\d+)$")
_SAMPLES = re.compile(r"^step_(\d+)\.jsonl$")
_PLAIN = (str, int, bool, type(None))
_YIELD_EVERY, _YIELD_S = 16, 1e-4  # background samples writer: records encoded between GIL releases


def checkpoints_to_delete(checkpoints: Sequence[Tuple[int, bool]], keep_last: int) -> List[int]:
    """Steps whose checkpoints go so that only the newest `keep_last` complete ones stay.

    checkpoints: (step, complete) pairs, any order. keep_last = 0 keeps everything. Incomplete
    checkpoints older than the newest complete one (a save that died) go too; newer incomplete
    ones (a save in progress) always stay.
    """
    if keep_last <= 0:
        return []
    complete = sorted(step for step, done in checkpoints if done)
    if not complete:
        return []
    keep = set(complete[-keep_last:])
    newest = complete[-1]
    return sorted(step for step, done in checkpoints
                  if step not in keep and (done or step < newest))


def unwritable(path: Path) -> Optional[str]:
    """Why `path` (a folder or file to create or overwrite) cannot be written, or None.

    Looks at `path` when it exists, else at its nearest existing ancestor, which must be a
    writable folder. (Root passes the permission check; a read-only mount fails later.)
    """
    import os

    path = Path(path).absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing != path and not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | (os.X_OK if existing.is_dir() else 0)):
        return f"{existing} is not writable by this user"
    return None


def safetensors_problem(path: Path) -> Optional[str]:
    """Why a .safetensors file is unusable (missing, truncated, bad header), or None when whole.

    Reads only the header: an 8-byte little-endian length, a JSON table of tensors whose
    data_offsets must all end within the file.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8)) if size >= 8 else (None,)
            if length is None or 8 + length > size:
                return f"truncated ({size} bytes, no complete header)"
            header = json.loads(f.read(length))
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError, struct.error) as err:
        return f"unreadable header ({err})"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if 8 + length + end > size:
        return f"truncated ({size} of {8 + length + end} bytes)"
    return None


def checkpoint_problem(path: Path, marker: str, required_keys: Sequence[str]) -> Optional[str]:
    """'FILE: why' for the first file a resume needs that is missing or broken, or None.

    Checks, cheaply (no weights loaded): `marker` (the loop state) parses to a JSON object with
    `required_keys` and the folder's step; the HF weights (model.safetensors, or every shard
    of model.safetensors.index.json) are whole; trainer/deepspeed/ holds DeepSpeed's .pt files,
    each a complete zip archive (torch.save's format; a truncated one has no central directory).
    """
    state = path / marker
    try:
        text = state.read_text()
    except OSError as err:
        return f"{state}: unreadable ({err.strerror or err})"
    if not text.strip():
        return f"{state}: empty (the save died while writing it)"
    try:
        loaded = json.loads(text)
    except ValueError as err:
        return f"{state}: not valid JSON ({err})"
    if not isinstance(loaded, dict) or any(k not in loaded for k in required_keys):
        missing = [k for k in required_keys if not isinstance(loaded, dict) or k not in loaded]
        return f"{state}: lacks {', '.join(missing)}"
    match = _CHECKPOINT.match(path.name)
    if match and loaded["step"] != int(match.group(1)):
        return f"{state}: step {loaded['step']} in a folder named {path.name}"
    index = path / "model.safetensors.index.json"
    try:
        shards = (sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file()
                  else ["model.safetensors"])
    except (OSError, ValueError, KeyError, AttributeError) as err:
        return f"{index}: unreadable ({err})"
    for name in shards:
        problem = safetensors_problem(path / name)
        if problem:
            return f"{path / name}: {problem}"
    parts = sorted((path / "trainer" / "deepspeed").glob("*.pt"))
    if not parts:
        return f"{path / 'trainer' / 'deepspeed'}: no trainer state files (*.pt)"
    for part in parts:
        try:
            with zipfile.ZipFile(part) as archive:
                archive.infolist()
        except (OSError, zipfile.BadZipFile) as err:
            return f"{part}: truncated or corrupt ({err})"
    return None


def _jsonable(value: Any) -> Any:
    if type(value) in _PLAIN:  # most sample fields: skip the checks below (same result)
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


def _write_jsonl(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    """One JSON object per line (non-finite floats as null), written in one go. An OSError
    names the file: it may surface steps later, from another call."""
    lines = []
    for start in range(0, len(records), _YIELD_EVERY):
        lines += [json.dumps({k: _jsonable(v) for k, v in r.items()}) + "\n"
                  for r in records[start:start + _YIELD_EVERY]]
        time.sleep(_YIELD_S)  # off the GIL: a waiting loop thread runs now, not after the 5 ms switch interval
    try:
        with open(path, "w") as f:
            f.write("".join(lines))
    except OSError as err:  # same errno (a full disk stays recognisable), the file named
        raise OSError(err.errno, f"{err.strerror or err}: writing {path}") from err


_IDLE, _STOP = object(), object()  # BackgroundWriter's thread: no job came; close() was called


class BackgroundWriter:
    """Runs write jobs on one thread, in the order they were submitted.

    A job that fails keeps its exception, which the next `submit`, `flush` or `close` raises
    (once), so a full disk is reported rather than lost. The thread exits after IDLE_S without
    work and starts again on the next job; it is not a daemon, so a process that ends without
    `close` still finishes the jobs it was given.
    """

    IDLE_S = 1.0

    def __init__(self, name: str = "rlvr-writer"):
        self.name = name
        self._jobs: "queue.Queue" = queue.Queue()
        self._lock = threading.Lock()  # guards _thread and _error
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None

    def submit(self, job, *args) -> None:
        """Queue `job(*args)`; raises first the error of an earlier job, if one failed."""
        self._raise_error()
        with self._lock:
            self._jobs.put((job, args))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=False)
                self._thread.start()

    def flush(self) -> None:
        """Wait until every submitted job has run; raise the first error among them."""
        self._jobs.join()
        self._raise_error()

    def close(self) -> None:
        """Flush, then let the thread go now rather than after IDLE_S (a process exits at once)."""
        try:
            self.flush()
        finally:
            with self._lock:
                thread = self._thread
                if thread is not None:
                    self._jobs.put(_STOP)
            if thread is not None:
                thread.join()

    def _raise_error(self) -> None:
        with self._lock:
            error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        while True:
            try:
                item = self._jobs.get(timeout=self.IDLE_S)
            except queue.Empty:
                item = _IDLE
            if item is _IDLE or item is _STOP:
                with self._lock:  # submit() puts under this lock: nothing can slip in unseen
                    if item is _STOP:
                        self._jobs.task_done()
                    if self._jobs.empty():
                        self._thread = None
                        return
                continue
            job, args = item
            try:
                job(*args)
            except Exception as err:  # noqa: BLE001 - kept and raised in the caller's thread
                with self._lock:
                    if self._error is None:
                        self._error = err
            finally:
                self._jobs.task_done()


class RunFolder:
    """Append-only writer for one run's folder."""

    def __init__(self, path: Path):
        """Creates the folder; an OSError (unwritable or full parent) propagates to the caller."""
        self.path = Path(path)
        (self.path / "samples").mkdir(parents=True, exist_ok=True)
        (self.path / "checkpoints").mkdir(exist_ok=True)
        self._metrics = open(self.path / "metrics.jsonl", "a", buffering=1)
        self._samples = BackgroundWriter("rlvr-samples")

    def is_used(self) -> bool:
        """True when an earlier run already logged metrics here."""
        path = self.path / "metrics.jsonl"
        return path.is_file() and path.stat().st_size > 0

    def write_config(self, text: str) -> None:
        (self.path / "config.yaml").write_text(text)

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        self._metrics.write(json.dumps({k: _jsonable(v) for k, v in metrics.items()}) + "\n")

    def truncate_metrics(self, last_step: int) -> None:
        """Drop metric rows after `last_step` (a resumed run rewrites them)."""
        self._metrics.close()
        path = self.path / "metrics.jsonl"
        rows = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= last_step:
                    rows.append(line + "\n")
            except (ValueError, KeyError, TypeError):  # a line half-written when the run died
                continue
        path.write_text("".join(rows))
        self._metrics = open(path, "a", buffering=1)

    def truncate_samples(self, last_step: int) -> List[Path]:
        """Delete samples/step_*.jsonl files of steps after `last_step` (a resumed run rewrites
        them; left behind, `rlvr score` on the folder would count them). Returns what went."""
        self.flush_samples()  # a pending write must not recreate a file after it is deleted
        doomed = [p for p in sorted((self.path / "samples").iterdir())
                  if (m := _SAMPLES.match(p.name)) and int(m.group(1)) > last_step]
        for path in doomed:
            path.unlink()
        return doomed

    def write_samples(self, step: int, records: Iterable[Mapping[str, Any]]) -> None:
        """Queue samples/step_{step:06d}.jsonl (one JSON line per record) for the background
        writer and return at once; the records must not be changed afterwards. Raises the
        error of an earlier samples write that failed (e.g. a full disk)."""
        self._samples.submit(_write_jsonl, self.path / "samples" / f"step_{step:06d}.jsonl", list(records))

    def flush_samples(self) -> None:
        """Block until every queued samples file is written; raise the first write error."""
        self._samples.flush()

    def write_summary(self, summary: Dict[str, Any]) -> bool:
        """Write summary.json atomically (a .tmp file renamed over it). When that fails (disk
        full), the .tmp goes and a compact summary (no traceback) is written over the old file
        in place; when that fails too, the summary is printed to stderr. Never raises; returns
        whether summary.json now holds the (possibly compact) summary."""
        final, tmp = self.path / "summary.json", self.path / "summary.json.tmp"
        clean = {k: _jsonable(v) for k, v in summary.items()}
        try:
            tmp.write_text(json.dumps(clean, indent=2) + "\n")
            tmp.replace(final)
            return True
        except OSError as err:
            first = err
            tmp.unlink(missing_ok=True)
        compact = json.dumps({k: v for k, v in clean.items() if k != "traceback"}, separators=(",", ":"))
        try:  # overwrite the old summary's own blocks: needs no new space when it is not longer
            with open(final, "r+" if final.exists() else "w") as f:
                f.write(compact + "\n")
                f.truncate()
            print(f"[rlvr] summary.json written without its traceback: {first}", file=sys.stderr, flush=True)
            return True
        except OSError as err:
            print(f"[rlvr] could not write {final} ({first}; then {err}); the summary was: {compact}",
                  file=sys.stderr, flush=True)
            return False

    def checkpoint_dir(self, step: int) -> Path:
        """The folder of step's checkpoint. Flushes queued samples first: a checkpoint of step
        s is only written once the samples of steps <= s are on disk (a resume keeps them)."""
        self.flush_samples()
        return self.path / "checkpoints" / f"step_{step:06d}"

    def prune_checkpoints(self, keep_last: int, marker: str) -> List[Path]:
        """Delete older checkpoints (checkpoints_to_delete); a checkpoint is complete when it
        holds `marker`, which is removed first so a half-deleted folder reads as incomplete."""
        found = {int(m.group(1)): p for p in (self.path / "checkpoints").iterdir()
                 if p.is_dir() and (m := _CHECKPOINT.match(p.name))}
        doomed = [found[s] for s in checkpoints_to_delete(
            [(step, (p / marker).is_file()) for step, p in found.items()], keep_last)]
        for path in doomed:
            (path / marker).unlink(missing_ok=True)
            shutil.rmtree(path, ignore_errors=True)
        return doomed

    def close(self) -> None:
        """Finish queued samples files and close metrics.jsonl; raises a samples write error
        (after closing)."""
        try:
            self._samples.close()
        finally:
            self._metrics.close()


def read_metrics(path: Path) -> list:
    """metrics.jsonl as a list of dicts (for tools and tests)."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
