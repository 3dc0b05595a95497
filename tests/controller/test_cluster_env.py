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


def test_actors_below_normal_priority_are_named_in_one_warning():
    from rlvr.controller.cluster import NODE_ENV, niceness_warning

    assert NODE_ENV == {"RAY_worker_niceness": "0"}  # what the embedded cluster and `rlvr cluster up` start nodes with
    assert niceness_warning({"rollout worker 0": 0, "rollout worker 1": 0}) is None
    warning = niceness_warning({"rollout worker 1": 15, "rollout worker 0": 0, "rollout worker 2": 15})
    assert warning.startswith("rollout worker 1 runs at nice 15, rollout worker 2 runs at nice 15: ")
    assert "RAY_worker_niceness=0" in warning


def test_a_driver_joining_a_cluster_sends_the_token_when_one_exists_here(tmp_path):
    from rlvr.controller.cluster import token_auth_for_joining

    environ = {}
    assert token_auth_for_joining(environ, home=tmp_path) is None and environ == {}  # no token: as it was
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("secret\n")
    assert token_auth_for_joining(environ, home=tmp_path) == str(tmp_path / ".ray" / "auth_token")
    assert environ == {"RAY_AUTH_MODE": "token"}
    assert token_auth_for_joining({"RAY_AUTH_MODE": "disabled"}, home=tmp_path) is None  # the user's choice stays
