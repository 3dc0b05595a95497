"""The quickstart through the real topology: local Ray cluster, vLLM CPU engine, reward
worker, DeepSpeed trainer with 2 ranks (ZeRO-3), weight sync, eval, run folder."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlvr.config import load_recipe
from rlvr.controller.loop import train
from rlvr.tracking.run_folder import read_metrics

ROOT = Path(__file__).resolve().parents[2]
STEP_KEYS = {"step", "gt/reward_mean", "proxy/reward_mean", "reward/false_positive_rate",
             "reward/false_negative_rate", "policy/entropy", "loss", "perf/step_s",
             "perf/rollout_tokens_per_s", "perf/weight_sync_s", "perf/controller_s", "errors/harmful", "errors/benign",
             "errors/beneficial"}


def short_run(tmp_path, *overrides):
    return load_recipe(str(ROOT / "recipes" / "quickstart.yaml"), [
        f"output_dir={tmp_path}", "run_name=e2e", "steps=3", "eval_every=2",
        "warmup.steps=100", "warmup.target_accuracy=0.05", "task.eval_size=32", "task.train_size=200",
        "rollout.prompts_per_step=8", "rollout.samples_per_prompt=4", *overrides])


@pytest.mark.e2e
def test_quickstart_vllm_deepspeed_two_ranks(tmp_path):
    # weights reach the engine through the collective group (the default), in small buckets
    cfg = short_run(tmp_path, "rollout.backend=vllm", "trainer.num_ranks=2", "trainer.zero_stage=3", "reward.num_workers=2",
                    "rollout.weight_sync=collective", "rollout.sync_bucket_mb=0.1",
                    "reward.design.name=flip", "reward.design.fp_rate=0.3", "reward.design.fn_rate=0.1")
    summary = train(cfg)
    run = tmp_path / "e2e"
    assert summary["status"] == "finished"
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    assert (run / "config.yaml").read_text().count("fp_rate: 0.3") == 1

    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    assert "eval/gt_accuracy" in rows[0]
    for row in rows[1:]:
        assert STEP_KEYS <= set(row), STEP_KEYS - set(row)
        assert row["reward/verifier_error_rate"] == 0.0
    assert {"eval/gt_accuracy"} <= set(rows[2]) and {"eval/gt_accuracy"} <= set(rows[3])
    assert any(r["reward/false_positive_rate"] > 0 for r in rows[1:])  # the flip design was applied

    samples = [json.loads(line) for line in (run / "samples" / "step_000003.jsonl").read_text().splitlines()]
    assert len(samples) == 8 * 4
    assert {"prompt_id", "sample_index", "response", "num_tokens", "gt", "proxy", "category",
            "policy_version"} <= set(samples[0])
    assert {s["policy_version"] for s in samples} == {2}  # step 3 sampled from the weights of update 2

    # `rlvr score` on the stored samples reproduces the proxy rewards training saw.
    from rlvr.rewards.score_command import main as score_main

    rescored_path = tmp_path / "rescored.jsonl"
    design = "{name: flip, fp_rate: 0.3, fn_rate: 0.1}"
    assert score_main([str(run / "samples"), "--verifier", "arithmetic", "--design", design,
                       "--out", str(rescored_path)]) == 0
    rescored = [json.loads(line) for line in rescored_path.read_text().splitlines()]
    assert len(rescored) == 3 * 8 * 4
    assert all(r["proxy"] == r["proxy_before"] and r["gt"] == r["gt_before"] for r in rescored)

    # Parameters changed, and the rollout engine holds exactly the trainer's weights.
    before = load_file(str(Path(summary["model_dir"]) / "model.safetensors"))
    after = load_file(str(run / "checkpoints" / "step_000003" / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert summary["sync_max_logprob_diff"] < 1e-3


@pytest.mark.e2e
def test_quickstart_hf_backend_one_rank_bf16_with_wandb_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")  # no network: wandb writes its files locally
    # bf16 engine + DeepSpeed bf16 trainer (CPU torch supports bf16), TIS on
    summary = train(short_run(tmp_path, "rollout.backend=hf", "trainer.num_ranks=1", "trainer.zero_stage=0",
                              "logging.wandb=true", "eval.samples_per_prompt=3", "rollout.weight_sync=object_store",
                              "model.dtype=bfloat16", "algorithm.tis_cap=2.0"))
    assert summary["status"] == "finished"
    audit = json.loads((tmp_path / "e2e" / "summary.json").read_text())["audit"]  # eval.audit_prompts = 64
    assert audit["audit/prompts"] == 64 and sum(audit["audit/success_histogram"]) == 64
    assert audit["reward/false_positive_rate"] == 0.0 and audit["reward/error_rate"] == 0.0  # ground truth
    evals = [r for r in read_metrics(tmp_path / "e2e" / "metrics.jsonl") if "eval/gt_accuracy" in r]
    assert [r["step"] for r in evals] == [0, 2, 3]
    for r in evals:  # 32 prompts x 3 samples: accuracy in steps of 1/96, pass@3 in steps of 1/32
        assert r["eval/pass_at_k"] >= r["eval/gt_accuracy_sampled"]
        assert round(r["eval/gt_accuracy_sampled"] * 96, 6).is_integer() and round(r["eval/pass_at_k"] * 32, 6).is_integer()
    offline = list((tmp_path / "e2e" / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))
    assert summary["sync_max_logprob_diff"] < 0.1  # bf16 forwards of one set of weights
    # The summary's accuracies are the evaluations logged at steps 0, 2 and 3 (32 prompts).
    evals = [r["eval/gt_accuracy"] for r in read_metrics(tmp_path / "e2e" / "metrics.jsonl")
             if "eval/gt_accuracy" in r]
    assert len(evals) == 3 and all(round(a * 32) == a * 32 for a in evals)
    assert (summary["initial_eval_gt_accuracy"], summary["final_eval_gt_accuracy"],
            summary["best_eval_gt_accuracy"]) == (evals[0], evals[-1], max(evals))
    rows = read_metrics(tmp_path / "e2e" / "metrics.jsonl")[1:]
    for row in rows:  # the engine's bf16 generate vs the trainer's bf16 recompute: a small, real gap
        assert 0.0 < row["policy/logprob_mismatch_mean"] <= row["policy/logprob_mismatch_max"] < 1.0
        assert row["policy/ratio_mean"] == pytest.approx(1.0, abs=1e-6)  # one update per step
        assert 0.0 < row["policy/tis_weight_mean"] <= 2.0
