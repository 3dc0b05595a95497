"""One interface over the rollout backends: transformers `generate` ("hf") and vLLM ("vllm").

Both return the same `Generation` records, score sequences the same way and take new weights
in place, so the controller and the tests never branch on the backend.
"""
from __future__ import annotations

import abc
from typing import Dict, List, Optional

import torch

from rlvr.rollout.generation import Generation


class RolloutEngine(abc.ABC):
    """A policy that samples responses, scores sequences and takes new weights in place."""

    @abc.abstractmethod
    def generate(self, prompts: List[List[int]], n: int, max_new_tokens: int,
                 temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                 stop_token_ids: Optional[List[int]] = None) -> List[List[Generation]]:
        """Sample `n` responses per prompt; returns [len(prompts)][n] Generations.

        temperature 0 is greedy. The same `seed` gives the same samples; callers pass a new
        seed per call (base_seed + step) so repeated calls draw fresh samples. Generation
        stops at the model's eos token and at any of `stop_token_ids`.
        """

    @abc.abstractmethod
    def score(self, prompt_ids: List[int], response_ids: List[int]) -> List[float]:
        """Teacher-forced logprob (temperature 1) of each response token given the prompt."""

    @abc.abstractmethod
    def load_weights(self, state_dict: Dict[str, torch.Tensor]) -> None:
        """Replace all weights in place (HF parameter names, as in `model.state_dict()`)."""

    # Collective weight sync (rlvr/comm/weight_group.py): the engine is rank `rank` of a group
    # whose rank 0 (trainer rank 0) broadcasts `buckets` of (name, shape) in `dtype`.
    def join_weight_group(self, host: str, port: int, rank: int, world_size: int, backend: str,
                          buckets: list, dtype: str, timeout_s: float = 600.0) -> None:
        """Join the weight-sync group; returns once every member has joined (all join concurrently)."""
        raise NotImplementedError(f"{type(self).__name__} has no collective weight sync; "
                                  "use rollout.weight_sync=object_store")

    def receive_weights(self) -> int:
        """Receive one broadcast of every bucket and load it in place; returns the version sent."""
        raise NotImplementedError(f"{type(self).__name__} has no collective weight sync")

    def leave_weight_group(self) -> None:
        """Leave the weight-sync group (idempotent)."""

    def weight_group_size(self) -> int:
        """Members this engine brings to the weight group (one per worker process that loads weights)."""
        return 1

    # Sleep mode (rollout.sleep_while_training): free the GPU while a colocated trainer steps.
    @property
    def can_sleep(self) -> bool:
        """Whether sleep()/wake_up() work (vLLM on a GPU, built with sleep mode)."""
        return False

    def sleep(self) -> None:
        """Free the engine's GPU memory (weights offloaded, KV cache dropped) until wake_up."""
        raise NotImplementedError(f"{type(self).__name__} has no sleep mode; set rollout.sleep_while_training = false")

    def wake_up(self) -> None:
        """Bring weights and KV cache back after sleep; generation may resume."""
        raise NotImplementedError(f"{type(self).__name__} has no sleep mode")

    # ipc weight sync (rlvr/comm/tensor_handles.py): a trainer rank on this machine (and GPU) hands
    # over `buckets` of (name, shape) in `dtype`, one flat shared tensor per bucket, in plan order.
    def weights_device(self) -> torch.device:
        """The device the engine's weights live on (where an ipc sender must be)."""
        return torch.device("cpu")

    def open_ipc_sync(self, buckets: list, dtype: str) -> None:
        """Check and keep the trainer's bucket plan for `load_ipc_bucket`."""
        raise NotImplementedError(f"{type(self).__name__} has no ipc weight sync; use rollout.weight_sync=object_store")

    def load_ipc_bucket(self, index: int, handle) -> bool:
        """Load bucket `index` (a tensor_handles.share handle) in place; True once the last bucket is in.
        Returns only when the shared memory is no longer read (the sender may overwrite it)."""
        raise NotImplementedError(f"{type(self).__name__} has no ipc weight sync")

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Release the engine's memory and processes; the engine is unusable afterwards."""


def check_wire_dtype(dtype: str, engine_dtype: torch.dtype, backend: str) -> None:
    """Weights must arrive in the engine's own dtype (the trainer casts them before sending)."""
    if getattr(torch, str(dtype), None) != engine_dtype:
        raise ValueError(f"{backend} engine: weight sync sends {dtype} but the engine holds "
                         f"{str(engine_dtype).replace('torch.', '')}; the sync dtype must be model.dtype")


def check_full_state_dict(state_dict: Dict[str, torch.Tensor], expected: set, optional: set,
                          backend: str) -> None:
    """Raise ValueError unless `state_dict` (or an iterable of names) holds every expected name and nothing else.

    Engines take whole state dicts only: vLLM's in-place reload leaves a partly loaded layer
    with uninitialised tensors, so a partial dict must fail loudly rather than corrupt it.
    """
    names = set(state_dict)
    missing = sorted(expected - optional - names)
    unexpected = sorted(names - expected)
    if missing or unexpected:
        raise ValueError(
            f"{backend} engine load_weights: state dict must hold every model parameter under its "
            f"HF name (as in model.state_dict()); missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
