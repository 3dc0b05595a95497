"""The `math` verifier on hand-labelled answers: only an explicit final answer is credited.

Each row is (response, gold, expected score, expected reason), labelled by hand. Classes:
explicit final-answer forms, no explicit answer (truncated or the gold only inside the
reasoning), scientific notation, sets vs ordered pairs, escaped-dollar golds, multiple
choice, final display math, and plain wrong answers.
"""
import pytest

from rlvr.rewards.verifiers.math_answers import choice_letter, final_answer, normalize_math_text, verify_math

OK, WRONG, NONE = (1.0, "ok"), (0.0, "wrong"), (0.0, "no_answer")

EXPLICIT = [
    ("The answer is \\boxed{42}.", "42", *OK),
    ("Adding gives 40 + 2.\n\nFinal: $\\boxed{\\dfrac{3}{4}}$", "3/4", *OK),
    ("6 * 7 = 42\n#### 42", "42", *OK),
    ("We add 3 and 4 to get 7.\nThe answer is 7.", "7", *OK),
    ("Answer: 12", "12", *OK),
    ("**Final Answer:** $\\frac{1}{2}$", "0.5", *OK),
    ("So the answer is 42, since 6 * 7 = 42.", "42", *OK),
    ("The answer to part (a) is 9 apples.", "9", *OK),
    ("42", "42", *OK),
    ("$\\frac{1}{2}$", "\\frac12", *OK),
    ("x = 3/2", "\\frac{3}{2}", *OK),
    ("so the total is 42", "42", *OK),
    ("answer: \u22125", "-5", *OK),
    ("\\frac{1}{2};", "\\frac12", *OK),  # the tiny model's warm-up form "<answer>;"
    ("42;7+", "42", *OK),
    ("41;", "42", *WRONG),
]
NO_EXPLICIT_ANSWER = [
    ("First, 3 + 4 = 7, then 7 * 6 = 42, then we subtract", "42", *NONE),  # truncated
    ("Let me compute step by step. 6 times 7 is 42. Now divide by", "42", *NONE),
    ("To find the total we multiply 6 by 7 and get 42. Then we add the tax of 5 percent to", "42", *NONE),
    ("x = 5 and y = 3 satisfy both equations, so we substitute them into the third one", "5", *NONE),
    ("The answer is 42. Wait, let me double-check.\n6 * 8 = 48, so", "42", *NONE),  # reasoning went on
    ("#### 42\nBut wait, 6 * 8 = 48.", "42", *NONE),
    ("We need \\boxed{\\frac{1}{2", "\\frac12", *NONE),  # cut off inside the box
    ("The answer is not 42.", "42", *NONE),
    ("I do not know", "42", *NONE),
    ("\\[ x = \\frac{3}{2} \\] since 2x = 3 and we divide", "\\frac32", *NONE),  # display not final
]
SCIENTIFIC = [
    ("The answer is 1.5e3.", "1500", *OK),
    ("Answer: 2.5E-2", "0.025", *OK),
    ("\\boxed{1.5e3}", "1500", *OK),
    ("\\boxed{1.5e3}", "1.5", *WRONG),
    ("The answer is 1.5e3.", "1.5", *WRONG),
]
SETS_AND_PAIRS = [
    ("\\boxed{(1,2)}", "\\{1,2\\}", *WRONG),
    ("\\boxed{\\{1,2\\}}", "(1,2)", *WRONG),
    ("\\boxed{(1,2,3)}", "\\{1,2,3\\}", *WRONG),
    ("\\boxed{\\{2,1\\}}", "\\{1,2\\}", *OK),
    ("\\boxed{1, 2}", "\\{1,2\\}", *OK),
    ("\\boxed{(1,2)}", "(1,2)", *OK),
    ("\\boxed{(2,1)}", "(1,2)", *WRONG),
]
ESCAPED_DOLLAR = [
    ("\\boxed{18.90}", "\\$18.90", *OK),
    ("The answer is \\$18.90.", "\\$18.90", *OK),
    ("The answer is $18.90.", "18.90", *OK),
    ("\\boxed{\\$19.80}", "\\$18.90", *WRONG),
]
MULTIPLE_CHOICE = [
    ("(B)", "\\text{(B)}", *OK),
    ("Answer: B", "\\text{(B)}", *OK),
    ("The answer is (B) 12.", "\\text{(B)}", *OK),
    ("\\boxed{\\textbf{(B)}}", "\\textbf{(B)}", *OK),
    ("\\boxed{B}", "(B)", *OK),
    ("The answer is (C) 12.", "\\text{(B)}", *WRONG),
    ("Answer: A total of 12 apples", "\\text{(A)}", *WRONG),
    ("Option B looks right but let me check option A first", "\\text{(B)}", *NONE),
]
DISPLAY = [
    ("Solving 2x = 3 gives\n\\[ x = \\frac{3}{2}. \\]", "\\frac32", *OK),
    ("Since 2x = 3,\n$$ x = \\frac{3}{2} $$", "1.5", *OK),
    ("We get\n\\[\nx = \\frac{5}{2}\n\\]", "\\frac32", *WRONG),
]
PLAIN_WRONG = [
    ("\\boxed{41}", "42", *WRONG),
    ("The final answer is 41.", "42", *WRONG),
    ("\\boxed{1\\,234}", "235", *WRONG),  # math-verify alone reads 1\,234 as 1 + 234
]
# Labelled after the verifier was written and before it was run on them (all agreed).
HELD_OUT = [
    ("Let's see. 12 * 3 = 36. So the answer is $36$.", "36", *OK),
    ("The area is 25 square units.\n\nFinal Answer: The final answer is $25$. I hope it is correct.", "25", *OK),
    ("We compute 3^4 = 81, and 81 - 1 = 80. Then", "80", *NONE),
    ("Therefore, $x = \\boxed{-2}$.", "-2", *OK),
    ("\\boxed{\\frac{2}{6}}", "\\frac13", *OK),
    ("\\boxed{0.33}", "\\frac13", *WRONG),
    ("The answer is (D).", "\\text{(D)}", *OK),
    ("The answer is D", "\\textbf{(E)}", *WRONG),
    ("\\boxed{[1, 3)}", "[1,3)", *OK),
    ("\\boxed{\\{3, 5\\}}", "(3,5)", *WRONG),
    ("Answer: 4.5e2", "450", *OK),
    ("Answer: \\$4.50", "4.5", *OK),
    ("Adding everything up:\n$$ 3 + 4 + 5 = 12 $$", "12", *OK),
    ("The answer is 7 or 8, I am not sure.", "7", *WRONG),
    ("I think the answer might be 42", "42", *OK),
    ("(1, 2)", "(1,2)", *OK),
    ("Answer: x = 3", "3", *OK),
    ("#### 1,000", "1000", *OK),
    ("The answer is $\\frac{\\sqrt{3}}{2}$", "\\frac{\\sqrt3}{2}", *OK),
    ("So far we have 5 apples and 3 oranges, and we need to count the bananas which are", "5", *NONE),
]
TABLE = (EXPLICIT + NO_EXPLICIT_ANSWER + SCIENTIFIC + SETS_AND_PAIRS + ESCAPED_DOLLAR
         + MULTIPLE_CHOICE + DISPLAY + PLAIN_WRONG + HELD_OUT)


def test_the_table_covers_every_class_both_ways():
    assert len(TABLE) >= 40
    for rows in (SCIENTIFIC, SETS_AND_PAIRS, ESCAPED_DOLLAR, MULTIPLE_CHOICE, DISPLAY):
        assert {score for _, _, score, _ in rows} == {0.0, 1.0}


@pytest.mark.parametrize("response, gold, score, reason", TABLE)
def test_hand_labelled_verdicts(response, gold, score, reason):
    gt = verify_math(response, gold, {})
    assert (gt.score, gt.reason) == (score, reason), gt


@pytest.mark.parametrize("response, expected", [
    ("a \\boxed{1} then \\boxed{2}", ("2", "boxed")),
    ("\\boxed{\\{1,2\\}}", ("\\{1,2\\}", "boxed")),
    ("work\n#### 7", ("7", "hash")),
    ("The answer is $x=3$ because", ("$x=3$", "statement")),
    ("The answer is $2 \\text{ so long as } n > 1$ here", ("$2 \\text{ so long as } n > 1$", "statement")),
    ("2x = 3\n\\[ x = \\frac{3}{2}. \\]", ("x = \\frac{3}{2}", "display")),
    ("the answer is 3.\nsince 1 + 2 = 3", None),
    ("\\frac{1}{2};3", ("\\frac{1}{2}", "terminated")),
    ("3 + 4 = 7 and then", None),
])
def test_final_answer_extraction(response, expected):
    assert final_answer(normalize_math_text(response)) == expected


def test_choice_letters():
    assert choice_letter("\\text{(B)}", gold=True) == "B"
    assert choice_letter("B", gold=True) == "B"
    assert choice_letter("(B) 12", gold=True) is None  # a gold must be the letter alone
    assert choice_letter("(B) 12") == "B" and choice_letter("B.") == "B"
    assert choice_letter("Bob") is None and choice_letter("12") is None


def test_escaped_dollar_gold_parses():
    assert verify_math("\\boxed{18.9}", "\\$18.90", {}).answer == "18.9"


def test_scientific_notation_before_a_full_stop_is_expanded():
    assert normalize_math_text("is 1.5e3.") == "is 1500."
    assert normalize_math_text("1.5e3.5") == "1.5e3.5"  # not a number we can read


def test_pathological_answer_is_not_evaluated_by_extraction():
    # extraction is linear string work: a huge response with no answer is no_answer at once
    assert verify_math("(" * 100_000 + "1", "1", {}).reason == "no_answer"
    assert final_answer("\\boxed{" * 50_000) is None
