"""combine_rank_metrics: the driver's side of train_step's metrics (each rank returns its share)."""
import pytest

from rlvr.trainer.policy_trainer import RANK_MAXED, RANK_SUMMED, combine_rank_metrics


def test_shares_are_added_maxima_maxed_and_the_rest_taken_from_rank_0():
    rank0 = {"loss": 0.25, "policy/entropy": 0.5, "policy/logprob_mismatch_mean": 0.01,
             "policy/logprob_mismatch_max": 0.2, "policy/grad_norm": 1.5,
             "trainer/response_tokens": 40.0, "perf/train_compute_s": 0.03}
    rank1 = {"loss": -0.05, "policy/entropy": 0.25, "policy/logprob_mismatch_mean": 0.03,
             "policy/logprob_mismatch_max": 0.7, "policy/grad_norm": 1.5,
             "trainer/response_tokens": 40.0, "perf/train_compute_s": 0.05}
    combined = combine_rank_metrics([rank0, rank1])
    assert combined == {"loss": pytest.approx(0.2), "policy/entropy": 0.75,
                        "policy/logprob_mismatch_mean": pytest.approx(0.04),
                        "policy/logprob_mismatch_max": 0.7, "policy/grad_norm": 1.5,
                        "trainer/response_tokens": 40.0, "perf/train_compute_s": 0.03}
    assert rank0["loss"] == 0.25  # the ranks' own dicts are left as they were


def test_one_ranks_metrics_are_already_global():
    alone = {"loss": 0.1, "policy/logprob_mismatch_max": 0.3, "policy/clip_fraction": 0.2}
    assert combine_rank_metrics([alone]) == alone


def test_every_metric_is_either_summed_maxed_or_the_same_on_every_rank():
    assert not RANK_SUMMED & RANK_MAXED
    assert "policy/grad_norm" not in RANK_SUMMED | RANK_MAXED  # DeepSpeed's global norm, on every rank
    assert {"loss", "policy/entropy", "policy/tis_weight_mean"} <= RANK_SUMMED
