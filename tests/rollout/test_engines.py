"""Both rollout backends against each other's contract and against transformers' teacher forcing."""
import os

import pytest
import torch

from rlvr.rollout import Generation, make_engine

EOS = 1


def _vllm_available():
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


BACKENDS = ["hf", pytest.param("vllm", marks=pytest.mark.skipif(not _vllm_available(), reason="vllm not installed"))]


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request, tiny_model_dir):
    engine = make_engine(request.param, tiny_model_dir, seed=0)
    yield engine
    engine.shutdown()


@pytest.fixture(scope="module")
def reference(tiny_model_dir, load_reference):
    return load_reference(tiny_model_dir)


def tokens(groups):
    return [[g.token_ids for g in group] for group in groups]


def test_generate_shapes(engine, prompts, tokenizer):
    groups = engine.generate(prompts, n=4, max_new_tokens=6, seed=1)
    assert len(groups) == len(prompts)
    for group in groups:
        assert len(group) == 4
        for g in group:
            assert isinstance(g, Generation)
            assert 1 <= len(g.token_ids) == len(g.logprobs) <= 6
            assert all(lp <= 0.0 for lp in g.logprobs)
            assert g.text == tokenizer.decode(g.token_ids, skip_special_tokens=True)
            if g.finish_reason == "length":
                assert len(g.token_ids) == 6 and EOS not in g.token_ids
            else:
                assert g.finish_reason == "stop" and g.token_ids[-1] == EOS


def test_sampling_is_seeded(engine, prompts):
    first = tokens(engine.generate(prompts, n=4, max_new_tokens=8, seed=7))
    again = tokens(engine.generate(prompts, n=4, max_new_tokens=8, seed=7))
    other = tokens(engine.generate(prompts, n=4, max_new_tokens=8, seed=8))
    assert first == again
    assert first != other
    for group in first:  # samples of one prompt are distinct draws
        assert len({tuple(t) for t in group}) > 1
    # different prompts do not share the sampling noise (one seed per call would make them alike)
    assert first[0] != first[1]


def test_greedy_is_deterministic_and_argmax(engine, prompts, reference):
    groups = engine.generate(prompts, n=2, max_new_tokens=6, temperature=0.0, seed=1)
    assert tokens(groups) == tokens(engine.generate(prompts, n=2, max_new_tokens=6, temperature=0.0, seed=2))
    for prompt, group in zip(prompts, groups):
        assert group[0].token_ids == group[1].token_ids
        ids = list(prompt)
        with torch.no_grad():
            for _ in range(len(group[0].token_ids)):
                ids.append(int(reference(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
        assert group[0].token_ids == ids[len(prompt):]


def test_stop_token_is_honoured(engine, prompts):
    greedy = engine.generate(prompts, n=1, max_new_tokens=8, temperature=0.0)
    for prompt, [g] in zip(prompts, greedy):
        stop = g.token_ids[-1]
        cut = g.token_ids.index(stop) + 1
        [[stopped]] = engine.generate([prompt], n=1, max_new_tokens=8, temperature=0.0, stop_token_ids=[stop])
        assert stopped.token_ids == g.token_ids[:cut]
        assert stopped.finish_reason == "stop"
    # sampled: a stop token only ever appears last
    stop_ids = [10, 20, 30, 40]
    for group in engine.generate(prompts, n=8, max_new_tokens=12, seed=3, stop_token_ids=stop_ids):
        for g in group:
            stops_seen = [i for i, t in enumerate(g.token_ids) if t in stop_ids + [EOS]]
            assert stops_seen in ([], [len(g.token_ids) - 1])
            assert (g.finish_reason == "stop") == bool(stops_seen)


def test_score_equals_behaviour_logprobs(engine, prompts):
    for prompt, group in zip(prompts, engine.generate(prompts, n=3, max_new_tokens=8, temperature=1.0, seed=11)):
        for g in group:
            assert engine.score(prompt, g.token_ids) == pytest.approx(g.logprobs, abs=1e-4)


def test_score_equals_transformers(engine, prompts, reference, teacher_forced_logprobs):
    response = [5, 17, 42, 88, 3, 1]
    for prompt in prompts:
        assert engine.score(prompt, response) == pytest.approx(
            teacher_forced_logprobs(reference, prompt, response), abs=1e-4)


@torch.no_grad()
def test_behaviour_logprobs_are_at_the_sampling_temperature(engine, prompts, reference):
    # log softmax(logits / 0.7) of each sampled token, as the trainer computes it at T = 0.7
    for prompt, group in zip(prompts, engine.generate(prompts, n=2, max_new_tokens=6, temperature=0.7, seed=5)):
        for g in group:
            ids = torch.tensor([list(prompt) + g.token_ids])
            logp = (reference(input_ids=ids).logits[0].float() / 0.7).log_softmax(-1)
            expected = [logp[len(prompt) - 1 + t, tok].item() for t, tok in enumerate(g.token_ids)]
            assert g.logprobs == pytest.approx(expected, abs=1e-4)


def test_load_weights_in_place(engine, prompts, reference, tiny_model_dir, load_reference,
                               perturbed_state_dict, teacher_forced_logprobs):
    prompt, response = prompts[2], [5, 17, 42, 88, 3, 1]
    before = engine.score(prompt, response)
    new_state = perturbed_state_dict(reference)
    changed = load_reference(tiny_model_dir, new_state)
    expected = teacher_forced_logprobs(changed, prompt, response)
    assert max(abs(a - b) for a, b in zip(before, expected)) > 1e-2  # the perturbation matters

    engine_object = getattr(engine, "llm", getattr(engine, "model", None))
    engine.load_weights(new_state)
    assert getattr(engine, "llm", getattr(engine, "model", None)) is engine_object  # no restart
    assert engine.score(prompt, response) == pytest.approx(expected, abs=1e-4)
    # generation uses the new weights too (and no stale prefix cache)
    [[g]] = engine.generate([prompt], n=1, max_new_tokens=6, seed=5)
    assert g.logprobs == pytest.approx(teacher_forced_logprobs(changed, prompt, g.token_ids), abs=1e-4)
    assert not [f for f in os.listdir("/dev/shm") if f.startswith(f"rlvr-weights-{os.getpid()}-")]

    engine.load_weights(reference.state_dict())  # back to the original for the other tests
    assert engine.score(prompt, response) == pytest.approx(before, abs=1e-5)


def test_load_weights_rejects_partial_state_dict(engine, reference):
    partial = {k: v for k, v in reference.state_dict().items() if "layers.1." not in k}
    with pytest.raises(ValueError, match="missing.*layers.1"):
        engine.load_weights(partial)


def test_unknown_backend_names_the_setting(tiny_model_dir):
    with pytest.raises(ValueError, match="rollout.backend"):
        make_engine("sglang", tiny_model_dir)


@pytest.mark.skipif(not _vllm_available(), reason="vllm not installed")
def test_vllm_rejects_head_dim_its_cpu_kernel_lacks(tmp_path):
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        pytest.skip("CPU attention limit only")
    from rlvr.models.tiny import build_tiny_model

    model_dir = build_tiny_model(tmp_path, hidden_size=64, num_heads=4)  # head_dim 16
    with pytest.raises(ValueError, match="head_dim .* 16"):
        make_engine("vllm", str(model_dir))


def _send_over_weight_group(state, dtype, bucket_mb, version, world_size=2):
    """Trainer rank 0's side of a collective sync, in a thread: host the group, send `state` once.

    Returns (thread, join args for the engine as rank 1, bucket plan, errors raised in the thread).
    """
    import threading

    from rlvr.comm.weight_group import (
        WeightGroup, host_store, plan_tensor_buckets, send_bucket, send_header, wire_dtype)

    buckets = plan_tensor_buckets([(name, tuple(t.shape)) for name, t in state.items()], dtype, bucket_mb)
    store, host, port = host_store(60)
    errors = []

    def send():
        try:
            group = WeightGroup(0, world_size, "gloo", store=store, timeout_s=60)
            send_header(group, version, buckets)
            for bucket in buckets:
                send_bucket(group, bucket, [state[name] for name, _ in bucket], wire_dtype(dtype))
            group.close()
        except Exception as err:  # noqa: BLE001 - re-raised by the test
            errors.append(err)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread, (host, port, 1, world_size, "gloo", buckets, dtype, 60), buckets, errors


def _unique_tensors(model):
    """named_parameters order, tied weights once: what the trainer sends."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.fixture
def weight_change(engine, prompts, reference, tiny_model_dir, load_reference, perturbed_state_dict,
                  teacher_forced_logprobs):
    """(prompt, response, changed model, its log-probs of response): perturbed weights for a
    test to hand to the engine, which gets the original ones back afterwards."""
    prompt, response = prompts[2], [5, 17, 42, 88, 3, 1]
    before = engine.score(prompt, response)
    changed = load_reference(tiny_model_dir, perturbed_state_dict(reference))
    expected = teacher_forced_logprobs(changed, prompt, response)
    assert max(abs(a - b) for a, b in zip(before, expected)) > 1e-2  # the perturbation matters
    yield prompt, response, changed, expected

    engine.load_weights(reference.state_dict())  # back to the original for the other tests
    assert engine.score(prompt, response) == pytest.approx(before, abs=1e-5)


def test_receive_weights_over_the_collective_group_in_place(engine, weight_change, teacher_forced_logprobs):
    prompt, response, changed, expected = weight_change

    # 16 KiB buckets: several tensors share one, the embedding (> cap) travels alone
    thread, join, buckets, errors = _send_over_weight_group(_unique_tensors(changed), "float32", 1 / 64, version=7)
    assert len(buckets) > 3 and any(len(b) > 1 for b in buckets)
    engine.join_weight_group(*join)
    assert engine.receive_weights() == 7
    thread.join(timeout=60)
    engine.leave_weight_group()
    assert not errors and not thread.is_alive()
    assert engine.score(prompt, response) == pytest.approx(expected, abs=1e-5)
    [[g]] = engine.generate([prompt], n=1, max_new_tokens=6, seed=5)  # generation sees them too
    assert g.logprobs == pytest.approx(teacher_forced_logprobs(changed, prompt, g.token_ids), abs=1e-4)


def test_load_ipc_buckets_in_place_from_one_reused_shared_buffer(engine, weight_change):
    """The engine side of rollout.weight_sync = ipc on CPU (the trainer's buffer in /dev/shm)."""
    from rlvr.comm.tensor_handles import fill, share, shared_empty, shm_file
    from rlvr.comm.weight_group import plan_tensor_buckets

    prompt, response, changed, expected = weight_change
    sent = _unique_tensors(changed)
    buckets = plan_tensor_buckets([(name, tuple(t.shape)) for name, t in sent.items()], "float32", 1 / 64)
    assert len(buckets) > 3
    buffer = shared_empty(max(sum(t.numel() for t in (sent[n] for n, _ in b)) for b in buckets), torch.float32, "cpu")
    path = shm_file(buffer)
    engine.open_ipc_sync(buckets, "float32")
    done = []
    for index, bucket in enumerate(buckets):
        done.append(engine.load_ipc_bucket(index, share(fill(buffer, [sent[name] for name, _ in bucket]))))
        buffer.fill_(float("nan"))  # the engine copied the bucket out: reusing the buffer cannot reach it
    assert done == [False] * (len(buckets) - 1) + [True]
    assert engine.score(prompt, response) == pytest.approx(expected, abs=1e-5)
    with pytest.raises(RuntimeError, match="sent bucket 1 where bucket 0"):  # a skipped bucket
        engine.load_ipc_bucket(1, share(buffer[:4]))
    del buffer
    assert not os.path.exists(path)  # the engine let go of every bucket, the refused one too


def test_weight_group_refuses_a_plan_missing_a_tensor_or_in_another_dtype(engine, reference):
    state = _unique_tensors(reference)
    specs = [[(name, tuple(t.shape))] for name, t in state.items() if "layers.1." not in name]
    with pytest.raises(ValueError, match="missing.*layers.1"):
        engine.join_weight_group("127.0.0.1", 1, 1, 2, "gloo", specs, "float32", 5)
    full = [[(name, tuple(t.shape))] for name, t in state.items()]
    with pytest.raises(ValueError, match="sends bfloat16 but the engine holds float32"):
        engine.join_weight_group("127.0.0.1", 1, 1, 2, "gloo", full, "bfloat16", 5)


def test_bf16_hf_engine_receives_the_trainer_weights_cast_to_bf16(tiny_model_dir, reference, perturbed_state_dict,
                                                                  load_reference):
    engine = make_engine("hf", tiny_model_dir, dtype="bfloat16", device="cpu")
    try:
        sent = _unique_tensors(load_reference(tiny_model_dir, perturbed_state_dict(reference)))
        thread, join, _, errors = _send_over_weight_group(sent, "bfloat16", 1 / 64, version=2)
        engine.join_weight_group(*join)
        assert engine.receive_weights() == 2
        thread.join(timeout=60)
        assert not errors
        held = dict(engine.model.named_parameters())
        for name, tensor in sent.items():
            assert held[name].dtype == torch.bfloat16
            assert torch.equal(held[name], tensor.to(torch.bfloat16)), name
    finally:
        engine.shutdown()
