"""Ground-truth verifiers called directly: registry, arithmetic (exact and graded), math."""
import re
from pathlib import Path

import pytest

import rlvr.rewards.verifiers as verifiers_pkg
from rlvr.rewards.errors import RewardConfigError
from rlvr.rewards.verifiers import VERIFIERS, get_verifier, runs_in_process
from rlvr.rewards.verifiers.arithmetic import verify_graded
from rlvr.rewards.verifiers.math_answers import normalize_math_text, verify_math


def test_registry_names_and_unknown_name():
    assert sorted(VERIFIERS) == ["arithmetic", "arithmetic_graded", "constraints", "math"]
    assert runs_in_process("arithmetic") and runs_in_process("constraints")
    assert not runs_in_process("math")
    with pytest.raises(RewardConfigError, match=r"reward.verifier = 'nope'.*arithmetic.*math"):
        get_verifier("nope")


def test_arithmetic_wraps_the_task_verifier():
    verify = get_verifier("arithmetic")
    assert verify("46;", "46", {}).score == 1.0
    assert verify("45;", "46", {}).reason == "wrong"
    assert verify("x", "46", {}).reason == "no_answer"


# The final answer is the integer at the very start of the response, ended by ';'.
@pytest.mark.parametrize("response, reason, answer", [
    ("46;", "ok", "46"),
    (" 46 ;", "ok", "46"),                  # spaces around the answer are fine
    ("\n46\t;", "ok", "46"),
    ("046;", "ok", "46"),                   # normalised through int()
    ("46; because 40+6=46", "ok", "46"),    # text after the final answer is not read
    ("45;46;", "wrong", "45"),              # the first answer counts, not a later one
    ("-46;", "wrong", "-46"),
    ("the answer is 46;", "no_answer", None),  # text before the answer
    ("12+34=46;", "no_answer", None),       # the equation repeated before the answer
    ("x46;", "no_answer", None),
    ("46", "no_answer", None),              # no ';'
    ("4 6;", "no_answer", None),
    ("+46;", "no_answer", None),
    ("46.0;", "no_answer", None),
    ("", "no_answer", None),
])
def test_arithmetic_answer_parsing(response, reason, answer):
    for verify in (get_verifier("arithmetic"), get_verifier("arithmetic_graded")):
        gt = verify(response, "46", {})
        assert (gt.reason, gt.answer) == (reason, answer), verify.__name__
        assert (gt.score == 1.0) == (reason == "ok")
        if reason == "no_answer":
            assert gt.score == 0.0


@pytest.mark.parametrize("response, gold, score, grade", [
    ("46;", "46", 1.0, "exact"),
    ("56;", "46", 0.5, "close"),      # two digits, last digit 6
    ("47;", "46", 0.25, "partial"),   # two digits only
    ("146;", "46", 0.25, "partial"),  # last digit only
    ("5;", "46", 0.0, "wrong"),
    ("-46;", "46", 0.25, "partial"),  # sign differs: not the right number of digits
    ("x", "46", 0.0, "no_answer"),
])
def test_arithmetic_graded_scale(response, gold, score, grade):
    gt = verify_graded(response, gold, {})
    assert (gt.score, gt.details["grade"]) == (score, grade)
    assert gt.reason == {"exact": "ok", "no_answer": "no_answer"}.get(grade, "wrong")


@pytest.mark.parametrize("response, gold", [
    ("The answer is \\boxed{42}.", "42"),
    ("so the total is 42", "42"),
    ("\\boxed{\\frac{1}{2}}", "\\frac12"),
    ("it is 1/2", "\\frac{1}{2}"),
    ("it is 0.5", "\\frac{1}{2}"),
    ("$\\boxed{\\dfrac{3}{4}}$", "3/4"),
    ("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{\\sqrt2}{2}"),
    ("\\boxed{x^2+2x+1}", "(x+1)^2"),
    ("\\boxed{3\\pi}", "3\\pi"),
    ("The answer is 1,234.", "1234"),
    ("#### 1,234", "1,234"),
    ("\\boxed{5}", "\\boxed{5}"),      # gold already boxed
])
def test_math_equivalent_forms_pass(response, gold):
    gt = verify_math(response, gold, {})
    assert (gt.score, gt.reason) == (1.0, "ok"), gt


@pytest.mark.parametrize("response, gold", [
    ("answer: \u22125", "-5"),                       # Unicode minus in plain text
    ("\\boxed{1\\,234}", "1234"),                    # LaTeX thin-space thousands separator
    ("\\boxed{1\\,234\\,567}", "1234567"),
    ("about 1\u2009234 apples", "1234"),             # Unicode thin space
    ("\\boxed{1.5e3}", "1500"),                      # scientific notation
    ("the answer is 2.5E-2", "0.025"),
    ("\\boxed{0.\\overline{3}}", "\\frac13"),       # repeating decimal
    ("\\boxed{0.1\\overline{6}}", "\\frac16"),
])
def test_math_known_misses_are_handled(response, gold):
    gt = verify_math(response, gold, {})
    assert gt.score == 1.0, gt


def test_math_thin_space_is_not_addition():
    # math-verify alone reads 1\,234 as 1 + 234 = 235: a false positive we must not keep
    assert verify_math("\\boxed{1\\,234}", "235", {}).score == 0.0


@pytest.mark.parametrize("response, gold, reason", [
    ("\\boxed{41}", "42", "wrong"),
    ("\\boxed{\\frac{1}{3}}", "\\frac12", "wrong"),
    ("I do not know", "42", "no_answer"),
])
def test_math_wrong_and_missing(response, gold, reason):
    gt = verify_math(response, gold, {})
    assert (gt.score, gt.reason) == (0.0, reason)


@pytest.mark.parametrize("response, score, reason, answer", [
    ("  42  ", 1.0, "ok", "42"),
    ("The answer is \\boxed{42}. Check: 41", 1.0, "ok", "42"),  # a boxed answer beats a later number
    ("\\boxed{41} but 42", 0.0, "wrong", "41"),
    # No explicit final answer (several numbers, no box or answer statement): never a credit.
    ("42 then 41", 0.0, "no_answer", None),
    ("41, 42 and 43", 0.0, "no_answer", None),
])
def test_math_reads_the_final_answer(response, score, reason, answer):
    gt = verify_math(response, "42", {})
    assert (gt.score, gt.reason, gt.answer) == (score, reason, answer)


def test_math_answer_is_canonical():
    assert verify_math("\\boxed{\\frac{2}{4}}", "0.5", {}).answer == "1/2"
    assert verify_math("so 1,234", "1", {}).answer == "1234"


def test_math_unparseable_gold_is_a_parse_error():
    gt = verify_math("\\boxed{1}", "", {})
    assert (gt.score, gt.reason) == (0.0, "parse_error")


def test_normalize_math_text_leaves_ordinary_text_alone():
    assert normalize_math_text("x = 12, y = 3e") == "x = 12, y = 3e"
    assert normalize_math_text("1\\,23") == "1\\,23"        # not a thousands group
    assert normalize_math_text("1e999") == "1e999"          # too long to expand
    assert normalize_math_text("-1.5e3") == "-1500"


def test_no_eval_or_exec_of_model_text_in_verifier_source():
    forbidden = re.compile(r"\b(eval|exec|sympify|parse_expr|__import__)\s*\(")
    sources = sorted(Path(verifiers_pkg.__file__).parent.glob("*.py"))
    assert len(sources) >= 5
    for path in sources:
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            assert not forbidden.search(line), f"{path.name}:{lineno}: {line.strip()}"
