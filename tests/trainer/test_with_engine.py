"""TrainerWithEngine (rollout.in_trainer) in-process: the engine built in the rank's process
generates, scores, and after a train step with the fused sync holds exactly the rank's weights."""
import pytest

from rlvr.trainer import make_train_batch
from rlvr.trainer.with_engine import TrainerWithEngine

PROMPTS = [[20, 21, 15], [22, 15], [23, 24, 25, 15], [26, 15]]
RESPONSES = [[40, 41, 1], [42], [43, 44, 45, 46], [47, 1]]
ADVANTAGES = [1.0, -1.0, 1.0, -1.0]


@pytest.fixture(scope="module")
def rank(tiny_model_dir, make_rank):
    return make_rank(tiny_model_dir, dict(zero_stage=2, micro_batch_size=4, lr=1e-2),
                     dict(kl_coef=0.0, clip_eps=0.2), cls=TrainerWithEngine)


def test_engine_calls_before_the_engine_starts_say_why(tiny_model_dir, make_rank, tmp_path):
    rank = make_rank(tiny_model_dir, dict(zero_stage=0), cls=TrainerWithEngine)
    with pytest.raises(RuntimeError, match="holds no rollout engine.*policy_version"):
        rank.engine_call("policy_version")
    with pytest.raises(Exception):
        rank.start_engine(str(tmp_path / "no_model"), "hf")
    with pytest.raises(RuntimeError, match="failed to start: .*no_model"):
        rank.engine_call("policy_version")


def test_train_step_with_the_fused_sync_puts_the_new_weights_in_the_engine(rank, tiny_model_dir):
    rank.start_engine(tiny_model_dir, "hf", seed=0)
    before = [rank.engine_call("score", p, r) for p, r in zip(PROMPTS, RESPONSES)]
    batch = make_train_batch(PROMPTS, RESPONSES, before, ADVANTAGES, pad_id=0)
    metrics = rank.train_step(batch, broadcast_version=1)
    assert metrics["perf/weight_broadcast_s"] >= 0.0
    assert rank.engine_call("policy_version") == 1
    after = [sum(rank.engine_call("score", p, r)) for p, r in zip(PROMPTS, RESPONSES)]
    trainer = rank.sequence_logprobs(PROMPTS, RESPONSES)
    assert after == pytest.approx(trainer, abs=1e-5)  # the engine holds the rank's updated weights
    assert max(abs(a - sum(b)) for a, b in zip(after, before)) > 1e-3  # and they moved

    out = rank.engine_call("generate", PROMPTS[:2], 3, 4, seed=5)
    assert out["policy_version"] == 1
    assert [len(group) for group in out["generations"]] == [3, 3]
    assert rank.load_engine_weights(2) >= 0.0 and rank.engine_call("policy_version") == 2
