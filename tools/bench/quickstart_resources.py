"""Measure the quickstart's wall-clock time and peak memory (targets and results: docs/performance.md).

    .venv/bin/python tools/bench/quickstart_resources.py [key=value ...]

Runs `rlvr train recipes/quickstart.yaml` in a fresh output folder (so the tiny model is
built and warmed up, not taken from a cache) and samples the proportional set size (PSS)
of the whole process tree (driver, Ray's own processes, every actor) every 0.5 s.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def children(pid: int) -> set:
    """pid and all its descendants, from /proc."""
    parent_of = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent_of[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    tree, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        for child, parent in parent_of.items():
            if parent == p and child not in tree:
                tree.add(child)
                frontier.append(child)
    return tree


def pss_bytes(pids) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def main() -> int:
    out = tempfile.mkdtemp(prefix="rlvr-quickstart-")
    cmd = [str(ROOT / ".venv" / "bin" / "rlvr"), "train", str(ROOT / "recipes" / "quickstart.yaml"),
           f"output_dir={out}", "run_name=bench", *sys.argv[1:]]
    start = time.time()
    # run from the fresh folder: from the checkout, the shared cache runs/_models (relative to the
    # working directory) would hand the run an already warmed-up model
    proc = subprocess.Popen(cmd, cwd=out)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, pss_bytes(children(proc.pid)))
        time.sleep(0.5)
    wall = time.time() - start
    summary = Path(out) / "bench" / "summary.json"
    print(f"quickstart: exit {proc.returncode}, wall {wall:.0f} s (target < 600 s), "
          f"peak PSS {peak / 2**30:.2f} GiB (target < 8 GiB); summary {summary}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
