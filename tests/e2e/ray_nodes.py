"""Ray nodes started with `ray start` on 127.0.0.1, as an operator starts them, for the lost-node
tests: a head (`rlvr cluster up`'s) and worker nodes, each in a session of its own, so that a
node can be killed whole (every process of its session, SIGKILL: a reclaimed spot instance) and
a replacement started with the same custom resources."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import psutil

from rlvr.controller import local_cluster
from rlvr.controller.cluster import NODE_ENV

# The ports a worker node would otherwise take at fixed defaults (two nodes on one machine collide).
WORKER_PORT_FLAGS = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                     "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port")


class LoopbackNodes:
    """A head and named worker nodes on 127.0.0.1; `stop()` ends every process any of them started."""

    def __init__(self, folder: Path):
        from rlvr.controller.submit import enable_token_auth

        self.folder = Path(folder)
        # The head turns token auth on when a token exists (docs/cluster.md): the nodes that join
        # and this process (the run's driver) then need RAY_AUTH_MODE=token; stop() puts it back.
        self._auth_mode = os.environ.get("RAY_AUTH_MODE")
        enable_token_auth()
        self.env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS",)}
        self.env.update(NODE_ENV)
        self.head: Optional[Dict] = None
        self.nodes: Dict[str, subprocess.Popen] = {}  # name -> the `ray start --block` of its live node
        self.ports: Dict[str, int] = {}  # name -> its node manager's port (how Ray's node table names it)
        self.sessions: List[int] = []  # every session ever started (killed nodes included), for stop()
        self.temp_dirs: List[str] = []

    @property
    def address(self) -> str:
        return self.head["gcs"]

    def start_head(self, num_cpus: int = 0) -> None:
        self.head = local_cluster.up(self.folder / "head", num_cpus=num_cpus, env=self.env)
        self.sessions.append(self.head["pid"])

    def add_node(self, name: str, resources: Dict[str, float], num_cpus: int = 1) -> None:
        """Start worker node `name` declaring `resources` (not waited for: `start_node` waits)."""
        ray = str(Path(sys.executable).parent / "ray")
        temp_dir = tempfile.mkdtemp(prefix="rlvr-node-", dir="/tmp")  # its own sockets (Ray's paths are short)
        self.temp_dirs.append(temp_dir)
        ports = local_cluster.free_ports(len(WORKER_PORT_FLAGS))
        cmd = [ray, "start", "--address", self.address, "--node-ip-address", "127.0.0.1", "--block",
               "--num-cpus", str(num_cpus), "--num-gpus", "0", "--resources", json.dumps(resources),
               "--temp-dir", temp_dir, "--disable-usage-stats"]
        for flag, port in zip(WORKER_PORT_FLAGS, ports):
            cmd += [flag, str(port)]
        self.ports[name] = ports[0]  # --node-manager-port
        log = open(self.folder / f"node-{name}-{len(self.sessions)}.log", "wb")
        proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.nodes[name] = proc
        self.sessions.append(proc.pid)

    def alive_nodes(self) -> List[Dict]:
        import ray

        return [n for n in ray.nodes() if n.get("Alive")]

    def start_node(self, name: str, resources: Dict[str, float], num_cpus: int = 1, tries: int = 3,
                   timeout_s: float = 120.0) -> None:
        """add_node and wait until Ray lists it alive (this process must have joined the cluster);
        a node whose `ray start` gives up (its raylet not registered within Ray's fixed 30 s, which
        a 2-core machine starting several nodes can exceed) is started again, up to `tries` times."""
        for attempt in range(1, tries + 1):
            self.add_node(name, resources, num_cpus)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if any(n.get("NodeManagerPort") == self.ports[name] for n in self.alive_nodes()):
                    return
                if self.nodes[name].poll() is not None:
                    break  # `ray start` gave up
                time.sleep(0.5)
            self.kill_node(name)
        raise RuntimeError(f"Ray node {name} did not start in {tries} tries (logs in {self.folder})")

    def kill_node(self, name: str) -> int:
        """SIGKILL every process of node `name` (its raylet, its agents and its actors' workers); how many."""
        proc = self.nodes.pop(name)
        victims = local_cluster.session_processes(proc.pid)
        for p in victims:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(victims, timeout=10)
        proc.wait(timeout=10)
        return len(victims)

    def processes(self) -> List[psutil.Process]:
        """Every live process of every session this harness started."""
        return [p for sid in self.sessions for p in local_cluster.session_processes(sid)
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    def stop(self) -> None:
        for name in list(self.nodes):
            self.kill_node(name)
        if self.head is not None and (self.folder / "head" / local_cluster.STATE).is_file():
            local_cluster.down(self.folder / "head")
        for p in self.processes():  # anything a killed node's session left behind
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        import shutil

        for d in self.temp_dirs:
            shutil.rmtree(d, ignore_errors=True)
        if os.environ.get("RAY_AUTH_MODE") != self._auth_mode:
            if self._auth_mode is None:
                os.environ.pop("RAY_AUTH_MODE", None)
            else:
                os.environ["RAY_AUTH_MODE"] = self._auth_mode
            from ray._raylet import Config  # Ray caches the mode at import (as enable_token_auth notes)

            Config.initialize("")
