"""tools/bench/startup.py: which process a CPU second is charged to, and its floor arms (a plain
Ray start plus the actors' third-party imports, in rlvr's three actors or in one) run and leave no
Ray process behind."""
import time

import psutil
import pytest


def test_cpu_seconds_are_charged_to_the_actor_the_driver_or_rays_own_processes(load_tool):
    bench = load_tool("bench/startup.py")
    assert bench._cpu_group(["ray::PolicyTrainer.train_step"]) == "PolicyTrainer"
    assert bench._cpu_group(["ray::RolloutWorker"]) == "RolloutWorker"
    assert bench._cpu_group(["python", "-m", "rlvr.cli", "train", "r.yaml"]) == "driver"
    # Ray's agents are titled like workers but belong to Ray's services
    assert bench._cpu_group(["ray::DashboardAgent"]) == "Ray services"
    assert bench._cpu_group(["ray::RuntimeEnvAgent"]) == "Ray services"
    assert bench._cpu_group(["ray::IDLE"]) == "other Ray workers"
    assert bench._cpu_group(["/venv/lib/ray/core/src/ray/raylet/raylet", "--x"]) == "Ray services"


def _ray_processes_since(t0: float):
    """Ray's processes on this machine (GCS, raylet, agents, workers) started at or after t0."""
    found = []
    for p in psutil.process_iter(["name", "cmdline", "create_time", "status"]):
        text = " ".join(p.info["cmdline"] or [])
        if p.info["create_time"] >= t0 - 1 and p.info["status"] != psutil.STATUS_ZOMBIE and (
                p.info["name"] in ("gcs_server", "raylet") or text.startswith("ray::")):
            found.append(f"{p.info['name']}: {text[:60]}")
    return found


@pytest.mark.e2e
def test_the_floor_arms_time_their_actors_and_leave_no_ray_process(load_tool):
    bench = load_tool("bench/startup.py")
    t0 = time.time()
    floor = bench.run_floor()
    # the floor script's processes outlive it as orphans for a moment: run_floor waits them out
    assert not _ray_processes_since(t0)
    t1 = time.time()
    one = bench.run_floor(actors=1)
    assert not _ray_processes_since(t1)
    assert 0 < floor["TOTAL to step 1"] < 300 and 0 < one["TOTAL to step 1"] < 300
    assert one["CPU s to step 1: all"] > 1.0  # torch, transformers and DeepSpeed were imported
    # three actors import torch and transformers twice; one actor imports them once
    assert floor["CPU s to step 1: all"] > one["CPU s to step 1: all"] + 1.0


def test_every_checkout_finds_or_builds_the_model_before_the_timed_rounds(load_tool, monkeypatch, tmp_path):
    # a fresh worktree has no runs/_models of its own: untimed, its first round would build the model
    bench = load_tool("bench/startup.py")
    calls = []
    phases = {name: 0.1 for name, _ in bench.PHASES} | {"TOTAL to step 1": 1.0}
    monkeypatch.setattr(bench, "run_once", lambda tree, recipe, overrides, out: calls.append(tree) or (phases, []))
    other = tmp_path / "other"
    assert bench.main(["--rounds", "1", "--no-floor", "--tree", str(other), "--out", str(tmp_path / "out")]) == 0
    assert calls == [bench.ROOT, other, bench.ROOT, other]  # both untimed first, then the round
