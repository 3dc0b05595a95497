"""Checks of a loaded recipe against this machine, before Ray starts and before any run folder.

`rlvr train RECIPE --dry-run` runs them all and prints every problem; every `rlvr train` and
`rlvr submit` runs them at its start, so a missing data file, an unreachable model, GPUs that
torch cannot see or wandb without a key fail in one line each, not after a cluster started.

Each check is a function (cfg, Where) -> problem lines; a line names the key or file that is
wrong and the fix. `run_checks` runs the list and returns every problem at once. The checks
only read: they create no file or folder (the run folder included).
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Mapping, Optional, Sequence

from rlvr.config.schema import RecipeConfig


@dataclass
class Where:
    """Where the run will happen, as far as the checks need it."""

    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    home: Path = field(default_factory=Path.home)
    base_dir: Path = field(default_factory=Path.cwd)  # relative task.path / output_dir resolve here
    submit: bool = False  # a job for a Ray cluster: this machine's GPUs, HF cache and run folders do not count
    query_cluster: bool = False  # connect to a running cluster (cluster.address != local) to compare resources


# ---------------------------------------------------------------- task data

# The tools/prepare_data.py command that writes each file-backed task's split (hub sources
# as in recipes/gpu_single.yaml and recipes/gpu_math.yaml).
_PREPARE = {
    ("gsm8k", "train"): "openai/gsm8k --config main --split train",
    ("gsm8k", "eval"): "openai/gsm8k --config main --split test",
    ("math", "train"): "DigitalLearningGmbH/MATH-lighteval --kind math --split train",
    ("math", "eval"): "HuggingFaceH4/MATH-500 --kind math --split test",
}


def prepare_command(task: str, split: str, out: str) -> str:
    """The command that writes `out` for a file-backed task's split."""
    return f"python tools/prepare_data.py {_PREPARE[(task, split)]} --out {out}"


def count_records(path: Path) -> int:
    """Records in a task data file, as rlvr/tasks/loaders.py reads it (blank lines skipped;
    lines are counted, not parsed: a malformed one is reported by the run with its line)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with open(path, encoding="utf-8") as f:
        if path.suffix == ".json":
            text = f.read()
            if text.lstrip().startswith("["):
                return len(json.loads(text))
            return sum(1 for line in text.splitlines() if line.strip())
        return sum(1 for line in f if line.strip())


def _rows(path: Path, shown: str, task: str, split: Optional[str], problems: List[str]) -> Optional[int]:
    """Record count of `path`, or None after adding the problem line."""
    if not path.exists():
        fix = (f"create it: {prepare_command(task, split or 'train', shown)}" if (task, split or "train") in _PREPARE
               else "fix task.path or create the file")
        what = f"the {split} split's file" if split else "the data file"
        problems.append(f"task.path: {what} {shown} does not exist: {fix}")
        return None
    if not path.is_file():
        problems.append(f"task.path: {shown} is not a file: give a .jsonl, .json or .parquet file")
        return None
    try:
        return count_records(path)
    except (OSError, ValueError, ImportError) as err:
        problems.append(f"task.path: {shown} cannot be read ({_first_line(err)}): fix or re-create the file")
        return None


def _too_few(cfg: RecipeConfig, have: int, split: str, source: str) -> Optional[str]:
    want = cfg.task.train_size if split == "train" else cfg.task.eval_size
    if want <= have:
        return None
    also = ""
    if split == "train" and cfg.rollout.prompts_per_step > have:
        also = f" (and rollout.prompts_per_step = {cfg.rollout.prompts_per_step} to at most {have})"
    return (f"task.{split}_size = {want} but {source} holds {have} {split} records: lower task.{split}_size "
            f"to at most {have}{also}, or use a larger file")


def data_problems(cfg: RecipeConfig, where: Where) -> List[str]:
    """The task's data files exist and hold task.train_size + task.eval_size records;
    a synthetic task can make that many prompts."""
    task = cfg.task
    if task.name not in ("gsm8k", "math"):
        from rlvr.tasks.registry import get_task_prompts

        problems = []
        for split, count in (("train", task.train_size), ("eval", task.eval_size)):
            try:
                get_task_prompts(task, split, count)  # synthetic: milliseconds
            except ValueError as err:
                problems.append(f"task {task.name}: {_first_line(err)}")
        return problems
    if not task.path:
        return []  # the recipe check already refused it
    problems: List[str] = []
    if where.submit and Path(task.path).is_absolute() and not _inside(Path(task.path), where.base_dir):
        return []  # on the cluster's storage, not necessarily readable here
    if "{split}" in task.path:
        for split in ("train", "eval"):
            shown = task.path.format(split=split)
            have = _rows(where.base_dir / shown, shown, task.name, split, problems)
            if have is not None and (problem := _too_few(cfg, have, split, shown)):
                problems.append(problem)
        return problems
    have = _rows(where.base_dir / task.path, task.path, task.name, None, problems)
    if have is None:
        return problems
    if task.eval_size >= have:
        problems.append(f"task.eval_size = {task.eval_size} but {task.path} holds {have} records, so none are "
                        f"left for training: lower task.eval_size below {have}, or use a larger file")
    elif problem := _too_few(cfg, have - task.eval_size, "train",
                             f"{task.path} (minus task.eval_size = {task.eval_size})"):
        problems.append(problem)
    return problems


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------- model

def model_problems(cfg: RecipeConfig, where: Where) -> List[str]:
    """A hub id in model.path is in the HF cache, or (online) exists on the hub. (A local
    folder is checked when the recipe loads.)"""
    from rlvr.models.resolve import IGNORE_PATTERNS, is_hub_id

    value = cfg.model.path
    if not value or where.submit or not is_hub_id(value):
        return []  # a job resolves the id against the cluster's own HF cache
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        snapshot_download(value, local_files_only=True, ignore_patterns=IGNORE_PATTERNS)
        return []
    except Exception:  # noqa: BLE001 - not (completely) in the cache: ask the hub below
        pass
    if constants.HF_HUB_OFFLINE:
        return [f"model.path = {value!r} is not in the HF cache {constants.HF_HUB_CACHE} and HF_HUB_OFFLINE "
                f"is set: run `hf download {value}` where the hub is reachable (same HF_HOME), or give a "
                "local folder"]
    try:
        HfApi().model_info(value, timeout=10)
        return []
    except GatedRepoError:
        return [f"model.path = {value!r} is a gated hub repo: accept its licence on the hub and set HF_TOKEN "
                "(or `hf auth login`)"]
    except RepositoryNotFoundError:
        return [f"model.path = {value!r} is not a hub repo (or is private: set HF_TOKEN) and not a local folder"]
    except Exception as err:  # noqa: BLE001 - no network, a proxy, ...
        return [f"model.path = {value!r} is not in the HF cache and the hub cannot be reached "
                f"({_first_line(err)[:120]}): run `hf download {value}` where it can, or give a local folder"]


# ---------------------------------------------------------------- resources

def _gpu_keys(cfg: RecipeConfig) -> str:
    asked = [f"{key} = {value:g}" for key, value in (("trainer.num_gpus_per_rank", cfg.trainer.num_gpus_per_rank),
                                                     ("rollout.num_gpus_per_worker", cfg.rollout.num_gpus_per_worker))
             if value]
    return " and ".join(asked)


def gpu_problems(cfg: RecipeConfig, where: Where) -> List[str]:
    """An embedded cluster (cluster.address = local) asking for GPUs: torch sees CUDA and
    enough cards. torch is imported only when GPUs are asked for (2 s on a small machine)."""
    if where.submit or cfg.cluster.address != "local":
        return []
    from rlvr.controller.layout import layout_for

    need = layout_for(cfg).gpus
    if not need:
        return []
    import torch

    from rlvr.controller.cluster import rehearsal

    if not torch.cuda.is_available() and not rehearsal(cfg.cluster):  # declared GPUs: placement only, on CPU
        cpu = "set them to 0" + (" and cluster.colocate = false" if cfg.cluster.colocate else "")
        return [f"{_gpu_keys(cfg)} but torch {torch.__version__} has no CUDA on this machine: {cpu} to run on "
                "CPU, or run where torch sees a GPU (a CUDA build of torch and a driver); cluster.num_gpus = N "
                "rehearses the GPU layout on CPU"]
    have = cfg.cluster.num_gpus if cfg.cluster.num_gpus is not None else torch.cuda.device_count()
    if need > have:
        return [f"the run needs {need} GPU(s) ({_gpu_keys(cfg)}, trainer.num_ranks = {cfg.trainer.num_ranks}, "
                f"rollout.num_workers = {cfg.rollout.num_workers}) but this machine has {have}: lower them, "
                "set cluster.colocate = true, or use a cluster"]
    return []


def cluster_problems(cfg: RecipeConfig, where: Where) -> List[str]:
    """With where.query_cluster and a cluster address: the running cluster is reachable and
    has the CPUs and GPUs the run asks for. (Joins it as a driver for a moment; starts nothing.)"""
    if not where.query_cluster or where.submit or cfg.cluster.address == "local":
        return []
    import ray

    from rlvr.controller.cluster import token_auth_for_joining
    from rlvr.controller.layout import ResourceError, check_fits, layout_for

    token_auth_for_joining()
    try:
        ray.init(address=cfg.cluster.address, logging_level="ERROR", log_to_driver=False,
                 include_dashboard=False)
    except Exception as err:  # noqa: BLE001 - ConnectionError, auth, version mismatch
        return [f"cluster.address = {cfg.cluster.address!r}: no Ray cluster reachable ({_first_line(err)[:160]}): "
                "start one (docs/cluster.md), or use cluster.address=local for an embedded one"]
    try:
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        check_fits(layout_for(cfg), ray.cluster_resources(), nodes, cfg.cluster.placement_strategy)
        return []
    except ResourceError as err:
        return [str(err)]
    finally:
        ray.shutdown()


# Another module owns `rlvr plan`'s memory estimate; until it exists the check is skipped.
def memory_check_problems(cfg: RecipeConfig, where: Where) -> List[str]:
    """`rlvr plan`'s memory check (rlvr/plan/check.py) when a GPU is asked for."""
    if not (cfg.trainer.num_gpus_per_rank or cfg.rollout.num_gpus_per_worker):
        return []
    from rlvr.plan import memory_problems

    return list(memory_problems(cfg))


# ---------------------------------------------------------------- wandb

WANDB_HOST = "api.wandb.ai"


def _netrc_has(home: Path, environ: Mapping[str, str], host: str) -> bool:
    import netrc

    path = environ.get("NETRC") or str(home / ".netrc")
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_problems(cfg: RecipeConfig, where: Where) -> List[str]:
    """logging.wandb = true: wandb is installed and can log (an API key, or offline mode)."""
    if not cfg.logging.wandb:
        return []
    if importlib.util.find_spec("wandb") is None:
        return ["logging.wandb = true but wandb is not installed: pip install wandb, or set logging.wandb=false"]
    env = where.environ
    if env.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun") or env.get("WANDB_API_KEY"):
        return []
    host = (env.get("WANDB_BASE_URL") or f"https://{WANDB_HOST}").split("://")[-1].split("/")[0]
    if _netrc_has(where.home, env, host):
        return []
    job = " (--env WANDB_API_KEY=... for the job)" if where.submit else ""
    return [f"logging.wandb = true but wandb has no API key (no WANDB_API_KEY{job}, no {host} entry in "
            "~/.netrc) and WANDB_MODE is not offline: run `wandb login`, or set WANDB_MODE=offline (logs to "
            "./wandb; `wandb sync` later), or logging.wandb=false"]


# ---------------------------------------------------------------- run folder

def run_folder_problems(cfg: RecipeConfig, where: Where) -> List[str]:
    """output_dir is writable; a named run folder is new, or resume=true continues one there."""
    if where.submit:
        return []  # written on the cluster
    from rlvr.tracking.run_folder import unwritable

    out = Path(cfg.output_dir) if Path(cfg.output_dir).is_absolute() else where.base_dir / cfg.output_dir
    problem = f"{out} is a file, not a folder" if out.exists() and not out.is_dir() else unwritable(out)
    if problem:
        return [f"output_dir = {cfg.output_dir}: cannot write there ({problem}): choose a writable output_dir"]
    if cfg.run_name is None:
        return []
    run = out / cfg.run_name
    used = (run / "metrics.jsonl").is_file() and (run / "metrics.jsonl").stat().st_size > 0
    if used and not cfg.resume:
        return [f"run folder {run} already holds a run: continue it with resume=true, or choose another run_name"]
    if cfg.resume and not (run / "config.yaml").is_file():
        return [f"resume=true but {run} holds no run (no config.yaml): check output_dir and run_name, or drop "
                "resume=true to start it"]
    return []


# ---------------------------------------------------------------- all of them

Check = Callable[[RecipeConfig, Where], List[str]]
CHECKS: Sequence[Check] = (data_problems, model_problems, gpu_problems, memory_check_problems,
                           cluster_problems, wandb_problems, run_folder_problems)


def run_checks(cfg: RecipeConfig, where: Optional[Where] = None, checks: Sequence[Check] = CHECKS) -> List[str]:
    """Every problem of every check, one line each (empty: ready to start).

    A check that fails for a reason of its own (a bug, an odd file system) is reported on
    stderr and skipped: it must not stop a run that may well be fine.
    """
    where = where or Where()
    problems: List[str] = []
    for check in checks:
        try:
            problems += check(cfg, where)
        except Exception as err:  # noqa: BLE001 - see the docstring
            print(f"[rlvr] note: the {check.__name__} check could not run ({type(err).__name__}: "
                  f"{_first_line(err)}); skipped", file=sys.stderr, flush=True)
    return problems


def report(problems: Sequence[str], recipe: str) -> str:
    """The problems as printed: a header naming the recipe, then one line each."""
    name = Path(recipe).name if recipe else "<defaults>"
    head = f"error: recipe {name}: {len(problems)} problem(s) to fix before the run can start:"
    return "\n".join([head, *(f"  - {p}" for p in problems)])


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__

