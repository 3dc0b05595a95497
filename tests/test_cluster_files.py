"""The launchers in cluster/ parse, and the KubeRay manifest gives every Ray pod a memory-backed
/dev/shm and the shared output volume, runs the job against the cluster, and uses the image
cluster/Dockerfile builds."""
import re
import subprocess
from pathlib import Path

import yaml

from rlvr.controller.cluster import ACTOR_ENV

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"


def test_shell_launchers_parse():
    for name in ("submit.sh", "slurm.sbatch"):
        out = subprocess.run(["bash", "-n", str(CLUSTER / name)], capture_output=True, text=True)
        assert out.returncode == 0, f"{name}: {out.stderr}"
    sbatch = (CLUSTER / "slurm.sbatch").read_text()
    assert "#SBATCH --ntasks-per-node=1" in sbatch and "hostname --ip-address" in sbatch
    assert '--num-cpus="$cpus" --num-gpus="$gpus"' in sbatch and "cluster.address=auto" in sbatch
    assert "export RAY_worker_niceness=0" in sbatch  # every node's actors at normal priority
    assert "rlvr\" submit" in (CLUSTER / "submit.sh").read_text()


def test_kuberay_pods_get_shm_and_the_output_volume():
    docs = list(yaml.safe_load_all((CLUSTER / "kuberay-rayjob.yaml").read_text()))
    claim = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
    job = next(d for d in docs if d["kind"] == "RayJob")["spec"]
    assert "cluster.address=auto" in job["entrypoint"] and "output_dir=/runs" in job["entrypoint"]
    runtime_env = yaml.safe_load(job.get("runtimeEnvYAML") or "{}") or {}
    assert not set(runtime_env.get("env_vars") or {}) & set(ACTOR_ENV)  # rlvr sets those itself
    groups = [job["rayClusterSpec"]["headGroupSpec"], *job["rayClusterSpec"]["workerGroupSpecs"]]
    tag = re.search(r"docker build -f cluster/Dockerfile -t (\S+) \.", (CLUSTER / "Dockerfile").read_text()).group(1)
    for group in groups:
        pod = group["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            assert container["image"] == tag
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
            assert volumes[mounts["/runs"]]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
            assert {"name": "RAY_worker_niceness", "value": "0"} in container["env"]  # actors at normal priority


def test_dockerfile_installs_rlvr_for_gpus_and_clusters():
    text = (CLUSTER / "Dockerfile").read_text()
    assert re.search(r"^FROM nvidia/cuda:\S+-devel-", text, re.M)
    assert 'pip install -e ".[gpu,cluster]"' in text
