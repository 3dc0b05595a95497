"""cluster.threads_per_actor: the threads each actor gets, and the thread count an actor reports."""
import pytest
import torch

from rlvr.controller.cluster import ACTOR_ENV
from rlvr.controller.threads import actor_threads


def test_auto_gives_the_synchronous_stage_the_free_cores_and_overlap_one_thread():
    # synchronous: one stage computes at a time; its actors share the node's cores
    assert actor_threads("auto", overlap=False, trainer_ranks=1, rollout_workers=1, cores=2) == 2
    assert actor_threads("auto", overlap=False, trainer_ranks=2, rollout_workers=1, cores=8) == 4
    assert actor_threads("auto", overlap=False, trainer_ranks=1, rollout_workers=3, cores=8) == 2  # 8 // 3
    assert actor_threads("auto", overlap=False, trainer_ranks=4, rollout_workers=4, cores=2) == 1  # never 0
    assert actor_threads("AUTO", overlap=True, trainer_ranks=1, rollout_workers=1, cores=16) == 1  # stages at once
    assert actor_threads("3", overlap=True, trainer_ranks=1, rollout_workers=1, cores=2) == 3  # asked for: given
    assert actor_threads(1, overlap=False, trainer_ranks=1, rollout_workers=1, cores=64) == 1  # today's default


@pytest.mark.parametrize("bad", ["0", "-2", "many", "1.5"])
def test_a_bad_setting_names_the_key(bad):
    with pytest.raises(ValueError, match="cluster.threads_per_actor"):
        actor_threads(bad, overlap=False, trainer_ranks=1, rollout_workers=1, cores=2)


def test_actors_wait_passively_so_idle_threads_do_not_spin():
    assert ACTOR_ENV["OMP_WAIT_POLICY"] == "PASSIVE"
    assert ACTOR_ENV["OMP_NUM_THREADS"] == "1"  # the default stays one thread


def test_rollout_worker_runs_with_and_reports_its_threads(monkeypatch):
    import rlvr.rollout.worker as worker_module

    class Engine:
        can_sleep = False

        def weight_group_size(self):
            return 1

    monkeypatch.setattr(worker_module, "make_engine", lambda *a, **k: Engine())
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # the worker sets them: restored after the test
        monkeypatch.setenv(key, "1")
    before = torch.get_num_threads()
    try:
        worker = worker_module.RolloutWorker("unused", num_threads=2)
        assert worker.ready_info()["num_threads"] == torch.get_num_threads() == 2
        worker = worker_module.RolloutWorker("unused")
        assert worker.ready_info()["num_threads"] == 1  # the default
    finally:
        torch.set_num_threads(before)
