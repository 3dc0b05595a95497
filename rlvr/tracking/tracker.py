"""One `log(metrics)` call feeds the run folder, wandb (optional) and the console line."""
from __future__ import annotations

import os
import sys
import uuid
from typing import Any, Dict, Mapping, Optional, Sequence

from rlvr.tracking.run_folder import RunFolder

# The console line: (metric, label, format); missing metrics are left out.
# harm~ is the share of samples the online heuristic labels harmful (rlvr/rewards/categorize.py), not a measurement.
_CONSOLE = [
    ("gt/reward_mean", "gt", "{:.3f}"), ("proxy/reward_mean", "proxy", "{:.3f}"),
    ("eval/gt_accuracy", "eval", "{:.3f}"), ("errors/harmful", "harm~", "{:.2f}"),
    ("loss", "loss", "{:+.4f}"), ("policy/entropy", "ent", "{:.3f}"),
    ("policy/logprob_mismatch_mean", "lp gap", "{:.1e}"),  # engine vs trainer numerics (bf16, vLLM)
    ("perf/step_s", "s/step", "{:.2f}"), ("perf/weight_sync_s", "sync", "{:.3f}"),
]


WANDB_ID_FILE = "wandb_run_id"  # in the run folder: a resumed run continues the same wandb run


def wandb_run_id(folder: RunFolder) -> str:
    """The run folder's wandb run id, made on first use and kept in WANDB_ID_FILE."""
    path = folder.path / WANDB_ID_FILE
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    run_id = uuid.uuid4().hex[:16]
    path.write_text(run_id + "\n")
    return run_id


class Tracker:
    def __init__(self, folder: RunFolder, total_steps: int, console: bool = True,
                 wandb_project: Optional[str] = None, run_name: str = "", config: Optional[Dict] = None,
                 wandb_group: Optional[str] = None, wandb_tags: Sequence[str] = ()):
        self.folder, self.total_steps, self.console = folder, total_steps, console
        self.wandb = None
        if wandb_project:
            import wandb

            # WANDB_MODE=offline works with no network; the files land in the run folder.
            self.wandb = wandb.init(project=wandb_project, name=run_name, config=config,
                                    dir=str(folder.path), mode=os.environ.get("WANDB_MODE"),
                                    group=wandb_group, tags=list(wandb_tags) or None,
                                    id=wandb_run_id(folder), resume="allow")

    def log(self, metrics: Mapping[str, Any]) -> None:
        self.folder.log_metrics(metrics)
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in metrics.items() if k != "step"}, step=int(metrics["step"]))
        if self.console:
            print(console_line(metrics, self.total_steps), flush=True)

    def close(self, summary: Mapping[str, Any]) -> None:
        if self.wandb is not None:
            for k, v in summary.items():
                if isinstance(v, (int, float, str)):
                    self.wandb.summary[k] = v
            self.wandb.finish()
        self.folder.close()


def console_line(metrics: Mapping[str, Any], total_steps: int) -> str:
    parts = [f"step {int(metrics['step']):>4d}/{total_steps}"]
    for key, label, fmt in _CONSOLE:
        value = metrics.get(key)
        if value is not None:
            parts.append(f"{label} {fmt.format(value)}")
    return " | ".join(parts)


def progress(message: str) -> None:
    print(f"[rlvr] {message}", file=sys.stderr, flush=True)
