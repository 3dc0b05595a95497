"""`rlvr cluster up/down`: two one-machine Ray heads side by side both accept a submitted job,
leave the machine's "current cluster" file alone, and `down` stops every process each started."""
import importlib.util
import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from rlvr.controller import local_cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_two_local_clusters_side_by_side_both_run_a_job(tmp_path):
    assert importlib.util.find_spec("aiohttp_cors"), "ray[default] is missing: pip install -e '.[cluster]'"
    from ray.job_submission import JobSubmissionClient

    from rlvr.controller.submit import enable_token_auth

    current = Path("/tmp/ray/ray_current_cluster")
    before = current.read_text() if current.is_file() else None
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    dirs, states = [tmp_path / "a", tmp_path / "b"], []
    try:
        for d in dirs:  # both start at once, as two users' clusters would
            states.append(local_cluster.up(d, num_cpus=2, env=env, wait=False))
        for d in dirs:
            local_cluster.wait_up(d)
        assert states[0]["ports"] != states[1]["ports"]
        enable_token_auth()  # the heads use token auth: this client sends the token
        clients = [JobSubmissionClient(s["dashboard"]) for s in states]
        jobs = [c.submit_job(entrypoint=f"{sys.executable} -c \"import ray; ray.init(); "
                                        "print('CPUS', ray.cluster_resources()['CPU'])\"") for c in clients]
        for client, job in zip(clients, jobs):
            status = None
            for _ in range(120):
                status = str(client.get_job_status(job).value)
                if status in ("SUCCEEDED", "FAILED", "STOPPED"):
                    break
                time.sleep(0.5)
            assert status == "SUCCEEDED", client.get_job_logs(job)[-2000:]
            assert "CPUS 2.0" in client.get_job_logs(job)
        after = current.read_text() if current.is_file() else None
        assert after == before  # each head keeps its address file in its own temp dir
    finally:
        pids = [s["pid"] for s in states]
        tree = [p for pid in pids for p in local_cluster.session_processes(pid)]
        for d in dirs:
            if (d / local_cluster.STATE).is_file():
                local_cluster.down(d)
    assert tree and not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert all(not Path(s["temp_dir"]).exists() for s in states)
