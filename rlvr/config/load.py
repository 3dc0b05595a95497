"""Load a recipe YAML, merge `key=value` overrides, and check it before any actor starts.

Every error names the recipe file and the key: `recipe quickstart.yaml: trainer.zero_stage = 5
must be within [0, 3]`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlvr.config.errors import RecipeError
from rlvr.config.schema import RecipeConfig



# (key, low, high): inclusive numeric ranges; None = unbounded on that side.
_RANGES = [
    ("steps", 0, None), ("eval_every", 0, None), ("checkpoint_every", 0, None), ("checkpoint_keep_last", 0, None),
    ("model.hidden_size", 8, None), ("model.num_layers", 1, None), ("model.num_heads", 1, None),
    ("warmup.steps", 0, None), ("warmup.batch_size", 1, None), ("warmup.lr", 0.0, None),
    ("warmup.target_accuracy", 0.0, 1.0), ("warmup.check_every", 1, None),
    ("warmup.validation_size", 1, None),
    ("eval.samples_per_prompt", 0, None), ("eval.temperature", 0.0, None),
    ("eval.audit_prompts", 0, None),
    ("task.num_digits", 1, 6), ("task.train_size", 1, None), ("task.sft_both_rate", 0.0, 1.0), ("task.eval_size", 1, None),
    ("reward.num_workers", 1, None), ("reward.timeout_s", 0.01, None), ("reward.num_gpus_per_worker", 0.0, 1.0),
    ("rollout.num_workers", 1, None), ("rollout.prompts_per_step", 1, None),
    ("rollout.samples_per_prompt", 1, None), ("rollout.max_new_tokens", 1, None),
    ("rollout.top_p", 0.0, 1.0),
    ("rollout.gpu_memory_utilization", 0.0, 1.0), ("rollout.max_model_len", 8, None),
    ("rollout.num_gpus_per_worker", 0.0, 1.0), ("rollout.tensor_parallel_size", 1, None),
    ("trainer.num_gpus_per_rank", 0.0, 1.0),
    ("rollout.sync_bucket_mb", 0.001, None),
    ("trainer.num_ranks", 1, None), ("trainer.zero_stage", 0, 3), ("trainer.lr", 0.0, None),
    ("trainer.weight_decay", 0.0, None), ("trainer.grad_clip", 0.0, None),
    ("trainer.micro_batch_size", 1, None), ("trainer.updates_per_step", 1, None),
    ("trainer.ppo_epochs", 1, None), ("trainer.minibatches_per_step", 1, None),
    ("algorithm.clip_eps", 1e-6, 0.999999), ("algorithm.kl_coef", 0.0, None),
    ("algorithm.clip_eps_low", 1e-6, 0.999999), ("algorithm.clip_eps_high", 1e-6, None),
    ("algorithm.clip_ratio_c", 0.0, None), ("algorithm.loss_agg_constant", 0, None),
    ("algorithm.entropy_coef", 0.0, None), ("algorithm.tis_cap", 0.0, None),
    ("cluster.gpu_memory_gb", 1.0, None),
    ("cluster.max_restarts", 0, None), ("cluster.restart_timeout_s", 0.001, None), ("cluster.stage_timeout_s", 0.0, None),
]
_CHOICES = [
    ("model.dtype", {"float32", "bfloat16"}),  # float16 would need loss scaling in the trainer
    ("rollout.backend", {"hf", "vllm"}),
    ("rollout.weight_sync", {"auto", "in_process", "collective", "ipc", "object_store"}),
    ("trainer.backend", {"auto", "gloo", "nccl"}),
    ("algorithm.name", {"grpo", "dr_grpo", "rloo", "reinforce", "reinforce_baseline", "reinforce_pp"}),
    ("algorithm.loss", {"ppo_clip", "pg"}),
    ("algorithm.loss_agg", {"token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "dr_grpo"}),
    ("algorithm.kl_estimator", {"k1", "k2", "k3"}),
    ("algorithm.kl_in", {"loss", "reward"}),
    ("cluster.placement_strategy", {"PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"}),
]


# Which ground-truth verifiers can read each shipped task's gold answers.
_TASK_VERIFIERS = {
    "arithmetic": {"arithmetic", "arithmetic_graded"},
    "constraints": {"constraints"},
    "gsm8k": {"math"},
    "math": {"math"},
}


def load_recipe(path: Optional[str], overrides: Sequence[str] = ()) -> RecipeConfig:
    """The validated recipe: schema defaults <- YAML file <- dotlist overrides."""
    where = f"recipe {Path(path).name}" if path else "recipe <defaults>"
    schema = OmegaConf.structured(RecipeConfig)
    try:
        layers = [schema]
        if path:
            if not Path(path).is_file():
                raise RecipeError(f"recipe file {path} does not exist")
            layers.append(_load_file(path))
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise RecipeError(f"{where}: override {bad[0]!r} must look like key=value")
        layers.append(OmegaConf.from_dotlist(list(overrides)))
        merged = OmegaConf.merge(*layers)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise RecipeError(f"{where}: {key}: {_first_line(err)}") from None
    except yaml.YAMLError as err:  # a recipe or an override value that is not valid YAML
        raise RecipeError(f"{where}: not valid YAML ({_first_line(err)}); quote override values "
                          "that contain braces or colons: key='value'") from None
    cfg: RecipeConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    from rlvr.plugins import PluginError, import_plugins

    try:  # before the checks: a plug-in's designs and verifiers are then known by name
        import_plugins(cfg.plugins, "plugins")
    except PluginError as err:
        raise RecipeError(f"{where}: {err}") from None
    if cfg.rollout.weight_sync == "auto":
        # written out so config.yaml (and a resume's drift check) shows the mode that ran
        cfg.rollout.weight_sync = default_weight_sync(cfg.cluster.colocate, cfg.rollout.tensor_parallel_size,
                                                      cfg.rollout.in_trainer)
    from rlvr.rollout.engine_options import resolve_rollout_options, rollout_option_problems

    resolve_rollout_options(cfg)  # auto engine options written out, as weight_sync above
    for problem in rollout_option_problems(cfg)[:1]:
        raise RecipeError(f"{where}: {problem}")
    _check(cfg, where)
    if cfg.algorithm.loss_agg == "dr_grpo" and cfg.algorithm.loss_agg_constant == 0:
        # Dr. GRPO's constant is the generation budget; written out so config.yaml shows it.
        cfg.algorithm.loss_agg_constant = cfg.rollout.max_new_tokens
    return cfg


def _load_file(path: str):
    """The recipe file as an OmegaConf node; a YAML syntax error names the file, line and column."""
    try:
        return OmegaConf.load(path)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(err, "problem", None) or _first_line(err)
        raise RecipeError(f"recipe file {path}{at}: not valid YAML ({what}): check the indentation there "
                          "(spaces, not tabs; keys of one section aligned) and quote values that contain "
                          "': ', ' #', braces or brackets") from None


def default_weight_sync(colocate: bool, tensor_parallel_size: int = 1, in_trainer: bool = False) -> str:
    """`rollout.weight_sync = auto`: an engine inside trainer rank 0's process (rollout.in_trainer)
    copies its weights in memory; an engine on its trainer rank's GPU takes weights by CUDA IPC
    handle (an NCCL group cannot hold two ranks on one GPU, and IPC moves nothing off the card);
    engines on GPUs of their own get the broadcast; colocated multi-GPU engines, the object store."""
    if in_trainer:
        return "in_process"
    if not colocate:
        return "collective"
    return "ipc" if tensor_parallel_size == 1 else "object_store"


# Mappings compared as one value: a parameter set on one side only is still a change.
WHOLE_VALUES = ("reward.design.", "cluster.custom_resources.")


def _flatten(node: Any, prefix: str = "") -> Dict[str, Any]:
    if isinstance(node, dict) and prefix not in WHOLE_VALUES:
        out: Dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def recipe_drift(stored_yaml: str, current_yaml: str, ignore: Iterable[str] = ()) -> List[str]:
    """`key: stored -> current` for keys in both resolved recipes whose values differ (keys
    only one side has, e.g. a schema field added since, are ignored, as are `ignore`)."""
    stored, current = _flatten(yaml.safe_load(stored_yaml)), _flatten(yaml.safe_load(current_yaml))
    skip = set(ignore)
    return [f"{key}: {stored[key]!r} -> {current[key]!r}" for key in sorted(stored.keys() & current.keys())
            if key not in skip and stored[key] != current[key]]


def to_yaml(cfg: RecipeConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0]


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _check(cfg: RecipeConfig, where: str) -> None:
    for key, low, high in _RANGES:
        value = _get(cfg, key)
        if value is None:  # an optional key left unset
            continue
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"within [{low}, {high}]" if high is not None else f">= {low}"
            raise RecipeError(f"{where}: {key} = {value} must be {bounds}")
    for key, choices in _CHOICES:
        if _get(cfg, key) not in choices:
            raise RecipeError(f"{where}: {key} = {_get(cfg, key)!r} must be one of {sorted(choices)}")
    if cfg.model.path is None and not cfg.model.build_tiny:
        raise RecipeError(f"{where}: model.path is empty and model.build_tiny is false: set one")
    if cfg.task.apply_chat_template and cfg.model.path is None:
        raise RecipeError(f"{where}: task.apply_chat_template = true, but the built tiny model's character "
                          "tokenizer has no chat template: set it false or set model.path to a chat model")
    if cfg.model.path is not None:
        from rlvr.models.resolve import check_model_path

        problem = check_model_path(cfg.model.path)  # local disk only: a hub id is fetched at run time
        if problem:
            raise RecipeError(f"{where}: {problem}")
    if cfg.model.hidden_size % cfg.model.num_heads:
        raise RecipeError(f"{where}: model.hidden_size = {cfg.model.hidden_size} must be divisible by model.num_heads = {cfg.model.num_heads}")
    if cfg.rollout.samples_per_prompt < 2:
        raise RecipeError(f"{where}: rollout.samples_per_prompt = {cfg.rollout.samples_per_prompt} must be >= 2 (GRPO compares samples within a group)")
    if cfg.rollout.top_p != 1.0:
        raise RecipeError(f"{where}: rollout.top_p = {cfg.rollout.top_p}: only 1.0 is supported for "
                          "training (behaviour log-probs are the untruncated policy's)")
    batch = cfg.rollout.prompts_per_step * cfg.rollout.samples_per_prompt
    if cfg.trainer.num_ranks > batch:
        raise RecipeError(f"{where}: trainer.num_ranks = {cfg.trainer.num_ranks} exceeds the "
                          f"{batch} sequences of a step (prompts_per_step x samples_per_prompt)")
    actors = cfg.trainer.num_ranks + cfg.rollout.num_workers + cfg.reward.num_workers
    if cfg.cluster.address == "local" and cfg.cluster.num_cpus is not None and cfg.cluster.num_cpus < actors:
        raise RecipeError(f"{where}: cluster.num_cpus = {cfg.cluster.num_cpus} is fewer than the {actors} "
                          "actors (one logical CPU each); leave it unset or raise it")
    if cfg.rollout.prompts_per_step > cfg.task.train_size:
        raise RecipeError(f"{where}: rollout.prompts_per_step = {cfg.rollout.prompts_per_step} exceeds "
                          f"task.train_size = {cfg.task.train_size}")
    if (cfg.model.path is None and cfg.warmup.enabled and cfg.warmup.validation_size is not None
            and cfg.warmup.validation_size >= cfg.task.train_size):
        raise RecipeError(f"{where}: warmup.validation_size = {cfg.warmup.validation_size} must be below "
                          f"task.train_size = {cfg.task.train_size} (the warm-up trains on the rest)")
    if "{question}" not in cfg.task.prompt_template:
        raise RecipeError(f"{where}: task.prompt_template = {cfg.task.prompt_template!r} must contain {{question}}")
    if cfg.algorithm.tis_cap > 0 and not cfg.algorithm.recompute_logprobs:
        raise RecipeError(f"{where}: algorithm.tis_cap = {cfg.algorithm.tis_cap} needs "
                          "algorithm.recompute_logprobs = true (the weight is pi_trainer / pi_engine)")
    if cfg.rollout.overlap and cfg.algorithm.recompute_logprobs and not cfg.algorithm.tis_cap:
        # measured on the quickstart: uncorrected one-step staleness cost 0.15 held-out accuracy
        raise RecipeError(f"{where}: rollout.overlap = true trains on samples one update old, and with "
                          "algorithm.recompute_logprobs = true and no algorithm.tis_cap nothing corrects for "
                          "it: set algorithm.tis_cap (e.g. 2.0) or algorithm.recompute_logprobs = false")
    if cfg.algorithm.tis_cap and cfg.algorithm.tis_cap < 1.0:
        raise RecipeError(f"{where}: algorithm.tis_cap = {cfg.algorithm.tis_cap} must be 0 (off) or >= 1 "
                          "(a cap below 1 down-weights even on-policy tokens)")
    if cfg.algorithm.clip_ratio_c and cfg.algorithm.clip_ratio_c <= 1.0:
        raise RecipeError(f"{where}: algorithm.clip_ratio_c = {cfg.algorithm.clip_ratio_c} must be 0 (off) "
                          "or > 1 (the dual clip caps the loss of negative-advantage tokens at -c * A)")
    if cfg.trainer.updates_per_step > 1 and cfg.trainer.ppo_epochs > 1:
        raise RecipeError(f"{where}: trainer.updates_per_step is an alias of trainer.ppo_epochs: set only "
                          "trainer.ppo_epochs")
    if not cfg.rollout.temperature > 0:
        raise RecipeError(f"{where}: rollout.temperature = {cfg.rollout.temperature} must be > 0: training "
                          "samples (greedy rollouts give every group one answer); eval.temperature may be 0")
    _check_resources(cfg, where)
    _check_custom_resources(cfg.cluster.custom_resources, where)
    _check_reward(cfg, where)
    from rlvr.tasks.registry import COMMON_TASK_KEYS, TASK_KEYS, TASKS, unused_task_keys

    if cfg.task.name not in TASKS:
        raise RecipeError(f"{where}: task.name = {cfg.task.name!r} is not a task; choose one of {sorted(TASKS)}")
    unused = unused_task_keys(cfg.task)
    if unused:  # silently accepted, it would also change the warm-up cache's hash
        reads = [k for k in (*TASK_KEYS[cfg.task.name], *COMMON_TASK_KEYS) if k != "name"]
        raise RecipeError(f"{where}: {', '.join('task.' + k for k in unused)} "
                          f"{'is' if len(unused) == 1 else 'are'} not used by task {cfg.task.name} "
                          f"(it reads: {', '.join(reads)})")
    allowed = _TASK_VERIFIERS.get(cfg.task.name)
    shipped = set().union(*_TASK_VERIFIERS.values())  # a plug-in's verifier may check any task
    if allowed and cfg.reward.verifier in shipped and cfg.reward.verifier not in allowed:
        raise RecipeError(f"{where}: reward.verifier = {cfg.reward.verifier!r} cannot check task "
                          f"{cfg.task.name!r} answers; use one of {sorted(allowed)}")
    if cfg.task.name in ("gsm8k", "math") and not cfg.task.path:
        raise RecipeError(f"{where}: task.name = {cfg.task.name!r} reads a local JSONL file: set task.path")


ROLES = ("trainer", "rollout", "reward")
RAY_RESOURCES = {"CPU", "GPU", "memory", "object_store_memory"}


def _check_custom_resources(custom: Dict[str, Dict[str, float]], where: str) -> None:
    """cluster.custom_resources: {role: {resource name: amount > 0}}, roles of this run only, and
    no resource Ray itself counts (the layout sets CPU and GPU)."""
    for role, resources in custom.items():
        if role not in ROLES:
            raise RecipeError(f"{where}: cluster.custom_resources.{role}: not a role; use {', '.join(ROLES)}")
        for name, amount in (resources or {}).items():
            key = f"cluster.custom_resources.{role}.{name}"
            if name in RAY_RESOURCES or name.startswith("node:"):
                raise RecipeError(f"{where}: {key}: {name} is Ray's own resource, set by the layout; "
                                  "name a custom resource the pinned nodes declare (ray start --resources)")
            if not isinstance(amount, (int, float)) or isinstance(amount, bool) or not amount > 0:
                raise RecipeError(f"{where}: {key} = {amount!r} must be a number > 0")


def _check_resources(cfg: RecipeConfig, where: str) -> None:
    """GPU shares, tensor parallelism and colocation that no cluster could place sensibly."""
    from rlvr.controller.threads import actor_threads

    try:
        actor_threads(cfg.cluster.threads_per_actor, cfg.rollout.overlap, 1, 1)
    except ValueError as err:
        raise RecipeError(f"{where}: {err}") from None
    t, r, tp = cfg.trainer.num_gpus_per_rank, cfg.rollout.num_gpus_per_worker, cfg.rollout.tensor_parallel_size
    _check_in_trainer(cfg, where)
    if tp > 1 and cfg.rollout.backend != "vllm":
        raise RecipeError(f"{where}: rollout.tensor_parallel_size = {tp} needs rollout.backend = vllm")
    if tp > 1 and r == 0:
        raise RecipeError(f"{where}: rollout.tensor_parallel_size = {tp} shards an engine over GPUs: "
                          "set rollout.num_gpus_per_worker (the GPU share of each shard)")
    if cfg.cluster.colocate:
        if t == 0 or r == 0:
            raise RecipeError(f"{where}: cluster.colocate = true shares GPUs between trainer and rollout: "
                              "set both trainer.num_gpus_per_rank and rollout.num_gpus_per_worker > 0")
        if t + r > 1.0 + 1e-9:
            raise RecipeError(f"{where}: trainer.num_gpus_per_rank + rollout.num_gpus_per_worker = {t + r:g} "
                              "exceeds one GPU with cluster.colocate = true: lower them so they sum to <= 1")
        if cfg.rollout.weight_sync == "collective":
            # NCCL cannot join two ranks on one GPU; the same-GPU hand-over is CUDA IPC.
            raise RecipeError(f"{where}: rollout.weight_sync = collective with cluster.colocate = true puts trainer "
                              "rank 0 and an engine on one GPU, which an NCCL group cannot hold: set "
                              "rollout.weight_sync = ipc (or auto)")
        if cfg.rollout.weight_sync == "ipc" and tp > 1:
            raise RecipeError(f"{where}: rollout.weight_sync = ipc with rollout.tensor_parallel_size = {tp}: the "
                              "ipc hand-over feeds one-GPU engines only; set rollout.weight_sync = object_store")
    else:
        if cfg.rollout.weight_sync == "ipc" and (t > 0 or r > 0):
            raise RecipeError(f"{where}: rollout.weight_sync = ipc hands weights over on one GPU, but without "
                              "cluster.colocate = true engines get GPUs of their own: set cluster.colocate = true "
                              "or rollout.weight_sync = collective")
        # Separate bundles with fractions may be packed onto one card by Ray.
        if tp > 1 and r < 1:
            raise RecipeError(f"{where}: rollout.tensor_parallel_size = {tp} with rollout.num_gpus_per_worker "
                              f"= {r:g}: shards need distinct GPUs; set num_gpus_per_worker = 1 or "
                              "cluster.colocate = true")
        if cfg.trainer.num_ranks > 1 and 0 < t < 1:
            raise RecipeError(f"{where}: trainer.num_ranks = {cfg.trainer.num_ranks} with trainer.num_gpus_per_rank "
                              f"= {t:g}: ranks need distinct GPUs (NCCL); set num_gpus_per_rank = 1 or "
                              "cluster.colocate = true")
    declared = cfg.cluster.num_gpus
    if declared is not None:
        if declared < 0:
            raise RecipeError(f"{where}: cluster.num_gpus = {declared} must be >= 0 (or unset to detect)")
        if cfg.cluster.address != "local":
            raise RecipeError(f"{where}: cluster.num_gpus declares an embedded (cluster.address=local) "
                              f"cluster's GPUs; with cluster.address = {cfg.cluster.address!r} unset it and "
                              "give actors GPUs with trainer.num_gpus_per_rank / rollout.num_gpus_per_worker")
        if declared > 0 and t == 0 and r == 0 and cfg.reward.num_gpus_per_worker == 0:
            raise RecipeError(f"{where}: cluster.num_gpus = {declared} declares GPUs but no actor asks for one: "
                              "set trainer.num_gpus_per_rank, rollout.num_gpus_per_worker and/or "
                              "reward.num_gpus_per_worker")


def _check_in_trainer(cfg: RecipeConfig, where: str) -> None:
    """rollout.in_trainer (one hf engine inside trainer rank 0's process) and the keys it rules out;
    weight_sync = in_process only with it."""
    rollout = cfg.rollout
    if not rollout.in_trainer:
        if rollout.weight_sync == "in_process":
            raise RecipeError(f"{where}: rollout.weight_sync = in_process copies weights into an engine inside "
                              "trainer rank 0's process: set rollout.in_trainer = true, or another weight_sync")
        return
    conflicts = [
        (rollout.backend != "hf", f"rollout.backend = {rollout.backend}: only the hf engine runs inside the "
                                  "trainer's process (vLLM starts its own processes and memory pool); set rollout.backend = hf"),
        (rollout.num_workers != 1, f"rollout.num_workers = {rollout.num_workers}: the trainer's process holds one "
                                   "engine; set rollout.num_workers = 1"),
        (rollout.overlap, "rollout.overlap = true: generation and training in one process cannot overlap; set "
                          "rollout.overlap = false"),
        (rollout.num_gpus_per_worker > 0, f"rollout.num_gpus_per_worker = {rollout.num_gpus_per_worker:g}: the engine "
                                          "uses trainer rank 0's device; set it to 0 (trainer.num_gpus_per_rank gives the GPU)"),
        (cfg.cluster.colocate, "cluster.colocate = true places engines in bundles of their own on shared cards; "
                               "set cluster.colocate = false"),
        (rollout.weight_sync != "in_process", f"rollout.weight_sync = {rollout.weight_sync}: the engine takes rank "
                                              "0's weights in memory; set rollout.weight_sync = in_process (or auto)"),
    ]
    for conflict, why in conflicts:
        if conflict:
            raise RecipeError(f"{where}: rollout.in_trainer = true runs the rollout engine inside trainer rank 0's "
                              f"process, but {why}")


def _check_reward(cfg: RecipeConfig, where: str) -> None:
    """Build the design and look up the verifier once, so a typo fails before actors start."""
    from rlvr.rewards.designs import build_design
    from rlvr.rewards.errors import RewardConfigError

    try:
        build_design(cfg.reward.design)
    except RewardConfigError as err:
        raise RecipeError(f"{where}: {err}") from None
    from rlvr.rewards.verifiers import get_verifier

    try:
        get_verifier(cfg.reward.verifier)
    except RewardConfigError as err:
        raise RecipeError(f"{where}: {err}") from None
    from rlvr.rewards.verifiers import runs_in_process

    if cfg.reward.colocate and not runs_in_process(cfg.reward.verifier):
        raise RecipeError(f"{where}: reward.colocate = true scores inside the rollout worker, but verifier "
                          f"{cfg.reward.verifier!r} runs in sandboxed processes with timeouts (slow or unsafe "
                          "in-process): set reward.colocate = false")


def iter_keys(cfg: RecipeConfig) -> Iterable[str]:
    """Every dotted key of the schema (used by tests that check each field is documented)."""
    def walk(node, prefix):
        for k, v in node.items():
            if OmegaConf.is_dict(v) and k != "design":
                yield from walk(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}"
    return walk(OmegaConf.structured(cfg), "")
