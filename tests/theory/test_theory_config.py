"""Config loading: defaults, initial-policy solving, and errors that name the key and the file."""

import json

import numpy as np
import pytest

from rlvr.theory import policy
from rlvr.theory.config import TheoryConfigError, config_from_dict, config_to_dict, load_config

BASE = {
    "initial_probs": [0.05, 0.5, 0.15, 0.15, 0.15],
    "proxy_rewards": [1, -1, -1, -1, -1],
    "gt_rewards": [1, 0.8, -1, -1, -1],
    "lr": 0.1,
    "steps": 100,
    "threshold": 0.9,
}


def _write(tmp_path, raw, name="cfg.json"):
    path = tmp_path / name
    path.write_text(json.dumps(raw))
    return path


def _error(tmp_path, **changes):
    raw = {**BASE, **changes}
    raw = {k: v for k, v in raw.items() if v is not ...}
    path = _write(tmp_path, raw)
    with pytest.raises(TheoryConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_defaults_identity_features_and_log_p(tmp_path):
    config = load_config(_write(tmp_path, BASE))
    np.testing.assert_array_equal(config.features, np.eye(5))
    np.testing.assert_array_equal(config.theta0, np.log(BASE["initial_probs"]))
    assert config.algorithm.gradient == "exact" and config.algorithm.optimizer == "sgd"
    assert config.algorithm.kl_coef == 0 and config.algorithm.clip_eps is None
    assert config.algorithm.normalize_std == "none" and config.algorithm.temperature == 1.0
    assert config.name == "cfg" and config.seed == 0


def test_yaml_and_json_agree(tmp_path):
    yaml_path = tmp_path / "same.yaml"
    yaml_path.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in BASE.items()) + "\n")
    a, b = load_config(yaml_path), load_config(_write(tmp_path, BASE, "same.json"))
    np.testing.assert_array_equal(a.theta0, b.theta0)
    assert a.algorithm == b.algorithm


def test_initial_logits_and_general_features(tmp_path):
    features = [[1, 1], [1, 0], [0, 1], [0, 0]]
    target = policy.softmax(np.array(features, dtype=float) @ np.array([0.5, -2.0]))
    raw = {**BASE, "features": features, "initial_probs": target.tolist(),
           "proxy_rewards": [1, 0.5, 0.5, 0], "gt_rewards": [1, 0, 0, 0]}
    config = load_config(_write(tmp_path, raw))
    np.testing.assert_allclose(policy.policy_probs(config.features, config.theta0), target, rtol=1e-9)
    raw = {**raw, "initial_logits": [3.0, 2.0, 1.0, 0.0]}
    del raw["initial_probs"]
    config = load_config(_write(tmp_path, raw))
    np.testing.assert_allclose(config.initial_probs, policy.softmax(np.array([3.0, 2, 1, 0])), rtol=1e-9)


def test_round_trip_of_resolved_config(tmp_path):
    config = load_config(_write(tmp_path, BASE))
    again = config_from_dict(config_to_dict(config), source="round trip")
    np.testing.assert_allclose(again.theta0 - again.theta0.mean(), config.theta0 - config.theta0.mean(), atol=1e-12)
    assert again.algorithm == config.algorithm


def test_unknown_key_names_key_and_suggests(tmp_path):
    message = _error(tmp_path, thresold=0.9)
    assert "'thresold'" in message and "did you mean 'threshold'" in message


def test_wrong_shape_names_the_key(tmp_path):
    assert "gt_rewards" in _error(tmp_path, gt_rewards=[1, 0.8, -1, -1])
    message = _error(tmp_path, features=[[1, 0], [0, 1]])
    assert "proxy_rewards" in message and "expected 2" in message
    assert "features" in _error(tmp_path, features=[[1, 0], [0]])
    assert "initial_probs" in _error(tmp_path, initial_probs=[0.5, 0.5])


def test_probs_must_sum_to_one_and_be_positive(tmp_path):
    message = _error(tmp_path, initial_probs=[0.1, 0.5, 0.15, 0.15, 0.15])
    assert "initial_probs" in message and "sum to 1" in message
    assert "initial_probs" in _error(tmp_path, initial_probs=[0.0, 0.55, 0.15, 0.15, 0.15])


def test_unrepresentable_initial_policy_names_the_key(tmp_path):
    message = _error(tmp_path, features=[[1.0], [2.0], [3.0], [4.0], [5.0]])
    assert "initial_probs" in message and "cannot be represented" in message
    one_feature = [[1.0], [2.0], [3.0], [4.0], [5.0]]
    message = _error(tmp_path, initial_probs=..., initial_logits=[0, 5, 1, 1, 0], features=one_feature)
    assert "initial_logits" in message


def test_value_errors(tmp_path):
    assert "lr" in _error(tmp_path, lr=0)
    assert "steps" in _error(tmp_path, steps=1.5)
    assert "gradient" in _error(tmp_path, gradient="natural")
    assert "optimizer" in _error(tmp_path, optimizer="rmsprop")
    assert "normalize_std" in _error(tmp_path, normalize_std="yes")
    assert "clip_eps" in _error(tmp_path, clip_eps=-0.1)
    assert "normalize_std" in _error(tmp_path, gradient="sampled", normalize_std=True, samples_per_step=1)
    assert "missing required key 'threshold'" in _error(tmp_path, threshold=...)
    assert "exactly one of" in _error(tmp_path, initial_logits=[0, 0, 0, 0, 0])


def test_file_problems(tmp_path):
    with pytest.raises(TheoryConfigError, match="file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.txt"
    bad.write_text("{}")
    with pytest.raises(TheoryConfigError, match="unsupported extension"):
        load_config(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("lr: [1, 2\n")
    with pytest.raises(TheoryConfigError, match="broken.yaml: cannot parse"):
        load_config(broken)
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(TheoryConfigError, match="top level must be a mapping"):
        load_config(top)
