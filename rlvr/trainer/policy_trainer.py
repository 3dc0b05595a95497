"""One rank of the policy trainer: an HF causal LM inside a DeepSpeed ZeRO engine.

`PolicyTrainer` is a plain class (testable, readable); `PolicyTrainerActor` is its Ray actor.
`TrainerGroup` (rlvr/trainer/group.py) starts `world_size` of them as one torch.distributed
group and drives them; every method below that touches parameters is collective: all ranks
must call it, in the same order.

Objective per optimizer step (rlvr/algorithms: losses.py, grpo.py), aggregated by
`algorithm.loss_agg` over one minibatch of the RL batch (all ranks, all micro-batches):

    loss = agg(tis_weight * policy_loss + kl_coef * kl(policy, reference) - entropy_coef * entropy)

policy_loss is `algorithm.loss` (ppo_clip with clip_eps_low / clip_eps_high / clip_ratio_c, or
pg); the per-sequence advantages come in with the batch (the controller's `algorithm.name`).
Log-probs are of softmax(logits / T) at the rollout's sampling temperature T.

The PPO ratio's old log-probs are the trainer's own pre-update policy's (the first forward's,
detached, with one update per step; a no-grad pass before several updates) unless
`algorithm.recompute_logprobs` is off: the rollout engine's
log-probs differ from the trainer's by numerics alone (bf16 kernels, vLLM), and mixing the
two would make the ratio differ from 1 on-policy, so clipping would fire on precision
noise. The engine-vs-trainer gap is logged every step (`policy/logprob_mismatch_*`); with
`algorithm.tis_cap` > 0 it also weights each token by min(pi_trainer / pi_engine, cap).
Dropout is disabled in the policy, so a forward is a deterministic function of the weights.

Each micro-batch's per-token loss is weighted by world_size times its aggregation weight,
computed from the minibatch's GLOBAL token and sequence counts (one all-reduce), so that after
DeepSpeed averages gradients over ranks the gradient is exactly that of the global aggregate,
whatever the sharding and micro-batch size.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import math
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional

import torch
from torch import Tensor

from rlvr.algorithms.grpo import (
    kl_estimator,
    masked_sum,
    token_logprobs_and_entropy,
    truncated_is_weights,
)
from rlvr.algorithms.losses import aggregation_weights, kl_penalty, policy_loss_terms
from rlvr.config.schema import AlgorithmConfig, TrainerConfig
from rlvr.trainer.batch import (
    TrainBatch,
    _even_bounds,
    make_train_batch,
    resolve_pad_id,
    trim_padding,
)

# Files a HF model folder holds besides weights and config (copied by save_hf).
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".index.json")
_MODEL_FILES = ("config.json", "generation_config.json")

METRIC_NAMES = ("loss", "policy/entropy", "policy/clip_fraction", "policy/ratio_mean",
                "policy/approx_kl", "policy/kl_to_ref", "policy/kl_to_init", "policy/grad_norm",
                "policy/logprob_mismatch_mean", "policy/logprob_mismatch_max")
TRAIN_DTYPES = ("float32", "bfloat16")


_STATE_TAG = "deepspeed"  # sub-folder of a checkpoint's trainer state


def skip_deepspeed_shm_comm_op() -> None:
    """Stop DeepSpeed from JIT-compiling its shared-memory comm op (60-100 s on 2 cores).

    On CPU, DeepSpeed's TorchBackend builds `deepspeed_shm_comm` on every first
    `init_distributed` unless it is marked incompatible. The op only serves
    `inference_all_reduce` (AutoTP inference); training collectives go through gloo. Marking
    it incompatible in the (cached, mutable) `deepspeed.ops.__compatible_ops__` makes
    `build_shm_op()` return None. There is no environment variable for this at run time
    (DS_BUILD_SHM_COMM only applies when pre-building ops at install).
    """
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


_MUON_MODULES = ("deepspeed.runtime.zero.muon.original_muon", "deepspeed.runtime.zero.muon.muon_optimizer")


def defer_deepspeed_muon_compile() -> None:
    """Import DeepSpeed's Muon optimizer modules with their `torch.compile` deferred to first call.

    ZeRO's set-up and gradient reduction import them for `isinstance` checks only, and at import
    they decorate functions with `torch.compile`, which imports torch._inductor: 2-4 s of CPU per
    rank (measured here) for an optimizer rlvr never runs. Each decorated function compiles on
    its first call instead, so Muon still works if it is ever used.
    """
    import functools
    import importlib

    if all(name in sys.modules for name in _MUON_MODULES):
        return
    from deepspeed.runtime import compiler

    def lazy_compile(fn=None, **kwargs):  # torch.compile's signature: (fn, **options) or (**options)(fn)
        if fn is None:
            return lambda f: lazy_compile(f, **kwargs)
        compiled = []

        @functools.wraps(fn)
        def call(*a, **k):
            if not compiled:
                compiled.append(torch.compile(fn, **kwargs))
            return compiled[0](*a, **k)
        return call

    saved, compiler.compile = compiler.compile, lambda: lazy_compile
    try:
        for name in _MUON_MODULES:
            try:
                importlib.import_module(name)
            except ImportError:  # another DeepSpeed version without Muon: nothing to defer
                return
    finally:
        compiler.compile = saved


def _config(cls, values: Mapping[str, Any], section: str):
    known = {f for f in cls.__dataclass_fields__}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{section}: unknown field(s) {unknown}; known fields: {sorted(known)}")
    return cls(**dict(values))


def _validate(trainer: TrainerConfig, algorithm: AlgorithmConfig) -> None:
    from rlvr.algorithms.grpo import _ADVANTAGE_ESTIMATORS
    from rlvr.algorithms.losses import KL_ESTIMATORS, LOSS_AGGS, LOSSES

    if trainer.zero_stage not in (0, 1, 2, 3):
        raise ValueError(f"trainer.zero_stage = {trainer.zero_stage} must be 0, 1, 2 or 3")
    if trainer.micro_batch_size < 1:
        raise ValueError(f"trainer.micro_batch_size = {trainer.micro_batch_size} must be >= 1")
    for key in ("updates_per_step", "ppo_epochs", "minibatches_per_step"):
        if getattr(trainer, key) < 1:
            raise ValueError(f"trainer.{key} = {getattr(trainer, key)} must be >= 1")
    if trainer.updates_per_step > 1 and trainer.ppo_epochs > 1:
        raise ValueError("trainer.updates_per_step is an alias of trainer.ppo_epochs: set only ppo_epochs")
    if trainer.backend not in ("auto", "gloo", "nccl"):
        raise ValueError(f"trainer.backend = {trainer.backend!r} must be auto, gloo or nccl")
    if algorithm.name not in _ADVANTAGE_ESTIMATORS:
        raise ValueError(f"algorithm.name = {algorithm.name!r} must be one of {sorted(_ADVANTAGE_ESTIMATORS)}")
    for key, choices in (("loss", LOSSES), ("loss_agg", LOSS_AGGS), ("kl_estimator", KL_ESTIMATORS)):
        if getattr(algorithm, key) not in choices:
            raise ValueError(f"algorithm.{key} = {getattr(algorithm, key)!r} must be one of {list(choices)}")
    if algorithm.kl_in not in ("loss", "reward"):
        raise ValueError(f"algorithm.kl_in = {algorithm.kl_in!r} must be loss or reward")
    if algorithm.loss_agg == "dr_grpo" and algorithm.loss_agg_constant <= 0:
        raise ValueError("algorithm.loss_agg = dr_grpo needs algorithm.loss_agg_constant > 0 "
                         "(recipes set it to rollout.max_new_tokens)")
    if not 0.0 < algorithm.clip_eps < 1.0:
        raise ValueError(f"algorithm.clip_eps = {algorithm.clip_eps} must be within (0, 1)")
    low, high = _clip_bounds(algorithm)
    if not 0.0 < low < 1.0 or high <= 0.0:
        raise ValueError(f"algorithm.clip_eps_low = {low} must be within (0, 1) and clip_eps_high = {high} > 0")
    if algorithm.clip_ratio_c and algorithm.clip_ratio_c <= 1.0:
        raise ValueError(f"algorithm.clip_ratio_c = {algorithm.clip_ratio_c} must be 0 (off) or > 1")
    if algorithm.kl_coef < 0 or algorithm.entropy_coef < 0:
        raise ValueError("algorithm.kl_coef and algorithm.entropy_coef must be >= 0")
    if algorithm.tis_cap < 0:
        raise ValueError(f"algorithm.tis_cap = {algorithm.tis_cap} must be >= 0 (0 = off)")
    if algorithm.tis_cap > 0 and not algorithm.recompute_logprobs:
        raise ValueError("algorithm.tis_cap > 0 needs algorithm.recompute_logprobs = true")


def _clip_bounds(algorithm: AlgorithmConfig):
    """(eps_low, eps_high) of the PPO clip: each falls back to clip_eps when unset."""
    low = algorithm.clip_eps if algorithm.clip_eps_low is None else algorithm.clip_eps_low
    high = algorithm.clip_eps if algorithm.clip_eps_high is None else algorithm.clip_eps_high
    return float(low), float(high)


def algorithm_summary(trainer: TrainerConfig, algorithm: AlgorithmConfig) -> str:
    """One line naming every algorithm choice (the trainer's console header)."""
    low, high = _clip_bounds(algorithm)
    loss = "pg (no clip)" if algorithm.loss == "pg" else f"ppo_clip [{1 - low:g}, {1 + high:g}]"
    if algorithm.loss == "ppo_clip" and algorithm.clip_ratio_c:
        loss += f" dual clip c={algorithm.clip_ratio_c:g}"
    agg = algorithm.loss_agg + (f" /{algorithm.loss_agg_constant}" if algorithm.loss_agg == "dr_grpo" else "")
    adv = algorithm.name + (" (std off)" if algorithm.name == "grpo" and not algorithm.normalize_std else "")
    kl = (f"kl {algorithm.kl_estimator} x {algorithm.kl_coef:g} in {algorithm.kl_in}"
          if algorithm.kl_coef > 0 else "kl off")
    return (f"advantages {adv}, loss {loss}, aggregation {agg}, {kl}, entropy x {algorithm.entropy_coef:g}, "
            f"{max(trainer.ppo_epochs, trainer.updates_per_step)} epoch(s) x "
            f"{trainer.minibatches_per_step} minibatch(es)")


def _shifted(per_position: Tensor) -> Tensor:
    """[B, T-1] values of the logits at t-1 -> [B, T] values of the token at t (0 at t = 0)."""
    return torch.cat([per_position.new_zeros(per_position.shape[0], 1), per_position], dim=1)


def sequence_token_stats(logits: Tensor, input_ids: Tensor):
    """(log-prob, entropy) [B, T] of each token input_ids[b, t] under logits[b, t - 1] (0 at t = 0).

    Works on the whole contiguous [B, T, V] logits (the last column predicts nothing and is
    dropped afterwards), so the chunked float32 math never copies the logits.
    """
    next_ids = torch.cat([input_ids[:, 1:], input_ids[:, :1]], dim=1)  # last column: any valid id
    logprobs, entropy = token_logprobs_and_entropy(logits, next_ids)
    return _shifted(logprobs[:, :-1]), _shifted(entropy[:, :-1])


def _abs_gap(engine_logprobs: Tensor, trainer_logprobs: Tensor, mask: Tensor):
    """(sum, max) of |engine - trainer| log-prob over the masked tokens, as floats."""
    gap = torch.where(mask.bool(), (engine_logprobs.float() - trainer_logprobs.float()).abs(),
                      torch.zeros_like(trainer_logprobs, dtype=torch.float32))
    return float(gap.sum()), float(gap.max()) if gap.numel() else 0.0


def disable_dropout(model: torch.nn.Module) -> int:
    """Zero every dropout probability of an HF model (nn.Dropout modules, `*dropout` floats of
    attention modules, `*dropout`/`*_pdrop` config fields); returns how many were non-zero.

    Gradients are unaffected: the model may stay in train mode (gradient checkpointing needs it).
    """
    changed = 0
    configs = [model.config] if getattr(model, "config", None) is not None else []
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            changed += module.p != 0
            module.p = 0.0
        for name, value in list(vars(module).items()):
            if "dropout" in name and isinstance(value, float):
                changed += value != 0
                setattr(module, name, 0.0)
        if getattr(module, "config", None) is not None and module.config not in configs:
            configs.append(module.config)
    for config in configs:
        for name, value in list(vars(config).items()):
            if (name.endswith("dropout") or name.endswith("_pdrop")) and isinstance(value, float):
                changed += value != 0
                setattr(config, name, 0.0)
    return int(changed)


class _PhaseClock:
    """Wall-clock seconds per start-up phase of one rank, with when its process and __init__ began."""

    def __init__(self):
        import time

        self._time = time.time
        self.began = self._last = time.time()
        self.phases: List[tuple] = []

    def lap(self, name: str) -> None:
        now = self._time()
        self.phases.append((name, now - self._last))
        self._last = now

    def report(self) -> Dict[str, Any]:
        """{"process_start": epoch s, "init_start": epoch s, "ready": epoch s, "phases": [(name, s)]};
        process_start to init_start is the worker process start and this module's imports (torch)."""
        try:
            import psutil

            process_start = psutil.Process().create_time()
        except Exception:  # noqa: BLE001 - psutil comes with Ray; without it the phase is unknown
            process_start = self.began
        return {"process_start": process_start, "init_start": self.began, "ready": self._last,
                "phases": list(self.phases)}


class PolicyTrainer:
    """One rank: DeepSpeed engine over the policy, optional frozen reference, GRPO train step."""

    def __init__(self, rank: int, world_size: int, master_addr: str, master_port: int,
                 model_dir: str, trainer: Mapping[str, Any], algorithm: Mapping[str, Any],
                 local_rank: Optional[int] = None, num_threads: int = 1, dtype: str = "float32",
                 env: Optional[Mapping[str, str]] = None):
        """`env`: environment variables set first (before CUDA or the process group read them);
        TrainerGroup passes them here so ranks can run in Ray's pooled worker processes."""
        clock = _PhaseClock()
        os.environ.update({str(k): str(v) for k, v in (env or {}).items()})
        self.rank, self.world_size = int(rank), int(world_size)
        self.model_dir = str(model_dir)
        self.cfg = _config(TrainerConfig, trainer, "trainer")
        self.alg = _config(AlgorithmConfig, algorithm, "algorithm")
        _validate(self.cfg, self.alg)
        if dtype not in TRAIN_DTYPES:
            raise ValueError(f"model.dtype = {dtype!r}: the trainer trains in one of {list(TRAIN_DTYPES)}")
        self.dtype = dtype

        use_cuda = torch.cuda.is_available()
        os.environ.update(
            RANK=str(self.rank), WORLD_SIZE=str(self.world_size),
            LOCAL_RANK=str(self.rank if local_rank is None else local_rank),
            MASTER_ADDR=str(master_addr), MASTER_PORT=str(master_port),
            OMP_NUM_THREADS=str(num_threads), TOKENIZERS_PARALLELISM="false")
        if not use_cuda:
            os.environ["DS_ACCELERATOR"] = "cpu"  # before deepspeed is imported
        torch.set_num_threads(num_threads)
        # DeepSpeed calls torch's all_gather_into_tensor/reduce_scatter_tensor every step.
        warnings.filterwarnings("ignore", message=r"`torch\.distributed\.\w+` is deprecated",
                                category=FutureWarning)

        import deepspeed
        import transformers
        from transformers import AutoModelForCausalLM

        defer_deepspeed_muon_compile()
        clock.lap("imports")

        logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()

        backend = self.cfg.backend
        if backend == "auto":
            backend = "nccl" if use_cuda else "gloo"
        if backend == "gloo":
            skip_deepspeed_shm_comm_op()
        deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False, verbose=False)
        import deepspeed.comm as dist

        self._dist = dist
        clock.lap("process group")

        # bf16: DeepSpeed keeps fp32 master weights in its optimizer wrapper (all ZeRO stages)
        torch_dtype = getattr(torch, dtype)
        model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=torch_dtype)
        model.config.use_cache = False
        disable_dropout(model)
        reference = None
        if self.alg.kl_coef > 0 or self.alg.log_kl_to_init:
            # A full frozen copy per rank (fine for the small models this runs on CPU), copied
            # before DeepSpeed wraps (ZeRO-3: partitions) the policy: no second load from disk.
            reference = copy.deepcopy(model)
        clock.lap("model")
        if self.cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.pad_id = resolve_pad_id(model.config.pad_token_id, model.config.eos_token_id)

        optimizer = torch.optim.AdamW(model.parameters(), lr=self.cfg.lr,
                                      weight_decay=self.cfg.weight_decay)
        ds_config = {
            "train_micro_batch_size_per_gpu": self.cfg.micro_batch_size,
            "gradient_accumulation_steps": 1,  # accumulation is driven explicitly in train_step
            "gradient_clipping": self.cfg.grad_clip,
            "zero_optimization": {"stage": self.cfg.zero_stage},
            "zero_allow_untested_optimizer": True,
            "bf16": {"enabled": dtype == "bfloat16"},
            "steps_per_print": 2**31 - 1,
            "wall_clock_breakdown": False,
        }
        self.engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer,
                                                    config=ds_config)
        self.device = self.engine.device
        clock.lap("deepspeed")
        if self.rank == 0:
            precision = "bf16 mixed precision (fp32 master weights)" if dtype == "bfloat16" else "fp32"
            print(f"[rlvr.trainer] {precision}, ZeRO-{self.cfg.zero_stage}, old log-probs "
                  f"{'recomputed' if self.alg.recompute_logprobs else 'from the engine'}, TIS "
                  f"{'cap ' + str(self.alg.tis_cap) if self.alg.tis_cap > 0 else 'off'}, gradient "
                  f"checkpointing {'on' if self.cfg.gradient_checkpointing else 'off'}; "
                  f"{algorithm_summary(self.cfg, self.alg)}", file=sys.stderr, flush=True)

        self.reference = None
        if reference is not None:
            self.reference = reference.to(self.device).eval().requires_grad_(False)
        clock.lap("reference")
        self.startup = clock.report()

    # ---- collective helpers -----------------------------------------------------------------

    def _all_reduce(self, values: Tensor, op=None) -> Tensor:
        values = values.to(self.device)
        if self.world_size > 1:
            self._dist.all_reduce(values, op=op if op is not None else self._dist.ReduceOp.SUM)
        return values.cpu()

    def _gathered(self):
        """Context in which every parameter is whole on every rank (ZeRO-3 gathers)."""
        if self.cfg.zero_stage == 3:
            import deepspeed

            return deepspeed.zero.GatheredParameters(list(self.engine.module.parameters()),
                                                     modifier_rank=None)
        return contextlib.nullcontext()

    def _forward_logits(self, model, batch: TrainBatch) -> Tensor:
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                    position_ids=batch.position_ids, use_cache=False)
        return out.logits

    def _token_stats(self, model, mb: TrainBatch):
        """(log-prob, entropy) [B, T] of mb's tokens under softmax(logits / T) of `model`."""
        logits = self._forward_logits(model, mb)
        temperature = getattr(self, "_temperature", 1.0)
        if temperature != 1.0:
            logits = logits / temperature
        return sequence_token_stats(logits, mb.input_ids)

    # ---- training -----------------------------------------------------------------------------

    def _micro_batches(self, batch: TrainBatch, rows: int) -> List[TrainBatch]:
        """`batch` cut into ceil(rows / micro_batch_size) micro-batches on the device; rows is
        the max over ranks, so every rank runs as many backwards (ZeRO's collectives)."""
        out = []
        for lo, hi in _even_bounds(len(batch), max(1, math.ceil(rows / self.cfg.micro_batch_size))):
            if hi > lo:
                out.append(trim_padding(batch.select(slice(lo, hi))).to(self.device))
            else:  # fewer rows than micro-batches: a no-token stand-in keeps collectives in step
                dummy = batch.select(slice(0, 1))
                dummy.response_mask = torch.zeros_like(dummy.response_mask)
                out.append(dummy.to(self.device))
        return out

    def train_step(self, batch: TrainBatch, temperature: float = 1.0,
                   broadcast_version: Optional[int] = None) -> Dict[str, float]:
        """`ppo_epochs` passes over this rank's shard, each split into `minibatches_per_step`
        minibatches of one optimizer step each; returns global metrics.

        Each minibatch is gradient-accumulated over micro-batches of `micro_batch_size` rows,
        and its loss is `algorithm.loss_agg` over the minibatch's rows on ALL ranks (global
        token and sequence counts), so the gradient does not depend on ranks or micro-batch
        size. Metrics are token-means over all ranks' response tokens, averaged over the
        passes; `loss` is the aggregated loss averaged over the optimizer steps;
        `policy/grad_norm` is the pre-clip global norm; `policy/logprob_mismatch_{mean,max}`
        compare the engine's log-probs (batch.old_logprobs) with the pre-update trainer's.
        `temperature` is the rollout's sampling temperature T: every log-prob (policy, old,
        reference) is of softmax(logits / T), the distribution the engine sampled from.
        With `broadcast_version` the new weights then go to the engines (broadcast_weights, all
        ranks) and `perf/weight_broadcast_s` gives rank 0's seconds for it.
        """
        if len(batch) == 0:
            raise ValueError(f"rank {self.rank}: train_step got an empty shard")
        if not temperature > 0:
            raise ValueError(f"rollout.temperature = {temperature}: training needs a sampling temperature > 0")
        self._temperature = float(temperature)
        dist = self._dist
        epochs = max(self.cfg.ppo_epochs, self.cfg.updates_per_step)
        bounds = _even_bounds(len(batch), self.cfg.minibatches_per_step)
        parts_of = [batch.select(slice(lo, hi)) for lo, hi in bounds]
        counts = torch.tensor([float(p.response_mask.sum()) for p in parts_of]
                              + [float(len(p)) for p in parts_of], dtype=torch.float64)
        counts = self._all_reduce(counts)
        n_mini = len(parts_of)
        mini_tokens, mini_seqs = counts[:n_mini].tolist(), counts[n_mini:].tolist()
        max_rows = self._all_reduce(torch.tensor([float(len(p)) for p in parts_of], dtype=torch.float64),
                                    op=dist.ReduceOp.MAX).tolist()
        global_tokens = float(sum(mini_tokens))
        minibatches = [self._micro_batches(p, int(r)) if len(p) else
                       self._micro_batches(batch.select(slice(0, 1)), int(r)) for p, r in zip(parts_of, max_rows)]
        for p, mbs in zip(parts_of, minibatches):
            if len(p) == 0:  # this rank has no row in this minibatch: stand-ins only
                for mb in mbs:
                    mb.response_mask = torch.zeros_like(mb.response_mask)
        flat = [mb for mbs in minibatches for mb in mbs]
        weights = [[aggregation_weights(mb.response_mask, self.alg.loss_agg, mini_tokens[k], mini_seqs[k],
                                        self.alg.loss_agg_constant) * self.world_size
                    for mb in mbs] for k, mbs in enumerate(minibatches)]

        # Old log-probs of the ratio: the pre-update trainer's own. With one optimizer step per
        # RL step the first (grad) forward IS the pre-update policy (dropout is off, no step has
        # run), so its detached log-probs serve: no extra pass, and the ratio is exactly 1
        # whatever kernels no-grad mode would pick. With more steps a no-grad pass runs first.
        updates = epochs * n_mini
        separate_pass = self.alg.recompute_logprobs and updates > 1
        own_old = self.alg.recompute_logprobs and not separate_pass
        mismatch_sum, mismatch_max = 0.0, 0.0
        trainer_old: Dict[int, Optional[Tensor]] = {id(mb): None for mb in flat}
        if separate_pass:
            for mb in flat:
                trainer_old[id(mb)] = old = self._recompute_logprobs(mb)
                gap_sum, gap_max = _abs_gap(mb.old_logprobs, old, mb.response_mask)
                mismatch_sum, mismatch_max = mismatch_sum + gap_sum, max(mismatch_max, gap_max)
        ref_cache: Dict[int, Tensor] = {}

        sums = {name: 0.0 for name in METRIC_NAMES
                if name not in ("loss", "policy/grad_norm", "policy/logprob_mismatch_mean",
                                "policy/logprob_mismatch_max")}
        sums["policy/tis_weight_mean"] = 0.0
        loss_sum = 0.0
        grad_norms: List[float] = []
        local_norm = self.cfg.zero_stage == 0 and self.dtype == "float32"  # plain torch optimizer
        self.engine.train()
        for epoch in range(epochs):
            for k, mbs in enumerate(minibatches):
                for i, mb in enumerate(mbs):
                    self.engine.set_gradient_accumulation_boundary(i == len(mbs) - 1)
                    total, parts, logprobs = self._micro_batch_loss(
                        mb, trainer_old[id(mb)], own_old, weights[k][i], ref_cache)
                    self.engine.backward(total, scale_wrt_gas=False)
                    loss_sum += parts.pop("loss")
                    for name, value in parts.items():
                        sums[name] += value
                    if epoch == 0 and not separate_pass:
                        # no update has happened yet: this forward is the pre-update policy's
                        gap_sum, gap_max = _abs_gap(mb.old_logprobs, logprobs, mb.response_mask)
                        mismatch_sum, mismatch_max = mismatch_sum + gap_sum, max(mismatch_max, gap_max)
                if local_norm:
                    grad_norms.append(self._local_grad_norm())  # grads are all-reduced by now
                self.engine.step()
                if not local_norm:
                    norm = self.engine.get_global_grad_norm()
                    grad_norms.append(float(norm) if norm is not None else float("nan"))

        names = sorted(sums)
        totals = self._all_reduce(torch.tensor([sums[n] for n in names] + [mismatch_sum, loss_sum],
                                               dtype=torch.float64))
        denom = max(global_tokens, 1.0) * epochs
        metrics = {n: float(v) / denom for n, v in zip(names, totals[:-2].tolist())}
        metrics["loss"] = float(totals[-1]) / self.world_size / updates
        if not (self.alg.kl_coef > 0 and self.alg.kl_in == "loss"):
            metrics.pop("policy/kl_to_ref")
        if self.reference is None:
            metrics.pop("policy/kl_to_init")
        if self.alg.tis_cap <= 0:
            metrics.pop("policy/tis_weight_mean")
        metrics["policy/grad_norm"] = sum(grad_norms) / len(grad_norms)
        metrics["policy/logprob_mismatch_mean"] = float(totals[-2]) / max(global_tokens, 1.0)
        metrics["policy/logprob_mismatch_max"] = float(self._all_reduce(
            torch.tensor([mismatch_max], dtype=torch.float64), op=dist.ReduceOp.MAX)[0])
        metrics["trainer/response_tokens"] = global_tokens
        if broadcast_version is not None:  # the weight sync fused into this call: no round trip of its own
            metrics["perf/weight_broadcast_s"] = self.broadcast_weights(broadcast_version)
        return metrics

    @torch.no_grad()
    def sequence_kl(self, batch: TrainBatch, temperature: float = 1.0) -> List[float]:
        """Per sequence [B]: the sum over its response tokens of `algorithm.kl_estimator`
        (current policy vs frozen reference, log-probs at temperature T), for `kl_in: reward`.
        All ranks must call (ZeRO-3 forwards are collective), each with its own shard."""
        if self.reference is None:
            raise RuntimeError("sequence_kl needs the reference model: set algorithm.kl_coef > 0")
        self._temperature = float(temperature)
        rows = int(self._all_reduce(torch.tensor([float(len(batch))], dtype=torch.float64),
                                    op=self._dist.ReduceOp.MAX)[0])
        out: List[float] = []
        self.engine.eval()
        for mb in self._micro_batches(batch, rows):  # stand-ins (if any) come last
            logprobs, _ = self._token_stats(self.engine, mb)
            ref_logprobs, _ = self._token_stats(self.reference, mb)
            kl = kl_penalty(logprobs, ref_logprobs, self.alg.kl_estimator)
            out.extend(torch.where(mb.response_mask.bool(), kl, torch.zeros_like(kl)).sum(dim=1).tolist())
        self.engine.train()
        return out[:len(batch)]

    @torch.no_grad()
    def _recompute_logprobs(self, mb: TrainBatch) -> Tensor:
        """[B, T] log-probs of mb's tokens under the current policy (eval mode, no grad)."""
        self.engine.eval()
        logprobs, _ = self._token_stats(self.engine, mb)
        self.engine.train()
        return logprobs

    def _micro_batch_loss(self, mb: TrainBatch, trainer_old: Optional[Tensor], own_old: bool = False,
                          weights: Optional[Tensor] = None, ref_cache: Optional[Dict[int, Tensor]] = None):
        """(Weighted loss of one micro-batch, token-sums of its metrics, detached [B, T] log-probs).

        The loss is sum(weights * per-token loss), `weights` [B, T] from aggregation_weights
        (times world_size: DeepSpeed averages gradients over ranks); default: token-sum. Old
        log-probs of the ratio: `trainer_old` (recomputed), or with `own_old` this forward's
        own (detached), else the engine's (mb.old_logprobs). Reference log-probs are computed
        once per micro-batch and kept in `ref_cache` for later epochs.
        """
        logprobs, entropy = self._token_stats(self.engine, mb)
        if own_old:
            trainer_old = logprobs.detach()
        mask = mb.response_mask
        if weights is None:
            weights = mask.to(torch.float32)
        old = trainer_old if trainer_old is not None else mb.old_logprobs
        low, high = _clip_bounds(self.alg)
        loss_tok, ratio, clipped = policy_loss_terms(logprobs, old, mb.advantages, self.alg.loss,
                                                     low, high, self.alg.clip_ratio_c)
        tis = None
        if self.alg.tis_cap > 0:  # the engine sampled; the trainer's old policy is the target
            tis = truncated_is_weights(trainer_old, mb.old_logprobs, self.alg.tis_cap)
            loss_tok = loss_tok * tis
        if self.alg.entropy_coef > 0:
            loss_tok = loss_tok - self.alg.entropy_coef * entropy
        kl_sum = kl_init_sum = 0.0
        if self.reference is not None:
            cache = ref_cache if ref_cache is not None else {}
            if id(mb) not in cache:
                with torch.no_grad():
                    cache[id(mb)], _ = self._token_stats(self.reference, mb)
            ref_logprobs = cache[id(mb)]
            if self.alg.kl_coef > 0 and self.alg.kl_in == "loss":
                kl_tok = kl_penalty(logprobs, ref_logprobs, self.alg.kl_estimator)
                loss_tok = loss_tok + self.alg.kl_coef * kl_tok
                kl_sum = float(masked_sum(kl_tok.detach(), mask))
            kl_init_sum = float(masked_sum(kl_estimator(logprobs.detach(), ref_logprobs), mask))
        total = masked_sum(loss_tok * weights, mask)
        with torch.no_grad():
            parts = {
                "loss": float(total),
                "policy/entropy": float(masked_sum(entropy, mask)),
                "policy/clip_fraction": float(masked_sum(clipped, mask)),
                "policy/ratio_mean": float(masked_sum(ratio, mask)),
                # k3 of KL(old || current): samples come from the old (behaviour) policy.
                "policy/approx_kl": float(masked_sum(kl_estimator(old, logprobs), mask)),
                "policy/kl_to_ref": kl_sum,
                "policy/kl_to_init": kl_init_sum,
                "policy/tis_weight_mean": float(masked_sum(tis, mask)) if tis is not None else 0.0,
            }
        return total, parts, logprobs.detach()

    def _local_grad_norm(self) -> float:
        squares = [p.grad.detach().float().pow(2).sum() for p in self.engine.module.parameters()
                   if p.grad is not None]
        return float(torch.stack(squares).sum().sqrt()) if squares else 0.0

    # ---- weights ------------------------------------------------------------------------------

    def full_state_dict(self) -> Optional[Dict[str, Tensor]]:
        """Whole CPU state dict with HF names on rank 0 (None elsewhere); all ranks must call.

        Same keys as the HF model's `state_dict()` (tied weights appear under both names and
        share one tensor), so `load_state_dict` and vLLM's weight loader accept it.
        """
        result = None
        with self._gathered():
            if self.rank == 0:
                copies: Dict[int, Tensor] = {}
                result = {}
                for name, tensor in self.engine.module.state_dict().items():
                    key = tensor.data_ptr()
                    if key not in copies:
                        copies[key] = tensor.detach().to("cpu", copy=True)
                    result[name] = copies[key]
        return result

    # ---- weight sync over the collective group (rlvr/comm/weight_group.py) ---------------------

    def _sync_tensors(self) -> List[tuple]:
        """(HF name, tensor) of every parameter (tied ones once) and persistent buffer, in module order."""
        module = self.engine.module
        tensors = list(module.named_parameters())
        for name, buf in module.named_buffers():
            owner_name, _, leaf = name.rpartition(".")
            owner = module.get_submodule(owner_name) if owner_name else module
            if leaf not in owner._non_persistent_buffers_set:
                tensors.append((name, buf))
        return tensors

    def _plan_sync(self, dtype: str, bucket_mb: float):
        """The bucket plan of every weight sync mode (same on every rank): (dtype, [[(name, shape)]])."""
        from rlvr.comm.weight_group import plan_tensor_buckets

        specs = [(name, tuple(getattr(t, "ds_shape", t.shape))) for name, t in self._sync_tensors()]
        self._sync_plan = (dtype, plan_tensor_buckets(specs, dtype, bucket_mb))
        return self._sync_plan

    def _whole_buckets(self) -> Iterator[tuple]:
        """(bucket index, bucket, its whole tensors) in plan order, on every rank; under ZeRO-3 only
        this bucket's shards are gathered while it is yielded. All ranks must iterate to the end."""
        _, buckets = self._sync_plan
        tensors = dict(self._sync_tensors())
        for index, bucket in enumerate(buckets):
            members = [tensors[name] for name, _ in bucket]
            with self._gathered_subset(members):
                yield index, bucket, members

    def open_weight_sync(self, dtype: str, bucket_mb: float, timeout_s: float = 600.0) -> Optional[Dict[str, Any]]:
        """Plan the buckets (all ranks) and host the group's rendezvous (rank 0); all ranks must call.

        Returns on rank 0 {"host", "port", "backend", "dtype", "buckets": [[(name, shape)]]}, else None.
        """
        from rlvr.comm.weight_group import host_store

        self._plan_sync(dtype, bucket_mb)
        if self.rank != 0:
            return None
        self._sync_store, host, port = host_store(timeout_s)
        return {"host": host, "port": port, "dtype": dtype, "buckets": self._sync_plan[1],
                "backend": "nccl" if self.device.type == "cuda" else "gloo"}

    def join_weight_sync(self, world_size: int, backend: str, timeout_s: float = 600.0) -> None:
        """Rank 0 joins the weight group as its sender (returns once every engine joined); others no-op."""
        from rlvr.comm.weight_group import WeightGroup

        if self.rank == 0:
            self._weight_group = WeightGroup(0, world_size, backend, store=self._sync_store, timeout_s=timeout_s)

    def broadcast_weights(self, version: int) -> float:
        """Rank 0 sends every bucket to the engines; under ZeRO-3 all ranks gather each bucket's
        shards in turn, so at most one bucket is whole at a time. All ranks must call; returns seconds."""
        import time

        from rlvr.comm.weight_group import send_bucket, send_header, wire_dtype

        start = time.perf_counter()
        dtype, buckets = self._sync_plan
        group = getattr(self, "_weight_group", None)
        if self.rank == 0:
            if group is None:
                raise RuntimeError("broadcast_weights before join_weight_sync: set up the weight group first")
            send_header(group, version, buckets)
        for _, bucket, members in self._whole_buckets():
            if self.rank == 0:
                send_bucket(group, bucket, members, wire_dtype(dtype))
        return time.perf_counter() - start

    def _gathered_subset(self, tensors: List[Tensor]):
        """Context in which `tensors` are whole (ZeRO-3 gathers only their shards; buffers are never sharded)."""
        params = [t for t in tensors if hasattr(t, "ds_id")]
        if self.cfg.zero_stage == 3 and params:
            import deepspeed

            return deepspeed.zero.GatheredParameters(params, modifier_rank=None)
        return contextlib.nullcontext()

    def leave_weight_sync(self) -> None:
        """Close this rank's weight group membership (idempotent)."""
        group, self._weight_group = getattr(self, "_weight_group", None), None
        if group is not None:
            group.close()
        self._sync_store = None

    # ---- weight sync by handle to engines on this machine (rlvr/comm/tensor_handles.py) ---------

    def weights_location(self) -> Dict[str, Any]:
        """{"node", "gpu"} where this rank's weights live (see tensor_handles.location)."""
        from rlvr.comm.tensor_handles import location

        return location(self.device)

    def open_ipc_sync(self, dtype: str, bucket_mb: float, receivers: Optional[List[Any]] = None) -> Dict[str, Any]:
        """Plan the buckets (all ranks must call) and, on a rank that serves engines (`receivers`:
        RolloutWorker actors on its node and device), allocate the one shareable buffer every bucket
        passes through (as many elements as the largest bucket, in `dtype`, on this rank's device).

        Returns {"buckets": [[(name, shape)]], "shm_file": the buffer's /dev/shm file or None}.
        """
        from rlvr.comm.tensor_handles import shared_empty, shm_file
        from rlvr.comm.weight_group import wire_dtype

        self.close_ipc_sync()
        _, buckets = self._plan_sync(dtype, bucket_mb)
        self._ipc_receivers = list(receivers or [])
        self._ipc_buffer, self._ipc_shm = None, None
        if self._ipc_receivers or receivers is None:  # None: a caller outside Ray takes ipc_buckets itself
            largest = max(sum(math.prod(shape) for _, shape in bucket) for bucket in buckets)
            self._ipc_buffer = shared_empty(largest, wire_dtype(dtype), self.device)
            self._ipc_shm = shm_file(self._ipc_buffer)
        return {"buckets": buckets, "shm_file": self._ipc_shm}

    def ipc_buckets(self) -> Iterator[tuple]:
        """(bucket index, flat tensor of that bucket in the shared buffer) in plan order; the flat
        tensor is None on ranks without a buffer. The buffer is rewritten when the iteration resumes,
        so hand each bucket over (and wait for its receivers) before asking for the next one.
        All ranks must iterate to the end (ZeRO-3 gathers every bucket's shards on every rank)."""
        from rlvr.comm.tensor_handles import fill

        buffer = getattr(self, "_ipc_buffer", None)
        for index, _, members in self._whole_buckets():
            flat = fill(buffer, members) if buffer is not None else None
            if flat is not None and flat.is_cuda:
                torch.cuda.current_stream(flat.device).synchronize()  # written before a receiver reads it
            yield index, flat

    def send_ipc_weights(self, version: int) -> float:
        """Hand every bucket to this rank's receivers by handle, one bucket at a time, each waiting
        for every receiver to load it; the last bucket stamps `version`. All ranks must call; seconds."""
        import time

        import ray

        from rlvr.comm.tensor_handles import share

        if not hasattr(self, "_ipc_receivers"):
            raise RuntimeError("send_ipc_weights before open_ipc_sync: set up the ipc weight sync first")
        start = time.perf_counter()
        try:
            for index, flat in self.ipc_buckets():
                if self._ipc_receivers:
                    ray.get([w.receive_ipc_bucket.remote(version, index, share(flat)) for w in self._ipc_receivers])
        except BaseException:
            self.close_ipc_sync()  # a failed sync ends the run: do not leave the /dev/shm file behind
            raise
        return time.perf_counter() - start

    def close_ipc_sync(self) -> None:
        """Release the shared buffer and remove its /dev/shm file (mappings still open stay valid; idempotent)."""
        self._ipc_buffer = None
        path, self._ipc_shm = getattr(self, "_ipc_shm", None), None
        if path is not None:
            # torch removes the file when the last reference goes; a handle never opened (a failed
            # sync) would keep it, and torch's clean-up daemon dies with a killed actor
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        if hasattr(self, "_ipc_receivers"):
            del self._ipc_receivers

    def state_digest(self) -> str:
        """sha256 of this rank's full parameters (gathered under ZeRO-3); all ranks must call."""
        h = hashlib.sha256()
        with self._gathered():
            for name, p in sorted(self.engine.module.named_parameters()):
                h.update(name.encode())
                h.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return h.hexdigest()

    def save_hf(self, out_dir: str) -> Optional[str]:
        """Rank 0 writes a HF safetensors folder (+ tokenizer files of model_dir); all call."""
        state = self.full_state_dict()
        path = None
        if self.rank == 0:
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            self.engine.module.save_pretrained(str(out), state_dict=state, safe_serialization=True)
            for src in Path(self.model_dir).iterdir():
                if (src.is_file() and src.name not in _MODEL_FILES
                        and not src.name.endswith(_WEIGHT_SUFFIXES)
                        and not (out / src.name).exists()):
                    shutil.copy2(src, out / src.name)
            path = str(out)
        if self.world_size > 1:
            self._dist.barrier()
        return path

    def save_training_state(self, out_dir: str) -> None:
        """DeepSpeed checkpoint of weights, optimizer and step counters (ZeRO shards are
        written per rank: multi-node runs need `out_dir` on shared storage); all ranks call."""
        self.engine.save_checkpoint(str(out_dir), tag=_STATE_TAG)

    def load_training_state(self, in_dir: str) -> None:
        """Restore what save_training_state wrote (the reference model stays the initial one)."""
        path, _ = self.engine.load_checkpoint(str(in_dir), tag=_STATE_TAG, load_optimizer_states=True,
                                              load_lr_scheduler_states=True)
        if path is None:
            raise FileNotFoundError(f"no trainer state under {in_dir}/{_STATE_TAG}")

    # ---- evaluation ---------------------------------------------------------------------------

    @torch.no_grad()
    def sequence_logprobs(self, prompt_ids: List[List[int]],
                          response_ids: List[List[int]]) -> List[float]:
        """Teacher-forced sum of log p(response token) per sequence; all ranks must call."""
        n = len(prompt_ids)
        batch = make_train_batch(prompt_ids, response_ids, [[0.0] * len(r) for r in response_ids],
                                 [0.0] * n, self.pad_id)
        self.engine.eval()
        out: List[float] = []
        for lo, hi in _even_bounds(n, max(1, math.ceil(n / self.cfg.micro_batch_size))):
            mb = trim_padding(batch.select(slice(lo, hi))).to(self.device)
            logprobs, _ = sequence_token_stats(self._forward_logits(self.engine, mb), mb.input_ids)
            mask = mb.response_mask.bool()
            out.extend(torch.where(mask, logprobs, torch.zeros_like(logprobs)).sum(dim=1).tolist())
        self.engine.train()
        return out

    def ping(self) -> Dict[str, Any]:
        """Who this rank is, and `startup`: where its start-up time went (_PhaseClock.report)."""
        return {"rank": self.rank, "world_size": self.world_size, "pid": os.getpid(),
                "zero_stage": self.cfg.zero_stage, "device": str(self.device),
                "startup": getattr(self, "startup", {})}

    def close(self) -> None:
        """Leave the process group (call on all ranks before killing the actors)."""
        import torch.distributed

        self.leave_weight_sync()
        self.close_ipc_sync()
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


_ACTOR_CLASS = None


def __getattr__(name: str):
    """`PolicyTrainerActor`, the Ray actor class, made on first use: importing this module
    needs no Ray (tools/gpu_check.py runs PolicyTrainer on machines without it)."""
    global _ACTOR_CLASS
    if name == "PolicyTrainerActor":
        if _ACTOR_CLASS is None:
            import ray

            _ACTOR_CLASS = ray.remote(PolicyTrainer)
        return _ACTOR_CLASS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
