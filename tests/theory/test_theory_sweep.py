"""`rlvr theory --sweep`: the log-log fit recovers a known exponent, and the sweep's steps are the
paper problem's (checked against the independent plain-Python implementation)."""

import json
import math

import numpy as np
import pytest

from rlvr.theory.command import main
from rlvr.theory.sweep import fit_power_law, run_sweep, t_quantile


def test_t_quantiles_match_tables():
    # two-sided 95% critical values of Student's t (any statistics table)
    for df, table in [(1, 12.706), (2, 4.303), (5, 2.571), (10, 2.228), (30, 2.042)]:
        assert abs(t_quantile(0.975, df) - table) < 1e-3


def test_fit_recovers_an_exact_power_law():
    x = [2.0, 3.0, 5.0, 8.0]
    fit = fit_power_law(x, [3.0 * v**2.5 for v in x])
    assert math.isclose(fit["exponent"], 2.5, rel_tol=1e-12) and math.isclose(fit["prefactor"], 3.0, rel_tol=1e-12)
    assert fit["stderr"] < 1e-12 and fit["n"] == 4


def test_fit_slope_and_interval_by_hand():
    # log x = [0, 1, 2], log y = [0, 1, 3]: slope = sum dx dy / sum dx^2 = (-1 * -4/3 + 1 * 5/3) / 2 = 1.5,
    # residuals [1/6, -1/3, 1/6]: s^2 = (1/6) / (3 - 2), stderr = sqrt(s^2 / 2), interval +/- 12.706 stderr
    fit = fit_power_law(np.exp([0.0, 1, 2]), np.exp([0.0, 1, 3]))
    assert math.isclose(fit["exponent"], 1.5, rel_tol=1e-12)
    stderr = math.sqrt(1 / 6 / 2)
    assert math.isclose(fit["stderr"], stderr, rel_tol=1e-12)
    assert abs(fit["high"] - (1.5 + 12.706 * stderr)) < 1e-3


def test_fit_interval_covers_the_true_exponent_about_95_percent():
    rng = np.random.default_rng(0)
    x = np.geomspace(1, 10, 6)
    fits = [fit_power_law(x, 2.0 * x**3.0 * np.exp(rng.normal(scale=0.3, size=6))) for _ in range(400)]
    covered = np.mean([f["low"] <= 3.0 <= f["high"] for f in fits])
    assert 0.92 <= covered <= 0.98
    assert abs(np.mean([f["exponent"] for f in fits]) - 3.0) < 0.05


def test_sweep_steps_match_the_independent_implementation(load_tool):
    report = run_sweep(p_stars=[0.15, 0.19, 0.24], p_meds=[0.5])
    (sweep,) = report["sweeps"]
    check = load_tool("theory_independent_check.py")
    assert sweep["steps"]["ground_truth"][0] == check.paper_exact_case(0.15, "gt", steps=2000)[0] == 1393
    assert sweep["steps"]["proxy"] == [check.paper_exact_case(p, "proxy", steps=500)[0] for p in (0.15, 0.19, 0.24)]
    gt, proxy = sweep["fit"]["ground_truth"], sweep["fit"]["proxy"]
    assert gt["exponent"] > 2 > 1 > proxy["exponent"] > 0  # super-linear on r_G, sub-linear on the proxy


def test_cli_sweep_writes_json_and_plot(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["--sweep", "--p-stars", "0.19,0.24,0.3", "--p-meds", "0.5", "--out", str(out)]) == 0
    report = json.loads((out / "sweep.json").read_text())
    assert report["sweeps"][0]["p_stars"] == [0.19, 0.24, 0.3]
    assert (out / "sweep.png").stat().st_size > 1000
    assert "a = " in capsys.readouterr().out
    assert main(["--sweep", "--p-stars", "0.6", "--out", str(out)]) == 2
    assert main(["--sweep", "--p-stars", "x", "--out", str(out)]) == 2


@pytest.mark.parametrize("n", [2])
def test_fit_needs_three_points(n):
    with pytest.raises(ValueError, match="at least 3"):
        fit_power_law([1.0, 2.0][:n], [1.0, 2.0][:n])
