"""Ground truth for math answers: an explicit final answer, compared with math-verify.

Precision over recall: only an explicit final answer is ever credited. In order of priority:

- the last \\boxed{...} (or \\fbox{...}); one left unclosed (a truncated box) is no answer
- a GSM8K-style `#### X` line
- the last "answer is X" / "Answer: X" statement ("final answer", "the answer to ... is"), with
  "answer" a noun ("to answer this, ..." and "let me answer: ..." are no statements); prose
  after it must start with its value ("12 apples", "a total of 12", "twelve"), not a method
  ("found by dividing by 4") or a bound ("at least 3")
- a display-math block `\\[ ... \\]` or `$$ ... $$` that ends the response
- a response that starts with a value ended by ';' ("\\frac{1}{2};", the form the tiny
  model's warm-up teaches; what follows the ';' is ignored); the value is math, not prose
- a response that is just the answer: one short line holding an expression ("x = 3/2",
  "$\\frac{1}{2}$", "(B)"), or one short sentence that ends with its only value ("so the total
  is 42", "the total is twenty-four apples"); a response cut off after an early sentence
  ("Each box holds 12 eggs. Now we need the") or on a dangling word ("... 100 dollars and") is not
- when the gold is a choice letter, also a statement that names an option without saying
  "answer" ("the correct option is (B)", "option C is correct", "(C) is the correct answer",
  "I choose (B)", a line "Option B"), when it comes after any other final answer

A `####` line or an answer statement counts only if no later line holds more math (digits,
LaTeX, `=`): a solution that goes on reasoning after it (or is cut off) did not end there.
With no explicit final answer the verdict is `no_answer`, even when a number in the reasoning
equals the gold. A final answer that names several options or values for a single-valued gold
("(B) or (C)", "7 or 8", "3, but it could also be 4", "\\boxed{12} or \\boxed{15}") is a hedge:
`wrong` with details["hedged"], never credited (a set or tuple gold may be listed with "or").
The extracted answer alone is handed to math-verify, which compares it symbolically with the
gold. On top of math-verify:

- multiple choice: a gold that is a single choice letter (`\\text{(B)}`, `(B)`, `B`) is
  compared by letter with the response's final answer ("(B)", "B", "(B) 12", "\\boxed{B}")
- answers in words ("twelve", "one half", "negative three", "two thousand three hundred
  forty-five", "four and a half") are read as numbers (rlvr.rewards.verifiers.number_words)
- a set `\\{1,2\\}` never equals an ordered pair or interval `(1,2)` (math-verify equates them)
- rewrites, with plain regular expressions, of forms math-verify misreads (docs/verifiers.md):
  Unicode minus signs -> '-'; thousands separators written as LaTeX or Unicode thin spaces
  (math-verify reads 1\\,234 as 1+234 = 235); scientific notation 1.5e3 -> 1500 (math-verify
  reads 1.5), also before a full stop; repeating decimals 0.\\overline{3} -> \\frac{1}{3};
  escaped dollars \\$18.90 -> 18.90 (such a gold did not parse at all).

Nothing from model text is ever evaluated: extraction is linear-time string work, and
math-verify parses only the extracted answer. math-verify's own timeouts (signal.alarm) are
disabled here: a pathological answer can run for minutes, so call this only inside a
VerifierPool process, which kills it at its timeout. Its WARNING logs (which print whole
inputs) are silenced.
"""
from __future__ import annotations

import logging
import re
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any, Mapping, NamedTuple, Optional, Tuple

from rlvr.rewards.types import GroundTruth
from rlvr.rewards.verifiers.number_words import NUMBER_WORD, parse_number_words

MAX_ANSWER_CHARS = 200  # GroundTruth.answer is cut to this length

_MINUS = str.maketrans({"\u2212": "-", "\ufe63": "-", "\uff0d": "-", "\u2012": "-"})
# A space-like separator between a digit and exactly three more digits.
_THOUSANDS = re.compile(r"(?<=\d)(?:\\[,;: ]|\\thinspace ?|~|[\u2009\u202f\u00a0])(?=\d{3}(?!\d))")
# Not followed by a word character or by '.digit' (a full stop after it is fine: "is 1.5e3.").
_SCIENTIFIC = re.compile(r"(?<![\w.\\])(\d{1,30}(?:\.\d{1,30})?)[eE]([+-]?\d{1,3})(?!\w|\.\d)")
_MAX_EXPONENT = 100  # longer expansions are left alone
_PLAIN_INTEGER = re.compile(r"^-?\d{1,50}$")
_REPEATING = re.compile(r"(?<![\d.])(\d{0,30})\.(\d{0,30})\\(?:overline|bar)\{(\d{1,30})\}")
_ESCAPED_DOLLAR = re.compile(r"\\\$")

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_HASH_LINE = re.compile(r"^[ \t]*#{4}[ \t]*(\S[^\n]*)$", re.MULTILINE)
# "The answer is X", "final answer: X", "**Answer:** X", "the answer to part (a) is X"
_STATEMENT = re.compile(
    r"\banswer\b(?:[ \t]*\**[ \t]*[:=]|[^.,\n:=]{0,40}?\b(?:is|are|was|will be|would be)\b[ \t]*:?)"
    r"[ \t]*\**[ \t]*", re.IGNORECASE)
# "answer" as a verb ("to answer this", "let me answer:"): no answer statement.
_VERB_BEFORE_ANSWER = re.compile(r"\b(?:to|me|us|we|i|you|they|ll|can|will|must|should|shall|not)\W{0,3}$", re.IGNORECASE)
_MATHY = re.compile(r"[0-9\\$=]")  # what a line that still does math holds
# Where an answer stated in prose ends: a full stop, a clause after a comma, a reason
# (a space run is entered at its start only: linear on long runs of spaces).
_CLAUSE_END = re.compile(r"\.(?:\s|$)|;|,\s+(?=[A-Za-z]{2})|(?<!\s)\s+(?:because|since|as|which|so|from|where)\b")
_COMMAND = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(r"[A-Za-z]{2,}")  # a word, not a one-letter variable
_NUMBER = re.compile(r"\d+(?:[.,/]\d+)*")
_MAX_WHOLE_CHARS = 80  # a response this short may be just the answer
_MAX_WHOLE_WORDS = 12
# A value in prose: a number in digits or in words ("twelve", "negative three", "a half").
_VALUE_IN_PROSE = re.compile(r"\d|\b(?:negative|minus|a half|a third|a quarter|" + NUMBER_WORD + r")\b", re.IGNORECASE)
_MAX_PREFIX_WORDS = 3  # "a total of 12", "exactly 12", "x = 3": not "found by dividing by 4"
# Words before a stated value that make it no exact result ("at least 3", "found by dividing by 4").
_PROCESS_WORDS = frozenset(
    "by from using when if after then with taking given than more less least most between not "
    "found obtained computed calculated multiplying adding subtracting dividing computing calculating".split())
# A sentence ending on one of these words was cut off ("We begin with 100 dollars and").
_DANGLING_WORDS = frozenset(
    "the a an and or but to of in on at by for with from we i he she they it then so is are was were "
    "be that which who this its their his her our as if into than each per first next now".split())
_SENTENCE_BREAK = re.compile(r"[.!?;](?:\s+\S)")  # one sentence ends and another starts
_NUMBER_WORD_AFTER_CUE = re.compile(
    r"\b(?:is|are|was|were|equals?|makes|gives|gets?|got|total of|be)\s+(?:about\s+|exactly\s+|just\s+|only\s+)?"
    r"(?=(?:negative|minus|a|" + NUMBER_WORD + r")\b)", re.IGNORECASE)
_LEAD_BEFORE_WORDS = re.compile(r"(?i:a total of|exactly|about|approximately|just|only|equal to)\s+")
# Multiple choice: wrappers around a choice letter, a gold that is one, a response that starts with one.
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|boxed)\s*\{([^{}]*)\}")
_CHOICE_GOLD = re.compile(r"\(?([A-J])\)?")
_CHOICE_ANSWER = re.compile(r"\(([A-J])\)|([A-J])(?:[).:](?:\s|$)|$)")
# A stated value or option, for spotting a hedge ("(B) or (C)", "7 or 8"). A bare "I" is the pronoun.
# A number starts where no digit precedes it and is matched possessively: linear on "1,1,1,...".
_SYMBOLIC_CANDIDATE = (r"(?:\([A-J]\)|(?<![A-Za-z])[A-HJ](?![A-Za-z])|(?:[a-z]\s*=\s*)?(?<![\d.,])-?\d++(?:[.,]\d++)*+"
                       r"|\\[dt]?frac\{[^{}]*\}\{[^{}]*\})")
_CANDIDATE = r"(?:" + _SYMBOLIC_CANDIDATE + r"|(?i:\b" + NUMBER_WORD + r"\b))"
_HEDGES = [re.compile(pattern) for pattern in (
    _CANDIDATE + r"\s*(?:,\s*)?(?i:\b(?:and/or|or|nor)\b)\s*(?i:(?:maybe|possibly|perhaps|even|else)\s+)?" + _CANDIDATE,
    # "and" joins words of one number ("one hundred and five", "four and a half"): symbols only
    _SYMBOLIC_CANDIDATE + r"\s*(?i:\band\b)\s*" + _SYMBOLIC_CANDIDATE,  # not "(B), and (C) is wrong"
    r"\(?[A-J]\)?\s*/\s*\(?[A-J]\)?(?![A-Za-z])",  # "B/C" ("1/2" is a fraction)
    r"(?i:\beither\b)",
)]
# After the answer: "..., or possibly (C)", "but it could also be 4", "maybe (C)".
_HEDGE_AFTER = re.compile(r"(?i:\b(?:or|maybe|possibly|perhaps|alternatively|otherwise|could\s+(?:also\s+)?be|"
                          r"might\s+(?:also\s+)?be)\b)[\s,]*(?i:(?:option|choice|answer)\s+)?" + _CANDIDATE)
# Where the sentence holding an answer ends (a reason that follows is not part of it).
_ANSWER_SENTENCE_END = re.compile(r"\n|[.!?;](?:\s|$)|(?<!\s)\s+(?i:because|since|as|which|so|where|given)\b")
_MATH_DELIMITERS = re.compile(r"\$|\\[()\[\]]")
# Statements of a choice that do not say "answer" (used when the gold is a choice letter).
_LETTER = r"(?:\(([A-J])\)|(?<![A-Za-z(])([A-J])(?![A-Za-z]))"
_CHOICE_STATEMENTS = [re.compile(pattern) for pattern in (
    r"(?i:\b(?:correct|right|best|final|true)\s+(?:option|choice|letter|alternative)\s*(?:is|would be|"
    r"must be|should be|will be|:)\s*)" + _LETTER,
    r"(?i:\b(?:option|choice)\s*)" + _LETTER + r"(?i:\s+is\s+(?:the\s+)?(?:correct|right|true|best|answer)\b)",
    _LETTER + r"(?i:\s+is\s+the\s+(?:correct|right|best|true)\s+(?:answer|option|choice|one)\b)",
    r"(?<![A-Za-z])I\s+(?i:(?:choose|chose|pick|picked|select|selected|go with)\s+(?:option\s+|choice\s+)?)" + _LETTER,
    r"(?m:^[ \t]*(?i:option|choice)[ \t]*(?::[ \t]*)?)" + _LETTER + r"[ \t]*\.?[ \t]*$",
)]


class Located(NamedTuple):
    """A final answer found in a response: its text, how it was stated, and where."""

    text: str
    form: str  # boxed | hash | statement | display | terminated | whole | choice
    start: int  # where the answer text starts in the (normalized) response
    end: int  # where it ends


def silence_logging() -> None:
    """math-verify logs whole inputs (up to 1 MB per sample) at WARNING on a timeout."""
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _expand_scientific(match: re.Match) -> str:
    exponent = int(match.group(2))
    if abs(exponent) > _MAX_EXPONENT:
        return match.group(0)
    value = Decimal(f"{match.group(1)}e{exponent}")
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _repeating_to_fraction(match: re.Match) -> str:
    whole, fixed, repeat = match.group(1) or "0", match.group(2), match.group(3)
    value = Fraction(int(whole)) + Fraction(int(fixed or "0"), 10 ** len(fixed))
    value += Fraction(int(repeat), (10 ** len(repeat) - 1) * 10 ** len(fixed))
    return f"\\frac{{{value.numerator}}}{{{value.denominator}}}"


def normalize_math_text(text: str) -> str:
    """Rewrite the forms math-verify misreads (see the module docstring). Pure regex work."""
    text = text.translate(_MINUS)
    text = _ESCAPED_DOLLAR.sub("", text)
    text = _THOUSANDS.sub("", text)
    text = _REPEATING.sub(_repeating_to_fraction, text)
    return _SCIENTIFIC.sub(_expand_scientific, text)


def _last_boxed(text: str) -> Optional[Tuple[int, int]]:
    """(start, end) of the last \\boxed{...}'s content; end < 0 if it is never closed; None if no box."""
    last = None
    for last in _BOX.finditer(text):
        pass
    if last is None:
        return None
    depth, i = 1, last.end()
    while i < len(text):
        char = text[i]
        if char == "\\":  # \{ and \} are set braces, not grouping
            i += 2
            continue
        depth += (char == "{") - (char == "}")
        if depth == 0:
            return last.end(), i
        i += 1
    return last.end(), -1


def _ends_the_math(text: str, pos: int) -> bool:
    """Whether no line after the one holding `pos` does more math."""
    newline = text.find("\n", pos)
    return newline < 0 or not _MATHY.search(text, newline)


def _math_span(text: str) -> Optional[str]:
    """The leading $...$, $$...$$ or \\(...\\) of `text`, delimiters kept; None if it has none."""
    for opener, closer in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if text.startswith(opener):
            end = text.find(closer, len(opener))
            return text[:end + len(closer)] if end > 0 else None
    return None


def _is_prose(answer: str) -> bool:
    """Whether an answer holds words (two letters or more, LaTeX commands aside)."""
    return bool(_WORD.search(_COMMAND.sub("", answer)))


def _states_a_value(answer: str) -> bool:
    """Whether prose after "the answer is" starts with its value: "12 apples", "a total of 12",
    "twelve"; not "found by dividing by 4", "at least 3", "one of the options" or "an integer"."""
    if _math_span(answer) or choice_letter(answer):
        return True
    value = _VALUE_IN_PROSE.search(answer)
    if value is None:
        return False
    prefix = answer[:value.start()].lower().split()
    if len(prefix) > _MAX_PREFIX_WORDS or _PROCESS_WORDS.intersection(w.strip(",:") for w in prefix):
        return False
    return value.group(0)[0].isdigit() or parse_number_words(answer[value.start():]) is not None


def _clip_statement(rest: str) -> Optional[Tuple[str, int]]:
    """(the answer stated at the start of `rest`, its offset in `rest`); `rest` follows "the answer is"."""
    line = rest.split("\n", 1)[0]
    offset = len(line) - len(line.lstrip())
    line = line.strip()
    if re.match(r"not\b", line, re.IGNORECASE):  # "the answer is not 42"
        return None
    if line.startswith("$") and line[1:2].isdigit() and line.count("$") == 1:
        line, offset = line[1:], offset + 1  # a currency sign, not math: "the answer is $18.90."
    span = _math_span(line)
    if span:
        return span, offset
    end = _CLAUSE_END.search(line)
    answer = (line[:end.start()] if end else line).strip().rstrip(".")
    if not answer or (_is_prose(answer) and not _states_a_value(answer)):
        return None
    return answer, offset


def _final_display(text: str) -> Optional[str]:
    """Content of a \\[...\\] or $$...$$ block that ends the response (trailing full stop allowed)."""
    body = text.rstrip().rstrip(".").rstrip()
    for opener, closer in (("\\[", "\\]"), ("$$", "$$")):
        if body.endswith(closer):
            start = body.rfind(opener, 0, len(body) - len(closer))
            if start >= 0:
                return body[start + len(opener):len(body) - len(closer)].strip().rstrip(".,;").strip()
    return None


def _ends_a_sentence(line: str, value_end: int) -> bool:
    """Whether the value ending at `value_end` closes its one-sentence response: at most two
    words (a unit: "42 apples") follow it, and the last word is not one a cut-off leaves dangling."""
    tail = line[value_end:].strip().rstrip(".!").split()
    return len(tail) <= 2 and (not tail or tail[-1].lower().strip(",") not in _DANGLING_WORDS)


def _whole_answer(text: str) -> Optional[str]:
    """The response itself when it is just the answer (see the module docstring), else None.

    A prose response must be one sentence that ends with its only value ("so the total is 42",
    "the total is twenty-four apples"); returned from the value on when the value is in words.
    """
    line = text.strip()
    if not line or "\n" in line or len(line) > _MAX_WHOLE_CHARS:
        return None
    core = line.rstrip(".").strip()
    if core[:1] in "$\\" or not _is_prose(core):
        inner = core.strip("$").strip()
        if inner.startswith("\\(") and inner.endswith("\\)"):
            inner = inner[2:-2].strip()
        return core if not _is_prose(inner) else None
    if "\\" in line or "$" in line or len(line.split()) > _MAX_WHOLE_WORDS or _SENTENCE_BREAK.search(line):
        return None
    numbers = _NUMBER.findall(line)
    if len(numbers) == 1:
        return line if _ends_a_sentence(line, line.rfind(numbers[0]) + len(numbers[0])) else None
    if numbers:
        return None
    spelled = [(cue.end(), parse_number_words(line[cue.end():])) for cue in _NUMBER_WORD_AFTER_CUE.finditer(line)]
    spelled = [(at, found) for at, found in spelled if found]
    if len(spelled) != 1 or not _ends_a_sentence(line, spelled[0][0] + spelled[0][1][1]):
        return None
    return line[spelled[0][0]:]


def locate_final_answer(response: str) -> Optional[Located]:
    """The response's explicit final answer and where it stands (see final_answer), or None."""
    boxed = _last_boxed(response)
    if boxed is not None:
        start, end = boxed
        if end < 0 or not response[start:end].strip():  # a truncated box is no answer
            return None
        return Located(response[start:end].strip(), "boxed", start, end)
    hashes = None
    for hashes in _HASH_LINE.finditer(response):
        pass
    if hashes is not None and _ends_the_math(response, hashes.end()):
        return Located(hashes.group(1).strip(), "hash", hashes.start(1), hashes.end(1))
    statement = None
    for match in _STATEMENT.finditer(response):
        before = response[max(0, match.start() - 12):match.start()]  # bounded: linear in the response
        if "," not in match.group(0) and not _VERB_BEFORE_ANSWER.search(before):
            statement = match
    if statement is not None and _ends_the_math(response, statement.end()):
        clipped = _clip_statement(response[statement.end():])  # None: "the answer is not 42"
        if clipped is None:
            return None
        start = statement.end() + clipped[1]
        return Located(clipped[0], "statement", start, start + len(clipped[0]))
    display = _final_display(response)
    if display:
        start = response.rfind(display)
        return Located(display, "display", start, start + len(display))
    head, semicolon, _ = response.lstrip().partition(";")  # the warm-up's "<answer>;" form
    if semicolon and "=" not in head and not _is_prose(head) and _whole_answer(head):
        start = len(response) - len(response.lstrip())
        return Located(head.strip(), "terminated", start, start + len(head))
    whole = _whole_answer(response)
    if whole:
        start = response.rfind(whole)
        return Located(whole, "whole", start, start + len(whole))
    return None


def final_answer(response: str) -> Optional[Tuple[str, str]]:
    """(answer text, how it was stated: boxed | hash | statement | display | terminated | whole), or None.

    `response` should already be normalized (normalize_math_text). Linear-time string work.
    """
    located = locate_final_answer(response)
    return (located.text, located.form) if located else None


def choice_statement(response: str) -> Optional[Located]:
    """The last statement choosing an option without the word "answer" ("the correct option is
    (B)", "option C is correct", "I choose (B)", a line "Option B"), if no line after it does more
    math; its text is the letter. Used only when the gold is a choice letter."""
    best = None
    for pattern in _CHOICE_STATEMENTS:
        for match in pattern.finditer(response):
            if response[match.end():match.end() + 3].lstrip()[:1] == "?":  # "Option A is correct?"
                continue
            group = 1 if match.group(1) else 2
            if best is None or match.start(group) > best.start:
                best = Located(match.group(group), "choice", match.start(group), match.end(group))
    if best is None or not _ends_the_math(response, best.end):
        return None
    return best


def words_as_value(answer: str) -> Optional[str]:
    """The value of an answer written in words ("twelve apples" -> "12", "a total of one half" ->
    "\\frac{1}{2}"), or None when it holds digits or does not start with a number phrase."""
    answer = _TEXT_WRAPPER.sub(r"\1", answer).strip()
    if re.search(r"\d", answer):
        return None
    lead = _LEAD_BEFORE_WORDS.match(answer)
    found = parse_number_words(answer[lead.end():] if lead else answer)
    return found[0] if found else None


def hedged(response: str, located: Located) -> bool:
    """Whether the sentence stating the answer names several options or values ("(B) or (C)",
    "7 or 8", "3, but it could also be 4", "\\boxed{12} or \\boxed{15}"): no single final answer."""
    start = located.start
    if located.form == "boxed":  # an earlier box on the same line: "\boxed{12} or \boxed{15}"
        line_start = response.rfind("\n", 0, start) + 1
        earlier = _BOX.search(response, line_start, start)
        start = earlier.start() if earlier else start
    sentence_end = _ANSWER_SENTENCE_END.search(response, located.end)
    end = sentence_end.start() if sentence_end else len(response)
    region, after = response[start:end], response[located.end:end]
    for _ in range(3):  # nested wrappers: \boxed{\text{(B)}}
        region, after = _TEXT_WRAPPER.sub(r"\1", region), _TEXT_WRAPPER.sub(r"\1", after)
    region, after = _MATH_DELIMITERS.sub(" ", region), _MATH_DELIMITERS.sub(" ", after)
    return any(h.search(region) for h in _HEDGES) or bool(_HEDGE_AFTER.search(after))


def choice_letter(text: str, gold: bool = False) -> Optional[str]:
    """The multiple-choice letter `text` names ("\\text{(B)}", "(B) 12", "B."), or None.

    A gold must be the letter alone; a response's answer may go on after "(B)" or "B)".
    """
    for _ in range(3):  # nested wrappers: \boxed{\text{(B)}}
        text = _TEXT_WRAPPER.sub(r"\1", text)
    text = text.replace("$", "").strip().strip("*").strip()
    if gold:
        match = _CHOICE_GOLD.fullmatch(text)
        return match.group(1) if match else None
    match = _CHOICE_ANSWER.match(text)
    return (match.group(1) or match.group(2)) if match else None


def _math_verify():
    import math_verify  # deferred: importing it (and sympy) takes about a second

    silence_logging()
    return math_verify


@lru_cache(maxsize=4096)
def parse_gold(gold: str) -> tuple:
    """The parsed gold answer; wrapped in $...$ (or \\boxed{}) since bare LaTeX often parses to nothing."""
    mv = _math_verify()
    gold = normalize_math_text(gold.strip())
    if _PLAIN_INTEGER.match(gold):  # the common case, ~1 ms faster; what parse("$42$") returns
        import sympy

        return (sympy.Integer(int(gold)), gold)
    wrapped = [gold] if ("$" in gold or "\\boxed" in gold) else [f"${gold}$", f"\\boxed{{{gold}}}", gold]
    for candidate in wrapped:
        parsed = mv.parse(candidate, parsing_timeout=None)
        if parsed:
            return tuple(parsed)
    return ()


def _parse_answer(answer: str, form: str) -> list:
    """math-verify's parse of an extracted final answer."""
    mv = _math_verify()
    if form == "boxed":
        candidates = [f"\\boxed{{{answer}}}"]
    elif "$" in answer or answer.startswith("\\("):
        candidates = [answer]
    elif form == "display" or not _WORD.search(_COMMAND.sub("", answer)):
        candidates = [f"${answer}$", answer]  # LaTeX, or a list "1, 2" (plain text reads only the 2)
    else:
        candidates = [answer]  # prose like "42 apples": math-verify takes its number
    for candidate in candidates:
        parsed = mv.parse(candidate, parsing_timeout=None)
        if parsed:
            return parsed
    return []


def _bracket_kind(parsed) -> Optional[str]:
    """"set" for \\{...\\}, "ordered" for a tuple or interval, else None."""
    import sympy

    expr, text = parsed[0], str(parsed[-1])
    if isinstance(expr, sympy.FiniteSet) and "\\{" in text:
        return "set"
    if isinstance(expr, (sympy.Tuple, sympy.Interval)):
        return "ordered"
    return None


def answer_text(parsed: list) -> str:
    """A short canonical string for the parsed answer (used to group equal answers)."""
    import sympy

    expr = parsed[0]
    if isinstance(expr, sympy.Integer):
        text = str(int(expr))
    elif isinstance(expr, sympy.Rational):
        text = f"{expr.p}/{expr.q}"
    elif isinstance(expr, sympy.Float):
        text = format(float(expr), ".12g")
    else:
        text = str(expr)
    return text[:MAX_ANSWER_CHARS]


def _single_valued(gold_parsed: tuple) -> bool:
    """Whether the gold is one value (a number or expression), not a set, tuple, interval or equation:
    then a response naming several values is a hedge, not a list of solutions."""
    import sympy

    return isinstance(gold_parsed[0], sympy.Expr)


def _hedge_verdict(located: Located) -> GroundTruth:
    """A hedged answer ("(B) or (C)") names no single final answer: never credited."""
    return GroundTruth(0.0, "wrong", located.text[:MAX_ANSWER_CHARS], {"hedged": True})


def verify_math(response: str, gold: str, meta: Optional[Mapping[str, Any]] = None) -> GroundTruth:
    """1.0 iff the response's explicit final answer equals the gold answer mathematically.

    reason: ok | wrong (details["hedged"] when it names several options) | no_answer (no explicit
    final answer, or it does not parse) | parse_error (the gold itself does not parse). No timeout
    of its own: run it in a VerifierPool.
    """
    mv = _math_verify()
    response = normalize_math_text(response)
    located = locate_final_answer(response)
    gold_letter = choice_letter(normalize_math_text(gold.strip()), gold=True)
    if gold_letter:
        chosen = choice_statement(response)
        if chosen and (located is None or choice_letter(located.text) is None or chosen.start > located.start):
            located = chosen
        if located is None:
            return GroundTruth(0.0, "no_answer", None)
        if hedged(response, located):
            return _hedge_verdict(located)
        letter = choice_letter(located.text)
        ok = letter == gold_letter
        return GroundTruth(1.0 if ok else 0.0, "ok" if ok else "wrong", letter or located.text[:MAX_ANSWER_CHARS])
    gold_parsed = parse_gold(gold)
    if not gold_parsed:
        return GroundTruth(0.0, "parse_error", None, {"error": f"gold {gold[:80]!r} did not parse"})
    if located is None:
        return GroundTruth(0.0, "no_answer", None)
    if _single_valued(gold_parsed) and hedged(response, located):
        return _hedge_verdict(located)
    spelled = words_as_value(located.text)
    parsed = _parse_answer(spelled, "whole") if spelled else _parse_answer(located.text, located.form)
    if not parsed:
        return GroundTruth(0.0, "no_answer", None)
    kinds = {_bracket_kind(gold_parsed), _bracket_kind(parsed)}
    ok = kinds != {"set", "ordered"} and mv.verify(list(gold_parsed), parsed, timeout_seconds=None)
    return GroundTruth(1.0 if ok else 0.0, "ok" if ok else "wrong", answer_text(parsed))
