"""Methods vLLM mixes into its worker (`LLM(worker_extension_cls=...)`), called via `collective_rpc`.

This module is imported inside vLLM's worker, so it must not import rlvr's heavier modules.
"""
from __future__ import annotations


def refresh_cpu_embedding_gemms(model) -> list:
    """Re-pack the CPU GEMM of every embedding-shaped layer from its current weight.

    On CPU vLLM computes logits with a oneDNN copy of lm_head's weight packed at load time.
    With tied embeddings the in-place reload writes embed_tokens but never "loads" lm_head, so
    its packed copy would keep the old weights; re-packing is cheap and always correct.
    """
    from vllm.model_executor.layers.vocab_parallel_embedding import VocabParallelEmbedding

    refreshed = []
    for name, module in model.named_modules():
        if isinstance(module, VocabParallelEmbedding) and hasattr(module, "cpu_linear"):
            module.quant_method.process_weights_after_loading(module)
            refreshed.append(name)
    return refreshed


def _load_in_place(worker, weights) -> None:
    """Load an iterator of (HF name, tensor) into the running model in place."""
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        # CPU kernels repack weights at load time, so `model.load_weights` writes tensors the
        # kernels never read; the worker's in-place reload re-runs that processing per layer.
        worker.reload_weights(weights_iterator=weights)
        refresh_cpu_embedding_gemms(worker.model_runner.model)
    else:
        # GPU path: unquantized CUDA layers read their parameters directly, so the model's own
        # loader suffices. NOT TESTED HERE (no GPU on the dev machine).
        worker.model_runner.model.load_weights(weights=weights)


def shard_rank(worker) -> int:
    """This worker's rank within its engine (its tensor-parallel rank; 0 with one worker)."""
    return int(getattr(worker, "rank", 0) or 0)


class WeightReloadExtension:
    """Take new weights in place: from a safetensors file, or from the collective weight group."""

    def rlvr_load_weights_from_file(self, path: str) -> int:
        """Load the weights saved at `path` in place; returns how many tensors were read."""
        from safetensors.torch import load_file

        weights = load_file(path, device="cpu")
        _load_in_place(self, iter(weights.items()))
        return len(weights)

    def rlvr_join_weight_group(self, host: str, port: int, first_rank: int, world_size: int, backend: str,
                               buckets: list, dtype: str, timeout_s: float) -> int:
        """Join the weight-sync group (rlvr/comm/weight_group.py) from inside this worker, as rank
        `first_rank` + this worker's tensor-parallel rank; returns the rank taken.

        Every shard receives every full tensor; the model's loader keeps this shard's part."""
        import torch

        from rlvr.comm.weight_group import WeightGroup

        self.rlvr_leave_weight_group()
        rank = int(first_rank) + shard_rank(self)
        self._rlvr_sync = (WeightGroup(rank, world_size, backend, host=host, port=port, timeout_s=timeout_s),
                           buckets, getattr(torch, dtype))
        return rank

    def rlvr_receive_weights(self) -> int:
        """Receive one sync and load it in place as the buckets arrive; returns the version sent."""
        from rlvr.comm.weight_group import receive_buckets, receive_header

        group, buckets, dtype = self._rlvr_sync
        version = receive_header(group, buckets)
        _load_in_place(self, receive_buckets(group, buckets, dtype))
        return version

    def rlvr_open_ipc_sync(self, buckets: list) -> None:
        """Keep the trainer's bucket plan for ipc syncs (rlvr/comm/tensor_handles.py)."""
        from rlvr.comm.tensor_handles import BucketOrder

        self._rlvr_ipc = (BucketOrder(buckets, "vllm"), [])

    def rlvr_load_ipc_bucket(self, index: int, handle) -> bool:
        """Load one bucket from the trainer's shared buffer; True once the last bucket is in.

        On GPU each bucket goes through the model's loader at once. On CPU the in-place reload
        re-processes whole layers and must see every weight in one pass, so the buckets are
        copied out of the shared buffer (freeing it for the next one) and reloaded after the last.
        """
        import torch

        from rlvr.comm.tensor_handles import open_handle, unflatten
        from vllm.platforms import current_platform

        order, pending = self._rlvr_ipc
        flat = open_handle(handle)  # on GPU: this worker's device; first: consumes the handle's reference
        bucket, last = order.take(index)
        if index == 0:
            pending.clear()  # left over from a sync that failed half-way
        views = unflatten(flat, bucket)
        if current_platform.is_cpu():
            pending.extend((name, tensor.clone()) for name, tensor in views)
            if last:
                weights = list(pending)
                pending.clear()
                _load_in_place(self, iter(weights))
        else:
            # GPU path: NOT TESTED HERE (no GPU on the dev machine); its CPU twin is the branch above.
            _load_in_place(self, views)
            torch.cuda.current_stream().synchronize()  # read before the sender overwrites the buffer
        return last

    def rlvr_leave_weight_group(self) -> None:
        sync, self._rlvr_sync = getattr(self, "_rlvr_sync", None), None
        if sync is not None:
            sync[0].close()
