import pytest

from rlvr.rewards.verifiers.arithmetic import extract_answer, verify_arithmetic
from rlvr.tasks.arithmetic import arithmetic_prompts


def test_prompts_are_deterministic_and_splits_disjoint():
    a = arithmetic_prompts(3, "train", 300)
    assert a == arithmetic_prompts(3, "train", 300)
    assert a != arithmetic_prompts(4, "train", 300)
    held_out = arithmetic_prompts(3, "eval", 100)
    assert not {p.text for p in a} & {p.text for p in held_out}
    assert len({p.text for p in a}) == 300
    # the eval split does not depend on the train size
    assert arithmetic_prompts(3, "eval", 50) == held_out[:50]
    assert {p.text for p in arithmetic_prompts(3, "train", 2000)}.isdisjoint({p.text for p in held_out})
    p = a[0]
    x, y = p.text[:-1].split("+")
    assert int(p.gold) == int(x) + int(y) and 10 <= int(x) <= 99


def test_verify_and_extract():
    assert extract_answer("46;junk") == "46"
    assert extract_answer("046;") == "46"
    assert extract_answer("46") is None
    assert verify_arithmetic("46;", "46").score == 1.0
    wrong = verify_arithmetic("45;", "46")
    assert (wrong.score, wrong.reason, wrong.answer) == (0.0, "wrong", "45")
    assert verify_arithmetic("abc", "46").reason == "no_answer"


def test_bad_task_arguments():
    with pytest.raises(ValueError, match="task.operations"):
        arithmetic_prompts(0, "train", 10, operations=["/"])
    with pytest.raises(ValueError, match="task.train_size"):
        arithmetic_prompts(0, "train", 10_000, num_digits=1)
