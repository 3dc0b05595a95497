"""Start (or join) the Ray cluster with the environment every rlvr actor needs."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from typing import Callable, Dict, Iterator, Mapping, Optional, Tuple

from rlvr.config.schema import ClusterConfig

# One thread per process unless cluster.threads_per_actor says otherwise (rlvr/controller/threads.py):
# on a 2-core machine two busy-waiting OpenMP threads per actor fight each other (steps 20-50x
# slower when another process holds a core). Passive waiting: an actor's idle threads sleep.
ACTOR_ENV: Dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
    "TOKENIZERS_PARALLELISM": "false",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # engine in the actor's process: 3-5 s start, not 30
    "RAY_USAGE_STATS_ENABLED": "0",
    "PYTHONUNBUFFERED": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # no "Loading weights" bars from every actor
}


# What a node's raylet reads at start (an embedded cluster's raylet inherits it from the driver;
# `rlvr cluster up` passes it to `ray start`). Ray starts worker processes at nice 15 by default:
# then, while any other process computes, every actor gets a few percent of a core (measured on
# 2 cores with two busy processes beside it: a 1-thread actor's matmul loop 28x slower, the
# same loop in the driver 2x slower; rlvr's step 35x slower). At nice 0 actors share the cores
# fairly (1.8x slower, as the driver).
NODE_ENV: Dict[str, str] = {"RAY_worker_niceness": "0"}


def niceness_warning(nice: Mapping[str, int]) -> Optional[str]:
    """The warning for actors that run below normal priority ({actor name: its nice value}), or None."""
    low = {name: value for name, value in nice.items() if value > 0}
    if not low:
        return None
    return (f"{', '.join(f'{name} runs at nice {value}' for name, value in sorted(low.items()))}: Ray starts "
            "workers at its worker_niceness (15 unless set), so while other processes use the cores the "
            "actors get a few percent of them (a step 20-40x slower). Start every node with "
            "RAY_worker_niceness=0 in its environment (`rlvr cluster up` and rlvr's embedded cluster do)")


LOOPBACK = "127.0.0.1"


def loopback_interface() -> str:
    """Name of the network interface holding 127.0.0.1 ('lo' on Linux, 'lo0' on macOS)."""
    import psutil

    for name, addrs in psutil.net_if_addrs().items():
        if any(a.address == LOOPBACK for a in addrs):
            return name
    return "lo"


def loopback_env() -> Dict[str, str]:
    """Env vars that keep torch.distributed's gloo / NCCL sockets on the loopback interface."""
    name = loopback_interface()
    return {"GLOO_SOCKET_IFNAME": name, "NCCL_SOCKET_IFNAME": name}


# Head processes an embedded cluster starts without (methods of Ray's Node). With the dashboard
# off, Ray's API server runs only its usage-stats module (rlvr turns usage stats off), yet ray.init
# waits for it to publish its address before it starts the raylet: 0.5 s of a 2.5 s start on 2
# cores, and 0.7 CPU s of imports. The autoscaler monitor has nothing to scale on one fixed node
# (0.4 CPU s); `ray start --no-monitor` is Ray's own switch for it, which ray.init lacks.
SKIPPED_HEAD_PROCESSES: Tuple[str, ...] = ("start_api_server", "start_monitor")


@contextlib.contextmanager
def _without_head_extras() -> Iterator[None]:
    """Inside the block, a head node Ray starts skips SKIPPED_HEAD_PROCESSES (a method a Ray
    version lacks is left alone: that cluster then starts as Ray would)."""
    from ray._private.node import Node

    saved = {name: getattr(Node, name) for name in SKIPPED_HEAD_PROCESSES if hasattr(Node, name)}
    for name in saved:
        setattr(Node, name, lambda self, *args, **kwargs: None)
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(Node, name, method)


def _init_on_loopback(**kwargs) -> None:
    """ray.init of an embedded cluster whose every port listens on 127.0.0.1 only, started
    without the head processes it has no use for (SKIPPED_HEAD_PROCESSES).

    Ray resolves a node IP of 127.0.0.1 to the machine's outward address unless its
    ENABLE_RAY_CLUSTER constant is off (what Ray itself does on macOS/Windows): it is switched
    off for this call only. The embedded cluster's processes are then watched by
    rlvr.controller.reaper, which ends them if this driver dies without shutting them down.
    """
    import ray
    import ray._private.ray_constants as ray_constants

    from rlvr.controller.reaper import children_now, new_children, start_watcher

    before = children_now()
    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        with _without_head_extras():
            ray.init(address="local", _node_ip_address=LOOPBACK, **kwargs)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved
    start_watcher(new_children(before))
    if ray.util.get_node_ip_address() != LOOPBACK:
        print(f"[rlvr] warning: the embedded Ray cluster's node address is {ray.util.get_node_ip_address()}, "
              "not 127.0.0.1: its ports may listen on other interfaces", file=sys.stderr, flush=True)


def shutdown_ray() -> None:
    """ray.shutdown(), then end whatever the embedded cluster left behind (its agents)."""
    import ray

    from rlvr.controller.reaper import stop_watcher

    ray.shutdown()
    if not ray.is_initialized():  # the watcher ends the cluster's processes: never under a live driver
        if _starter is not None:
            _starter.release()
        stop_watcher()


class BackgroundStart:
    """`start` (start_ray, then the placement group) on a thread, so that the driver's own
    imports and preparation run while Ray's processes come up (5-6 s on a 2-core machine);
    `result()` joins it and re-raises its error.

    The thread outlives the start: Ray starts the embedded cluster's processes with
    PR_SET_PDEATHSIG, which fires when the *thread* that started them ends (measured: a start
    thread that returned took the GCS with it, and the next actor failed to reach it). It waits
    until shutdown_ray() releases it. Ray only installs its SIGTERM handler (exit, so that the
    run's `finally` writes its summary) from the main thread: it is installed here instead.

    `variables` (node_environment) are set in this process from here until `result()` returns
    (or `release()`): the embedded cluster's processes inherit them, and the caller's thread
    runs under the same values whatever the start thread has reached.
    """

    def __init__(self, start: Callable[[], object], variables: Optional[Mapping[str, str]] = None):
        global _starter
        if _starter is not None:
            _starter.release()
        _starter = self
        self._start, self._value, self._error = start, None, None
        self._done, self._released = threading.Event(), threading.Event()
        self._environ = environ(variables or {})
        self._environ.__enter__()
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))
        self._thread = threading.Thread(target=self._run, name="rlvr-ray-start", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import logging

        # Ray warns that it set no SIGTERM handler off the main thread: this class set it.
        quiet = _DropMessage("SIGTERM handler is not set")
        logger = logging.getLogger("ray._private.worker")
        logger.addFilter(quiet)
        try:
            self._value = self._start()
        except BaseException as err:  # noqa: BLE001 - re-raised by result() in the caller's thread
            self._error = err
        finally:
            logger.removeFilter(quiet)
            self._done.set()
        self._released.wait()

    def result(self):
        """What `start` returned, once it has; its exception, raised here."""
        self._done.wait()
        self._restore_environ()
        if self._error is not None:
            raise self._error
        return self._value

    def _restore_environ(self) -> None:
        if self._environ is not None:
            block, self._environ = self._environ, None
            block.__exit__(None, None, None)

    def settle(self, timeout_s: float = 120.0) -> bool:
        """Wait for the start to end, whatever its outcome (before deciding whether Ray is up);
        False if it is still under way after timeout_s (a join that hangs: the process exits
        without it, and Ray's processes die with the thread)."""
        return self._done.wait(timeout_s)

    def release(self) -> None:
        global _starter
        self._restore_environ()
        self._released.set()
        if _starter is self:
            _starter = None


_starter: Optional[BackgroundStart] = None


class _DropMessage:
    """A logging filter that drops records whose message starts with `prefix`."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def filter(self, record) -> bool:
        return not str(record.getMessage()).startswith(self.prefix)


# Set by Ray's job supervisor in a submitted job's driver: the job's config, runtime env included.
JOB_CONFIG_ENV_VAR = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def driver_env_vars(env: Mapping[str, str], job_config_json: Optional[str]) -> Tuple[Dict[str, str], Dict[str, str]]:
    """(env vars for ray.init, the job's values kept instead): rlvr's `env` minus keys a
    submitted job's runtime env already sets.

    Ray refuses a driver runtime env that repeats a key of the job's ("Failed to merge the
    Job's runtime env"); the job's runtime env reaches every actor anyway, so its values win.
    """
    job_env = {}
    if job_config_json:
        job_env = (json.loads(job_config_json).get("runtime_env") or {}).get("env_vars") or {}
    kept = {k: job_env[k] for k in env if k in job_env}
    return {k: v for k, v in env.items() if k not in job_env}, kept


def actor_env(cluster: ClusterConfig, uses_gpus: bool = False) -> Tuple[Dict[str, str], Dict[str, str]]:
    """(the env vars rlvr gives every actor process, the submitted job's values kept instead
    of some of them: see driver_env_vars)."""
    env = dict(ACTOR_ENV)
    if not uses_gpus:
        env["DS_ACCELERATOR"] = "cpu"
        env["CUDA_VISIBLE_DEVICES"] = ""
    if cluster.address == "local":
        # Loopback only: the torch.distributed rendezvous and weight-sync stores have no
        # authentication, and Ray's own ports need not be reachable from other machines.
        env.update(loopback_env())
    return driver_env_vars(env, os.environ.get(JOB_CONFIG_ENV_VAR))


def rehearsal(cluster: ClusterConfig) -> bool:
    """An embedded cluster with declared GPUs (cluster.num_gpus set): GPU shares are placement
    only, and actors may run on CPU (how the CPU tests rehearse a GPU layout)."""
    return cluster.address == "local" and cluster.num_gpus is not None


def node_environment(cluster: ClusterConfig, uses_gpus: bool = False) -> Dict[str, str]:
    """What an embedded cluster's processes inherit from the driver (start_ray sets it while
    ray.init runs); {} when joining a cluster, whose actors get the vars by runtime env."""
    return {**actor_env(cluster, uses_gpus)[0], **NODE_ENV} if cluster.address == "local" else {}


@contextlib.contextmanager
def environ(values: Mapping[str, str]) -> Iterator[None]:
    """os.environ with `values` set inside the block, and as it was after it."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def token_auth_for_joining(environ=os.environ, home=None) -> Optional[str]:
    """Before a driver joins a running cluster: RAY_AUTH_MODE=token when unset and a token exists
    here (as `rlvr submit` does; docs/cluster.md). A head with token auth refuses a driver without
    it; one without auth accepts a driver that sends it. Where the token came from, or None."""
    from rlvr.controller.submit import enable_token_auth

    source = enable_token_auth(environ, home)
    if source:
        print(f"[rlvr] Ray token auth: RAY_AUTH_MODE=token, token from {source}", file=sys.stderr, flush=True)
    return source


def start_ray(cluster: ClusterConfig, logical_cpus: int, uses_gpus: bool = False) -> None:
    """Join `cluster.address`, or start an embedded local cluster with enough logical CPUs.

    Logical CPUs are a count for scheduling, not cores: on a 2-core laptop the embedded
    cluster advertises one per actor so trainer, rollout and reward actors all fit.
    uses_gpus: some actor asks for a GPU; otherwise every actor is kept off GPUs, and an
    embedded cluster declares none (unless cluster.num_gpus says how many).

    The actors' env vars (actor_env) reach an embedded cluster's workers through the raylet,
    which inherits the driver's environment while ray.init starts it: the job then has no
    runtime env of its own, so actors take the worker processes Ray starts with the raylet
    (two on a 2-core machine, already past `import ray`) instead of each waiting for a new one
    (measured on 2 cores: the trainer rank reaches its __init__ about 1.2 s sooner). A joined
    cluster's workers get them by the job's runtime env.
    """
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return
    env, kept = actor_env(cluster, uses_gpus)
    if kept:
        print(f"[rlvr] the job's runtime env sets {', '.join(f'{k}={v}' for k, v in kept.items())}; "
              "rlvr's defaults for these keys are not applied", file=sys.stderr, flush=True)
    with quiet_token_auth_notice():
        if cluster.address == "local":
            num_cpus: Optional[int] = cluster.num_cpus or max(logical_cpus, os.cpu_count() or 1)
            num_gpus = cluster.num_gpus if cluster.num_gpus is not None else (None if uses_gpus else 0)
            with environ(node_environment(cluster, uses_gpus)):
                _init_on_loopback(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                                  log_to_driver=True)
        else:
            token_auth_for_joining()
            ray.init(address=cluster.address, runtime_env={"env_vars": env} if env else None, log_to_driver=True)


# Ray 2.60 logs this on every ray.init while RAY_AUTH_MODE is unset; auth itself is unchanged.
TOKEN_AUTH_NOTICE = "Token authentication is enabled for this Ray cluster"
_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


@contextlib.contextmanager
def quiet_token_auth_notice() -> Iterator[None]:
    """Drop Ray's "Token authentication is enabled" warning inside the block (token auth stays
    on, as Ray sets it; a warning that token auth is *disabled* still shows)."""
    import logging

    quiet, logger = _DropMessage(TOKEN_AUTH_NOTICE), logging.getLogger(_AUTH_LOGGER)
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def reserve(layout, strategy: str, timeout_s: float = 600.0, log=print):
    """The placement group of `layout`, ready; fails at once when the cluster is too small.

    The request is compared with ray.cluster_resources() first (ResourceError naming the
    resource); a request that fits the cluster but not what is free now waits up to timeout_s.
    An autoscaling cluster is judged by the nodes it has now.
    """
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    from rlvr.controller.layout import ResourceError, check_fits

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    check_fits(layout, ray.cluster_resources(), nodes, strategy)
    group = placement_group(layout.bundles, strategy=strategy)
    log(f"waiting for a placement group of {layout.describe()} ({strategy})")
    start, ready_ref = time.monotonic(), group.ready()
    while True:
        ready, _ = ray.wait([ready_ref], timeout=15.0)
        if ready:
            return group
        waited = time.monotonic() - start
        free = {k: round(v, 2) for k, v in ray.available_resources().items() if k in ("CPU", "GPU")}
        if waited >= timeout_s:
            remove_placement_group(group)
            raise ResourceError(f"the placement group ({layout.describe()}) was not ready after "
                                f"{waited:.0f} s; free now: {free}. Other jobs hold the resources, or "
                                "bundles cannot be packed onto the nodes (see `ray status`)")
        log(f"still waiting for the placement group after {waited:.0f} s; free now: {free}")


def slot_strategy(group, bundle: int, capture_child_tasks: bool = False):
    """Scheduling strategy that puts an actor in `bundle` of `group`."""
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    return PlacementGroupSchedulingStrategy(placement_group=group, placement_group_bundle_index=bundle,
                                            placement_group_capture_child_tasks=capture_child_tasks)
