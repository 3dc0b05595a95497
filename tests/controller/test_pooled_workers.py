"""The embedded cluster hands rlvr's actor env vars to its workers through the raylet, not a
job runtime env: actors then take the worker processes Ray starts with the raylet (already past
`import ray`) instead of each waiting for a new one, and still see every variable."""
import os
import time

import psutil
import pytest

from rlvr.config import load_recipe
from rlvr.controller.cluster import ACTOR_ENV, node_environment, start_ray


def _idle_workers(raylet_pid: int):
    """The raylet's worker processes that have registered and wait for work (titled ray::IDLE)."""
    return {p.pid for p in psutil.Process(raylet_pid).children() if " ".join(p.cmdline()).startswith("ray::IDLE")}


@pytest.mark.e2e
def test_actors_take_the_prestarted_workers_and_see_the_actor_env(monkeypatch):
    import ray

    from rlvr.controller.cluster import shutdown_ray

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cluster = load_recipe(None, ["cluster.num_cpus=3"]).cluster
    start_ray(cluster, 3)
    try:
        assert "OMP_NUM_THREADS" not in os.environ  # the driver's own environment is as it was
        assert not ray.get_runtime_context().runtime_env  # no job runtime env to match
        raylet = next(p for p in psutil.Process().children(recursive=True) if p.name() == "raylet")
        count = min(3, os.cpu_count() or 1)  # Ray starts one per logical CPU, at most one per core
        deadline = time.monotonic() + 60
        while len(_idle_workers(raylet.pid)) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        prestarted = _idle_workers(raylet.pid)
        assert len(prestarted) >= count

        @ray.remote(num_cpus=1)
        class Probe:
            def env(self):
                return os.getpid(), {k: os.environ.get(k) for k in node_environment(cluster)}

            def nice(self):
                return os.getpriority(os.PRIO_PROCESS, 0)

        probes = [Probe.remote() for _ in range(count)]
        seen = ray.get([p.env.remote() for p in probes], timeout=120)
        assert {pid for pid, _ in seen} <= prestarted  # no new worker process was started for them
        expected = node_environment(cluster)
        assert expected["OMP_NUM_THREADS"] == ACTOR_ENV["OMP_NUM_THREADS"]
        assert expected["DS_ACCELERATOR"] == "cpu" and expected["GLOO_SOCKET_IFNAME"]
        assert all(env == expected for _, env in seen)
        # normal priority (Ray's default worker_niceness is 15: a few percent of a core under load)
        assert ray.get([p.nice.remote() for p in probes]) == [0] * count
    finally:
        shutdown_ray()


def test_a_joined_cluster_gets_no_node_environment():
    assert node_environment(load_recipe(None, ["cluster.address=auto"]).cluster) == {}
    assert node_environment(load_recipe(None, []).cluster)["CUDA_VISIBLE_DEVICES"] == ""
    assert "CUDA_VISIBLE_DEVICES" not in node_environment(load_recipe(None, []).cluster, uses_gpus=True)
