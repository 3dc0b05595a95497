import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlvr.models.tiny import build_tiny_model
from rlvr.models.warmup import sft_batch, sft_warmup
from rlvr.tasks import Prompt
from rlvr.rewards.verifiers.arithmetic import verify_arithmetic as verify_answer
from rlvr.tasks.arithmetic import arithmetic_prompts


def verify_arithmetic(text, gold, meta):
    return verify_answer(text, gold)


def test_sft_batch_masks_prompt_and_padding(tmp_path):
    tok = AutoTokenizer.from_pretrained(build_tiny_model(tmp_path / "m", hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32))
    ids, mask, labels = sft_batch(tok, [Prompt("a", "1+1=", "2"), Prompt("b", "10+1=", "11")], ["2;", "11;"])
    assert ids.shape == labels.shape == (2, 9)
    # row 0: 4 prompt tokens, "2;" + eos, then 2 pads
    assert labels[0, :4].tolist() == [-100] * 4
    assert labels[0, 4:7].tolist() == tok("2;", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert labels[0, 7:].tolist() == [-100, -100]
    assert mask[0].tolist() == [1] * 7 + [0, 0]
    assert mask[1].tolist() == [1] * 9


def test_warmup_stops_at_target_and_reports_measured_accuracy(tmp_path):
    torch.manual_seed(0)
    folder = build_tiny_model(tmp_path / "m")
    tok, model = AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder)
    train = arithmetic_prompts(0, "train", 1000)
    held_out = arithmetic_prompts(0, "eval", 64)
    targets = {p.id: p.gold + ";" for p in train}
    untouched = sft_warmup(model, tok, train, held_out, verify_arithmetic, targets, steps=100, batch_size=64,
                           lr=3e-3, target_accuracy=0.0, check_every=10, seed=0, max_new_tokens=5, log=lambda m: None)
    assert untouched["steps"] == 0  # already at target: no training at all
    info = sft_warmup(model, tok, train, held_out, verify_arithmetic, targets, steps=400, batch_size=64,
                      lr=3e-3, target_accuracy=0.1, check_every=25, seed=0, max_new_tokens=5, log=lambda m: None)
    assert info["validation_accuracy"] >= 0.1
    assert info["steps"] % 25 == 0 and 0 < info["steps"] < 400


def _recipe(tmp_path, *overrides):
    from rlvr.config import load_recipe

    return load_recipe(None, [f"output_dir={tmp_path}", "task.train_size=200", "task.eval_size=16",
                              "warmup.steps=20", "warmup.check_every=10", "warmup.target_accuracy=1.0",
                              "warmup.batch_size=16", "model.hidden_size=32", "model.num_heads=1",
                              "rollout.max_new_tokens=4", *overrides])


def test_warmup_selects_on_a_training_slice_never_on_eval_prompts(tmp_path, monkeypatch):
    """SFT gets the training prompts minus a validation slice; eval prompts reach neither."""
    import rlvr.models.warmup as warmup
    from rlvr.models.prepare import prepare_policy

    seen = {}

    def fake_sft(model, tok, sft_prompts, validation, verify, targets, **kwargs):
        seen.update(sft=[p.id for p in sft_prompts], validation=[p.id for p in validation], targets=set(targets))
        return {"steps": 0, "validation_accuracy": 0.0, "seconds": 0.0}

    monkeypatch.setattr(warmup, "sft_warmup", fake_sft)
    train = arithmetic_prompts(0, "train", 200)
    held_out = arithmetic_prompts(0, "eval", 16)
    _, info = prepare_policy(_recipe(tmp_path), train, held_out, verify_arithmetic, log=lambda m: None)
    assert seen["validation"] == [p.id for p in train[:50]]  # default: min(128, 200 // 4)
    assert seen["sft"] == [p.id for p in train[50:]] and seen["targets"] == set(seen["sft"])
    assert not {p.id for p in held_out} & (set(seen["sft"]) | set(seen["validation"]))
    assert info["validation_size"] == 50 and info["eval_accuracy"] is not None


def test_the_eval_split_does_not_change_the_initial_policy(tmp_path):
    """The same recipe warmed up beside two different eval splits gives the same weights."""
    from safetensors.torch import load_file

    from rlvr.models.prepare import prepare_policy

    train = arithmetic_prompts(0, "train", 200)
    infos, weights = [], []
    for i, held_out in enumerate((arithmetic_prompts(0, "eval", 16), arithmetic_prompts(1, "eval", 16))):
        folder, info = prepare_policy(_recipe(tmp_path / str(i), "warmup.validation_size=20"), train, held_out,
                                      verify_arithmetic, log=lambda m: None)
        infos.append(info)
        weights.append(load_file(f"{folder}/model.safetensors"))
    assert infos[0]["steps"] == infos[1]["steps"] == 20  # target 1.0 is never reached: every step runs
    assert infos[0]["validation_accuracy"] == infos[1]["validation_accuracy"]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
