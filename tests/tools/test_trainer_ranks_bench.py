"""tools/bench/trainer_ranks.py: a short run, as a script, prints both tables with every row."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "tools" / "bench" / "trainer_ranks.py"


@pytest.mark.e2e
def test_a_short_run_prints_every_arm_and_every_collective():
    done = subprocess.run([sys.executable, str(BENCH), "--rounds", "1", "--steps", "2", "--rows", "16",
                           "--calls", "3"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for row in ("| 1 | 16 | false |", "| 1 | 16 | true |", "| 2 | 8 | false |", "| 2 | 8 | true |"):
        assert row in out
    assert "two ranks / one rank, share_prompt_forward=true: " in out
    assert "shared / full prompt forward, 1 rank(s): " in out
    for op in ("all_reduce", "broadcast", "all_gather", "send + recv (round trip)"):
        assert f"| {op} | " in out
