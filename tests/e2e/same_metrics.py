"""The check every resume and restart test makes: two runs wrote the same rows."""
import pytest


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
