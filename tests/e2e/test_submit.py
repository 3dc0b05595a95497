"""`rlvr submit --wait` against a real Ray head on loopback (started with `ray start --head`,
token auth on as Ray 2.60 sets it up): the quickstart runs as a Ray job whose runtime env
repeats one of rlvr's actor env vars, `--wait` exits 0, and the run folder is complete."""
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from rlvr.tracking.run_folder import read_metrics

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "recipes" / "quickstart.yaml")
TINY = ["steps=3", "eval_every=3", "warmup.steps=4", "warmup.check_every=2", "warmup.target_accuracy=1.0",
        "task.train_size=64", "task.eval_size=16", "rollout.prompts_per_step=8", "rollout.samples_per_prompt=4",
        "trainer.zero_stage=0"]


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture
def ray_head():
    """A Ray head on 127.0.0.1 with free ports, in its own process group; yields the dashboard URL."""
    assert importlib.util.find_spec("aiohttp_cors"), "ray[default] is missing: pip install -e '.[cluster]'"
    gcs, dash, agent, client, metrics = free_ports(5)
    temp = tempfile.mkdtemp(prefix="rlvr-ray-", dir="/tmp")  # short: Ray's socket paths are length-limited
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    ray = str(Path(sys.executable).parent / "ray")
    head = subprocess.Popen(
        [ray, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
         "--dashboard-agent-listen-port", str(agent), "--ray-client-server-port", str(client),
         "--metrics-export-port", str(metrics), "--temp-dir", temp, "--num-cpus", "4", "--num-gpus", "0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert head.poll() is None, f"ray start exited: {head.stderr.read().decode()[-2000:]}"
            try:
                urllib.request.urlopen(f"{url}/api/version", timeout=2)
                break
            except OSError as err:
                if getattr(err, "code", None) in (401, 403):  # up, asking for the token
                    break
                assert time.monotonic() < deadline, f"dashboard at {url} not up after 120 s"
                time.sleep(1)
        yield url, env
    finally:
        # Ray's workers get process groups of their own: collect the head's whole tree first.
        tree = psutil.Process(head.pid).children(recursive=True)
        os.killpg(head.pid, signal.SIGTERM)  # never `ray stop`: it would stop other clusters too
        try:
            head.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for proc in tree:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def submit(url, env, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "rlvr.cli", "submit", *args, "--address", url, "--wait"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.e2e
def test_submit_quickstart_to_a_loopback_head_and_wait(ray_head, tmp_path):
    url, env = ray_head
    # OMP_NUM_THREADS is also one of rlvr's actor env vars: the job's value must merge, not conflict.
    out = submit(url, env, QUICKSTART, *TINY, f"output_dir={tmp_path}", "run_name=submitted",
                 "--env", "OMP_NUM_THREADS=1")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "submitted job raysubmit_" in out.stdout and "ray job logs -f raysubmit_" in out.stdout
    assert "the job's runtime env sets OMP_NUM_THREADS=1" in out.stdout + out.stderr
    assert "SUCCEEDED" in out.stdout

    run = tmp_path / "submitted"
    assert "address: auto" in (run / "config.yaml").read_text()
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [0, 1, 2, 3]
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"

