"""The memory plan of one GPU, as arithmetic: a recipe and a model's shape in, bytes per item out.

Pure (no torch, no I/O): `build_plan(cfg, shape, card_gb)` lists what the fullest trainer GPU
(trainer rank 0: it also holds the weight-sync buffers) and each engine GPU hold at their peak.
All figures are bytes; tables print GB = 1e9 bytes (an "80 GB" H100 has 85.0e9 bytes).

Per trainer GPU, with P parameters, N = trainer.num_ranks, w = 2 bytes (bf16) or 4 (float32):
  parameters        w P, divided by N at ZeRO-3
  gradients         w P (divided by N at ZeRO >= 2), plus bf16 mixed precision's fp32 gradient
                    partition 4 P (divided by N at ZeRO >= 1)
  optimizer states  Adam's m and v, 8 P, and the fp32 master weights, 4 P (bf16; float32 keeps
                    its own copy only at ZeRO >= 1), divided by N at ZeRO >= 1
                    (so bf16 at ZeRO-2 is 2P + 18P/N: DeepSpeed's own ZeRO-2 estimate)
  gathered layers   ZeRO-3 only: 4 x the largest layer's parameters (DeepSpeed's estimate)
  reference model   w P (divided by N at ZeRO-3), when algorithm.kl_coef > 0 or
                    algorithm.log_kl_to_init is true
  activations       micro-batch x sequence x layers x (34 h + 8 I) x w/2; with gradient
                    checkpointing, each layer keeps only its input (w h per token) and one
                    layer at a time is recomputed whole
  logits            micro-batch x sequence x V x w x 2 (the logits and their gradient; one
                    copy more when rollout.temperature != 1 divides them)
  engine share      rollout.gpu_memory_utilization x card, when an engine shares the card
  engine in rank 0  rollout.in_trainer: the hf engine's weights w P, and while it generates (not
                    while training) its KV cache, prompts x G sequences of max_model_len
  sync buffers      2 x rollout.sync_bucket_mb on rank 0 (collective and ipc weight sync)
  CUDA context      1 GB for the trainer process (context, NCCL, allocator slack)

The sequence is rollout.max_model_len: the engine's bound on prompt + response, so the
longest sequence a micro-batch can hold.

The activation constant: per token, layer and hidden unit, 34 bytes (Korthikanti et al. 2022,
"Reducing Activation Recomputation in Large Transformer Models": 16-bit activations of the
attention block and norms; no sequence-squared term because attention runs as SDPA/flash), and
8 bytes per MLP unit (SwiGLU keeps gate, up, their activation and product, 2 bytes each).
It is an estimate: a real step differs by tens of percent with kernels and fragmentation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from rlvr.trainer.settings import uses_reference

GB = 1e9  # tables print decimal GB, as cards are sold
MIB = 2 ** 20  # rollout.sync_bucket_mb is in MiB
DEFAULT_CARD_GB = 80.0  # card memory when cluster.gpu_memory_gb is unset and no GPU is visible
ACT_BYTES_PER_HIDDEN = 34  # activation bytes per token, layer and hidden unit (16-bit; see above)
ACT_BYTES_PER_INTERMEDIATE = 8  # activation bytes per token, layer and MLP unit (SwiGLU, 16-bit)
ADAM_BYTES = 8  # Adam's m and v in fp32
CUDA_CONTEXT_BYTES = 1.0 * GB  # a CUDA process's context, NCCL buffers and allocator slack
ENGINE_RUNTIME_BYTES = 1.0 * GB  # vLLM's own context and activation peak inside its budget


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of model.dtype (bfloat16 | float32)."""
    return 2 if dtype == "bfloat16" else 4


def _split(ranks: int, zero_stage: int, from_stage: int) -> int:
    """How many ways ZeRO divides a state that is partitioned from `from_stage` on."""
    return ranks if zero_stage >= from_stage else 1


def model_state_bytes(params: int, zero_stage: int, ranks: int, dtype: str):
    """(parameters, gradients, optimizer states) bytes on one trainer GPU (module docstring)."""
    w = dtype_bytes(dtype)
    mixed = dtype == "bfloat16"
    parameters = w * params / _split(ranks, zero_stage, 3)
    gradients = w * params / _split(ranks, zero_stage, 2)
    if mixed:
        gradients += 4 * params / _split(ranks, zero_stage, 1)
    master = 4 * params if (mixed or zero_stage >= 1) else 0
    optimizer = (ADAM_BYTES * params + master) / _split(ranks, zero_stage, 1)
    return parameters, gradients, optimizer


def zero3_gather_bytes(largest_layer: int, zero_stage: int) -> float:
    """Whole layers gathered at once under ZeRO-3 (DeepSpeed's 4 x largest layer); 0 otherwise."""
    return 4.0 * largest_layer if zero_stage == 3 else 0.0


def reference_bytes(params: int, dtype: str, zero_stage: int, ranks: int) -> float:
    """A frozen copy of the policy in model.dtype, partitioned like the policy under ZeRO-3."""
    return dtype_bytes(dtype) * params / _split(ranks, zero_stage, 3)


def activation_bytes(tokens: int, layers: int, hidden: int, intermediate: int, dtype: str,
                     checkpointing: bool) -> float:
    """Activations kept for backward of `tokens` = micro-batch x sequence tokens."""
    scale = dtype_bytes(dtype) / 2  # the constants are for 16-bit activations
    per_layer = (ACT_BYTES_PER_HIDDEN * hidden + ACT_BYTES_PER_INTERMEDIATE * intermediate) * scale
    if not checkpointing:
        return float(tokens) * layers * per_layer
    return float(tokens) * (layers * dtype_bytes(dtype) * hidden + per_layer)


def logits_bytes(tokens: int, vocab: int, dtype: str, temperature: float) -> float:
    """The [micro, seq, V] logits and their gradient (a third copy when divided by T != 1)."""
    copies = 2 + (1 if temperature != 1.0 else 0)
    return float(tokens) * vocab * dtype_bytes(dtype) * copies


@dataclass(frozen=True)
class Item:
    """One row of a GPU's plan."""

    name: str
    bytes: float
    fix: str = ""  # how to lower it (keys and values); "" for a fixed cost
    note: str = ""  # shown beside the figure


@dataclass(frozen=True)
class EngineCard:
    """One engine shard's GPU: vLLM's budget against its weights and KV cache."""

    budget: float  # rollout.gpu_memory_utilization x card
    weights: float  # the shard's weights in model.dtype
    kv_per_sequence: float  # KV cache of one rollout.max_model_len sequence on this shard
    shared_with_trainer: bool

    @property
    def sequences(self) -> float:
        """Whole max_model_len sequences its KV cache holds (vLLM needs at least one)."""
        room = self.budget - self.weights - ENGINE_RUNTIME_BYTES
        return max(0.0, room) / self.kv_per_sequence if self.kv_per_sequence else float("inf")


@dataclass
class MemoryPlan:
    card: float  # bytes of one GPU
    card_source: str  # how the card size was found
    summary: List[str]  # header lines (model, layout)
    trainer: List[Item] = field(default_factory=list)  # the fullest trainer GPU while training
    generating: List[Item] = field(default_factory=list)  # the same GPU while a sleeping engine is awake
    engine: Optional[EngineCard] = None
    activation_other: float = 0.0  # activations with gradient checkpointing toggled

    @staticmethod
    def total(items: List[Item]) -> float:
        return sum(item.bytes for item in items)

    def problems(self, where: str = "memory plan") -> List[str]:
        """One line per GPU that does not fit: the need, the card, the largest item, its fix."""
        out = []
        for phase, items in (("while training", self.trainer), ("while generating", self.generating)):
            need = self.total(items)
            if items and need > self.card:
                big = max(items, key=lambda item: item.bytes)
                fix = f": {big.fix}" if big.fix else ""
                out.append(f"{where}: a trainer GPU needs {need / GB:.1f} GB {phase} but the card has "
                           f"{self.card / GB:.1f} GB ({self.card_source}); the largest item is "
                           f"{big.name} at {big.bytes / GB:.1f} GB{fix}")
        engine = self.engine
        if engine is not None and engine.sequences < 1:
            out.append(f"{where}: an engine GPU's budget (rollout.gpu_memory_utilization x card = "
                       f"{engine.budget / GB:.1f} GB) cannot hold its weights ({engine.weights / GB:.1f} GB), "
                       f"vLLM's runtime ({ENGINE_RUNTIME_BYTES / GB:.0f} GB) and the KV cache of one "
                       f"rollout.max_model_len sequence ({engine.kv_per_sequence / GB:.2f} GB): raise "
                       "rollout.gpu_memory_utilization or rollout.tensor_parallel_size")
        return out

    def table(self) -> str:
        """The plan as the text `rlvr plan` prints."""
        lines = list(self.summary)

        def block(title: str, items: List[Item]) -> None:
            lines.append("")
            lines.append(f"{title:<52}{'GB':>8}   lowered by")
            for item in items:
                note = f"  ({item.note})" if item.note else ""
                lines.append(f"  {item.name:<50}{item.bytes / GB:>8.2f}   {item.fix or '-'}{note}")
            need = self.total(items)
            verdict = "fits" if need <= self.card else "DOES NOT FIT"
            lines.append(f"  {'total':<50}{need / GB:>8.2f}   of {self.card / GB:.1f} GB: {verdict} "
                         f"({(self.card - need) / GB:+.1f} GB left)")

        if self.trainer:
            block("per trainer GPU (rank 0), while training", self.trainer)
        if self.generating:
            block("the same GPU while the engine generates", self.generating)
        if self.engine is not None:
            e = self.engine
            where = "shares a trainer GPU" if e.shared_with_trainer else "on a GPU of its own"
            lines.append("")
            lines.append(f"per engine shard ({where}): budget {e.budget / GB:.2f} GB = weights "
                         f"{e.weights / GB:.2f} + runtime {ENGINE_RUNTIME_BYTES / GB:.2f} + KV cache; "
                         f"the KV cache holds {e.sequences:.0f} sequence(s) of rollout.max_model_len "
                         f"({e.kv_per_sequence / GB:.3f} GB each)")
        return "\n".join(lines)


def _fix_sharded(what: str, from_stage: int, zero_stage: int, ranks: int) -> str:
    if zero_stage < from_stage:
        more = "" if ranks > 1 else " with trainer.num_ranks > 1"
        return f"trainer.zero_stage={from_stage}{more} (shards {what} over the ranks)"
    return "raise trainer.num_ranks (more ranks, smaller shards)"


def engine_shares_trainer_card(colocate: bool, trainer_gpus: float, engine_gpus: float) -> bool:
    """An engine sits on a trainer's card: colocated, or fractions Ray may pack onto one card."""
    if trainer_gpus <= 0 or engine_gpus <= 0:
        return False
    return colocate or (trainer_gpus < 1 and engine_gpus < 1 and trainer_gpus + engine_gpus <= 1 + 1e-9)


def build_plan(cfg, shape, card_gb: float, card_source: str) -> MemoryPlan:
    """The plan of a recipe (RecipeConfig) on cards of `card_gb` GB for a model of `shape`."""
    t, r, a = cfg.trainer, cfg.rollout, cfg.algorithm
    dtype, P, N, stage = cfg.model.dtype, shape.params, t.num_ranks, t.zero_stage
    card = card_gb * GB
    seq = r.max_model_len
    tokens = t.micro_batch_size * seq
    precision = "bf16 mixed precision (fp32 master weights)" if dtype == "bfloat16" else "float32"
    plan = MemoryPlan(card=card, card_source=card_source, summary=[
        f"model {shape.source}: {P / 1e9:.3f} B parameters, {shape.layers} layers, hidden {shape.hidden}, "
        f"MLP {shape.intermediate}, vocabulary {shape.vocab}",
        f"trainer: {N} rank(s) x {t.num_gpus_per_rank:g} GPU, ZeRO-{stage}, {precision}; micro-batch "
        f"{t.micro_batch_size} x {seq} tokens (rollout.max_model_len); gradient checkpointing "
        f"{'on' if t.gradient_checkpointing else 'off'}",
        f"rollout: {r.num_workers} engine(s) x {r.tensor_parallel_size} shard(s) x {r.num_gpus_per_worker:g} GPU, "
        f"gpu_memory_utilization {r.gpu_memory_utilization:g}, weight sync {r.weight_sync}",
        f"card: {card_gb:.1f} GB ({card_source})",
    ])
    shared = engine_shares_trainer_card(cfg.cluster.colocate, t.num_gpus_per_rank, r.num_gpus_per_worker)
    sleeping = bool(getattr(r, "sleep_while_training", False)) and shared
    if t.num_gpus_per_rank > 0:
        w = dtype_bytes(dtype)
        params, grads, optim = model_state_bytes(P, stage, N, dtype)
        of = f"1/{N} each" if N > 1 else "whole"
        items = [
            Item(f"parameters ({dtype}{', ' + of if stage == 3 else ''})", params,
                 _fix_sharded("them", 3, stage, N)),
            Item(f"gradients ({dtype}{' + fp32 partition' if dtype == 'bfloat16' else ''})", grads,
                 _fix_sharded("them", 2, stage, N)),
            Item(f"optimizer states ({'fp32 master + ' if dtype == 'bfloat16' else ''}Adam m, v)", optim,
                 _fix_sharded("them", 1, stage, N)),
        ]
        if stage == 3:
            items.append(Item("ZeRO-3 gathered layers (4 x largest layer)",
                              zero3_gather_bytes(shape.largest_layer, stage)))
        if uses_reference(a):  # the trainer's own rule (rlvr/trainer/settings.py)
            why = ("algorithm.log_kl_to_init=false (kl_coef is 0: it only feeds policy/kl_to_init)"
                   if a.kl_coef == 0 else _fix_sharded("it", 3, stage, N))
            items.append(Item(f"reference model ({dtype}{', ' + of if stage == 3 else ''})",
                              reference_bytes(P, dtype, stage, N), why))
        act = activation_bytes(tokens, shape.layers, shape.hidden, shape.intermediate, dtype,
                               t.gradient_checkpointing)
        plan.activation_other = activation_bytes(tokens, shape.layers, shape.hidden, shape.intermediate,
                                                 dtype, not t.gradient_checkpointing)
        other = f"{plan.activation_other / GB:.2f} GB with it {'off' if t.gradient_checkpointing else 'on'}"
        items.append(Item(f"activations (checkpointing {'on' if t.gradient_checkpointing else 'off'})", act,
                          "trainer.micro_batch_size or rollout.max_model_len" if t.gradient_checkpointing
                          else "trainer.gradient_checkpointing=true", other))
        items.append(Item(f"logits ({t.micro_batch_size} x {seq} x {shape.vocab} x {w} B x "
                          f"{2 + (r.temperature != 1.0)})",
                          logits_bytes(tokens, shape.vocab, dtype, r.temperature),
                          "trainer.micro_batch_size or rollout.max_model_len"))
        engine_share = Item(f"engine share ({r.gpu_memory_utilization:g} x card)",
                            r.gpu_memory_utilization * card, "rollout.gpu_memory_utilization")
        if shared and not sleeping:
            items.append(engine_share)
        buffers = []
        if r.weight_sync in ("collective", "ipc") and (r.num_gpus_per_worker > 0 or shared):
            buffers = [Item(f"weight-sync buffers (2 x {r.sync_bucket_mb:g} MiB)", 2 * r.sync_bucket_mb * MIB,
                            "rollout.sync_bucket_mb")]
        context = Item("CUDA context, NCCL, allocator slack", CUDA_CONTEXT_BYTES)
        plan.trainer = items + buffers + [context]
        # what stays on rank 0's card while it is not training (no activations, no logits)
        resident = [item for item in items if not item.name.startswith(("activations", "logits"))]
        if r.in_trainer:  # the hf engine lives in rank 0's process, on its card: its weights stay,
            # its KV cache (the step's sequences at once) exists only while it generates
            engine_weights = Item(f"engine weights in rank 0 ({dtype})", w * P,
                                  "rollout.in_trainer=false (an engine on a card of its own)")
            sequences = r.prompts_per_step * r.samples_per_prompt
            kv = Item(f"engine KV cache ({sequences} sequences x {seq} tokens)",
                      2.0 * shape.layers * shape.kv_dim * w * seq * sequences,
                      "rollout.prompts_per_step or rollout.max_model_len")
            plan.trainer.insert(-1, engine_weights)
            plan.generating = resident + [engine_weights, kv] + buffers + [context]
        if sleeping:  # trainer idle (no activations) while the woken engine generates
            plan.generating = resident + [engine_share] + buffers + [context]
    if r.num_gpus_per_worker > 0 and r.backend == "vllm":
        tp = r.tensor_parallel_size
        plan.engine = EngineCard(
            budget=r.gpu_memory_utilization * card,
            weights=dtype_bytes(dtype) * P / tp,
            kv_per_sequence=2.0 * shape.layers * shape.kv_dim * dtype_bytes(dtype) * seq / tp,
            shared_with_trainer=shared)
    return plan
