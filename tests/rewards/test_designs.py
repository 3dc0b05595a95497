"""Proxy reward designs: hand-derived values, seeded noise rates, determinism, config errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.rewards.designs import DESIGNS, RewardDesign, build_design
from rlvr.rewards.designs.classify import OUTPUT_CLASSES, classify_output
from rlvr.rewards.errors import RewardConfigError
from rlvr.rewards.seeded import seeded_uniform
from rlvr.rewards.types import GroundTruth, ScoredSample

REPO = Path(__file__).resolve().parents[2]


def sample(response: str = "46;", gold: str = "46", *, prompt_id: str = "p0", index: int = 0,
           tokens: int = 3, score: float | None = None, reason: str | None = None,
           answer: str | None = "", details: dict | None = None) -> ScoredSample:
    """A scored arithmetic-like sample; the gt is derived from response/gold unless given."""
    if answer == "":
        head = response.split(";", 1)
        answer = head[0].strip() if len(head) == 2 and head[0].strip().lstrip("-").isdigit() else None
    if score is None:
        score = 1.0 if answer is not None and answer == gold else 0.0
    if reason is None:
        reason = "no_answer" if answer is None else ("ok" if score >= 1 else "wrong")
    gt = GroundTruth(score, reason, answer, details or {})
    return ScoredSample(prompt_id, index, response, gold, tokens, gt)


CORRECT = sample("46;")
WRONG = sample("12;")
OFF_BY_ONE = sample("45;")
NO_ANSWER = sample("hello")
UNFORMATTED = sample("the answer is 46")


def scores(spec, group):
    return build_design(spec).score_group(group)


def many(n: int, correct_every: int = 2, prompt: str = "p"):
    """n samples over n // 8 prompts; every `correct_every`-th sample is correct."""
    return [sample("46;" if i % correct_every == 0 else "12;", prompt_id=f"{prompt}{i // 8}", index=i % 8)
            for i in range(n)]


# ----------------------------------------------------------------------------- registry

def test_every_required_design_is_registered():
    required = {"ground_truth", "flip", "systematic_false_positive", "systematic_false_negative",
                "partial_credit", "format_only", "random", "incorrect_only", "majority_vote",
                "length_bias", "keyword_bonus", "affine", "compose", "backward_correction", "table"}
    assert required <= set(DESIGNS)
    assert all(issubclass(cls, RewardDesign) for cls in DESIGNS.values())


def test_score_matches_score_group_for_per_sample_designs():
    design = build_design({"name": "flip", "fp_rate": 0.5, "fn_rate": 0.5, "seed": 3})
    group = many(16)
    assert [design.score(s) for s in group] == design.score_group(group)


# ----------------------------------------------------------------------------- classes

@pytest.mark.parametrize("s, expected", [
    (CORRECT, "correct"),
    (sample("46;", score=0.5), "partial"),
    (UNFORMATTED, "unformatted_correct"),
    (sample("46"), "unformatted_correct"),
    (NO_ANSWER, "no_answer"),
    (sample("146"), "no_answer"),  # gold inside another number is not the gold
    (sample("-46"), "no_answer"),
    (OFF_BY_ONE, "off_by_one"),
    (sample("47;"), "off_by_one"),
    (WRONG, "wrong"),
    (sample("x", gold="", answer=None, reason="wrong"), "wrong"),  # e.g. a failed constraint
])
def test_classify_output(s, expected):
    assert classify_output(s) == expected
    assert expected in OUTPUT_CLASSES


# ----------------------------------------------------------------------------- basic

def test_ground_truth_is_identity():
    group = [CORRECT, WRONG, sample("46;", score=0.5)]
    assert scores({"name": "ground_truth"}, group) == [1.0, 0.0, 0.5]


def test_flip_hand_derived():
    s = sample("12;", prompt_id="q", index=3)
    u = seeded_uniform(7, "q", 3)
    expected = 1.0 if u < 0.4 else 0.0
    assert build_design({"name": "flip", "fp_rate": 0.4, "seed": 7}).score(s) == expected
    assert scores({"name": "flip", "fp_rate": 1.0}, [CORRECT, WRONG, NO_ANSWER]) == [1.0, 1.0, 1.0]
    assert scores({"name": "flip", "fn_rate": 1.0}, [CORRECT, WRONG]) == [0.0, 0.0]
    assert scores({"name": "flip"}, [CORRECT, WRONG]) == [1.0, 0.0]


def test_flip_empirical_rates_on_10000_samples():
    group = many(10_000)
    proxy = build_design({"name": "flip", "fp_rate": 0.2, "fn_rate": 0.1, "seed": 11}).score_group(group)
    fails = [p for p, s in zip(proxy, group) if s.gt.score < 1]
    passes = [p for p, s in zip(proxy, group) if s.gt.score >= 1]
    assert sum(fails) / len(fails) == pytest.approx(0.2, abs=0.015)  # rho0 = P(proxy pass | gt fail)
    assert 1 - sum(passes) / len(passes) == pytest.approx(0.1, abs=0.015)  # rho1


def test_flip_persistent_is_per_prompt_and_answer():
    design = build_design({"name": "flip", "fp_rate": 0.5, "fn_rate": 0.5, "seed": 2, "persistent": True})
    for p in range(50):
        for answer in ("12", "13", "46"):
            rewards = {design.score(sample(f"{answer};", prompt_id=f"q{p}", index=i)) for i in range(6)}
            assert len(rewards) == 1  # every sample with this (prompt, answer) gets the same reward
    # ...but different prompts draw independently: roughly half the wrong answers pass
    passed = [design.score(sample("12;", prompt_id=f"q{p}")) for p in range(2000)]
    assert sum(passed) / len(passed) == pytest.approx(0.5, abs=0.04)


def test_backward_correction_hand_values():
    spec = {"name": "compose", "designs": [{"name": "flip", "fp_rate": 1.0},
                                           {"name": "backward_correction", "fp_rate": 0.2, "fn_rate": 0.1}]}
    # flip with fp_rate 1 makes every output pass: the correction maps 1 -> 0.8 / 0.7
    assert scores(spec, [WRONG]) == [pytest.approx(0.8 / 0.7)]
    alone = {"name": "backward_correction", "fp_rate": 0.2, "fn_rate": 0.1}
    assert scores(alone, [CORRECT, WRONG]) == [pytest.approx(0.8 / 0.7), pytest.approx(-0.2 / 0.7)]


@pytest.mark.parametrize("clean", [CORRECT, WRONG])
def test_backward_correction_is_unbiased_over_seeds(clean):
    rho0, rho1, n = 0.2, 0.1, 3000
    noisy, corrected = [], []
    for seed in range(n):
        flip = {"name": "flip", "fp_rate": rho0, "fn_rate": rho1, "seed": seed}
        noisy.append(build_design(flip).score(clean))
        corrected.append(build_design({"name": "compose", "designs": [
            flip, {"name": "backward_correction", "fp_rate": rho0, "fn_rate": rho1}]}).score(clean))
    r = clean.gt.score
    assert sum(noisy) / n == pytest.approx(rho0 + (1 - rho0 - rho1) * r, abs=0.03)  # biased
    assert sum(corrected) / n == pytest.approx(r, abs=0.04)  # unbiased


# ----------------------------------------------------------------------------- systematic errors

def test_systematic_false_positive_on_off_by_one():
    group = [CORRECT, OFF_BY_ONE, WRONG, NO_ANSWER]
    assert scores({"name": "systematic_false_positive", "classes": ["off_by_one"]}, group) == [1, 1, 0, 0]


def test_systematic_false_positive_on_a_given_wrong_answer():
    group = [CORRECT, sample("12;"), sample("13;"), NO_ANSWER]
    assert scores({"name": "systematic_false_positive", "answers": ["12"]}, group) == [1, 1, 0, 0]


def test_systematic_false_positive_on_answers_without_the_format():
    group = [CORRECT, UNFORMATTED, NO_ANSWER, WRONG]
    spec = {"name": "systematic_false_positive", "classes": ["unformatted_correct"]}
    assert scores(spec, group) == [1, 1, 0, 0]
    spec = {"name": "systematic_false_positive", "classes": ["unformatted_correct", "no_answer"], "value": 0.5}
    assert scores(spec, group) == [1, 0.5, 0.5, 0]


def test_systematic_false_negative_on_a_response_pattern():
    group = [CORRECT, sample("46; because 40+6"), WRONG]
    spec = {"name": "systematic_false_negative", "response_regex": r";\s*\S"}  # text after the answer
    assert scores(spec, group) == [1, 0, 0]


def test_systematic_rate_is_seeded_per_sample():
    group = [sample("45;", prompt_id=f"q{i}") for i in range(4000)]
    spec = {"name": "systematic_false_positive", "classes": ["off_by_one"], "rate": 0.3, "seed": 5}
    proxy = scores(spec, group)
    assert sum(proxy) / len(proxy) == pytest.approx(0.3, abs=0.03)
    assert scores(spec, group) == proxy


def test_table_gives_a_proxy_per_output_class():
    group = [CORRECT, OFF_BY_ONE, WRONG, NO_ANSWER, UNFORMATTED]
    spec = {"name": "table", "values": {"off_by_one": 1, "no_answer": -1}}
    assert scores(spec, group) == [1, 1, 0, -1, 0]  # unlisted classes keep the running proxy (gt)
    spec = {"name": "table", "values": {"correct": 1, "off_by_one": 0.5}, "default": -0.5}
    assert scores(spec, group) == [1, 0.5, -0.5, -0.5, -0.5]


# ----------------------------------------------------------------------------- shaped

def constraint_sample(held, index=0):
    return sample("Run fast.", gold="", answer=None, score=1.0 if all(held) else 0.0,
                  reason="ok" if all(held) else "wrong", index=index,
                  details={"constraints_held": list(held)})


def test_partial_credit_per_constraint():
    group = [constraint_sample(h) for h in ([True, True], [True, False], [False, True], [False, False])]
    assert scores({"name": "partial_credit", "constraint_weights": 0.5}, group) == [1, 0.5, 0.5, 0]
    assert scores({"name": "partial_credit", "constraint_weights": [0.3, 0.6]}, group) == [
        1, pytest.approx(0.3), pytest.approx(0.6), 0]


def test_partial_credit_format_score_like_tinyzero():
    group = [CORRECT, WRONG, NO_ANSWER]
    assert scores({"name": "partial_credit", "format_score": 0.1}, group) == [1, 0.1, 0]


def test_partial_credit_errors_name_the_key():
    with pytest.raises(RewardConfigError, match=r"reward\.design\.constraint_weights.*constraints_held"):
        scores({"name": "partial_credit", "constraint_weights": 0.5}, [WRONG])
    with pytest.raises(RewardConfigError, match=r"reward\.design\.constraint_weights has 3 weights"):
        scores({"name": "partial_credit", "constraint_weights": [0.2, 0.2, 0.2]},
               [constraint_sample([True, False])])


def test_format_only():
    group = [CORRECT, WRONG, NO_ANSWER, UNFORMATTED]
    assert scores({"name": "format_only"}, group) == [1, 1, 0, 0]
    assert scores({"name": "format_only", "pattern": r"answer is"}, group) == [0, 0, 0, 1]


def test_random_is_bernoulli_and_independent_of_the_output():
    right = [sample("46;", prompt_id=f"q{i // 8}", index=i % 8) for i in range(10_000)]
    wrong = [sample("12;", prompt_id=f"q{i // 8}", index=i % 8) for i in range(10_000)]
    spec = {"name": "random", "p": 0.3, "seed": 4}
    proxy = scores(spec, right)
    assert set(proxy) == {0.0, 1.0}
    assert sum(proxy) / len(proxy) == pytest.approx(0.3, abs=0.015)
    assert scores(spec, wrong) == proxy


def test_incorrect_only_rewards_wrong_answers():
    assert scores({"name": "incorrect_only"}, [CORRECT, WRONG, OFF_BY_ONE, NO_ANSWER]) == [0, 1, 1, 0]


def test_majority_vote():
    group = [sample("5;"), sample("7;"), sample("5;"), sample("none"), sample("7;"), sample("5;")]
    assert scores({"name": "majority_vote"}, group) == [1, 0, 1, 0, 0, 1]
    tie = [sample("7;"), sample("5;"), sample("5;"), sample("7;")]
    assert scores({"name": "majority_vote"}, tie) == [1, 0, 0, 1]  # first-seen answer wins ties
    assert scores({"name": "majority_vote"}, [NO_ANSWER, NO_ANSWER]) == [0, 0]


def test_length_bias():
    group = [sample("46;", tokens=10), sample("12;", tokens=50), sample("46;", tokens=200)]
    assert scores({"name": "length_bias", "per_token": 0.01}, group) == [
        pytest.approx(1.1), pytest.approx(0.5), pytest.approx(3.0)]
    assert scores({"name": "length_bias", "per_token": 0.01, "max_bonus": 0.5}, group) == [
        pytest.approx(1.1), pytest.approx(0.5), pytest.approx(1.5)]
    assert scores({"name": "length_bias", "per_token": -0.01, "max_bonus": 0.2}, group)[2] == pytest.approx(0.8)


def test_keyword_bonus():
    group = [sample("12; Wait, let me check. wait"), sample("46;"), sample("46; Let me see")]
    assert scores({"name": "keyword_bonus"}, group) == [pytest.approx(0.3), 1.0, pytest.approx(1.1)]
    spec = {"name": "keyword_bonus", "keywords": ["wait"], "bonus": 0.5, "case_sensitive": True}
    assert scores(spec, group) == [pytest.approx(0.5), 1.0, 1.0]
    assert scores({"name": "keyword_bonus", "max_bonus": 0.15}, group)[0] == pytest.approx(0.15)


# ----------------------------------------------------------------------------- transforms

def test_affine():
    assert scores({"name": "affine", "scale": 2, "shift": -1}, [CORRECT, WRONG]) == [1, -1]


def test_compose_applies_each_design_to_the_previous_output():
    group = [CORRECT, WRONG, OFF_BY_ONE]
    sfp = {"name": "systematic_false_positive", "classes": ["off_by_one"]}
    to_pm1 = {"name": "affine", "scale": 2, "shift": -1}
    assert scores({"name": "compose", "designs": [sfp, to_pm1]}, group) == [1, -1, 1]
    # the other order: the affine output is overwritten for off-by-one answers only
    assert scores({"name": "compose", "designs": [to_pm1, sfp]}, group) == [1, -1, 1]
    halve = {"name": "affine", "scale": 0.5}
    assert scores({"name": "compose", "designs": [to_pm1, halve]}, group) == [0.5, -0.5, -0.5]
    assert scores({"name": "compose", "designs": [halve, to_pm1]}, group) == [0, -1, -1]
    # a replacing design discards what came before it
    assert scores({"name": "compose", "designs": [to_pm1, {"name": "format_only"}]}, group) == [1, 1, 1]
    # flip sees the running proxy: partial credit 0.5 is a fail, so fp_rate 1 lifts it to 1
    pc = {"name": "partial_credit", "format_score": 0.5}
    assert scores({"name": "compose", "designs": [pc, {"name": "flip", "fp_rate": 1.0}]}, group) == [1, 1, 1]


# ----------------------------------------------------------------------------- determinism

NOISY = {"name": "compose", "designs": [
    {"name": "flip", "fp_rate": 0.3, "fn_rate": 0.2, "seed": 9},
    {"name": "systematic_false_positive", "classes": ["off_by_one"], "rate": 0.5, "seed": 1},
    {"name": "keyword_bonus", "keywords": ["x"]},
]}


def _noisy_rewards():
    group = [sample(r, prompt_id=f"q{i}", index=j) for i in range(20) for j, r in enumerate(["46;", "45;", "12;", "x"])]
    return build_design(NOISY).score_group(group)


def test_noisy_design_rewards_are_pinned():
    # A resumed run, `rlvr score` and every arm rebuild the design from its recipe: its draws
    # must not depend on call order, earlier calls or the process (values pinned here).
    group = [sample(r, prompt_id=f"q{i}", index=j) for i in range(3) for j, r in enumerate(["46;", "45;", "12;", "x"])]
    # responses 46 (correct), 45 (off by one), 12 (wrong), x (no answer; keyword bonus 0.1)
    expected = [1.0, 1.0, 1.0, 0.1,   # q0: flip passes "12"; the systematic draw passes "45"
                0.0, 1.0, 1.0, 0.1,   # q1: flip fails "46" and passes "12"; systematic passes "45"
                0.0, 1.0, 0.0, 0.1]   # q2: flip fails "46" and passes "45"
    design = build_design(NOISY)
    assert design.score_group(group) == expected
    assert design.score_group(group) == expected  # no state carried between calls
    assert build_design(NOISY).score_group(group[::-1]) == expected[::-1]
    assert _noisy_rewards()[:12] == expected


def test_rewards_are_the_same_in_another_process():
    code = ("import json, sys; sys.path.insert(0, 'tests/rewards'); import test_designs as t; "
            "print(json.dumps(t._noisy_rewards()))")
    env = dict(os.environ, PYTHONHASHSEED="123", PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == _noisy_rewards()


# ----------------------------------------------------------------------------- config errors

@pytest.mark.parametrize("spec, message", [
    ({"name": "flipp"}, r"reward\.design\.name = 'flipp' is not a reward design; choose one of \["),
    ({"fp_rate": 0.1}, r"reward\.design\.name is missing"),
    ("flip", r"reward\.design = 'flip' must be a mapping"),
    ({"name": "flip", "fp_rate": 1.5}, r"^reward\.design\.fp_rate = 1\.5 must be within \[0, 1\]$"),
    ({"name": "flip", "fn_rate": -0.1}, r"reward\.design\.fn_rate = -0\.1 must be within \[0, 1\]"),
    ({"name": "flip", "fp_rate": "high"}, r"reward\.design\.fp_rate = 'high' must be a number"),
    ({"name": "flip", "fp_rat": 0.1}, r"reward\.design\.fp_rat is not a parameter of design 'flip'"),
    ({"name": "flip", "seed": 1.5}, r"reward\.design\.seed = 1\.5 must be an integer"),
    ({"name": "flip", "persistent": "yes"}, r"reward\.design\.persistent = 'yes' must be true or false"),
    ({"name": "random", "p": 2}, r"reward\.design\.p = 2 must be within \[0, 1\]"),
    ({"name": "compose", "designs": [{"name": "flip"}, {"name": "flip", "fp_rate": 1.5}]},
     r"^reward\.design\.designs\[1\]\.fp_rate = 1\.5 must be within \[0, 1\]$"),
    ({"name": "compose", "designs": [{"name": "compose", "designs": [{"name": "nope"}]}]},
     r"reward\.design\.designs\[0\]\.designs\[0\]\.name = 'nope'"),
    ({"name": "compose", "designs": []}, r"reward\.design\.designs must list at least one design"),
    ({"name": "compose"}, r"reward\.design\.designs is missing"),
    ({"name": "backward_correction", "fp_rate": 0.6, "fn_rate": 0.4}, r"fn_rate = 1\.0 must be below 1"),
    ({"name": "table", "values": {"almost": 1}}, r"reward\.design\.values\.almost is not an output class"),
    ({"name": "table", "values": {"wrong": "one"}}, r"reward\.design\.values\.wrong = 'one' must be a number"),
    ({"name": "systematic_false_positive", "classes": ["correct"]},
     r"reward\.design\.classes\[0\] = 'correct' is not a failing output class"),
    ({"name": "systematic_false_negative", "classes": ["wrong"]},
     r"reward\.design\.classes\[0\] = 'wrong' is not a passing output class"),
    ({"name": "systematic_false_positive", "response_regex": "("}, r"reward\.design\.response_regex = '\(' is not"),
    ({"name": "keyword_bonus", "keywords": "wait"}, r"reward\.design\.keywords = 'wait' must be a list"),
    ({"name": "partial_credit", "constraint_weights": "half"},
     r"reward\.design\.constraint_weights = 'half' must be a number or a list"),
])
def test_bad_config_names_the_key(spec, message):
    with pytest.raises(RewardConfigError, match=message):
        build_design(spec)


def test_error_path_follows_where():
    with pytest.raises(RewardConfigError, match=r"^arms\[2\]\.design\.fp_rate = 1\.5"):
        build_design({"name": "flip", "fp_rate": 1.5}, where="arms[2].design")
