"""The check every resume and restart test makes: two runs wrote the same rows."""
import json

import pytest

from rlvr.tracking.run_folder import read_metrics


def assert_same_metrics(original, again, ignore=("perf/",)) -> None:
    """Rows of two metrics.jsonl files hold the same steps and the same values, but for the
    groups in `ignore` (timings by default; None is a value JSON could not hold, e.g.
    reward/snr = inf without noise, and must match itself)."""
    assert [r["step"] for r in again] == [r["step"] for r in original]
    for before, after in zip(original, again):
        keys = {k for k in before if not k.startswith(tuple(ignore))}
        assert keys == {k for k in after if not k.startswith(tuple(ignore))}, before["step"]
        for key in sorted(keys):
            expected = before[key] if before[key] is None else pytest.approx(before[key], rel=1e-6, abs=1e-7)
            assert after[key] == expected, (before["step"], key)


def assert_same_run(clean, run, steps: int) -> None:
    """Run folders `clean` and `run` hold the same non-timing metrics (fault/* aside) for steps
    0..steps and the same sample files, row for row."""
    before, after = read_metrics(clean / "metrics.jsonl"), read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in before] == list(range(steps + 1))
    assert_same_metrics(before, after, ignore=("perf/", "fault/"))
    files = sorted(p.name for p in (clean / "samples").iterdir())
    assert files == sorted(p.name for p in (run / "samples").iterdir()) and len(files) == steps
    for name in files:
        rows = [[json.loads(line) for line in (d / "samples" / name).read_text().splitlines()] for d in (clean, run)]
        assert rows[0] == rows[1], name
