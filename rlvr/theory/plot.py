"""PNG plots of theory runs: E[r_G] (and E[r_P]) over steps and pi(y) per output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402


def _step_axis(ax, steps: list[int]) -> None:
    # Stalling plays out over orders of magnitude of steps; a symlog axis shows both ends.
    if steps and steps[-1] > 1000:
        ax.set_xscale("symlog", linthresh=10)
    if steps and steps[-1] > 0:
        ax.set_xlim(0, steps[-1])
    ax.set_xlabel("step")


def plot_result(result: dict[str, Any], path: str | Path) -> Path:
    """Two panels for one result dict (from runner.run_configs): rewards and pi(y)."""
    traj = result["trajectory"]
    steps = traj["step"]
    fig, (ax_r, ax_p) = plt.subplots(1, 2, figsize=(11, 4))
    ax_r.plot(steps, traj["gt_reward"], label="E[r_G]", color="C0")
    ax_r.plot(steps, traj["proxy_reward"], label="E[r_P]", color="C1", linestyle="--")
    ax_r.axhline(result["threshold"], color="grey", linewidth=0.8, linestyle=":", label="threshold")
    if result["steps_to_threshold"] is not None:
        ax_r.axvline(result["steps_to_threshold"], color="C0", linewidth=0.8, linestyle=":")
    ax_r.set_ylabel("expected reward")
    ax_r.legend(loc="lower right")
    _step_axis(ax_r, steps)
    rows = traj["probs"]
    if rows and isinstance(rows[0][0], list):  # several prompts: (T, P, K) -> one line per (prompt, output)
        keys = [f"{p}:{y}" for p in range(len(rows[0])) for y in range(len(rows[0][0]))]
        rows = [[v for prompt in row for v in prompt] for row in rows]
    else:
        keys = [str(y) for y in range(len(rows[0]) if rows else 0)]
    for key, series in zip(keys, zip(*rows)):  # per output
        tag = f" ({result['categories'][key]})" if key in result["categories"] else ""
        ax_p.plot(steps, series, label=f"pi(y{key}){tag}")
    ax_p.set_ylabel("probability")
    ax_p.set_ylim(-0.02, 1.02)
    ax_p.legend(loc="best", fontsize="small")
    _step_axis(ax_p, steps)
    reached = result["steps_to_threshold"]
    fig.suptitle(f"{result['name']}: threshold {result['threshold']:g} "
                 + ("never reached" if reached is None else f"reached at step {reached}"))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_comparison(panels: dict[str, list[dict[str, Any]]], path: str | Path) -> Path:
    """One panel per group title, each overlaying E[r_G] of several results."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (title, results) in zip(axes[0], panels.items()):
        for result in results:
            traj = result["trajectory"]
            ax.plot(traj["step"], traj["gt_reward"], label=result["name"])
            steps = traj["step"]
        ax.axhline(results[0]["threshold"], color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(title)
        ax.set_ylabel("E[r_G]")
        ax.legend(loc="lower right", fontsize="x-small")
        _step_axis(ax, steps)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sweep(report: dict[str, Any], path: str | Path, dpi: int = 80) -> Path:
    """`rlvr theory --sweep`: steps-to-threshold against 1 / p* on log-log axes with the fitted
    power laws (one colour per pi_0(y_med); ground truth solid, proxy dashed), and the fitted
    exponents with their intervals against pi_0(y_med)."""
    fig, (ax_s, ax_a) = plt.subplots(1, 2, figsize=(10, 4))
    for i, sweep in enumerate(report["sweeps"]):
        color = f"C{i}"
        for kind, style, marker in (("ground_truth", "-", "o"), ("proxy", "--", "s")):
            points = [(x, s) for x, s in zip(sweep["x"], sweep["steps"][kind]) if s]
            if points:
                ax_s.plot(*zip(*points), marker, color=color, markersize=4)
            fit = sweep["fit"][kind]
            if fit is not None:
                xs = [min(sweep["x"]), max(sweep["x"])]
                label = f"{'r_G' if kind == 'ground_truth' else 'proxy'}, pi_0(y_med)={sweep['p_med']:g}: " \
                        f"a={fit['exponent']:.2f}"
                ax_s.plot(xs, [fit["prefactor"] * x ** fit["exponent"] for x in xs], style, color=color,
                          linewidth=1, label=label)
    ax_s.set_xscale("log")
    ax_s.set_yscale("log")
    ax_s.set_xlabel("1 / pi_0(y*)")
    ax_s.set_ylabel(f"steps to E[r_G] >= {report['threshold']:g}")
    ax_s.legend(fontsize="x-small", loc="upper left")
    for kind, marker, offset in (("ground_truth", "o", -0.005), ("proxy", "s", 0.005)):
        rows = [(s["p_med"] + offset, s["fit"][kind]) for s in report["sweeps"] if s["fit"][kind] is not None]
        if rows:
            xs = [r[0] for r in rows]
            ys = [r[1]["exponent"] for r in rows]
            err = [[r[1]["exponent"] - r[1]["low"] for r in rows], [r[1]["high"] - r[1]["exponent"] for r in rows]]
            ax_a.errorbar(xs, ys, yerr=err, fmt=marker, capsize=3,
                          label="ground truth" if kind == "ground_truth" else "proxy (y_med rewarded -1)")
    ax_a.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    ax_a.set_xlabel("pi_0(y_med)")
    ax_a.set_ylabel("fitted exponent a (95% interval)")
    ax_a.legend(fontsize="small")
    fig.suptitle("steps ~ C (1 / pi_0(y*))^a, exact-gradient SGD (paper Section 3.3 problem)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
