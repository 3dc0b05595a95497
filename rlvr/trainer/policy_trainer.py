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
computed from the minibatch's GLOBAL token and sequence counts (given by TrainerGroup), so that after
DeepSpeed averages gradients over ranks the gradient is exactly that of the global aggregate,
whatever the sharding and micro-batch size.

Its pieces live beside it: settings.py (the recipe sections it receives), deepspeed_setup.py
(process group, model, ZeRO engine, reference), loss.py (one micro-batch's loss),
weight_sender.py (every weight sync's trainer side), checkpoint.py (weights and training state).
"""
from __future__ import annotations

import math
import os
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

import torch
from torch import Tensor

from rlvr.algorithms.losses import aggregation_weights, kl_penalty
from rlvr.config.schema import AlgorithmConfig, TrainerConfig
from rlvr.trainer import checkpoint
from rlvr.trainer.batch import (MinibatchCounts, TrainBatch, _even_bounds, make_train_batch, minibatch_counts,
                                trim_padding)
from rlvr.trainer.deepspeed_setup import PhaseClock, build_engine
from rlvr.trainer.loss import METRIC_NAMES, abs_gap, micro_batch_loss, sequence_token_stats
from rlvr.trainer.prompt_sharing import can_share, response_logits
from rlvr.trainer.settings import TRAIN_DTYPES, parse_section, validate
from rlvr.trainer.weight_sender import WeightSender


# train_step's metrics that each rank returns its share of (the driver adds them) and those it
# returns its own maximum of; every other metric is the same on every rank, or rank 0's
RANK_SUMMED = frozenset(set(METRIC_NAMES) - {"policy/grad_norm", "policy/logprob_mismatch_max"}
                        | {"policy/tis_weight_mean"})
RANK_MAXED = frozenset({"policy/logprob_mismatch_max"})


def combine_rank_metrics(per_rank: Sequence[Mapping[str, float]]) -> Dict[str, float]:
    """The global train_step metrics from every rank's (in rank order): shares added, maxima
    maxed, the rest rank 0's. One rank's metrics are already global."""
    combined = dict(per_rank[0])
    for name in combined.keys() & (RANK_SUMMED | RANK_MAXED):
        values = [float(metrics[name]) for metrics in per_rank]
        combined[name] = max(values) if name in RANK_MAXED else math.fsum(values)
    return combined


class PolicyTrainer:
    """One rank: DeepSpeed engine over the policy, optional frozen reference, GRPO train step."""

    def __init__(self, rank: int, world_size: int, master_addr: str, master_port: int,
                 model_dir: str, trainer: Mapping[str, Any], algorithm: Mapping[str, Any],
                 local_rank: Optional[int] = None, num_threads: int = 1, dtype: str = "float32",
                 env: Optional[Mapping[str, str]] = None, expect_cuda: bool = False):
        """`env`: environment variables set first (before CUDA or the process group read them);
        TrainerGroup passes them here so ranks can run in Ray's pooled worker processes.
        `expect_cuda`: the rank was given a GPU; without CUDA it fails instead of training on CPU."""
        clock = PhaseClock()
        os.environ.update({str(k): str(v) for k, v in (env or {}).items()})
        self.rank, self.world_size = int(rank), int(world_size)
        self.model_dir = str(model_dir)
        self.cfg = parse_section(TrainerConfig, trainer, "trainer")
        self.alg = parse_section(AlgorithmConfig, algorithm, "algorithm")
        validate(self.cfg, self.alg)
        if dtype not in TRAIN_DTYPES:
            raise ValueError(f"model.dtype = {dtype!r}: the trainer trains in one of {list(TRAIN_DTYPES)}")
        self.dtype = dtype

        use_cuda = torch.cuda.is_available()
        if expect_cuda and not use_cuda:
            raise RuntimeError(f"trainer rank {self.rank} was given a GPU but torch {torch.__version__} cannot use "
                               f"CUDA (torch.version.cuda = {torch.version.cuda}): install the GPU stack "
                               "(bash tools/install.sh gpu) or set trainer.num_gpus_per_rank = 0")
        os.environ.update(
            RANK=str(self.rank), WORLD_SIZE=str(self.world_size),
            LOCAL_RANK=str(self.rank if local_rank is None else local_rank),
            MASTER_ADDR=str(master_addr), MASTER_PORT=str(master_port),
            OMP_NUM_THREADS=str(num_threads), TOKENIZERS_PARALLELISM="false")
        if not use_cuda:
            os.environ["DS_ACCELERATOR"] = "cpu"  # before deepspeed is imported
        torch.set_num_threads(num_threads)
        self.engine, self.reference, self.pad_id, self._dist = build_engine(
            self.model_dir, self.cfg, self.alg, dtype, self.rank, use_cuda, clock)
        self.device = self.engine.device
        self.sender = WeightSender(self.engine.module, self.rank, self.device, self.cfg.zero_stage)
        # which models' forwards share prompts (rlvr.trainer.prompt_sharing), by id
        self._shares_prompts = {id(m): self.cfg.share_prompt_forward and can_share(m)
                                for m in (self.engine, self.reference) if m is not None}
        self.startup = clock.report()

    # ---- forward helpers ---------------------------------------------------------------------

    def _token_stats(self, model, mb: TrainBatch, temperature: Optional[float] = None):
        """(log-prob, entropy) [B, T] of mb's tokens under softmax(logits / T) of `model` (0 at
        prompt columns). With trainer.share_prompt_forward, rows that share a prompt share its
        forward (rlvr.trainer.prompt_sharing)."""
        temperature = getattr(self, "_temperature", 1.0) if temperature is None else temperature
        logits, start = response_logits(model, mb, self._shares_prompts[id(model)])
        if temperature != 1.0:
            logits = logits / temperature
        logprobs, entropy = sequence_token_stats(logits, mb.input_ids[:, start - 1:])
        if start > 1:  # columns before the prompt's last one predict prompt tokens: not computed
            pad = logprobs.new_zeros(len(mb), start - 1)
            logprobs, entropy = torch.cat([pad, logprobs], dim=1), torch.cat([pad, entropy], dim=1)
        return logprobs, entropy

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
                   broadcast_version: Optional[int] = None,
                   counts: Optional[MinibatchCounts] = None) -> Dict[str, float]:
        """`ppo_epochs` passes over this rank's shard, each split into `minibatches_per_step`
        minibatches of one optimizer step each; returns this rank's share of the metrics
        (`combine_rank_metrics` over all ranks gives the global ones; one rank's are global).

        Each minibatch is gradient-accumulated over micro-batches of `micro_batch_size` rows,
        and its loss is `algorithm.loss_agg` over the minibatch's rows on ALL ranks (global
        token and sequence counts: `counts`, minibatch_counts over every rank's shard, which
        TrainerGroup computes from the shards it sends; a lone rank computes its own), so the
        gradient does not depend on ranks or micro-batch size. Metrics are token-means over all
        ranks' response tokens, averaged over the passes; `loss` is the aggregated loss averaged
        over the optimizer steps;
        `policy/grad_norm` is the pre-clip global norm; `policy/logprob_mismatch_{mean,max}`
        compare the engine's log-probs (batch.old_logprobs) with the pre-update trainer's.
        `temperature` is the rollout's sampling temperature T: every log-prob (policy, old,
        reference) is of softmax(logits / T), the distribution the engine sampled from.
        With `broadcast_version` the new weights then go to the engines (broadcast_weights, all
        ranks) and `perf/weight_broadcast_s` gives rank 0's seconds for it.
        `perf/train_compute_s`: this rank's seconds in this call before any broadcast (what the
        controller's perf/train_s holds beyond it is the Ray call and the batch's transport).
        """
        started = time.perf_counter()
        if len(batch) == 0:
            raise ValueError(f"rank {self.rank}: train_step got an empty shard")
        if not temperature > 0:
            raise ValueError(f"rollout.temperature = {temperature}: training needs a sampling temperature > 0")
        self._temperature = float(temperature)
        epochs = max(self.cfg.ppo_epochs, self.cfg.updates_per_step)
        bounds = _even_bounds(len(batch), self.cfg.minibatches_per_step)
        parts_of = [batch.select(slice(lo, hi)) for lo, hi in bounds]
        if counts is None:
            if self.world_size > 1:
                raise ValueError(f"rank {self.rank} of {self.world_size}: train_step needs `counts` "
                                 "(minibatch_counts over every rank's shard; TrainerGroup.train_step passes them)")
            counts = minibatch_counts([batch], len(parts_of))
        mini_tokens, mini_seqs, max_rows = counts
        if not len(mini_tokens) == len(mini_seqs) == len(max_rows) == len(parts_of):
            raise ValueError(f"rank {self.rank}: counts cover {len(mini_tokens)} minibatches, "
                             f"trainer.minibatches_per_step = {len(parts_of)}")
        n_mini = len(parts_of)
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
        # on-device float64 sums (loss.py): read once, at the end
        mismatch_sum, mismatch_max = torch.zeros(2, dtype=torch.float64, device=self.device)
        trainer_old: Dict[int, Optional[Tensor]] = {id(mb): None for mb in flat}
        if separate_pass:
            for mb in flat:
                trainer_old[id(mb)] = old = self._recompute_logprobs(mb)
                gap_sum, gap_max = abs_gap(mb.old_logprobs, old, mb.response_mask)
                mismatch_sum, mismatch_max = mismatch_sum + gap_sum, torch.maximum(mismatch_max, gap_max)
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
                    total, parts, logprobs = micro_batch_loss(
                        self.alg, self._token_stats, self.engine, self.reference,
                        mb, trainer_old[id(mb)], own_old, weights[k][i], ref_cache)
                    self.engine.backward(total, scale_wrt_gas=False)
                    loss_sum += parts.pop("loss")
                    for name, value in parts.items():
                        sums[name] += value
                    if epoch == 0 and not separate_pass:
                        # no update has happened yet: this forward is the pre-update policy's
                        gap_sum, gap_max = abs_gap(mb.old_logprobs, logprobs, mb.response_mask)
                        mismatch_sum, mismatch_max = mismatch_sum + gap_sum, torch.maximum(mismatch_max, gap_max)
                if local_norm:
                    grad_norms.append(self._local_grad_norm())  # grads are all-reduced by now
                self.engine.step()
                if not local_norm:
                    norm = self.engine.get_global_grad_norm()
                    grad_norms.append(float(norm) if norm is not None else float("nan"))

        # this rank's share of each metric (one read of the on-device sums); the driver adds
        # the ranks' shares (combine_rank_metrics): no collective here
        names = sorted(sums)
        local = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=self.device) for v in
                             [sums[n] for n in names] + [mismatch_sum, loss_sum, mismatch_max]]).tolist()
        denom = max(global_tokens, 1.0) * epochs
        metrics = {n: v / denom for n, v in zip(names, local[:-3])}
        metrics["loss"] = local[-2] / self.world_size / updates
        if not (self.alg.kl_coef > 0 and self.alg.kl_in == "loss"):
            metrics.pop("policy/kl_to_ref")
        if self.reference is None:
            metrics.pop("policy/kl_to_init")
        if self.alg.tis_cap <= 0:
            metrics.pop("policy/tis_weight_mean")
        metrics["policy/grad_norm"] = sum(grad_norms) / len(grad_norms)
        metrics["policy/logprob_mismatch_mean"] = local[-3] / max(global_tokens, 1.0)
        metrics["policy/logprob_mismatch_max"] = local[-1]
        metrics["trainer/response_tokens"] = global_tokens
        metrics["perf/train_compute_s"] = time.perf_counter() - started
        if broadcast_version is not None:  # the weight sync fused into this call: no round trip of its own
            metrics["perf/weight_broadcast_s"] = self.broadcast_weights(broadcast_version)
        return metrics

    @torch.no_grad()
    def sequence_kl(self, batch: TrainBatch, temperature: float = 1.0, rows: Optional[int] = None) -> List[float]:
        """Per sequence [B]: the sum over its response tokens of `algorithm.kl_estimator`
        (current policy vs frozen reference, log-probs at temperature T), for `kl_in: reward`.
        All ranks must call (ZeRO-3 forwards are collective), each with its own shard; `rows`,
        the most rows of any rank's shard (TrainerGroup passes it), sets how many micro-batches
        every rank runs. A lone rank uses its own."""
        if self.reference is None:
            raise RuntimeError("sequence_kl needs the reference model: set algorithm.kl_coef > 0")
        if rows is None:
            if self.world_size > 1:
                raise ValueError(f"rank {self.rank} of {self.world_size}: sequence_kl needs `rows` "
                                 "(the most rows of any rank's shard; TrainerGroup.sequence_kl passes it)")
            rows = len(batch)
        self._temperature = float(temperature)
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

    def _local_grad_norm(self) -> float:
        squares = [p.grad.detach().float().pow(2).sum() for p in self.engine.module.parameters()
                   if p.grad is not None]
        return float(torch.stack(squares).sum().sqrt()) if squares else 0.0

    # ---- weights: every sync's trainer side (weight_sender.py) and checkpoints (checkpoint.py) --

    def full_state_dict(self) -> Optional[Dict[str, Tensor]]:
        """Whole CPU state dict with HF names on rank 0 (None elsewhere); all ranks must call."""
        return checkpoint.full_state_dict(self.engine.module, self.rank, self.cfg.zero_stage)

    def open_weight_sync(self, dtype: str, bucket_mb: float, timeout_s: float = 600.0) -> Optional[Dict[str, Any]]:
        return self.sender.open_group(dtype, bucket_mb, timeout_s)

    def join_weight_sync(self, world_size: int, backend: str, timeout_s: float = 600.0) -> None:
        self.sender.join_group(world_size, backend, timeout_s)

    def broadcast_weights(self, version: int) -> float:
        return self.sender.broadcast(version)

    def leave_weight_sync(self) -> None:
        self.sender.leave_group()

    def weights_location(self) -> Dict[str, Any]:
        """{"node", "gpu"} where this rank's weights live (see tensor_handles.location)."""
        from rlvr.comm.tensor_handles import location

        return location(self.device)

    def open_ipc_sync(self, dtype: str, bucket_mb: float, receivers: Optional[List[Any]] = None) -> Dict[str, Any]:
        return self.sender.open_ipc(dtype, bucket_mb, receivers)

    def ipc_buckets(self) -> Iterator[tuple]:
        return self.sender.ipc_buckets()

    def send_ipc_weights(self, version: int) -> float:
        return self.sender.send_ipc(version)

    def close_ipc_sync(self) -> None:
        self.sender.close_ipc()

    def state_digest(self) -> str:
        """sha256 of this rank's full parameters (gathered under ZeRO-3); all ranks must call."""
        return checkpoint.state_digest(self.engine.module, self.cfg.zero_stage)

    def save_hf(self, out_dir: str) -> Optional[str]:
        """Rank 0 writes a HF safetensors folder (+ tokenizer files of model_dir); all call."""
        state = self.full_state_dict()
        path = checkpoint.save_hf(self.engine.module, state, self.model_dir, out_dir) if self.rank == 0 else None
        if self.world_size > 1:
            self._dist.barrier()
        return path

    def save_training_state(self, out_dir: str) -> None:
        checkpoint.save_training_state(self.engine, out_dir)

    def load_training_state(self, in_dir: str) -> None:
        checkpoint.load_training_state(self.engine, in_dir)

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
            logprobs, _ = self._token_stats(self.engine, mb, temperature=1.0)
            mask = mb.response_mask.bool()
            out.extend(torch.where(mask, logprobs, torch.zeros_like(logprobs)).sum(dim=1).tolist())
        self.engine.train()
        return out

    def reference_elements(self) -> Dict[str, int]:
        """{"held", "full"}: the reference model's elements this rank holds, and its full size
        (held < full when ZeRO-3 partitions it; both 0 without a reference)."""
        if self.reference is None:
            return {"held": 0, "full": 0}
        params = list(self.reference.parameters())
        held = sum(p.ds_tensor.numel() if hasattr(p, "ds_tensor") else p.numel() for p in params)
        return {"held": int(held), "full": int(sum(getattr(p, "ds_numel", p.numel()) for p in params))}

    def ping(self) -> Dict[str, Any]:
        """Who this rank is (num_threads: torch's thread count now), and `startup`: where its start-up time went (PhaseClock.report)."""
        return {"rank": self.rank, "world_size": self.world_size, "pid": os.getpid(),
                "zero_stage": self.cfg.zero_stage, "device": str(self.device),
                "num_threads": torch.get_num_threads(),
                "startup": getattr(self, "startup", {})}

    def close(self) -> None:
        """Leave the process group (call on all ranks before killing the actors)."""
        import torch.distributed

        self.sender.leave_group()
        self.sender.close_ipc()
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


_ACTOR_CLASSES: Dict[type, Any] = {}


def remote_class(cls: type):
    """`cls` as a Ray actor class, made on first use and kept (importing a trainer module needs no
    Ray: tools/gpu_check.py runs PolicyTrainer on machines without it)."""
    if cls not in _ACTOR_CLASSES:
        import ray

        _ACTOR_CLASSES[cls] = ray.remote(cls)
    return _ACTOR_CLASSES[cls]


def __getattr__(name: str):
    """`PolicyTrainerActor`, the Ray actor class (remote_class)."""
    if name == "PolicyTrainerActor":
        return remote_class(PolicyTrainer)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
