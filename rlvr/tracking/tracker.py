"""One `log(metrics)` call feeds the run folder, wandb (optional) and the console line."""
from __future__ import annotations

import os
import sys
from typing import Any, Dict, Mapping, Optional

from rlvr.tracking.run_folder import RunFolder

# The console line: (metric, label, format); missing metrics are left out.
_CONSOLE = [
    ("gt/reward_mean", "gt", "{:.3f}"), ("proxy/reward_mean", "proxy", "{:.3f}"),
    ("eval/gt_accuracy", "eval", "{:.3f}"), ("errors/harmful", "harm", "{:.2f}"),
    ("loss", "loss", "{:+.4f}"), ("policy/entropy", "ent", "{:.3f}"),
    ("policy/logprob_mismatch_mean", "lp gap", "{:.1e}"),  # engine vs trainer numerics (bf16, vLLM)
    ("perf/step_s", "s/step", "{:.2f}"), ("perf/weight_sync_s", "sync", "{:.3f}"),
]


class Tracker:
    def __init__(self, folder: RunFolder, total_steps: int, console: bool = True,
                 wandb_project: Optional[str] = None, run_name: str = "", config: Optional[Dict] = None):
        self.folder, self.total_steps, self.console = folder, total_steps, console
        self.wandb = None
        if wandb_project:
            import wandb

            # WANDB_MODE=offline works with no network; the files land in the run folder.
            self.wandb = wandb.init(project=wandb_project, name=run_name, config=config,
                                    dir=str(folder.path), mode=os.environ.get("WANDB_MODE"))

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
