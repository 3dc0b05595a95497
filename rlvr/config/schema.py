"""The one recipe schema: OmegaConf structured dataclasses; defaults live here, once.

Every field carries a one-line docstring-comment saying what it means. A recipe YAML sets
any subset of these; `rlvr train RECIPE key=value ...` merges dotlist overrides on top.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass
class ModelConfig:
    path: Optional[str] = None  # HF model folder; None = build the tiny model (no downloads)
    build_tiny: bool = True  # build a tiny Llama-architecture LM + char tokenizer when `path` is None
    hidden_size: int = 64  # tiny model width
    num_layers: int = 2  # tiny model depth
    num_heads: int = 2  # tiny model attention heads (vLLM CPU needs head size hidden/heads in {32, 64, 80, ...})
    intermediate_size: int = 256  # tiny model MLP width
    dtype: str = "float32"  # float32 | bfloat16: engines run in it; bfloat16 makes the trainer DeepSpeed bf16 mixed precision (fp32 master weights)


@dataclass
class WarmupConfig:
    enabled: bool = True  # SFT warm-up of the tiny model before RL (gives a non-trivial initial policy)
    steps: int = 300  # SFT optimizer steps
    batch_size: int = 64  # SFT examples per step
    lr: float = 3.0e-3  # SFT AdamW learning rate
    target_accuracy: float = 0.3  # stop SFT once greedy held-out accuracy reaches this
    check_every: int = 25  # measure greedy accuracy every N SFT steps
    seed: int = 0  # SFT data / init seed


@dataclass
class TaskConfig:
    name: str = "arithmetic"  # task registry name (arithmetic)
    seed: int = 0  # prompt generation seed (train and eval splits are disjoint)
    num_digits: int = 2  # digits per operand
    operations: List[str] = field(default_factory=lambda: ["+"])  # operators drawn per prompt
    train_size: int = 2000  # number of training prompts
    eval_size: int = 128  # held-out prompts for greedy ground-truth accuracy
    path: Optional[str] = None  # JSONL data file for file-backed tasks ("{split}" in it picks per-split files)
    constraint_names: Optional[List[str]] = None  # constraints task: restrict the constraint pool (None = all)
    sft_both_rate: float = 1.0  # constraints task: fraction of warm-up targets meeting both constraints (the rest meet only the first)
    prompt_template: str = "{question}"  # how a task's question becomes the prompt text (e.g. add a \\boxed{} instruction)


@dataclass
class RewardConfig:
    verifier: str = "arithmetic"  # ground-truth verifier name
    design: Dict[str, Any] = field(default_factory=lambda: {"name": "ground_truth"})  # proxy reward design (name + params)
    num_workers: int = 1  # RewardWorker actors
    timeout_s: float = 5.0  # per-sample verifier timeout


@dataclass
class RolloutConfig:
    backend: str = "hf"  # hf (transformers generate) | vllm
    num_workers: int = 1  # RolloutWorker actors
    prompts_per_step: int = 16  # prompts sampled per RL step
    samples_per_prompt: int = 8  # G: samples per prompt (the GRPO group)
    max_new_tokens: int = 8  # response length cap
    temperature: float = 1.0  # sampling temperature (training needs 1.0: the PPO ratio uses temperature-1 log-probs)
    top_p: float = 1.0  # nucleus sampling
    max_model_len: int = 256  # vLLM: longest prompt + response in tokens
    gpu_memory_utilization: float = 0.5  # vLLM on GPU only


@dataclass
class TrainerConfig:
    num_ranks: int = 1  # PolicyTrainer actors in the torch.distributed group
    zero_stage: int = 0  # DeepSpeed ZeRO stage 0-3
    lr: float = 2.0e-4  # policy learning rate
    weight_decay: float = 0.0  # AdamW weight decay
    grad_clip: float = 1.0  # max grad norm
    micro_batch_size: int = 64  # sequences per forward/backward per rank
    updates_per_step: int = 1  # optimizer steps per RL batch (>1 makes the PPO ratio clip matter)
    backend: str = "auto"  # torch.distributed backend: auto (gloo on CPU, nccl on GPU) | gloo | nccl
    gradient_checkpointing: bool = False  # recompute activations in backward (HF, non-reentrant): less memory, one more forward


@dataclass
class AlgorithmConfig:
    name: str = "grpo"  # advantage estimator / loss (grpo)
    normalize_std: bool = True  # divide group advantages by the group std (GRPO); False = Dr. GRPO style
    clip_eps: float = 0.2  # PPO ratio clip epsilon
    kl_coef: float = 0.0  # KL(policy || frozen reference) coefficient; 0 = no reference model
    entropy_coef: float = 0.0  # entropy bonus
    recompute_logprobs: bool = True  # old log-probs of the PPO ratio from the trainer's own pre-update policy, not the rollout engine
    tis_cap: float = 0.0  # truncated importance sampling: weight tokens by min(pi_trainer / pi_engine, cap); 0 = off


@dataclass
class ClusterConfig:
    address: str = "local"  # ray address: local (start an embedded cluster) | auto | ray://...
    num_cpus: Optional[int] = None  # CPUs for an embedded cluster (None = all)
    num_gpus: int = 0  # 0 = CPU only; 1 = each trainer rank and rollout worker gets one GPU
    placement_strategy: str = "PACK"  # placement group strategy for trainer and rollout bundles


@dataclass
class LoggingConfig:
    wandb: bool = False  # also log to wandb (WANDB_MODE=offline works with no network)
    wandb_project: str = "rlvr"  # wandb project
    log_samples_every: int = 1  # write samples/step_*.jsonl every N steps (0 = never)
    console: bool = True  # one progress line per step


@dataclass
class RecipeConfig:
    run_name: Optional[str] = None  # None = {task}__{design}__{seed}__{time}
    output_dir: str = "runs"  # run folders go under here
    seed: int = 0  # global seed (sampling, data order)
    steps: int = 30  # RL steps
    eval_every: int = 5  # greedy ground-truth eval every K steps (and at step 0 and the end)
    checkpoint_every: int = 0  # save checkpoints every N steps (0 = only at the end)
    resume: bool = False  # continue <output_dir>/<run_name> from its latest checkpoint (steps may be raised)
    model: ModelConfig = field(default_factory=ModelConfig)  # the policy
    warmup: WarmupConfig = field(default_factory=WarmupConfig)  # SFT warm-up of a built tiny model
    task: TaskConfig = field(default_factory=TaskConfig)  # prompts and gold answers
    reward: RewardConfig = field(default_factory=RewardConfig)  # ground-truth verifier and proxy reward design
    rollout: RolloutConfig = field(default_factory=RolloutConfig)  # generation
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # DeepSpeed policy trainer
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)  # advantages and loss
    cluster: ClusterConfig = field(default_factory=ClusterConfig)  # Ray cluster and resources
    logging: LoggingConfig = field(default_factory=LoggingConfig)  # metrics, samples, wandb
