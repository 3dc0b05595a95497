"""Start (or join) the Ray cluster with the environment every rlvr actor needs."""
from __future__ import annotations

import json
import os
import sys
from typing import Dict, Mapping, Optional, Tuple

from rlvr.config.schema import ClusterConfig

# One thread per process: on a 2-core machine two OpenMP threads per actor fight each other.
ACTOR_ENV: Dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # engine in the actor's process: 3-5 s start, not 30
    "RAY_USAGE_STATS_ENABLED": "0",
    "PYTHONUNBUFFERED": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # no "Loading weights" bars from every actor
}


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


def start_ray(cluster: ClusterConfig, logical_cpus: int) -> None:
    """Join `cluster.address`, or start an embedded local cluster with enough logical CPUs.

    Logical CPUs are a count for scheduling, not cores: on a 2-core laptop the embedded
    cluster advertises one per actor so trainer, rollout and reward actors all fit.
    """
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env = dict(ACTOR_ENV)
    if cluster.num_gpus == 0:
        env["DS_ACCELERATOR"] = "cpu"
        env["CUDA_VISIBLE_DEVICES"] = ""
    if ray.is_initialized():
        return
    env, kept = driver_env_vars(env, os.environ.get(JOB_CONFIG_ENV_VAR))
    if kept:
        print(f"[rlvr] the job's runtime env sets {', '.join(f'{k}={v}' for k, v in kept.items())}; "
              "rlvr's defaults for these keys are not applied", file=sys.stderr, flush=True)
    kwargs: Dict = {"runtime_env": {"env_vars": env} if env else None, "log_to_driver": True}
    if cluster.address == "local":
        num_cpus: Optional[int] = cluster.num_cpus or max(logical_cpus, os.cpu_count() or 1)
        ray.init(address="local", num_cpus=num_cpus, num_gpus=None if cluster.num_gpus else 0,
                 include_dashboard=False, **kwargs)
    else:
        ray.init(address=cluster.address, **kwargs)
