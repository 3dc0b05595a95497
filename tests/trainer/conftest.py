"""Fixtures for trainer tests: a tiny HF model, a local Ray cluster shared per module, and
in-process PolicyTrainer ranks."""
import os
import socket

import pytest


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from rlvr.models.tiny import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny_model")))


@pytest.fixture(scope="module")
def ray_cluster():
    """A local 2-CPU Ray cluster, started once per test module."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=True)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def make_rank():
    """Factory of in-process PolicyTrainer ranks (world size 1, gloo, no Ray):
    make(model_dir, trainer_cfg, algorithm_cfg=None, dtype="float32", cls=PolicyTrainer): `cls` may be
    a subclass (rlvr.trainer.with_engine.TrainerWithEngine).

    The torch.distributed group is never destroyed: DeepSpeed can set one up only once per
    process, so every in-process trainer module shares the first. The env vars a rank sets
    (RANK, MASTER_PORT, ...) are restored after the module.
    """
    from rlvr.trainer.policy_trainer import PolicyTrainer

    saved = dict(os.environ)

    def make(model_dir, trainer_cfg, algorithm_cfg=None, dtype="float32", cls=PolicyTrainer):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return cls(0, 1, "127.0.0.1", port, str(model_dir), dict(trainer_cfg),
                   dict(algorithm_cfg or {}), dtype=dtype)

    yield make
    os.environ.clear()
    os.environ.update(saved)
