"""How rlvr's actor env vars meet a submitted job's runtime env (Ray refuses repeated keys)."""
import json

from rlvr.controller.cluster import ACTOR_ENV, driver_env_vars


def test_outside_a_job_every_actor_env_var_goes_to_ray_init():
    assert driver_env_vars(ACTOR_ENV, None) == (ACTOR_ENV, {})


def test_keys_the_job_sets_are_left_to_the_job():
    job = json.dumps({"runtime_env": {"working_dir": "gcs://pkg.zip",
                                      "env_vars": {"OMP_NUM_THREADS": "4", "HF_TOKEN": "t"}},
                      "metadata": {}})
    env, kept = driver_env_vars({"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}, job)
    assert env == {"TOKENIZERS_PARALLELISM": "false"}
    assert kept == {"OMP_NUM_THREADS": "4"}


def test_a_job_without_env_vars_takes_them_all():
    for runtime_env in ({}, {"env_vars": None}, None):
        job = json.dumps({"runtime_env": runtime_env})
        assert driver_env_vars({"A": "1"}, job) == ({"A": "1"}, {})
