"""The one recipe schema: OmegaConf structured dataclasses; defaults live here, once.

Every field carries a one-line docstring-comment saying what it means. A recipe YAML sets
any subset of these; `rlvr train RECIPE key=value ...` merges dotlist overrides on top.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass
class ModelConfig:
    path: Optional[str] = None  # local HF model folder, or a hub id (org/name) the controller fetches once into the HF cache; None = build the tiny model
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
    target_accuracy: float = 0.3  # stop SFT once greedy accuracy on the validation slice reaches this
    check_every: int = 25  # measure greedy accuracy every N SFT steps
    validation_size: Optional[int] = None  # first N training prompts: the slice SFT stops on (left out of SFT data; never the eval split); None = min(128, train_size // 4)
    seed: int = 0  # SFT data / init seed


@dataclass
class TaskConfig:
    name: str = "arithmetic"  # task registry name (arithmetic)
    seed: int = 0  # prompt generation seed (train and eval splits are disjoint)
    num_digits: int = 2  # digits per operand
    operations: List[str] = field(default_factory=lambda: ["+"])  # operators drawn per prompt
    train_size: int = 2000  # number of training prompts
    eval_size: int = 128  # held-out prompts for greedy ground-truth accuracy
    path: Optional[str] = None  # data file (.jsonl, .json array or .parquet) for file-backed tasks ("{split}" in it picks per-split files)
    constraint_names: Optional[List[str]] = None  # constraints task: restrict the constraint pool (None = all)
    sft_both_rate: float = 1.0  # constraints task: fraction of warm-up targets meeting both constraints (the rest meet only the first)
    prompt_template: str = "{question}"  # how a task's question becomes the prompt text (e.g. add a \\boxed{} instruction)
    question_key: str = "question"  # file-backed tasks: the record field holding the question
    answer_key: str = "answer"  # file-backed tasks: the record field holding the answer (gsm8k: "... #### 42"; math: the final answer)
    apply_chat_template: bool = False  # wrap each prompt as a user turn with the tokenizer's chat template (instruct models)


@dataclass
class RewardConfig:
    verifier: str = "arithmetic"  # ground-truth verifier name
    design: Dict[str, Any] = field(default_factory=lambda: {"name": "ground_truth"})  # proxy reward design (name + params)
    num_workers: int = 1  # RewardWorker actors
    timeout_s: float = 5.0  # per-sample verifier timeout
    colocate: bool = False  # training samples scored inside the rollout worker (in-process verifiers only): no reward round trip
    num_gpus_per_worker: float = 0  # GPU share of each RewardWorker, in [0, 1] (0 = CPU; 0.25 = a quarter of a card): where a reward_model design's model runs


@dataclass
class RolloutConfig:
    backend: str = "hf"  # hf (transformers generate) | vllm
    num_workers: int = 1  # RolloutWorker actors
    prompts_per_step: int = 16  # prompts sampled per RL step
    samples_per_prompt: int = 8  # G: samples per prompt (the GRPO group)
    max_new_tokens: int = 8  # response length cap
    temperature: float = 1.0  # sampling temperature T > 0; the trainer's log-probs are of softmax(logits / T) too
    top_p: float = 1.0  # nucleus sampling
    max_model_len: int = 256  # vLLM: longest prompt + response in tokens
    gpu_memory_utilization: float = 0.5  # vLLM on GPU only: fraction of a card's memory the engine takes (keep it below its share on a shared card)
    num_gpus_per_worker: float = 0  # GPU share of each engine shard (0 = CPU; 1 = a whole card; 0.4 = share a card)
    tensor_parallel_size: int = 1  # vLLM tensor parallelism: each engine spans this many GPUs (one shard each)
    weight_sync: str = "auto"  # auto (in_process if rollout.in_trainer, ipc if cluster.colocate, else collective) | in_process (rollout.in_trainer: rank 0's weights copied into its engine) | collective (trainer rank 0 broadcasts over gloo/NCCL) | ipc (engine on the trainer's own GPU/node loads buckets by CUDA IPC / shared-memory handle) | object_store (Ray shared memory)
    sync_bucket_mb: float = 512.0  # collective and ipc sync: MiB per bucket, in model.dtype (the collective sender holds two buffers of the largest bucket); object_store on GPU: MiB per file an engine loads
    enforce_eager: Optional[bool] = None  # vLLM: true = no CUDA graphs or compilation; None = auto (written out at load: false when engines have GPUs, true on CPU)
    max_num_seqs: Optional[int] = None  # vLLM: most sequences in one decoding batch (>= 1); None = vLLM's default (on CPU it also sizes the KV cache, default 256)
    enable_prefix_caching: bool = True  # vLLM: reuse the KV blocks of a shared prompt prefix (the G samples of a prompt); vLLM's default
    sleep_while_training: bool = False  # vLLM on GPU with cluster.colocate: engines sleep (level 1: weights to CPU, KV cache freed) while the trainer steps, woken before the weight sync
    overlap: bool = False  # generate step t+1 while the trainer updates on step t (one step stale: changes results)
    in_trainer: bool = False  # the engine runs inside trainer rank 0's process (a hybrid engine, as verl's): one actor fewer to start, weights copied in memory (weight_sync in_process); hf backend, one engine, no overlap


@dataclass
class TrainerConfig:
    num_ranks: int = 1  # PolicyTrainer actors in the torch.distributed group
    num_gpus_per_rank: float = 0  # GPU share of each trainer rank (0 = CPU; 1 = a whole card; 0.5 = share a card)
    zero_stage: int = 0  # DeepSpeed ZeRO stage 0-3
    lr: float = 2.0e-4  # policy learning rate
    weight_decay: float = 0.0  # AdamW weight decay
    grad_clip: float = 1.0  # max grad norm
    micro_batch_size: int = 64  # sequences per forward/backward per rank
    updates_per_step: int = 1  # alias of ppo_epochs kept for old recipes (set one of the two)
    ppo_epochs: int = 1  # passes over each RL batch (>1 makes the PPO ratio clip matter)
    minibatches_per_step: int = 1  # optimizer steps per pass: the RL batch is split into this many minibatches
    backend: str = "auto"  # torch.distributed backend: auto (gloo on CPU, nccl on GPU) | gloo | nccl
    gradient_checkpointing: bool = False  # recompute activations in backward (HF, non-reentrant): less memory, one more forward
    share_prompt_forward: bool = True  # rows with the same prompt (a group's G samples) share one forward of it: their responses run on its KV cache (equal log-probs and gradients up to float rounding); off with gradient checkpointing; false = every row forwards its own prompt


@dataclass
class AlgorithmConfig:
    name: str = "grpo"  # advantage estimator: grpo | dr_grpo | rloo | reinforce | reinforce_baseline | reinforce_pp
    normalize_std: bool = True  # grpo only: divide group advantages by the group std; False = dr_grpo's advantages
    loss: str = "ppo_clip"  # policy loss: ppo_clip (clipped ratio) | pg (ratio times advantage, no clip)
    clip_eps: float = 0.2  # PPO ratio clip epsilon (both sides unless clip_eps_low / clip_eps_high are set)
    clip_eps_low: Optional[float] = None  # lower clip: ratio >= 1 - clip_eps_low; None = clip_eps
    clip_eps_high: Optional[float] = None  # upper clip: ratio <= 1 + clip_eps_high (DAPO clip-higher, e.g. 0.28); None = clip_eps
    clip_ratio_c: float = 0.0  # dual clip for negative advantages: loss capped at -c * A (Ye et al. 2020; verl uses 3.0); 0 = off, else > 1
    loss_agg: str = "token_mean"  # token_mean | seq_mean_token_mean (original GRPO) | seq_mean_token_sum | dr_grpo (token sum / (sequences * loss_agg_constant))
    loss_agg_constant: int = 0  # dr_grpo aggregation's constant normaliser; 0 = rollout.max_new_tokens (set at load)
    kl_coef: float = 0.0  # KL(policy || frozen reference) coefficient; 0 = no KL term
    kl_estimator: str = "k3"  # per-token KL estimator of the kl_coef term: k1 | k2 | k3 (Schulman 2020)
    kl_in: str = "loss"  # where the KL term goes: loss (per token) | reward (proxy minus kl_coef x per-sequence KL, before advantages)
    log_kl_to_init: bool = False  # log policy/kl_to_init when kl_coef = 0 too: costs a frozen reference model (partitioned under ZeRO-3) and one no-grad forward per micro-batch; the reference exists only when this is on or kl_coef > 0
    entropy_coef: float = 0.0  # entropy bonus
    recompute_logprobs: bool = True  # old log-probs of the PPO ratio from the trainer's own pre-update policy, not the rollout engine
    tis_cap: float = 0.0  # truncated importance sampling: weight tokens by min(pi_trainer / pi_engine, cap); 0 = off


@dataclass
class EvalConfig:
    samples_per_prompt: int = 0  # k sampled answers per held-out prompt beside greedy (eval/gt_accuracy_sampled, eval/pass_at_k); 0 = greedy only
    temperature: float = 1.0  # sampling temperature of those k answers
    audit_prompts: int = 64  # training prompts profiled before step 1 (rlvr audit's profile, stored in summary.json); 0 = skip


@dataclass
class ClusterConfig:
    address: str = "local"  # ray address: local (start an embedded cluster) | auto | ray://...
    num_cpus: Optional[int] = None  # CPUs for an embedded cluster (None = all)
    num_gpus: Optional[int] = None  # GPUs an embedded (address=local) cluster declares; None = detect when actors ask for GPUs, else 0
    colocate: bool = False  # trainer ranks and rollout engine shards share GPUs: one whole-GPU bundle each, rank i and shard i on card i
    placement_strategy: str = "PACK"  # placement group strategy for trainer and rollout bundles
    threads_per_actor: str = "1"  # torch threads of each trainer rank and rollout worker: an integer >= 1, or auto (synchronous loop: the node's cores / the most actors of one stage, idle threads sleeping; with rollout.overlap: 1)
    gpu_memory_gb: Optional[float] = None  # memory of each GPU in GB (1e9 bytes) for the memory plan (rlvr plan); None = detect with torch.cuda, else 80
    max_restarts: int = 0  # recoveries from a lost actor the run may make (>= 0): a replaced rollout/reward worker or a trainer-group restart from its last checkpoint counts one each (docs/faults.md); 0 = fail fast
    restart_timeout_s: float = 300.0  # seconds a recovery waits for the cluster to offer a lost actor's resources again (> 0)
    custom_resources: Dict[str, Dict[str, float]] = field(default_factory=dict)  # custom Ray resources each role's bundles ask for, by role (trainer, rollout, reward), e.g. {reward: {cpu_pool: 1}}: pins those actors to nodes started with --resources that declare them (a lost node's actors come back only on a node that declares them too)
    stage_timeout_s: Optional[float] = None  # a step stage (generate, score, train) with no call finishing for this many seconds counts as a lost worker (a hang); None or 0 = never


@dataclass
class LoggingConfig:
    wandb: bool = False  # also log to wandb (WANDB_MODE=offline works with no network)
    wandb_project: str = "rlvr"  # wandb project
    wandb_group: Optional[str] = None  # wandb group (rlvr study sets the study's name)
    wandb_tags: List[str] = field(default_factory=list)  # wandb tags (rlvr study sets arm=<arm> and the arm's overrides)
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
    checkpoint_keep_last: int = 0  # keep only the newest N complete checkpoints (0 = keep all)
    resume: bool = False  # continue <output_dir>/<run_name> from its latest checkpoint (steps may be raised)
    plugins: List[str] = field(default_factory=list)  # modules imported before the run and in every worker, whose registered designs and verifiers the recipe may name (docs/rewards.md)
    model: ModelConfig = field(default_factory=ModelConfig)  # the policy
    warmup: WarmupConfig = field(default_factory=WarmupConfig)  # SFT warm-up of a built tiny model
    task: TaskConfig = field(default_factory=TaskConfig)  # prompts and gold answers
    reward: RewardConfig = field(default_factory=RewardConfig)  # ground-truth verifier and proxy reward design
    rollout: RolloutConfig = field(default_factory=RolloutConfig)  # generation
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # DeepSpeed policy trainer
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)  # advantages and loss
    eval: EvalConfig = field(default_factory=EvalConfig)  # held-out evaluation beyond greedy (eval_every and task.eval_size set when and on what)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)  # Ray cluster and resources
    logging: LoggingConfig = field(default_factory=LoggingConfig)  # metrics, samples, wandb
