"""Parameter counts from a model's config alone: the Qwen2.5 table, local folders, the HF cache."""
import json

import pytest

from rlvr.plan.model_shape import (
    KNOWN_CONFIGS,
    ModelShapeError,
    model_shape,
    shape_from_config_dict,
    tiny_config,
)


@pytest.mark.parametrize("hub_id,params,vocab", [
    ("Qwen/Qwen2.5-0.5B-Instruct", 494_032_768, 151936),  # published: 0.49 B
    ("Qwen/Qwen2.5-Math-1.5B", 1_543_714_304, 151936),  # 1.54 B
    ("Qwen/Qwen2.5-Math-7B", 7_615_616_512, 152064),  # 7.61 B (untied lm_head)
])
def test_known_configs_give_the_published_sizes(hub_id, params, vocab):
    shape = shape_from_config_dict(KNOWN_CONFIGS[hub_id], hub_id)
    assert shape.params == params and shape.vocab == vocab
    assert shape.largest_layer == vocab * shape.hidden  # the embedding
    assert shape.kv_dim == KNOWN_CONFIGS[hub_id]["num_key_value_heads"] * shape.hidden // \
        KNOWN_CONFIGS[hub_id]["num_attention_heads"]


def test_local_folder_count_equals_the_built_models(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    fields = tiny_config(64, 2, 2, 256)
    (tmp_path / "config.json").write_text(json.dumps(fields))
    shape = model_shape(str(tmp_path))
    real = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in fields.items() if k != "model_type"}))
    assert shape.params == sum({id(p): p.numel() for p in real.parameters()}.values())
    assert (shape.layers, shape.hidden, shape.intermediate) == (2, 64, 256)
    assert model_shape(None, tiny=fields).params == shape.params


def test_hub_id_read_from_the_hf_cache_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    repo = tmp_path / "models--someorg--small"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(tiny_config(32, 1, 1, 64)))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    shape = model_shape("someorg/small")
    assert shape.hidden == 32 and "HF cache" in shape.source


def test_uncached_unknown_hub_id_says_how_to_fetch_its_config(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelShapeError, match=r"not in the HF cache .*hf download someorg/absent config.json"):
        model_shape("someorg/absent")


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelShapeError, match="no config.json"):
        model_shape(str(tmp_path))
