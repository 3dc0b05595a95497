"""Rollouts with transformers `generate`: no extra dependency, fastest for tiny models on CPU."""
from __future__ import annotations

import inspect
from typing import Dict, List, Optional

import torch

from rlvr.rollout.engine import RolloutEngine, check_full_state_dict, check_wire_dtype
from rlvr.rollout.generation import Generation


def tied_parameter_names(model: torch.nn.Module) -> set:
    """State-dict names that alias another parameter (e.g. lm_head.weight with tied embeddings)."""
    every = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    return every - {name for name, _ in model.named_parameters()}


class HFEngine(RolloutEngine):
    """Batched transformers sampling; every prompt x sample is one row of one left-padded batch,
    decoding from its prompt's KV cache (each prompt is run once for its n samples)."""

    def __init__(self, model_dir: str, *, seed: int = 0, dtype: str = "float32",
                 device: Optional[str] = None, cuda_graphs: bool = False):
        """`cuda_graphs`: decode with a static KV cache, which transformers compiles with
        torch.compile(mode="reduce-overhead") (CUDA graphs) on a GPU; each new batch shape compiles
        once. Refused on CPU."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if cuda_graphs and self.device.type != "cuda":
            raise ValueError(f"hf engine: cuda_graphs needs a CUDA device, this engine is on {self.device}")
        self._generate_extra = {"cache_implementation": "static"} if cuda_graphs else {}
        self.seed = seed
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=getattr(torch, dtype)).to(self.device).eval()
        gen_config = self.model.generation_config
        eos = gen_config.eos_token_id if gen_config.eos_token_id is not None else self.tokenizer.eos_token_id
        self.eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        self._param_names = set(self.model.state_dict())
        self._aliased = tied_parameter_names(self.model)
        self._logits_to_keep = "logits_to_keep" in inspect.signature(self.model.forward).parameters

    @torch.no_grad()
    def generate(self, prompts: List[List[int]], n: int, max_new_tokens: int,
                 temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                 stop_token_ids: Optional[List[int]] = None) -> List[List[Generation]]:
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):  # left padding: the new tokens line up at column `width`
            input_ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
            attention_mask[i, width - len(p):] = 1
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        # each prompt's columns but its last run once, and its n rows start from that KV cache
        # (generate runs only the columns the cache lacks); a static cache is sized by generate
        cache = self._prefill(input_ids[:, :-1], attention_mask[:, :-1], n) \
            if n > 1 and width > 1 and not self._generate_extra else None
        rows = len(prompts) * n
        input_ids, attention_mask = input_ids.repeat_interleave(n, 0), attention_mask.repeat_interleave(n, 0)
        stops = list(dict.fromkeys(self.eos_ids + list(stop_token_ids or [])))
        sampling = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0) if temperature > 0 \
            else dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # seed this call without touching the caller's RNG
            torch.manual_seed(seed)
            out = self.model.generate(
                input_ids=input_ids, attention_mask=attention_mask, past_key_values=cache,
                max_new_tokens=max_new_tokens, min_new_tokens=0, eos_token_id=stops,
                pad_token_id=self.pad_id, return_dict_in_generate=True, output_logits=True,
                use_cache=True, **sampling, **self._generate_extra)
        new_tokens = out.sequences[:, width:].cpu()
        # log softmax(logits / T): the distribution sampled from, as the trainer computes it (top-p
        # is not applied, so with top_p < 1 these are the untruncated distribution's log-probs)
        logits = torch.stack(out.logits, dim=1).float()
        logprobs = (logits / temperature if temperature > 0 else logits).log_softmax(-1).cpu()
        chosen = logprobs.gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)

        stop_set = set(stops)
        generations = []
        for i in range(rows):
            tokens = new_tokens[i].tolist()
            # after a row stops, generate pads it; cut at the first stop token, which is kept
            end = next((t + 1 for t, tok in enumerate(tokens) if tok in stop_set), None)
            finish = "stop" if end is not None else "length"
            tokens = tokens[:end] if end is not None else tokens
            generations.append(Generation(
                token_ids=tokens, logprobs=chosen[i, :len(tokens)].tolist(),
                text=self.tokenizer.decode(tokens, skip_special_tokens=True), finish_reason=finish))
        return [generations[k * n:(k + 1) * n] for k in range(len(prompts))]

    def _prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, n: int):
        """The KV cache of each prompt's columns, run once, repeated for its n sample rows."""
        from rlvr.trainer.batch import position_ids_from_mask  # light: numpy and torch

        last_only = {"logits_to_keep": 1} if self._logits_to_keep else {}  # the logits are not used
        out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                         position_ids=position_ids_from_mask(attention_mask), use_cache=True, **last_only)
        out.past_key_values.batch_repeat_interleave(n)
        return out.past_key_values

    @torch.no_grad()
    def score(self, prompt_ids: List[int], response_ids: List[int]) -> List[float]:
        ids = torch.tensor([list(prompt_ids) + list(response_ids)], device=self.device)
        logits = self.model(input_ids=ids).logits[0].float()
        # logits at position t predict token t+1
        logprobs = logits[len(prompt_ids) - 1:-1].log_softmax(-1)
        targets = torch.tensor(response_ids, device=self.device).unsqueeze(-1)
        return logprobs.gather(-1, targets).squeeze(-1).tolist()

    @torch.no_grad()
    def load_weights(self, state_dict: Dict[str, torch.Tensor]) -> None:
        check_full_state_dict(state_dict, self._param_names, self._aliased, "hf")
        self.model.load_state_dict(state_dict, strict=False)

    def _check_sync_plan(self, buckets: list, dtype: str) -> None:
        """A bucket plan (collective or ipc) must name every parameter once, in the engine's dtype."""
        check_full_state_dict([name for bucket in buckets for name, _ in bucket], self._param_names,
                              self._aliased, "hf")
        check_wire_dtype(dtype, self.model.dtype, "hf")

    def join_weight_group(self, host: str, port: int, rank: int, world_size: int, backend: str,
                          buckets: list, dtype: str, timeout_s: float = 600.0) -> None:
        from rlvr.comm.weight_group import WeightGroup

        self._check_sync_plan(buckets, dtype)
        self.leave_weight_group()
        self._sync = (WeightGroup(rank, world_size, backend, host=host, port=port, timeout_s=timeout_s),
                      buckets, getattr(torch, dtype))

    @torch.no_grad()
    def receive_weights(self) -> int:
        """Each tensor is copied into its parameter as its bucket arrives (one bucket buffered)."""
        from rlvr.comm.weight_group import receive_buckets, receive_header

        group, buckets, dtype = self._sync
        version = receive_header(group, buckets)
        targets = self.model.state_dict(keep_vars=True)
        for name, tensor in receive_buckets(group, buckets, dtype):
            targets[name].data.copy_(tensor)
        return version

    def leave_weight_group(self) -> None:
        sync, self._sync = getattr(self, "_sync", None), None
        if sync is not None:
            sync[0].close()

    def weights_device(self) -> torch.device:
        return self.device

    def open_ipc_sync(self, buckets: list, dtype: str) -> None:
        from rlvr.comm.tensor_handles import BucketOrder

        self._check_sync_plan(buckets, dtype)
        self._ipc = (BucketOrder(buckets, "hf"), self.model.state_dict(keep_vars=True))

    @torch.no_grad()
    def load_ipc_bucket(self, index: int, handle) -> bool:
        """Copy each tensor of the shared bucket into its parameter; the shared memory is let go on return."""
        from rlvr.comm.tensor_handles import open_handle, unflatten

        order, targets = self._ipc
        flat = open_handle(handle, self.device)  # first: opening consumes the handle's reference, even on a refusal
        bucket, last = order.take(index)
        for name, tensor in unflatten(flat, bucket):
            targets[name].data.copy_(tensor)
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()  # copies done before the sender reuses it
        return last

    def shutdown(self) -> None:
        self.leave_weight_group()
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
