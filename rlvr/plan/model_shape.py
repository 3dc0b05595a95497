"""A model's size from its config alone: parameter count and the widths the memory plan needs.

No weights are read: the config builds the model on PyTorch's meta device (shapes, no memory)
and the parameters are counted there. Where the config comes from, in order:
  model.path unset     the tiny model the package builds (its ModelConfig fields)
  a local folder       its config.json
  a hub id             the HF cache (HF_HOME; works offline), else the shapes of the model
                       families the shipped GPU recipes name (KNOWN_CONFIGS, copied from their
                       config.json files), else a one-line error saying how to fetch the config
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Optional


class ModelShapeError(ValueError):
    """The model's config cannot be found or built; the message says why and what to do."""


@dataclass(frozen=True)
class ModelShape:
    """What the memory plan reads of a model (counts, not bytes)."""

    source: str  # where the config came from, for the plan's header
    params: int  # unique parameters (tied embeddings counted once)
    largest_layer: int  # parameters of the largest single module (DeepSpeed's largest_layer_params)
    layers: int  # decoder layers
    hidden: int  # hidden size h
    intermediate: int  # MLP width I
    vocab: int  # vocabulary size V (logits width)
    kv_dim: int  # key (= value) width per token and layer: kv heads x head dim


def _qwen2(hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int, vocab: int,
           tied: bool, max_positions: int, rope_theta: float) -> Dict[str, Any]:
    return {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": hidden,
            "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
            "intermediate_size": intermediate, "vocab_size": vocab, "tie_word_embeddings": tied,
            "max_position_embeddings": max_positions, "rope_theta": rope_theta, "rms_norm_eps": 1e-6,
            "hidden_act": "silu"}


# The architecture fields of the Qwen2.5 models the GPU recipes name and their 7B siblings, as in
# their hub config.json files (they give 0.49 B, 1.54 B and 7.62 B parameters, the published sizes).
_QWEN25_05B = _qwen2(896, 24, 14, 2, 4864, 151936, True, 32768, 1e6)
_QWEN25_15B = _qwen2(1536, 28, 12, 2, 8960, 151936, True, 32768, 1e6)
_QWEN25_7B = _qwen2(3584, 28, 28, 4, 18944, 152064, False, 32768, 1e6)
_QWEN25_MATH_15B = _qwen2(1536, 28, 12, 2, 8960, 151936, True, 4096, 1e4)
_QWEN25_MATH_7B = _qwen2(3584, 28, 28, 4, 18944, 152064, False, 4096, 1e4)
KNOWN_CONFIGS: Dict[str, Dict[str, Any]] = {
    "Qwen/Qwen2.5-0.5B": _QWEN25_05B,
    "Qwen/Qwen2.5-0.5B-Instruct": _QWEN25_05B,
    "Qwen/Qwen2.5-1.5B": _QWEN25_15B,
    "Qwen/Qwen2.5-1.5B-Instruct": _QWEN25_15B,
    "Qwen/Qwen2.5-7B": _QWEN25_7B,
    "Qwen/Qwen2.5-7B-Instruct": _QWEN25_7B,
    "Qwen/Qwen2.5-Math-1.5B": _QWEN25_MATH_15B,
    "Qwen/Qwen2.5-Math-1.5B-Instruct": _QWEN25_MATH_15B,
    "Qwen/Qwen2.5-Math-7B": _QWEN25_MATH_7B,
    "Qwen/Qwen2.5-Math-7B-Instruct": _QWEN25_MATH_7B,
}


def shape_from_config_dict(config: Dict[str, Any], source: str) -> ModelShape:
    """The shape of a config.json's contents (a dict with model_type)."""
    return _shape_cached(json.dumps(config, sort_keys=True), source)


@lru_cache(maxsize=64)
def _shape_cached(config_json: str, source: str) -> ModelShape:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = json.loads(config_json)
    model_type = fields.pop("model_type", None)
    if not model_type:
        raise ModelShapeError(f"{source}: config has no model_type")
    fields.pop("architectures", None)
    try:
        config = AutoConfig.for_model(model_type, **fields)
        with torch.device("meta"):  # shapes only: nothing is allocated
            model = AutoModelForCausalLM.from_config(config)
    except (ValueError, KeyError, ImportError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelShapeError(f"{source}: transformers cannot build a causal LM from this config "
                              f"({first})") from None
    params = sum({id(p): p.numel() for p in model.parameters()}.values())
    largest = max(sum(p.numel() for p in module.parameters(recurse=False)) for module in model.modules())
    hidden = int(config.hidden_size)
    heads = int(getattr(config, "num_attention_heads", 1) or 1)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or hidden // heads)
    return ModelShape(source=source, params=int(params), largest_layer=int(largest),
                      layers=int(config.num_hidden_layers), hidden=hidden,
                      intermediate=int(getattr(config, "intermediate_size", None) or 4 * hidden),
                      vocab=int(config.vocab_size), kv_dim=kv_heads * head_dim)


def tiny_config(hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int) -> Dict[str, Any]:
    """The config.json fields of the tiny model rlvr builds (rlvr.models.tiny.build_tiny_model)."""
    from rlvr.models.tiny import CHARACTERS, SPECIAL_TOKENS

    return {"model_type": "llama", "hidden_size": hidden_size, "num_hidden_layers": num_layers,
            "num_attention_heads": num_heads, "num_key_value_heads": num_heads,
            "intermediate_size": intermediate_size, "vocab_size": len(SPECIAL_TOKENS) + len(CHARACTERS),
            "tie_word_embeddings": True}


def _cached_hub_config(hub_id: str) -> Optional[Path]:
    """config.json of a hub id in the local HF cache, or None (never touches the network)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(hub_id, "config.json")
    return Path(found) if isinstance(found, str) else None


def model_shape(path: Optional[str], tiny: Optional[Dict[str, Any]] = None) -> ModelShape:
    """The shape of model.path (see the module docstring); `tiny` is tiny_config(...) for path None.

    Raises ModelShapeError with a one-line reason."""
    from rlvr.models.resolve import is_hub_id

    if path is None:
        if tiny is None:
            raise ModelShapeError("model.path is unset and no tiny-model config was given")
        return shape_from_config_dict(tiny, "the built tiny model")
    if not is_hub_id(path):
        config_file = Path(path).expanduser() / "config.json"
        if not config_file.is_file():
            raise ModelShapeError(f"model.path = {path!r}: no config.json there (give an HF model folder)")
        return shape_from_config_dict(json.loads(config_file.read_text()), f"{config_file}")
    cached = _cached_hub_config(path)
    if cached is not None:
        return shape_from_config_dict(json.loads(cached.read_text()), f"{path} (HF cache)")
    if path in KNOWN_CONFIGS:
        return shape_from_config_dict(KNOWN_CONFIGS[path], f"{path} (not cached; rlvr's copy of its config)")
    from huggingface_hub import constants

    raise ModelShapeError(f"model.path = {path!r} is a hub id whose config.json is not in the HF cache "
                          f"({constants.HF_HUB_CACHE}): run `hf download {path} config.json` where the hub "
                          "is reachable (same HF_HOME), or give a local model folder")
