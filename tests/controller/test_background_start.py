"""Ray starts on a thread while the driver prepares (Controller.inputs): the cluster must live
on after the thread's start returns (Ray's processes die with the *thread* that started them),
errors must reach the caller, a SIGTERM must still end the driver through its `finally`, and a
run that fails while Ray is starting must leave no cluster behind."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from rlvr.config import load_recipe
from rlvr.controller.cluster import BackgroundStart

ROOT = Path(__file__).resolve().parents[2]

DRIVER = """
import signal, sys, time
import psutil
from rlvr.config import load_recipe
from rlvr.controller.cluster import BackgroundStart, start_ray
start = BackgroundStart(lambda: start_ray(load_recipe(None, ["cluster.num_cpus=3"]).cluster, 3))
start.result()
time.sleep(2)  # long enough for a killed GCS to be gone
import ray

@ray.remote(num_cpus=0)
def pid():
    import os
    return os.getpid()

names = {p.name() for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}
assert "gcs_server" in names and "raylet" in names, names
assert isinstance(ray.get(pid.remote(), timeout=60), int)
assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
try:
    print("up", flush=True)  # inside the try: a SIGTERM right after it must still run finally
    time.sleep(600)
finally:
    from rlvr.controller.cluster import shutdown_ray
    shutdown_ray()
    print("finally ran", flush=True)
"""


@pytest.mark.e2e
def test_a_cluster_started_on_a_thread_outlives_the_start_and_sigterm_still_runs_finally():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, start_new_session=True)
    try:
        line = driver.stdout.readline()
        assert line.strip() == "up", f"driver exited with {driver.poll()}: {driver.stderr.read()[-3000:]}"
        driver.send_signal(signal.SIGTERM)
        out, _ = driver.communicate(timeout=60)
        assert "finally ran" in out
        assert driver.returncode == signal.SIGTERM  # Ray's own handler's sys.exit(SIGTERM)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)


def test_an_error_in_the_start_reaches_the_caller_and_release_ends_the_thread():
    def start():
        raise RuntimeError("no cluster here")

    before = threading.active_count()
    started = BackgroundStart(start)
    started.settle()
    with pytest.raises(RuntimeError, match="no cluster here"):
        started.result()
    assert started._thread.is_alive()  # kept until released, as a running cluster's must be
    started.release()
    started._thread.join(5)
    assert not started._thread.is_alive() and threading.active_count() == before


def test_the_value_of_the_start_is_returned_and_a_new_start_releases_the_old():
    first = BackgroundStart(lambda: 7)
    assert first.result() == 7
    second = BackgroundStart(lambda: 8)
    first._thread.join(5)
    assert not first._thread.is_alive() and second.result() == 8
    second.release()


@pytest.mark.e2e
def test_a_run_that_fails_while_ray_is_starting_leaves_no_cluster(tmp_path, monkeypatch):
    import ray

    from rlvr.controller.loop import Controller

    def prompts(self):
        time.sleep(0.2)  # Ray is still starting on its thread
        raise ValueError("the prompts are broken")

    monkeypatch.setattr(Controller, "prompts", prompts)
    cfg = load_recipe(None, [f"output_dir={tmp_path}", "run_name=r", "cluster.num_cpus=3"])
    with pytest.raises(ValueError, match="the prompts are broken"):
        Controller(cfg).run()
    assert not ray.is_initialized()
    deadline = time.monotonic() + 20
    left = ["?"]
    while left and time.monotonic() < deadline:
        left = [p.name() for p in psutil.Process().children(recursive=True)
                if p.name() in ("gcs_server", "raylet") and p.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.5)
    assert not left


def test_settle_gives_up_after_its_timeout_and_rays_thread_warning_is_dropped(caplog):
    import logging

    def start():
        logging.getLogger("ray._private.worker").warning("SIGTERM handler is not set because current thread "
                                                         "is not the main thread.")
        logging.getLogger("ray._private.worker").warning("another warning")
        time.sleep(1.0)
        return "up"

    with caplog.at_level(logging.WARNING):
        started = BackgroundStart(start)
        assert started.settle(timeout_s=0.05) is False  # still starting
        assert started.settle(timeout_s=30) is True and started.result() == "up"
    messages = [r.getMessage() for r in caplog.records]
    assert "another warning" in messages and not any("SIGTERM" in m for m in messages)
    assert not logging.getLogger("ray._private.worker").filters  # removed once the start ended
    started.release()


def test_the_node_variables_hold_from_the_start_until_its_result_and_are_then_restored(monkeypatch):
    monkeypatch.setenv("RLVR_TEST_KEPT", "driver")
    monkeypatch.delenv("RLVR_TEST_NEW", raising=False)
    seen, go = {}, threading.Event()

    def start():
        go.wait(10)
        seen.update({k: os.environ.get(k) for k in ("RLVR_TEST_KEPT", "RLVR_TEST_NEW")})
        return "up"

    started = BackgroundStart(start, {"RLVR_TEST_KEPT": "node", "RLVR_TEST_NEW": "1"})
    # the caller's thread runs under the node's values too, however far the start has got
    assert os.environ["RLVR_TEST_KEPT"] == "node" and os.environ["RLVR_TEST_NEW"] == "1"
    go.set()
    assert started.result() == "up"
    assert seen == {"RLVR_TEST_KEPT": "node", "RLVR_TEST_NEW": "1"}
    assert os.environ["RLVR_TEST_KEPT"] == "driver" and "RLVR_TEST_NEW" not in os.environ
    started.release()  # a second restore changes nothing
    assert os.environ["RLVR_TEST_KEPT"] == "driver" and "RLVR_TEST_NEW" not in os.environ


def test_a_start_released_without_its_result_restores_the_variables(monkeypatch):
    monkeypatch.delenv("RLVR_TEST_NEW", raising=False)
    started = BackgroundStart(lambda: None, {"RLVR_TEST_NEW": "1"})
    started.settle()
    assert os.environ["RLVR_TEST_NEW"] == "1"
    started.release()  # a run that failed before joining the start (end_cluster)
    assert "RLVR_TEST_NEW" not in os.environ
