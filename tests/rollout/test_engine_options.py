"""Engine options: recipe keys -> the keyword arguments vLLM's LLM(...) gets, and the settings refused at load."""
import pytest

from rlvr.config.load import RecipeError, load_recipe
from rlvr.config.schema import RecipeConfig
from rlvr.rollout.engine_options import (
    EXTENSION, engine_kwargs, resolve_enforce_eager, rollout_option_problems, vllm_llm_kwargs)

GPU = ["rollout.backend=vllm", "trainer.num_gpus_per_rank=1", "rollout.num_gpus_per_worker=1", "cluster.num_gpus=2"]


def test_enforce_eager_auto_is_off_on_a_gpu_and_on_on_cpu():
    assert resolve_enforce_eager(None, on_gpu=True) is False
    assert resolve_enforce_eager(None, on_gpu=False) is True
    assert resolve_enforce_eager(True, on_gpu=True) is True and resolve_enforce_eager(False, on_gpu=False) is False


def test_llm_kwargs_on_cpu_and_on_a_gpu():
    common = dict(dtype="bfloat16", seed=3, max_model_len=512, gpu_memory_utilization=0.4)
    cpu = vllm_llm_kwargs("/m", on_cpu=True, kv_cache_memory_bytes=1 << 20, **common)
    assert cpu["enforce_eager"] is True and cpu["kv_cache_memory_bytes"] == 1 << 20
    assert cpu["worker_extension_cls"] == EXTENSION and cpu["logprobs_mode"] == "processed_logprobs"
    assert cpu["enable_prefix_caching"] is True and "max_num_seqs" not in cpu and "enable_sleep_mode" not in cpu
    assert cpu["distributed_executor_backend"] is None
    gpu = vllm_llm_kwargs("/m", on_cpu=False, tensor_parallel_size=2, max_num_seqs=128,
                          enable_prefix_caching=False, sleep_mode=True, **common)
    assert gpu["enforce_eager"] is False and gpu["max_num_seqs"] == 128 and gpu["enable_prefix_caching"] is False
    assert gpu["enable_sleep_mode"] is True and gpu["tensor_parallel_size"] == 2
    assert gpu["distributed_executor_backend"] == "ray"
    assert vllm_llm_kwargs("/m", on_cpu=False, enforce_eager=True, **common)["enforce_eager"] is True
    with pytest.raises(ValueError, match="CPU backend has no sleep mode"):
        vllm_llm_kwargs("/m", on_cpu=True, sleep_mode=True, **common)


def test_recipe_keys_reach_the_engine_kwargs_with_auto_written_out():
    cpu = load_recipe(None, ["rollout.backend=vllm", "rollout.max_num_seqs=64"])
    assert cpu.rollout.enforce_eager is True  # written out: config.yaml shows what ran
    kwargs = engine_kwargs(cpu.rollout, "float32")
    assert kwargs["enforce_eager"] is True and kwargs["max_num_seqs"] == 64 and kwargs["sleep_mode"] is False
    assert kwargs["load_chunk_mb"] == cpu.rollout.sync_bucket_mb and "tensor_parallel_size" not in kwargs
    gpu = load_recipe(None, GPU + ["cluster.colocate=true", "trainer.num_gpus_per_rank=0.5",
                                   "rollout.num_gpus_per_worker=0.5", "rollout.sleep_while_training=true",
                                   "rollout.enable_prefix_caching=false"])
    assert gpu.rollout.enforce_eager is False
    kwargs = engine_kwargs(gpu.rollout, "bfloat16", tensor_parallel_size=2)
    assert kwargs["enforce_eager"] is False and kwargs["sleep_mode"] is True
    assert kwargs["enable_prefix_caching"] is False and kwargs["tensor_parallel_size"] == 2
    # the hf engine takes none of vLLM's options
    hf = load_recipe(None, [])
    assert hf.rollout.enforce_eager is None
    assert set(engine_kwargs(hf.rollout, "float32")) == {"dtype", "max_model_len", "gpu_memory_utilization"}


@pytest.mark.parametrize("overrides, message", [
    (["rollout.sleep_while_training=true"], "needs rollout.backend = vllm"),
    (["rollout.backend=vllm", "rollout.sleep_while_training=true"], "CPU backend has no sleep mode"),
    (GPU + ["rollout.sleep_while_training=true"], "set cluster.colocate = true"),
    (["rollout.backend=vllm", "rollout.max_num_seqs=0"], "rollout.max_num_seqs = 0 must be >= 1"),
])
def test_settings_no_engine_can_honour_are_refused_in_one_line(overrides, message):
    with pytest.raises(RecipeError, match=message) as err:
        load_recipe(None, overrides)
    assert "\n" not in str(err.value) and str(err.value).startswith("recipe <defaults>: rollout.")


def test_sleep_with_overlap_is_refused():
    cfg = RecipeConfig()
    cfg.rollout.backend, cfg.rollout.num_gpus_per_worker, cfg.cluster.colocate = "vllm", 0.5, True
    cfg.rollout.sleep_while_training, cfg.rollout.overlap = True, True
    assert rollout_option_problems(cfg) == [
        "rollout.sleep_while_training = true with rollout.overlap = true: an engine cannot sleep while it "
        "generates the next step during training; set one of them false"]
    cfg.rollout.overlap = False
    assert rollout_option_problems(cfg) == []
