"""RolloutWorker as a plain object and as a Ray actor in a real local cluster."""
import pytest

from rlvr.rollout import RolloutWorker, RolloutWorkerActor


def check_generate_result(result, prompts, n, max_new_tokens, version):
    assert set(result) == {"generations", "policy_version", "num_tokens", "seconds"}
    assert result["policy_version"] == version
    assert [len(group) for group in result["generations"]] == [n] * len(prompts)
    assert result["num_tokens"] == sum(len(g.token_ids) for group in result["generations"] for g in group)
    assert 0 < result["num_tokens"] <= len(prompts) * n * max_new_tokens
    assert result["seconds"] > 0


def test_worker_versions_and_seeds(tiny_model_dir, prompts, load_reference, perturbed_state_dict,
                                   teacher_forced_logprobs):
    worker = RolloutWorker(tiny_model_dir, backend="hf", seed=0)
    try:
        assert worker.policy_version() == 0
        step0 = worker.generate(prompts, n=4, max_new_tokens=6, seed=100)
        check_generate_result(step0, prompts, 4, 6, version=0)
        step1 = worker.generate(prompts, n=4, max_new_tokens=6, seed=101)  # base_seed + step
        assert [[g.token_ids for g in grp] for grp in step0["generations"]] != \
               [[g.token_ids for g in grp] for grp in step1["generations"]]

        new_state = perturbed_state_dict(load_reference(tiny_model_dir))
        seconds = worker.update_weights(new_state, version=3)
        assert isinstance(seconds, float) and seconds >= 0
        assert worker.policy_version() == 3
        assert worker.generate(prompts, n=1, max_new_tokens=2, seed=102)["policy_version"] == 3
        response = [5, 17, 42]
        expected = teacher_forced_logprobs(load_reference(tiny_model_dir, new_state), prompts[0], response)
        assert worker.score(prompts[0], response) == pytest.approx(expected, abs=1e-4)
    finally:
        worker.shutdown()


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def run_actor_round_trip(ray, actor, model_dir, prompts, load_reference, perturbed_state_dict,
                         teacher_forced_logprobs):
    try:
        result = ray.get(actor.generate.remote(prompts, 4, 6, seed=1))
        check_generate_result(result, prompts, 4, 6, version=0)
        # through Ray the generations arrive packed: token ids and log-probs as numpy views
        assert type(result["generations"][0][0].token_ids).__name__ == "ndarray"
        for prompt, group in zip(prompts, result["generations"]):
            g = group[0]
            assert ray.get(actor.score.remote(prompt, g.token_ids)) == pytest.approx(g.logprobs, abs=1e-4)

        new_state = perturbed_state_dict(load_reference(model_dir))
        assert ray.get(actor.update_weights.remote(new_state, 1)) >= 0
        assert ray.get(actor.policy_version.remote()) == 1
        response = [5, 17, 42]
        expected = teacher_forced_logprobs(load_reference(model_dir, new_state), prompts[2], response)
        assert ray.get(actor.score.remote(prompts[2], response)) == pytest.approx(expected, abs=1e-4)
        assert ray.get(actor.generate.remote(prompts, 1, 2, seed=2))["policy_version"] == 1
    finally:
        ray.get(actor.shutdown.remote())  # before the kill: vLLM leaks /dev/shm otherwise
        ray.kill(actor)


def test_hf_worker_in_ray(ray_cluster, tiny_model_dir, prompts, load_reference, perturbed_state_dict,
                          teacher_forced_logprobs):
    actor = RolloutWorkerActor.options(num_cpus=1).remote(tiny_model_dir, "hf", 0)
    run_actor_round_trip(ray_cluster, actor, tiny_model_dir, prompts, load_reference, perturbed_state_dict,
                         teacher_forced_logprobs)


@pytest.mark.e2e
def test_vllm_worker_in_ray(ray_cluster, tiny_model_dir, prompts, load_reference, perturbed_state_dict,
                            teacher_forced_logprobs):
    pytest.importorskip("vllm")
    actor = RolloutWorkerActor.options(
        num_cpus=1,
        runtime_env={"env_vars": {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "OMP_NUM_THREADS": "1"}},
    ).remote(tiny_model_dir, "vllm", 0)
    run_actor_round_trip(ray_cluster, actor, tiny_model_dir, prompts, load_reference, perturbed_state_dict,
                         teacher_forced_logprobs)


def test_generate_with_receive_version_takes_the_weights_first():
    """The fused weight sync: generate(receive_version=v) receives v, then samples from it."""
    calls = []

    class Engine:
        sent = 7

        def receive_weights(self):
            calls.append("receive")
            return self.sent

        def generate(self, prompts, n, max_new_tokens, **kwargs):
            calls.append("generate")
            return [[] for _ in prompts]

    worker = RolloutWorker.__new__(RolloutWorker)  # no engine start: the order of calls is the point
    worker.engine, worker._policy_version = Engine(), 6
    out = worker.generate([[1, 2]], 1, 2, receive_version=7)
    assert calls == ["receive", "generate"] and out["policy_version"] == 7 and out["receive_s"] >= 0
    assert set(worker.generate([[1, 2]], 1, 2)) == {"generations", "policy_version", "num_tokens", "seconds"}
    with pytest.raises(RuntimeError, match="the trainer sent version 7, the controller expected 8"):
        worker.generate([[1, 2]], 1, 2, receive_version=8)
    assert calls[-1] == "receive"  # nothing sampled from the wrong weights


def test_generate_with_score_returns_each_prompts_own_records_in_sample_order():
    """reward.colocate: the worker scores its samples in-process, grouped back by prompt."""
    from rlvr.rollout.generation import Generation

    class Engine:
        def generate(self, prompts, n, max_new_tokens, **kwargs):
            return [[Generation(token_ids=[1] * (j + 1), logprobs=[0.0] * (j + 1), text=f"{10 * i + j};",
                                finish_reason="length")
                     for j in range(n)] for i in range(len(prompts))]

    worker = RolloutWorker.__new__(RolloutWorker)  # no engine start: the grouping is the point
    worker.engine, worker._policy_version = Engine(), 0
    worker.enable_scoring("arithmetic", {"name": "ground_truth"})
    try:
        out = worker.generate([[1], [2], [3]], 3, 4, score={
            "prompts": [("a", "1", {}), ("b", "12", {}), ("c", "99", {})], "epoch": 2})
        assert [[(r["prompt_id"], r["sample_index"]) for r in group] for group in out["scored"]] == \
               [[(pid, 6 + j) for j in range(3)] for pid in "abc"]
        assert all("response" not in r for group in out["scored"] for r in group)  # the driver has them
        assert [[r["gt"] for r in group] for group in out["scored"]] == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
        assert out["score_s"] >= 0
    finally:
        worker.scorer.close()
