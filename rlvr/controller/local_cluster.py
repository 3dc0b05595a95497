"""`rlvr cluster up|down`: a one-machine Ray head that coexists with other Ray clusters.

    rlvr cluster up [--dir DIR] [--num-cpus N] [--num-gpus N]   start a head; print its address
    rlvr cluster down [--dir DIR]                               stop everything `up` started

`up` runs `ray start --head --block` in a session of its own (setsid) with every port Ray
opens chosen free here (GCS, dashboard, dashboard agent, client server, metrics, runtime-env
agent, node and object manager) and its own temp dir (so Ray's "current cluster" file of the
machine, /tmp/ray/ray_current_cluster, is left alone); everything listens on 127.0.0.1. It
writes DIR/cluster.json (pid, ports, dashboard URL, temp dir) and prints the
`export RAY_ADDRESS=...` line that `rlvr submit` reads. `down` collects every process of that
session (Ray's workers start process groups of their own, so signalling the head's group is
not enough), sends SIGTERM, then SIGKILL to what is left after a few seconds, and removes the
temp dir. Never `ray stop`: it stops every Ray instance of the user on the machine.
"""
from __future__ import annotations

import argparse
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
from typing import Dict, List, Optional

from rlvr.controller.cluster import NODE_ENV

DEFAULT_DIR = "runs/_cluster"
STATE = "cluster.json"
# `ray start` options for each port it would otherwise take at a fixed default.
PORT_FLAGS = ("--port", "--dashboard-port", "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
              "--ray-client-server-port", "--metrics-export-port", "--runtime-env-agent-port",
              "--node-manager-port", "--object-manager-port")


def free_ports(n: int) -> List[int]:
    """n distinct ports free on 127.0.0.1 now."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def head_command(ray: str, ports: Dict[str, int], temp_dir: str, num_cpus: int, num_gpus: int) -> List[str]:
    """The `ray start --head --block` command line with every port and the temp dir set."""
    cmd = [ray, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1",
           "--temp-dir", temp_dir, "--num-cpus", str(num_cpus), "--num-gpus", str(num_gpus),
           "--disable-usage-stats"]
    for flag in PORT_FLAGS:
        cmd += [flag, str(ports[flag])]
    return cmd


def _wait_for_dashboard(url: str, head: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited with status {head.returncode}: "
                               f"{log.read_text(errors='replace')[-1500:]}")
        try:
            urllib.request.urlopen(f"{url}/api/version", timeout=2)
            return
        except OSError as err:
            if getattr(err, "code", None) in (401, 403):  # up, asking for the token
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the dashboard at {url} was not up after {timeout_s:.0f} s (log: {log})")
        time.sleep(0.5)


def up(state_dir: Path, num_cpus: int, num_gpus: int = 0, timeout_s: float = 120.0,
       env: Optional[Dict[str, str]] = None, wait: bool = True) -> Dict:
    """Start the head; its state (also written to state_dir/cluster.json). wait=False returns
    once it is launched (`wait_up` waits for its dashboard)."""
    state_dir = Path(state_dir)
    if (state_dir / STATE).is_file():
        raise RuntimeError(f"{state_dir / STATE} exists: a cluster started here may still run; "
                           f"`rlvr cluster down --dir {state_dir}` first")
    state_dir.mkdir(parents=True, exist_ok=True)
    ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS))))
    temp_dir = tempfile.mkdtemp(prefix="rlvr-ray-", dir="/tmp")  # short: Ray's socket paths are length-limited
    ray = str(Path(sys.executable).parent / "ray")
    env = dict(os.environ if env is None else env)
    env.pop("RAY_ADDRESS", None)
    for key, value in NODE_ENV.items():  # actors at normal priority (cluster.NODE_ENV)
        env.setdefault(key, value)
    log = state_dir / "head.log"
    with open(log, "wb") as out:
        head = subprocess.Popen(head_command(ray, ports, temp_dir, num_cpus, num_gpus), env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{ports['--dashboard-port']}"
    state = {"pid": head.pid, "dashboard": url, "gcs": f"127.0.0.1:{ports['--port']}", "temp_dir": temp_dir,
             "ports": {flag.lstrip("-"): port for flag, port in ports.items()}}
    (state_dir / STATE).write_text(json.dumps(state, indent=2) + "\n")
    _heads[state_dir.resolve()] = head
    if wait:
        wait_up(state_dir, timeout_s)
    return state


_heads: Dict[Path, subprocess.Popen] = {}  # heads this process launched, by state dir


def wait_up(state_dir: Path, timeout_s: float = 120.0) -> None:
    """Wait until the head launched by `up(state_dir, wait=False)` serves its dashboard; on
    failure stop it (`down`) and raise RuntimeError."""
    state_dir = Path(state_dir)
    url = json.loads((state_dir / STATE).read_text())["dashboard"]
    try:
        _wait_for_dashboard(url, _heads[state_dir.resolve()], state_dir / "head.log", timeout_s)
    except BaseException:
        down(state_dir)
        raise


def session_processes(sid: int) -> list:
    """Every process of session `sid` (psutil.Process objects), the session leader included."""
    import psutil

    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid:
                found.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def down(state_dir: Path, grace_s: float = 8.0) -> int:
    """Stop every process the head started (its session and its descendants); how many there were."""
    import psutil

    state_path = Path(state_dir) / STATE
    if not state_path.is_file():
        raise RuntimeError(f"{state_path} does not exist: no cluster was started with --dir {state_dir}")
    state = json.loads(state_path.read_text())
    pid = state["pid"]
    procs = {p.pid: p for p in session_processes(pid)}
    try:  # a descendant that started a session of its own is still in the tree
        procs.update({p.pid: p for p in psutil.Process(pid).children(recursive=True)})
    except psutil.NoSuchProcess:
        pass
    for proc in procs.values():
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(list(procs.values()), timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    shutil.rmtree(state["temp_dir"], ignore_errors=True)
    state_path.unlink()
    head = _heads.pop(Path(state_dir).resolve(), None)
    if head is not None:
        head.wait(timeout=5)  # reap it
    return len(procs)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="rlvr cluster",
                                     description="Start or stop a one-machine Ray head beside other clusters.")
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--dir", default=DEFAULT_DIR, type=Path,
                        help=f"folder for cluster.json and the head's log (default {DEFAULT_DIR})")
    parser.add_argument("--num-cpus", type=int, default=max(4, os.cpu_count() or 1),
                        help="logical CPUs the head offers (rlvr's actors take one each)")
    parser.add_argument("--num-gpus", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            state = up(args.dir, args.num_cpus, args.num_gpus)
            print(f"Ray head up (pid {state['pid']}, temp dir {state['temp_dir']}); for rlvr submit:\n"
                  f"export RAY_ADDRESS={state['dashboard']}\n"
                  f"stop it with: rlvr cluster down --dir {args.dir}")
        else:
            count = down(args.dir)
            print(f"stopped the Ray head of {args.dir} ({count} processes)")
    except RuntimeError as err:
        print(f"rlvr cluster: error: {err}", file=sys.stderr)
        return 2
    return 0
