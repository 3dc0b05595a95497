"""Rollouts with an in-process vLLM engine; new weights are loaded in place through a worker extension."""
from __future__ import annotations

import gc
import json
import os
import random
import tempfile
import time
import uuid
from itertools import chain
from pathlib import Path
from typing import Dict, List, Optional

# In-process engine core: starts in seconds instead of tens of seconds and runs inside a Ray actor.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

import torch  # noqa: E402

from rlvr.rollout.engine import RolloutEngine, check_full_state_dict, check_wire_dtype  # noqa: E402
from rlvr.rollout.generation import Generation  # noqa: E402
from rlvr.rollout.engine_options import vllm_llm_kwargs  # noqa: E402
from rlvr.rollout.hf_engine import tied_parameter_names  # noqa: E402

# Requests vLLM's CPU scheduler runs at once unless rollout.max_num_seqs says; sizes the default CPU KV cache.
CPU_KV_CACHE_SEQUENCES = 256
CPU_KV_CACHE_MAX_BYTES = 4 << 30


def sample_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    """A 63-bit seed per (call seed, prompt, sample).

    vLLM seeds the i-th of `n` samples with seed + i, so one seed per call would give every
    prompt the same noise and make call s+1 reuse call s's noise; hashing avoids both.
    """
    return random.Random(f"{seed}/{prompt_index}/{sample_index}").getrandbits(63)


def _hf_names(model_dir: str) -> tuple:
    """(all HF state-dict names, the aliased ones) without allocating the weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return set(model.state_dict()), tied_parameter_names(model)


def _cpu_kv_cache_bytes(model_dir: str, dtype: str, max_model_len: int, sequences: int = CPU_KV_CACHE_SEQUENCES) -> int:
    """KV cache for `sequences` full-length sequences (vLLM's CPU default reserves half of RAM)."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or config["num_attention_heads"]
    per_token = 2 * config["num_hidden_layers"] * kv_heads * head_dim * torch.tensor([], dtype=getattr(torch, dtype)).element_size()
    return min(per_token * max_model_len * sequences, CPU_KV_CACHE_MAX_BYTES)


def _check_cpu_head_dim(model_dir: str) -> None:
    """vLLM's CPU attention kernel only exists for some head sizes; say so before it fails mid-run."""
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    config = json.loads((Path(model_dir) / "config.json").read_text())
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    supported = CPUAttentionBackend.get_supported_head_sizes()
    if head_dim not in supported:
        raise ValueError(
            f"model {model_dir}: head_dim = hidden_size / num_heads = {head_dim}, but vLLM's CPU attention "
            f"supports head sizes {supported}; pick model.num_heads so hidden_size / num_heads is one of "
            f"them (e.g. hidden_size 64, num_heads 2) or use rollout.backend=hf")


class VLLMEngine(RolloutEngine):
    """vLLM `LLM` in this process; every prompt x sample is one request with its own seed."""

    def __init__(self, model_dir: str, *, seed: int = 0, dtype: str = "float32",
                 gpu_memory_utilization: float = 0.5, max_model_len: int = 256,
                 kv_cache_memory_bytes: Optional[int] = None, tensor_parallel_size: int = 1,
                 enforce_eager: Optional[bool] = None, max_num_seqs: Optional[int] = None,
                 enable_prefix_caching: bool = True, sleep_mode: bool = False, load_chunk_mb: float = 512.0):
        """Engine options are rollout.* keys (rlvr/rollout/engine_options.py); `load_chunk_mb`: on a
        GPU, load_weights streams the state dict through files of at most this size."""
        from transformers import AutoTokenizer
        from vllm import LLM
        from vllm.platforms import current_platform

        start = time.perf_counter()
        self.model_dir = str(model_dir)
        self.dtype = getattr(torch, dtype)
        self.tensor_parallel_size = int(tensor_parallel_size)
        self.load_chunk_mb = float(load_chunk_mb)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self._param_names, self._aliased = _hf_names(self.model_dir)
        self.on_cpu = current_platform.is_cpu()
        if self.on_cpu:
            _check_cpu_head_dim(self.model_dir)
            if kv_cache_memory_bytes is None:
                kv_cache_memory_bytes = _cpu_kv_cache_bytes(self.model_dir, dtype, max_model_len,
                                                            max_num_seqs or CPU_KV_CACHE_SEQUENCES)
        elif sleep_mode and not current_platform.is_sleep_mode_available():
            raise ValueError("rollout.sleep_while_training = true: this vLLM platform has no sleep mode; set it false")
        self.llm_kwargs = vllm_llm_kwargs(
            self.model_dir, dtype=dtype, seed=seed, max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization, on_cpu=self.on_cpu,
            kv_cache_memory_bytes=kv_cache_memory_bytes, tensor_parallel_size=tensor_parallel_size,
            enforce_eager=enforce_eager, max_num_seqs=max_num_seqs,
            enable_prefix_caching=enable_prefix_caching, sleep_mode=sleep_mode)
        self.sleep_mode = bool(sleep_mode)
        set_num_threads = torch.set_num_threads
        self.llm = LLM(**self.llm_kwargs)
        # vLLM's CPU worker replaces torch.set_num_threads with a no-op in its process; with the
        # in-process engine that is ours, and rlvr pins threads itself.
        torch.set_num_threads = set_num_threads
        self.start_s = time.perf_counter() - start

    def _rpc(self, method: str, *args) -> list:
        """`method` on every worker of the engine (one per tensor-parallel shard): their results, one
        each, checked to be that many."""
        results = self.llm.collective_rpc(method, args=args)
        if len(results) != self.tensor_parallel_size:
            raise RuntimeError(f"vllm engine: {method} answered from {len(results)} workers, the engine has "
                               f"tensor_parallel_size = {self.tensor_parallel_size}")
        return results

    def generate(self, prompts: List[List[int]], n: int, max_new_tokens: int,
                 temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                 stop_token_ids: Optional[List[int]] = None) -> List[List[Generation]]:
        from vllm import SamplingParams

        requests, params = [], []
        for i, prompt in enumerate(prompts):
            for j in range(n):
                requests.append({"prompt_token_ids": list(prompt)})
                params.append(SamplingParams(
                    n=1, max_tokens=max_new_tokens, temperature=temperature,
                    top_p=top_p if temperature > 0 else 1.0,
                    seed=sample_seed(seed, i, j) if temperature > 0 else None,
                    logprobs=0, stop_token_ids=list(stop_token_ids or []), detokenize=False))
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        generations = []
        for output in outputs:
            completion = output.outputs[0]
            tokens = list(completion.token_ids)
            generations.append(Generation(
                token_ids=tokens,
                logprobs=[step[tok].logprob for step, tok in zip(completion.logprobs, tokens)],
                text=self.tokenizer.decode(tokens, skip_special_tokens=True),
                finish_reason=completion.finish_reason or "length"))
        return [generations[k * n:(k + 1) * n] for k in range(len(prompts))]

    def score(self, prompt_ids: List[int], response_ids: List[int]) -> List[float]:
        from vllm import SamplingParams

        ids = [int(t) for t in chain(prompt_ids, response_ids)]  # lists or numpy arrays (PackedGroups)
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        output = self.llm.generate([{"prompt_token_ids": ids}], params, use_tqdm=False)[0]
        # prompt_logprobs[k] holds the logprob of prompt token k given tokens < k
        return [output.prompt_logprobs[len(prompt_ids) + t][tok].logprob for t, tok in enumerate(response_ids)]

    def load_weights(self, state_dict: Dict[str, torch.Tensor]) -> None:
        """Write the weights to safetensors files in /dev/shm and reload them in the worker(s) in place.

        On CPU one file holds every weight (the CPU reload must see a whole layer in one pass); on a
        GPU the model's loader takes any subset, so the dict goes through files of at most
        `load_chunk_mb`, one at a time: /dev/shm holds one chunk, not the model (TP engines too).
        """
        from safetensors.torch import save_file

        from rlvr.comm.weight_group import plan_buckets

        check_full_state_dict(state_dict, self._param_names, self._aliased, "vllm")
        tensors, storages = {}, set()
        for name, tensor in state_dict.items():
            if name in self._aliased:  # vLLM's loader skips the tied lm_head; it follows embed_tokens
                continue
            tensor = tensor.detach().to("cpu").contiguous()
            if tensor.data_ptr() in storages:  # safetensors refuses shared storage
                tensor = tensor.clone()
            storages.add(tensor.data_ptr())
            tensors[name] = tensor
        if self.on_cpu:
            chunks = [list(tensors)]
        else:
            chunks = plan_buckets([(n, t.numel() * t.element_size()) for n, t in tensors.items()],
                                  max(1, int(self.load_chunk_mb * 2**20)))
        folder = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
        for chunk in chunks:
            path = os.path.join(folder, f"rlvr-weights-{os.getpid()}-{uuid.uuid4().hex}.safetensors")
            try:
                save_file({name: tensors[name] for name in chunk}, path)
                loaded = self._rpc("rlvr_load_weights_from_file", path)
            finally:
                if os.path.exists(path):
                    os.unlink(path)
            if loaded != [len(chunk)] * self.tensor_parallel_size:
                raise RuntimeError(f"vllm engine: workers loaded {loaded} tensors of a {len(chunk)}-tensor file")
        # cached KV blocks were computed by the old weights
        self.llm.reset_prefix_cache()

    def _check_sync_plan(self, buckets: list, dtype: str) -> None:
        """A bucket plan must name every parameter once, in the engine's dtype."""
        names = [name for bucket in buckets for name, _ in bucket]
        check_full_state_dict(names, self._param_names, self._aliased, "vllm")
        if any(name in self._aliased for name in names):  # vLLM's loader skips the tied lm_head
            raise ValueError(f"vllm engine: the weight sync plan holds tied names {sorted(self._aliased & set(names))}; "
                             "send each tensor once (as named_parameters() does)")
        check_wire_dtype(dtype, self.dtype, "vllm")

    def join_weight_group(self, host: str, port: int, rank: int, world_size: int, backend: str,
                          buckets: list, dtype: str, timeout_s: float = 600.0) -> None:
        """Every worker joins as rank `rank` + its tensor-parallel rank (`rank` is the engine's first).

        With the in-process engine core (TP = 1) the one worker runs in this process; with TP > 1
        each shard's worker joins from its own process, and each will load its part of every tensor."""
        self._check_sync_plan(buckets, dtype)
        joined = self._rpc("rlvr_join_weight_group", host, port, rank, world_size, backend, buckets, dtype, timeout_s)
        expected = list(range(rank, rank + self.tensor_parallel_size))
        if sorted(joined) != expected:
            raise RuntimeError(f"vllm engine: its workers joined the weight group as ranks {sorted(joined)}, "
                               f"expected {expected} (one per tensor-parallel shard)")

    def weight_group_size(self) -> int:
        """Members this engine brings to the weight group: one per tensor-parallel shard."""
        return self.tensor_parallel_size

    def receive_weights(self) -> int:
        versions = self._rpc("rlvr_receive_weights")
        if len(set(versions)) != 1:
            raise RuntimeError(f"vllm engine: its workers received versions {versions}; all must get the same sync")
        self.llm.reset_prefix_cache()  # cached KV blocks were computed by the old weights
        return versions[0]

    def leave_weight_group(self) -> None:
        if getattr(self, "llm", None) is not None:
            self.llm.collective_rpc("rlvr_leave_weight_group")

    # ---- sleep mode (rollout.sleep_while_training; CUDA only) ------------------------------------

    @property
    def can_sleep(self) -> bool:
        return self.sleep_mode

    def sleep(self) -> None:
        """Level 1: weights offloaded to CPU memory, KV cache freed (and the prefix cache with it)."""
        if not self.sleep_mode:
            raise RuntimeError("vllm engine: built without sleep mode; set rollout.sleep_while_training = true")
        self.llm.sleep(level=1)

    def wake_up(self) -> None:
        """Weights back on the GPU and the KV cache re-allocated; generation may resume."""
        if not self.sleep_mode:
            raise RuntimeError("vllm engine: built without sleep mode; set rollout.sleep_while_training = true")
        self.llm.wake_up()

    def weights_device(self) -> torch.device:
        from vllm.platforms import current_platform

        # the in-process engine core's worker lives in this process, on this process's GPU
        return torch.device("cpu") if current_platform.is_cpu() else torch.device("cuda", torch.cuda.current_device())

    def open_ipc_sync(self, buckets: list, dtype: str) -> None:
        """The worker keeps the plan: with the in-process engine core it runs in this process."""
        self._check_sync_plan(buckets, dtype)
        self._rpc("rlvr_open_ipc_sync", buckets)

    def load_ipc_bucket(self, index: int, handle) -> bool:
        (last,) = self._rpc("rlvr_load_ipc_bucket", index, handle)  # ipc feeds one-GPU engines only
        if last:
            self.llm.reset_prefix_cache()  # cached KV blocks were computed by the old weights
        return last

    def shutdown(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        try:
            llm.collective_rpc("rlvr_leave_weight_group")
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass
        # shuts the engine core down (and its process when multiprocessing): frees /dev/shm segments
        llm.llm_engine.engine_core.shutdown()
        del llm
        gc.collect()
