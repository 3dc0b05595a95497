"""The loss of one micro-batch and the per-token statistics it is built from (pure tensor math
over a model's logits; rlvr/algorithms holds the estimators, losses and aggregations)."""
from __future__ import annotations

from typing import Callable, Dict, Optional

import torch
from torch import Tensor

from rlvr.algorithms.grpo import kl_estimator, masked_sum, token_logprobs_and_entropy, truncated_is_weights
from rlvr.algorithms.losses import kl_penalty, policy_loss_terms
from rlvr.config.schema import AlgorithmConfig
from rlvr.trainer.batch import TrainBatch
from rlvr.trainer.settings import clip_bounds

METRIC_NAMES = ("loss", "policy/entropy", "policy/clip_fraction", "policy/ratio_mean",
                "policy/approx_kl", "policy/kl_to_ref", "policy/kl_to_init", "policy/grad_norm",
                "policy/logprob_mismatch_mean", "policy/logprob_mismatch_max")


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


def abs_gap(engine_logprobs: Tensor, trainer_logprobs: Tensor, mask: Tensor):
    """(sum, max) of |engine - trainer| log-prob over the masked tokens, as float64 0-d tensors
    on the inputs' device (read once per step: no host-device sync per micro-batch)."""
    gap = torch.where(mask.bool(), (engine_logprobs.float() - trainer_logprobs.float()).abs(),
                      torch.zeros_like(trainer_logprobs, dtype=torch.float32))
    largest = gap.max() if gap.numel() else gap.new_zeros(())
    return gap.sum().double(), largest.double()


def micro_batch_loss(alg: AlgorithmConfig, token_stats: Callable, policy, reference, mb: TrainBatch,
                     trainer_old: Optional[Tensor], own_old: bool = False, weights: Optional[Tensor] = None,
                     ref_cache: Optional[Dict[int, Tensor]] = None):
    """(Weighted loss of one micro-batch under `policy`, token-sums of its metrics (float64 0-d
    tensors on the device), detached [B, T] log-probs).

    The loss is sum(weights * per-token loss), `weights` [B, T] from aggregation_weights
    (times world_size: DeepSpeed averages gradients over ranks); default: token-sum. Old
    log-probs of the ratio: `trainer_old` (recomputed), or with `own_old` this forward's
    own (detached), else the engine's (mb.old_logprobs). Reference log-probs (`reference`: a
    frozen model or None) are computed once per micro-batch and kept in `ref_cache` for later
    epochs. `token_stats(model, mb)` gives (log-prob, entropy) [B, T] at the rollout temperature.
    """
    logprobs, entropy = token_stats(policy, mb)
    if own_old:
        trainer_old = logprobs.detach()
    mask = mb.response_mask
    if weights is None:
        weights = mask.to(torch.float32)
    old = trainer_old if trainer_old is not None else mb.old_logprobs
    low, high = clip_bounds(alg)
    loss_tok, ratio, clipped = policy_loss_terms(logprobs, old, mb.advantages, alg.loss,
                                                 low, high, alg.clip_ratio_c)
    tis = None
    if alg.tis_cap > 0:  # the engine sampled; the trainer's old policy is the target
        tis = truncated_is_weights(trainer_old, mb.old_logprobs, alg.tis_cap)
        loss_tok = loss_tok * tis
    if alg.entropy_coef > 0:
        loss_tok = loss_tok - alg.entropy_coef * entropy
    # metric token-sums stay on the device as float64 (the sums a Python float would make):
    # train_step reads them once per step, not with a sync per value per micro-batch
    kl_sum = kl_init_sum = logprobs.new_zeros((), dtype=torch.float64)
    if reference is not None:
        cache = ref_cache if ref_cache is not None else {}
        if id(mb) not in cache:
            with torch.no_grad():
                cache[id(mb)], _ = token_stats(reference, mb)
        ref_logprobs = cache[id(mb)]
        if alg.kl_coef > 0 and alg.kl_in == "loss":
            kl_tok = kl_penalty(logprobs, ref_logprobs, alg.kl_estimator)
            loss_tok = loss_tok + alg.kl_coef * kl_tok
            kl_sum = masked_sum(kl_tok.detach(), mask).double()
        kl_init_sum = masked_sum(kl_estimator(logprobs.detach(), ref_logprobs), mask).double()
    total = masked_sum(loss_tok * weights, mask)
    with torch.no_grad():
        parts = {
            "loss": total.detach().double(),
            "policy/entropy": masked_sum(entropy, mask).double(),
            "policy/clip_fraction": masked_sum(clipped, mask).double(),
            "policy/ratio_mean": masked_sum(ratio, mask).double(),
            # k3 of KL(old || current): samples come from the old (behaviour) policy.
            "policy/approx_kl": masked_sum(kl_estimator(old, logprobs), mask).double(),
            "policy/kl_to_ref": kl_sum,
            "policy/kl_to_init": kl_init_sum,
            "policy/tis_weight_mean": masked_sum(tis, mask).double() if tis is not None else kl_sum.new_zeros(()),
        }
    return total, parts, logprobs.detach()
