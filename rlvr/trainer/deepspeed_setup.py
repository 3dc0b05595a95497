"""The trainer rank's engine: the HF policy loaded into a DeepSpeed ZeRO engine over a
torch.distributed group (gloo on CPU, NCCL on GPU), an optional frozen reference copy, and the
DeepSpeed start-up costs rlvr avoids (a JIT-compiled comm op, an eager torch.compile)."""
from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from typing import Any, Dict, List, NamedTuple

import torch

from rlvr.config.schema import AlgorithmConfig, TrainerConfig
from rlvr.trainer.batch import resolve_pad_id
from rlvr.trainer.settings import algorithm_summary, uses_reference


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


class PhaseClock:
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


def whole_parameters(module: torch.nn.Module, zero_stage: int):
    """Context in which every parameter of `module` is whole on every rank (ZeRO-3 gathers)."""
    if zero_stage == 3:
        import deepspeed

        return deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None)
    return contextlib.nullcontext()


def whole_tensors(tensors: List[torch.Tensor], zero_stage: int):
    """Context in which `tensors` are whole (ZeRO-3 gathers only their shards; buffers are never sharded)."""
    params = [t for t in tensors if hasattr(t, "ds_id")]
    if zero_stage == 3 and params:
        import deepspeed

        return deepspeed.zero.GatheredParameters(params, modifier_rank=None)
    return contextlib.nullcontext()


class Engine(NamedTuple):
    engine: Any  # deepspeed.DeepSpeedEngine over the policy
    reference: Any  # frozen copy of the initial policy on the engine's device, or None
    pad_id: int
    dist: Any  # deepspeed.comm


def build_engine(model_dir: str, cfg: TrainerConfig, alg: AlgorithmConfig, dtype: str, rank: int,
                 use_cuda: bool, clock: PhaseClock) -> Engine:
    """Join the process group (environment set by the caller), load the policy and wrap it in
    DeepSpeed ZeRO `cfg.zero_stage`; a frozen reference when KL is used or logged."""
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

    backend = cfg.backend
    if backend == "auto":
        backend = "nccl" if use_cuda else "gloo"
    if backend == "gloo":
        skip_deepspeed_shm_comm_op()
    deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False, verbose=False)
    import deepspeed.comm as dist

    clock.lap("process group")

    # bf16: DeepSpeed keeps fp32 master weights in its optimizer wrapper (all ZeRO stages)
    torch_dtype = getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype)
    model.config.use_cache = False
    disable_dropout(model)
    reference = None
    if uses_reference(alg):
        # A frozen copy, taken before DeepSpeed wraps (ZeRO-3: partitions) the policy: no
        # second load from disk. Under ZeRO-3 it is partitioned like the policy (below).
        import copy

        reference = copy.deepcopy(model).eval().requires_grad_(False)
    clock.lap("model")
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    pad_id = resolve_pad_id(model.config.pad_token_id, model.config.eos_token_id)

    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ds_config = {
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": 1,  # accumulation is driven explicitly in train_step
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": {"stage": cfg.zero_stage},
        "zero_allow_untested_optimizer": True,
        "bf16": {"enabled": dtype == "bfloat16"},
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config)
    clock.lap("deepspeed")
    if rank == 0:
        precision = "bf16 mixed precision (fp32 master weights)" if dtype == "bfloat16" else "fp32"
        print(f"[rlvr.trainer] {precision}, ZeRO-{cfg.zero_stage}, old log-probs "
              f"{'recomputed' if alg.recompute_logprobs else 'from the engine'}, TIS "
              f"{'cap ' + str(alg.tis_cap) if alg.tis_cap > 0 else 'off'}, gradient "
              f"checkpointing {'on' if cfg.gradient_checkpointing else 'off'}; "
              f"{algorithm_summary(cfg, alg)}", file=sys.stderr, flush=True)
    if reference is not None and cfg.zero_stage == 3:
        # each rank keeps 1/world of it and gathers a layer at a time in the forward, as the
        # policy does (OpenRLHF and verl shard their reference the same way)
        reference, _, _, _ = deepspeed.initialize(model=reference, config={
            "train_micro_batch_size_per_gpu": cfg.micro_batch_size, "zero_optimization": {"stage": 3},
            "bf16": {"enabled": dtype == "bfloat16"}, "steps_per_print": 2**31 - 1})
        reference.eval()
    elif reference is not None:
        reference = reference.to(engine.device)
    clock.lap("reference")
    return Engine(engine, reference, pad_id, dist)
