"""tools/bench/driver_scaling.py: the power-law fit on hand-made numbers, and a tiny run of the
simulation (stand-in Ray actors) whose table has one row per size and engine count, with fits."""
import json
import math

import pytest


def test_fit_recovers_a_power_law_and_its_budget_crossing(load_tool):
    bench = load_tool("bench/driver_scaling.py")
    xs = [1.0, 10.0, 100.0]
    fit = bench.fit_power(xs, [3.0 * x ** 2 for x in xs])
    assert fit["a"] == pytest.approx(3.0) and fit["b"] == pytest.approx(2.0)
    assert bench.crossing(fit, 300.0) == pytest.approx(10.0)  # 3 * 10^2 = 300
    assert math.isinf(bench.crossing({"a": 1.0, "b": 0.0}, 5.0))  # flat: never reaches the budget
    # near-flat (a noisy two-row fit seen in CI): the crossing is past any float, not an OverflowError
    assert math.isinf(bench.crossing({"a": 8.48, "b": 0.00225}, 3000.0))
    with pytest.raises(ValueError, match="two different"):
        bench.fit_power([2.0, 2.0], [1.0, 2.0])
    assert bench.parse_size("1024x16x4096") == (1024, 16, 4096)
    with pytest.raises(SystemExit, match="prompts x G"):
        bench.parse_size("1024x16")


@pytest.mark.e2e
def test_tiny_simulation_prints_the_table_and_the_fits(load_tool, tmp_path, capsys):
    bench = load_tool("bench/driver_scaling.py")
    out = tmp_path / "scaling.json"
    assert bench.main(["--sizes", "2x2x4,4x2x128", "--engines-for-sizes", "2", "--engines", "1,2",
                       "--engine-size", "4x2x8", "--steps", "1", "--target", "4x2x8", "--target-engines", "2",
                       "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [(r["prompts"], r["G"], r["tokens"], r["engines"]) for r in data["batch_rows"]] == [(2, 2, 4, 2), (4, 2, 128, 2)]
    assert [r["engines"] for r in data["actor_rows"]] == [1, 2]
    for row in data["batch_rows"] + data["actor_rows"]:
        assert row["tokens_per_step"] == row["prompts"] * row["G"] * row["tokens"]
        assert row["step_ms"] > 0 and row["controller_ms"] >= 0 and row["peak_mb"] > 0
        assert 0 < row["driver_cpu_ms"] < 10 * row["step_ms"]
    small, big = data["batch_rows"]
    assert big["moved_mb"] > small["moved_mb"]  # 64x the tokens moves more bytes
    for axis in ("batch_fit", "actor_fit"):
        assert set(data[axis]) == {"step_ms", "driver_cpu_ms", "controller_ms", "peak_mb", "moved_mb"}
        assert all(math.isfinite(f["b"]) and f["a"] > 0 for f in data[axis].values())
    assert data["batch_fit"]["moved_mb"]["b"] > 0.5  # bytes grow with the tokens
    # the actor axis ran the target itself (4x2x8 on 2 engines): its step is reported as measured
    assert data["measured"] == [data["actor_rows"][1]]
    text = capsys.readouterr().out
    assert "| prompts x G x tokens |" in text and "passes 3 s" in text and "of a 60 s step" in text
    assert "step at 4x2x8 with 2 engines (measured)" in text and "driver CPU at 4x2x8 with 2 engines" in text
