"""`rlvr rm-train`: the folder it writes, the knobs it checks, a learned length bias."""
import json

import pytest

from rlvr.cli import main
from rlvr.reward_models.train_config import load_rm_config, split_overrides

RECIPE = """
task: {name: arithmetic, train_size: 200, eval_size: 32}
reward: {verifier: arithmetic}
rollout: {max_new_tokens: 4, samples_per_prompt: 2}
"""


def test_overrides_split_and_bad_knobs_are_named():
    assert split_overrides(["task.seed=1", "rm.flip_rate=0.2"]) == (["task.seed=1"], ["flip_rate=0.2"])
    assert load_rm_config(["flip_rate=0.2", "pairs=10"]).flip_rate == 0.2
    with pytest.raises(ValueError, match="rm.flip_rat="):
        load_rm_config(["flip_rat=0.2"])
    with pytest.raises(ValueError, match=r"rm.bias_rate = 1.5 must be within \[0, 1\]"):
        load_rm_config(["bias_rate=1.5"])
    with pytest.raises(ValueError, match="rm.bias"):
        load_rm_config(["bias=shorter"])


def test_rm_train_writes_the_model_its_records_and_learns_the_length_bias_it_was_given(tmp_path, tiny_lm, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    out = tmp_path / "rm"
    # Class pairs only (a random policy solves nothing): a longer wrong answer is always preferred.
    code = main(["rm-train", str(recipe), f"output_dir={tmp_path}", f"rm.policy={tiny_lm}", "rm.prompts=16",
                 "rm.samples_per_prompt=2", "rm.heldout_prompts=16", "rm.pairs=256", "rm.bias=longer",
                 "rm.bias_share=1.0", "rm.bias_rate=1.0", "rm.steps=40", "rm.batch_size=32", "rm.lr=3e-3",
                 "rm.log_every=20", "--out", str(out)])
    assert code == 0
    for name in ("config.json", "model.safetensors", "tokenizer.json", "curve.jsonl", "heldout.json",
                 "pairs.jsonl", "rlvr_reward_model.json"):
        assert (out / name).is_file(), name
    info = json.loads((out / "rlvr_reward_model.json").read_text())
    assert info["pairs_measured"]["class_share"] == 1.0 and info["pairs_measured"]["bias_rate"] == 1.0
    assert info["task"]["train_size"] == 200 and info["rm"]["bias"] == "longer"
    curve = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    assert [row["step"] for row in curve] == [20, 40]
    heldout = json.loads((out / "heldout.json").read_text())
    assert heldout["heldout/longer_accuracy"] <= 0.2  # it ranks the correct answer below a longer wrong one
    assert heldout["train/pair_label_accuracy"] >= 0.8


def test_rm_train_refuses_a_bad_knob_with_status_2(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    assert main(["rm-train", str(recipe), "rm.flip_rate=2", "--out", str(tmp_path / "x")]) == 2
    assert "rm.flip_rate = 2" in capsys.readouterr().err
