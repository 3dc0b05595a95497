"""Collective and ipc weight sync through real actors: a 2-rank ZeRO-3 trainer broadcasts to an hf
and a vllm rollout worker in one gloo group, then (after another step) hands them its buckets by
/dev/shm handle; after each, every engine scores a fixed sequence exactly as the trainer does.
Weights only differ from the engines' after a train step, so one is taken before each sync."""
import os

import pytest

from rlvr.algorithms.grpo import group_advantages

# vLLM's CPU attention needs head_dim in {32, 64, ...}; MLP weights of 64 x 2048 = 131072 elements
# exceed ZeRO-3's persistence threshold (1e5), so they are really sharded and must be gathered.
TINY = dict(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=2048)
PROMPTS = [[20, 21, 15], [22, 15], [23, 24, 25, 15], [26, 15]]
RESPONSES = [[40, 41, 1], [42], [43, 44, 45, 46], [47, 1]]
PROMPT, RESPONSE = [20, 21, 22, 15], [30, 31, 32, 33, 1]


@pytest.mark.e2e
def test_collective_and_ipc_sync_from_zero3_ranks_make_hf_and_vllm_engines_score_like_the_trainer(tmp_path):
    pytest.importorskip("vllm")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from rlvr.controller.weight_sync import CollectiveSync, IpcSync
    from rlvr.models.tiny import build_tiny_model
    from rlvr.rollout.worker import RolloutWorkerActor
    from rlvr.trainer import TrainerGroup, make_train_batch

    model_dir = str(build_tiny_model(tmp_path / "tiny", **TINY))
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    group, workers = None, []
    try:
        env = {"env_vars": {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "OMP_NUM_THREADS": "1"}}
        workers = [RolloutWorkerActor.options(num_cpus=0.5, runtime_env=env).remote(model_dir, backend, 0)
                   for backend in ("hf", "vllm")]
        group = TrainerGroup(2, model_dir, dict(zero_stage=3, micro_batch_size=2, lr=1e-2),
                             dict(kl_coef=0.0), num_cpus_per_rank=0.5)
        advantages = group_advantages(__import__("torch").tensor([[1.0, 0.0, 0.0, 1.0]])).flatten().tolist()
        behaviour = [[-1.0] * len(r) for r in RESPONSES]
        batch = make_train_batch(PROMPTS, RESPONSES, behaviour, advantages, pad_id=0)
        group.train_step(batch)

        stale = [sum(s) for s in ray.get([w.score.remote(PROMPT, RESPONSE) for w in workers])]

        # straight after the step, before any forward: ZeRO-3 holds the large weights as shards
        sync = CollectiveSync(group, workers, "float32", bucket_mb=0.2, timeout_s=60)  # several buckets
        assert sync.num_buckets > 3
        for version in (1, 2):  # the group serves repeated syncs
            sync.sync(version)
        trainer_lp = group.sequence_logprobs([PROMPT], [RESPONSE])[0]
        assert all(abs(s - trainer_lp) > 1e-3 for s in stale)  # the step moved the trainer away
        synced = [sum(s) for s in ray.get([w.score.remote(PROMPT, RESPONSE) for w in workers])]
        assert synced == pytest.approx([trainer_lp, trainer_lp], abs=1e-5)
        assert ray.get([w.policy_version.remote() for w in workers]) == [2, 2]
        sync.close()

        # ipc: rank 0 (same node, CPU) serves both workers through one reused /dev/shm buffer
        group.train_step(batch)
        sync = IpcSync(group, workers, "float32", bucket_mb=0.2)
        assert sync.num_buckets > 3 and len(sync.shm_files) == 1 and os.path.exists(sync.shm_files[0])
        for version in (3, 4):
            sync.sync(version)
        trainer_lp2 = group.sequence_logprobs([PROMPT], [RESPONSE])[0]
        assert abs(trainer_lp2 - trainer_lp) > 1e-3
        synced = [sum(s) for s in ray.get([w.score.remote(PROMPT, RESPONSE) for w in workers])]
        assert synced == pytest.approx([trainer_lp2, trainer_lp2], abs=1e-5)
        assert ray.get([w.policy_version.remote() for w in workers]) == [4, 4]
        sync.close()
        assert not os.path.exists(sync.shm_files[0])  # no leak in /dev/shm once the trainer lets go
    finally:
        for w in workers:
            ray.get(w.shutdown.remote())  # before the kill: vLLM leaks /dev/shm otherwise
            ray.kill(w)
        if group is not None:
            group.shutdown()
        ray.shutdown()
