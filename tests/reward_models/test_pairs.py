"""Preference pairs with controlled flaws: the measured flip share and bias match what was asked."""
import math
import random

import pytest

from rlvr.reward_models.pairs import build_pairs, candidate_pairs, class_response, measure_pairs
from rlvr.rewards.verifiers.arithmetic import verify_arithmetic


def groups(num_prompts=50, seed=0):
    """Scored records of a fake policy: 6 answers per prompt "a+b=", about a third correct."""
    rng = random.Random(seed)
    out = []
    for k in range(num_prompts):
        a, b = 10 + k, 20 + k
        answers = [a + b if rng.random() < 0.35 else a + b + rng.choice((-11, 3, 7, 20)) for _ in range(6)]
        out.append([{"prompt_id": f"p{k}", "prompt": f"{a}+{b}=", "response": f"{x};",
                     "gt": verify_arithmetic(f"{x};", str(a + b)).score} for x in answers])
    return out


GROUPS = groups()
GOLDS = {g[0]["prompt_id"]: str(eval(g[0]["prompt"][:-1])) for g in GROUPS}  # noqa: S307 - our own "a+b"


def test_candidates_are_distinct_texts_ranked_by_the_ground_truth():
    group = [{"prompt_id": "p", "prompt": "1+1=", "response": r, "gt": g}
             for r, g in (("2;", 1.0), ("2;", 1.0), ("3;", 0.0), ("4;", 0.0), ("3;", 0.0))]
    pairs = candidate_pairs([group])
    assert sorted((p["chosen"], p["rejected"]) for p in pairs) == [("2;", "3;"), ("2;", "4;")]


@pytest.mark.parametrize("flip_rate", [0.0, 0.2, 0.45])
def test_flip_share_matches_the_knob_within_sampling_error(flip_rate):
    n = 3000
    pairs = build_pairs(GROUPS, GOLDS, n, flip_rate=flip_rate, seed=1)
    measured = measure_pairs(pairs)
    assert measured["pairs"] == n and measured["class_share"] == 0
    assert abs(measured["flip_share"] - flip_rate) <= 4 * math.sqrt(flip_rate * (1 - flip_rate) / n) + 1e-9
    # against_gt is the truth: re-verify each pair with the arithmetic verifier
    for p in pairs[:300]:
        gold = GOLDS[p["prompt_id"]]
        better = verify_arithmetic(p["chosen"], gold).score > verify_arithmetic(p["rejected"], gold).score
        assert better != p["against_gt"]


@pytest.mark.parametrize("bias", ["off_by_one", "longer"])
def test_bias_share_and_rate_match_the_knobs_and_class_answers_are_of_the_class(bias):
    n, share, rate = 4000, 0.3, 0.8
    pairs = build_pairs(GROUPS, GOLDS, n, flip_rate=0.1, bias=bias, bias_share=share, bias_rate=rate, seed=2)
    m = measure_pairs(pairs)
    assert m["class_share"] == pytest.approx(share, abs=1 / n)
    n_class = round(n * share)
    assert abs(m["bias_rate"] - rate) <= 4 * math.sqrt(rate * (1 - rate) / n_class)
    assert abs(m["flip_share"] - 0.1) <= 4 * math.sqrt(0.09 / (n - n_class))
    for p in (p for p in pairs if p["class_pair"]):
        gold = int(GOLDS[p["prompt_id"]])
        wrong = p["chosen"] if p["against_gt"] else p["rejected"]
        right = p["rejected"] if p["against_gt"] else p["chosen"]
        assert right == f"{gold};"
        value = int(wrong[:-1])
        assert abs(value - gold) == 1 if bias == "off_by_one" else (len(wrong) > len(right) and value != gold)


def test_same_seed_same_pairs_and_bad_knobs_are_named():
    assert build_pairs(GROUPS, GOLDS, 100, flip_rate=0.3, seed=5) == build_pairs(GROUPS, GOLDS, 100, flip_rate=0.3, seed=5)
    with pytest.raises(ValueError, match="flip_rate = 1.5"):
        build_pairs(GROUPS, GOLDS, 10, flip_rate=1.5)
    with pytest.raises(ValueError, match="bias"):
        build_pairs(GROUPS, GOLDS, 10, bias="shorter")
    with pytest.raises(ValueError, match="integer gold"):
        class_response("x/2", "off_by_one", random.Random(0))
    flat = [[{"prompt_id": "p", "prompt": "1+1=", "response": "3;", "gt": 0.0}] * 2]
    with pytest.raises(ValueError, match="ranks apart"):
        build_pairs(flat, {"p": "2"}, 10)
    assert measure_pairs(build_pairs(flat, {"p": "2"}, 10, bias="off_by_one", bias_share=1.0))["class_share"] == 1.0
