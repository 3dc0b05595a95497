"""tools/bench/vs_trl.py: its summary math on hand-made numbers, the per-arm environment, and a
tiny run of the real arms (bare + rlvr always; TRL too where the bench extra is installed)."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(system, seed, rnd, samples_per_s, accuracy, stages=None):
    return {"system": system, "seed": seed, "round": rnd, "samples_per_s": samples_per_s,
            "cpu_s_per_step": 0.1, "startup_s": 5.0, "eval_accuracy": accuracy, "stages": stages or {}}


def test_summary_ratios_pair_arms_of_the_same_round_and_accuracy_averages_seeds(load_tool):
    bench = load_tool("bench/vs_trl.py")
    runs = [_run("trl", 0, 1, 100.0, 0.5), _run("trl", 0, 2, 50.0, 0.5), _run("trl", 1, 1, 200.0, 0.5),
            _run("rlvr", 0, 1, 150.0, 0.2, {"rollout": 0.04}), _run("rlvr", 0, 2, 100.0, 0.4, {"rollout": 0.06}),
            _run("rlvr", 1, 1, 100.0, 0.5, {"rollout": 0.05})]
    out = bench.summarize(runs, ["rlvr", "trl", "trl_1t"])
    assert set(out) == {"rlvr", "trl"}  # an arm that did not run has no row
    # same (seed, round) pairs: 150/100, 100/50, 100/200 -- not the ratio of the means (350/3 / 350/3 = 1)
    assert out["rlvr"]["vs_trl"] == pytest.approx({"mean": (1.5 + 2.0 + 0.5) / 3, "min": 0.5, "max": 2.0})
    assert "vs_trl_1t" not in out["rlvr"]
    # seed 0: mean(0.2, 0.4) = 0.3; seed 1: 0.5; mean over seeds 0.4 (not the mean of the 3 runs, 0.3667)
    assert out["rlvr"]["eval_accuracy"]["mean"] == pytest.approx(0.4)
    assert out["rlvr"]["stages"]["rollout"] == pytest.approx({"mean": 0.05, "min": 0.04, "max": 0.06})
    assert out["trl"]["samples_per_s"] == pytest.approx({"mean": 350.0 / 3, "min": 50.0, "max": 200.0})


def test_each_arm_gets_its_own_thread_setting_and_none_leaks_from_the_caller(monkeypatch, load_tool):
    bench = load_tool("bench/vs_trl.py")
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.setenv("MKL_NUM_THREADS", "7")
    assert bench.arm_env(1)["OMP_NUM_THREADS"] == "1"
    default = bench.arm_env(None)  # "default threads" arms: the library decides, not the caller's shell
    assert "OMP_NUM_THREADS" not in default and "MKL_NUM_THREADS" not in default
    assert default["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)  # arms import this checkout's rlvr


def test_unknown_or_unrunnable_systems_are_named(load_tool):
    bench = load_tool("bench/vs_trl.py")
    with pytest.raises(SystemExit, match="'trll' is not one of"):
        bench.choose_systems("bare,trll", print)
    if not bench.overlap_supported():
        with pytest.raises(SystemExit, match="rollout.overlap"):
            bench.choose_systems("rlvr_overlap", print)
        notes = []
        assert "rlvr_overlap" not in bench.choose_systems(None, notes.append)
        assert any("rlvr_overlap" in n for n in notes)


@pytest.mark.e2e
def test_tiny_run_of_the_bare_and_rlvr_arms_prints_both_tables(tmp_path):
    # CI does not install the bench extra: bare and rlvr must run without it
    systems = "bare,rlvr,trl_1t" if importlib.util.find_spec("trl") else "bare,rlvr"
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # steps 2..4 are timed: one ~20 ms step of the bare arm can read 0 CPU seconds (10 ms clock ticks)
    cmd = [sys.executable, str(ROOT / "tools" / "bench" / "vs_trl.py"), "--steps", "4", "--rounds", "1",
           "--prompts", "4", "--samples", "2", "--systems", systems, "--output-dir", str(tmp_path),
           "--json", str(out), "warmup.enabled=false", "task.train_size=64", "task.eval_size=16",
           "eval.audit_prompts=4"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    assert "load average before" in run.stdout and "load average after" in run.stdout
    assert "| system | samples/s | CPU-s per step |" in run.stdout
    assert "| weight_sync |" in run.stdout and "| startup to step 1 (s) |" in run.stdout
    data = json.loads(out.read_text())
    runs = {r["system"]: r for r in data["runs"]}
    assert set(runs) == set(systems.split(","))
    for r in runs.values():
        assert r["samples_per_s"] > 0 and r["cpu_s_per_step"] > 0 and r["startup_s"] > 0
        assert 0.0 <= r["eval_accuracy"] <= 1.0
    # rlvr's CPU time is its whole process tree: the driver plus Ray's processes and actors
    assert runs["rlvr"]["processes"] > 3 and runs["bare"]["processes"] == 1
    assert runs["bare"]["torch_threads"] == 1
    for stage in ("rollout", "reward", "train", "weight_sync", "controller", "step"):
        assert runs["rlvr"]["stages"][stage] >= 0.0 and runs["bare"]["stages"][stage] >= 0.0
    assert runs["rlvr"]["stages"]["step"] >= runs["rlvr"]["stages"]["train"]
    assert not list(tmp_path.glob("vs_trl-*")), "the bench's work folder (rlvr run folders, logs) is left behind"


def test_load_processes_run_during_every_arm_and_are_stopped_after_it(load_tool):
    import psutil

    bench = load_tool("bench/vs_trl.py")
    seen = []

    def run_one(system, seed, rnd):
        busy = [p for p in psutil.Process().children() if "getppid" in " ".join(p.cmdline())]
        seen.append((system, seed, rnd, sorted(p.pid for p in busy)))
        assert all(p.status() != psutil.STATUS_ZOMBIE for p in busy)
        return {"samples_per_s": 1.0, "cpu_s_per_step": 0.1, "eval_accuracy": 0.5}

    runs = bench.run_rounds(["rlvr", "trl"], [0], 2, run_one, load=2)
    assert [(s, r) for s, _, r, _ in seen] == [("rlvr", 1), ("trl", 1), ("rlvr", 2), ("trl", 2)]
    assert all(len(pids) == 2 for *_, pids in seen)  # two load processes during every arm
    assert len({pid for *_, pids in seen for pid in pids}) == 8  # fresh ones per arm: the others were stopped
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                   for *_, pids in seen for pid in pids)
    assert all(r["load"] == 2 for r in runs)
    bench.run_rounds(["rlvr"], [0], 1, lambda *a: seen.append(a) or {"samples_per_s": 1.0, "cpu_s_per_step": 0.1,
                                                                       "eval_accuracy": 0.5}, load=0)
    with pytest.raises(SystemExit, match="--load"):
        bench.BackgroundLoad(-1)


def test_a_load_process_ends_by_itself_when_the_bench_dies():
    import psutil

    parent = subprocess.run([sys.executable, "-c", "import subprocess, sys\n"
                             f"sys.path.insert(0, {str(ROOT / 'tools' / 'bench')!r})\n"
                             "import vs_trl\n"
                             "load = vs_trl.BackgroundLoad(1).__enter__()\n"
                             "print(load.procs[0].pid)\n"],  # exits without stopping it
                            capture_output=True, text=True, check=True)
    child = psutil.Process(int(parent.stdout.split()[-1]))
    child.wait(timeout=10)  # its parent is gone: the busy loop notices within half a second
