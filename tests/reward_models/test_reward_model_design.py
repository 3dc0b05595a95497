"""The reward_model design: the model's scores, batched per call, normalised, prompt lookup."""
import json

import pytest

from rlvr.rewards.designs import build_design
from rlvr.rewards.designs.reward_model import whiten
from rlvr.rewards.errors import RewardConfigError
from rlvr.rewards.scoring import score_samples
from rlvr.rewards.verifiers import VerifierPool

RECORDS = [{"prompt_id": pid, "sample_index": j, "response": resp, "gold": gold, "prompt": text}
           for pid, text, gold, answers in (("train-0", "12+34=", "46", ("46;", "45;", "7;")),
                                            ("train-1", "10+10=", "20", ("20;", "21;")))
           for j, resp in enumerate(answers)]


@pytest.fixture(scope="module")
def rm_folder(tiny_lm, tmp_path_factory):
    from rlvr.reward_models.model import scalar_head_model

    model, tok = scalar_head_model(tiny_lm)
    folder = tmp_path_factory.mktemp("rm")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def direct_scores(folder, records):
    from rlvr.reward_models.model import RewardModel

    rm = RewardModel.load(folder, device="cpu")
    return rm.score([r["prompt"] for r in records], [r["response"] for r in records])


def test_whiten_by_hand():
    assert whiten([1.0, 3.0]) == [-1.0, 1.0]
    assert whiten([2.0, 2.0]) == [0.0, 0.0]


def test_scores_are_the_models_and_batching_does_not_change_them(rm_folder):
    raw = direct_scores(rm_folder, RECORDS)
    pool = VerifierPool("arithmetic")
    for batch_size in (1, 64):
        design = build_design({"name": "reward_model", "path": rm_folder, "batch_size": batch_size, "device": "cpu"})
        scored = score_samples(RECORDS, pool, design)
        assert [s["proxy"] for s in scored] == pytest.approx(raw, abs=1e-5)
        assert [s["gt"] for s in scored] == [1.0, 0.0, 0.0, 1.0, 0.0]  # the ground truth beside it
    assert len(set(round(v, 6) for v in raw)) > 1


def test_whitening_is_over_the_whole_call_and_affine_is_fixed(rm_folder):
    raw = direct_scores(rm_folder, RECORDS)
    pool = VerifierPool("arithmetic")
    white = score_samples(RECORDS, pool, build_design({"name": "reward_model", "path": rm_folder, "normalize": "whiten"}))
    assert [s["proxy"] for s in white] == pytest.approx(whiten(raw), abs=1e-5)
    aff = score_samples(RECORDS, pool, build_design({"name": "reward_model", "path": rm_folder, "normalize": "affine",
                                                     "scale": 2.0, "shift": -1.0}))
    assert [s["proxy"] for s in aff] == pytest.approx([2 * v - 1 for v in raw], abs=1e-5)


def test_prompt_text_is_looked_up_in_the_recorded_task_when_records_lack_it(rm_folder, tmp_path):
    import shutil

    from rlvr.tasks.arithmetic import arithmetic_prompts

    folder = tmp_path / "rm"
    shutil.copytree(rm_folder, folder)
    task = {"name": "arithmetic", "seed": 0, "num_digits": 2, "operations": ["+"], "train_size": 5, "eval_size": 2,
            "prompt_template": "{question}"}
    (folder / "rlvr_reward_model.json").write_text(json.dumps({"task": task}))
    prompts = arithmetic_prompts(0, "train", 5)
    with_text = [{"prompt_id": p.id, "sample_index": 0, "response": f"{p.gold};", "gold": p.gold, "prompt": p.text}
                 for p in prompts]
    without = [{k: v for k, v in r.items() if k != "prompt"} for r in with_text]
    pool = VerifierPool("arithmetic")
    design = build_design({"name": "reward_model", "path": str(folder)})
    assert [s["proxy"] for s in score_samples(without, pool, design)] == pytest.approx(
        [s["proxy"] for s in score_samples(with_text, pool, design)], abs=1e-6)
    wrong_gold = [dict(without[0], gold="999")]
    with pytest.raises(RewardConfigError, match="carries no prompt text"):
        score_samples(wrong_gold, pool, design)


def test_design_keys_are_checked_and_it_is_systematic(rm_folder):
    from rlvr.rewards.designs.reward_model import RewardModelDesign

    assert RewardModelDesign.errors == "systematic" and RewardModelDesign.reads_prompt
    with pytest.raises(RewardConfigError, match="reward.design.normalize = 'zscore'"):
        build_design({"name": "reward_model", "path": rm_folder, "normalize": "zscore"})
    with pytest.raises(RewardConfigError, match="reward.design.path is missing"):
        build_design({"name": "reward_model"})
    with pytest.raises(RewardConfigError, match="neither a folder nor a hub id"):
        build_design({"name": "reward_model", "path": "./no/such/folder"})


def test_per_group_designs_still_score_group_by_group():
    from rlvr.rewards.designs import RewardDesign

    calls = []

    class Counting(RewardDesign):
        def score_group(self, group):
            calls.append(len(group))
            return [0.5] * len(group)

    scored = score_samples([dict(r) for r in RECORDS], VerifierPool("arithmetic"), Counting())
    assert sorted(calls) == [2, 3] and {s["proxy"] for s in scored} == {0.5}
