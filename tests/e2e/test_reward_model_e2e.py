"""The reward_model design in a real Ray RewardWorker scores as it does in-process, and a small
reward-model study (2 reward models, 1 seed, 1 RL step) produces its correlation table."""
import json

import pytest

RECORDS = [{"prompt_id": pid, "sample_index": j, "response": resp, "gold": gold, "prompt": text}
           for pid, text, gold, answers in (("train-0", "12+34=", "46", ("46;", "45;", "7;")),
                                            ("train-1", "10+10=", "20", ("20;", "21;", "")))
           for j, resp in enumerate(answers)]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from rlvr.models.tiny import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny_lm"), hidden_size=32, num_layers=1, num_heads=1,
                                intermediate_size=64, seed=0))


@pytest.mark.e2e
def test_reward_model_scores_identically_in_the_pool_and_in_process(tiny_lm, tmp_path):
    import ray

    from rlvr.config import load_recipe
    from rlvr.controller.cluster import shutdown_ray, start_ray
    from rlvr.reward_models.model import scalar_head_model
    from rlvr.rewards.worker import RewardWorker, RewardWorkerActor

    model, tok = scalar_head_model(tiny_lm)
    model.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    design = {"name": "reward_model", "path": str(tmp_path / "rm"), "normalize": "whiten", "batch_size": 4}
    local = RewardWorker("arithmetic", design)
    try:
        expected = local.score(RECORDS)
    finally:
        local.close()
    start_ray(load_recipe(None, ["cluster.num_cpus=3"]).cluster, 3)
    try:
        worker = RewardWorkerActor.options(num_cpus=1).remote("arithmetic", design)
        pooled = ray.get(worker.score.remote(RECORDS), timeout=180)
        ray.get(worker.close.remote())
    finally:
        shutdown_ray()
    assert [r["gt"] for r in pooled] == [r["gt"] for r in expected] == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert [r["proxy"] for r in pooled] == pytest.approx([r["proxy"] for r in expected], abs=1e-6)
    assert len({round(r["proxy"], 6) for r in pooled}) > 1


@pytest.mark.e2e
def test_small_reward_model_study_writes_the_correlation_table(tiny_lm, tmp_path, capsys):
    from rlvr.cli import main

    (tmp_path / "r.yaml").write_text(
        "task: {train_size: 100, eval_size: 8}\nrollout: {max_new_tokens: 4, samples_per_prompt: 2, "
        "prompts_per_step: 4}\ntrainer: {zero_stage: 0}\neval: {audit_prompts: 0}\n")
    (tmp_path / "s.yaml").write_text(f"""kind: reward_models
recipe: r.yaml
output_dir: {tmp_path / 'out'}
seeds: [0]
overrides: [steps=1, eval_every=1, model.path={tiny_lm}]
rm_train: [rm.prompts=8, rm.heldout_prompts=4, rm.samples_per_prompt=2, rm.pairs=32, rm.steps=4,
           rm.bias=off_by_one, rm.bias_share=1.0]
design: {{normalize: whiten}}
eval_prompts: 4
gain: final
ground_truth_arm: false
resamples: 50
reward_models:
  prefers_gold: [rm.bias_rate=0.0]
  prefers_off_by_one: [rm.bias_rate=1.0]
""")
    assert main(["study", str(tmp_path / "s.yaml")]) == 0
    out = tmp_path / "out"
    report = json.loads((out / "rm_study.json").read_text())
    assert [r["reward_model"] for r in report["reward_models"]] == ["prefers_gold", "prefers_off_by_one"]
    assert [r["bias_rate"] for r in report["reward_models"]] == [0.0, 1.0]
    assert all(r["gain"] is not None and r["n_seeds_finished"] == 1 for r in report["reward_models"])
    assert set(report["correlations"]) >= {"Acc", "Acc-W", "HAcc", "HAcc-W", "variance"}
    assert "HAcc - Acc" in report["differences"]
    assert (out / "scatter_HAcc.png").is_file() and (out / "prefers_gold__seed0" / "summary.json").is_file()
    assert "difference of correlations" in capsys.readouterr().out
