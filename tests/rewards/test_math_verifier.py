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


# --- The labelled cases of tests/rewards/math_verifier_cases.jsonl (docs/verifiers.md) -------------
# Classes: truncated (cut off; the only number in an early sentence), hedged (several options),
# words (answers in words), choice ("the correct option is (B)"), control (forms handled before).
from rlvr.rewards.verifiers.math_answers import choice_statement, hedged, locate_final_answer, words_as_value  # noqa: E402
from rlvr.rewards.verifiers.number_words import parse_number_words  # noqa: E402

# A pre-existing recall gap found by the held-out set: prose ending in inline math is no answer.
KNOWN_MISSES = {"Thus $x = 4$."}
# What `python tools/verifier_agreement.py` prints today: (n, credit agrees, verdict agrees, false credits).
AGREEMENT_AFTER = {
    "labelled/truncated": (19, 19, 19, 0), "labelled/hedged": (20, 20, 20, 0),
    "labelled/words": (21, 21, 21, 0), "labelled/choice": (20, 20, 20, 0),
    "labelled/control": (23, 23, 23, 0), "labelled/all": (103, 103, 103, 0),
    "held_out/truncated": (6, 6, 6, 0), "held_out/hedged": (6, 6, 6, 0), "held_out/words": (6, 6, 6, 0),
    "held_out/choice": (6, 6, 6, 0), "held_out/control": (5, 4, 4, 0), "held_out/all": (29, 28, 28, 0),
}


@pytest.fixture(scope="module")
def agreement(load_tool):
    return load_tool("verifier_agreement.py")


def _cases():
    from pathlib import Path

    import json
    path = Path(__file__).with_name("math_verifier_cases.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_labelled_file_has_at_least_15_cases_per_class():
    labelled = [c for c in _cases() if c.get("set", "labelled") == "labelled"]
    counts = {name: sum(c["class"] == name for c in labelled)
              for name in ("truncated", "hedged", "words", "choice", "control")}
    assert min(counts.values()) >= 15, counts


@pytest.mark.parametrize("case", _cases(), ids=lambda c: f"{c['class']}:{c['response'][:40]}")
def test_labelled_case(case, agreement):
    result = agreement.judge(case)
    if case["response"] in KNOWN_MISSES:
        assert not result["verdict_agrees"], f"{case['response']!r} now agrees: drop it from KNOWN_MISSES"
        return
    assert result["verdict_agrees"], (case, result)


def test_agreement_table_is_the_documented_one(agreement):
    table = agreement.agreement_table(agreement.load_cases(agreement.DEFAULT_CASES))
    got = {key: (row["n"], row["credit"], row["verdict"], row["false_credit"]) for key, row in table.items()}
    assert got == AGREEMENT_AFTER


def test_agreement_tool_prints_the_table(agreement, capsys):
    assert agreement.main([]) == 0
    out = capsys.readouterr().out
    assert "labelled/all          103    103/103  100%" in out and "held_out/all" in out


@pytest.mark.parametrize("text, expected", [
    ("twelve.", ("12", 6)),
    ("twenty-four apples", ("24", 11)),
    ("one hundred and five", ("105", 20)),
    ("two thousand three hundred forty-five", ("2345", 37)),
    ("twelve hundred", ("1200", 14)),
    ("a thousand and one", ("1001", 18)),
    ("one million two hundred thousand", ("1200000", 32)),
    ("negative three", ("-3", 14)),
    ("minus five", ("-5", 10)),
    ("zero", ("0", 4)),
    ("one half", ("\\frac{1}{2}", 8)),
    ("a half", ("\\frac{1}{2}", 6)),
    ("three quarters", ("\\frac{3}{4}", 14)),
    ("two thirds", ("\\frac{2}{3}", 10)),
    ("negative one half", ("-\\frac{1}{2}", 17)),
    ("four and a half", ("\\frac{9}{2}", 15)),
    ("two and three quarters", ("\\frac{11}{4}", 22)),
    ("three point one four", ("3.14", 20)),
    ("five and six", ("5", 4)),           # two numbers: only the first is read
    ("one second", ("1", 3)),             # "second" is a unit of time, not a denominator
    ("one of the options", None),         # a pronoun
    ("a dozen", None),
    ("hundred", None),
    ("and", None),
])
def test_number_words(text, expected):
    assert parse_number_words(text) == expected


def test_words_as_value_reads_only_an_answer_in_words():
    assert words_as_value("a total of twelve apples") == "12"
    assert words_as_value("\\text{seven}") == "7"
    assert words_as_value("12 apples") is None     # digits: math-verify reads them
    assert words_as_value("an integer") is None


@pytest.mark.parametrize("response, is_hedged", [
    ("The answer is (B) or (C).", True),
    ("The answer is 3, but it could also be 4.", True),
    ("\\boxed{12} or \\boxed{15}", True),
    ("The answer is (B)/(C).", True),
    ("A is the correct answer if x > 0, otherwise B", True),
    ("The answer is (B), and (C) is wrong.", False),   # a comma before "and": no list of options
    ("The correct option is (B), not (C).", False),
    ("The answer is one hundred and five.", False),   # "and" inside a number in words
    ("The answer is 5 because 2 or 3 would be too small.", False),  # the reason is not the answer
    ("Since 3 or 4 would be too small, the answer is \\boxed{5}.", False),
])
def test_hedges(response, is_hedged):
    text = normalize_math_text(response)
    located = choice_statement(text) or locate_final_answer(text)
    assert hedged(text, located) is is_hedged


def test_a_hedge_is_wrong_not_credited_but_a_set_gold_may_be_listed_with_or():
    gt = verify_math("The answer is 7 or 8.", "8", {})
    assert (gt.score, gt.reason, gt.details) == (0.0, "wrong", {"hedged": True})
    assert verify_math("\\boxed{x = 1 \\text{ or } x = 2}", "1, 2", {}).score == 1.0


@pytest.mark.parametrize("response, gold, score, reason", [
    ("The answer is (B). Option C is correct though.", "(C)", *OK),  # the later statement wins
    ("The correct option is (B). So the answer is (C).", "(C)", *OK),
    ("Option A is correct? No. Option B", "(A)", *NONE),             # a question decides nothing
    ("the correct option is not (B)", "(B)", *NONE),
    ("I choose to compute 12 first", "12", *NONE),                   # not a choice gold
])
def test_choice_statements(response, gold, score, reason):
    gt = verify_math(response, gold, {})
    assert (gt.score, gt.reason) == (score, reason), gt


@pytest.mark.parametrize("response", [
    "The answer is 3 could" + " " * 50_000 + "x",   # quadratic before: ~7 s at 20,000 spaces
    "\\boxed{" + "1," * 50_000 + "}",
    "\\boxed{" + "1 or " * 20_000 + "}",
    "option" + " " * 50_000 + ":" + " " * 50_000,
    "to answer is " * 10_000,
])
def test_extraction_and_hedge_check_stay_linear(response):
    import time

    start = time.perf_counter()
    text = normalize_math_text(response)
    located = choice_statement(text) or locate_final_answer(text)
    if located:
        hedged(text, located)
    assert time.perf_counter() - start < 2.0  # about 0.1-0.4 s here; quadratic would be minutes
