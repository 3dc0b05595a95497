"""The embedded (cluster.address=local) Ray cluster listens on loopback only, starts without
Ray's API server and autoscaler monitor, and none of its processes outlives a driver killed with
SIGKILL (Ray alone leaves its agents behind)."""
import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]

DRIVER = """
import psutil, time
from rlvr.config import load_recipe
from rlvr.controller.cluster import start_ray
from ray._private.node import Node
methods = (Node.start_api_server, Node.start_monitor)
start_ray(load_recipe(None, ["cluster.num_cpus=3"]).cluster, 3)
import ray
assert (Node.start_api_server, Node.start_monitor) == methods, "Ray's Node methods not restored"

@ray.remote(num_cpus=0)
def node_ip():
    return ray.util.get_node_ip_address()

assert ray.get(node_ip.remote()) == "127.0.0.1"
time.sleep(3)  # the watcher records the tree, agents included
print(" ".join(str(p.pid) for p in psutil.Process().children(recursive=True)), flush=True)
time.sleep(600)
"""


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    return address.is_loopback or bool(getattr(address, "ipv4_mapped", None) and address.ipv4_mapped.is_loopback)


def listening(processes):
    """(process name, ip, port) of every listening TCP socket of `processes`."""
    found = set()
    for p in processes:
        try:
            found |= {(p.name(), c.laddr.ip, c.laddr.port) for c in p.net_connections("tcp")
                      if c.status == psutil.CONN_LISTEN}
        except psutil.Error:
            continue
    return found


def alive(processes):
    out = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            continue
    return out


@pytest.mark.e2e
def test_embedded_cluster_is_loopback_only_and_dies_with_a_killed_driver():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True, env=env,
                              start_new_session=True)
    procs = []
    try:
        line = driver.stdout.readline()
        assert line.strip(), f"driver exited with {driver.poll()}"
        procs = [psutil.Process(int(pid)) for pid in line.split()]
        names = {p.name() for p in procs}
        assert {"raylet", "gcs_server", "ray::DashboardAgent"} <= names, names
        scripts = [" ".join(p.cmdline()) for p in procs]
        assert any("log_monitor.py" in c for c in scripts), scripts  # actors' output reaches the driver
        skipped = [c for c in scripts if "dashboard/dashboard.py" in c or "autoscaler/_private/monitor.py" in c
                   or "autoscaler/v2/monitor.py" in c]
        assert not skipped, skipped
        sockets = listening([psutil.Process(driver.pid), *procs])
        assert sockets and all(is_loopback(ip) for _, ip, _ in sockets), \
            sorted(s for s in sockets if not is_loopback(s[1]))

        driver.send_signal(signal.SIGKILL)
        driver.wait()
        deadline = time.monotonic() + 20
        while alive(procs) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = alive(procs)
        assert not left, [(p.pid, p.name()) for p in left]
    finally:
        for p in alive(procs):  # never leave a cluster behind, even when the test fails
            p.kill()
        if driver.poll() is None:
            driver.kill()
