"""The run folder contract (DESIGN.md): config.yaml, metrics.jsonl, summary.json, samples/,
checkpoints/. Lines are flushed as they are written so nothing is lost if a run dies."""
from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Tuple

_CHECKPOINT = re.compile(r"^step_(\d+)$")


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


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


class RunFolder:
    """Append-only writer for one run's folder."""

    def __init__(self, path: Path):
        self.path = Path(path)
        (self.path / "samples").mkdir(parents=True, exist_ok=True)
        (self.path / "checkpoints").mkdir(exist_ok=True)
        self._metrics = open(self.path / "metrics.jsonl", "a", buffering=1)

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

    def write_samples(self, step: int, records: Iterable[Mapping[str, Any]]) -> None:
        with open(self.path / "samples" / f"step_{step:06d}.jsonl", "w") as f:
            for r in records:
                f.write(json.dumps({k: _jsonable(v) for k, v in r.items()}) + "\n")

    def write_summary(self, summary: Dict[str, Any]) -> None:
        tmp = self.path / "summary.json.tmp"
        tmp.write_text(json.dumps({k: _jsonable(v) for k, v in summary.items()}, indent=2) + "\n")
        tmp.replace(self.path / "summary.json")

    def checkpoint_dir(self, step: int) -> Path:
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
        self._metrics.close()


def read_metrics(path: Path) -> list:
    """metrics.jsonl as a list of dicts (for tools and tests)."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
