"""Ground truth for math answers: an explicit final answer, compared with math-verify.

Precision over recall: only an explicit final answer is ever credited. In order of priority:

- the last \\boxed{...} (or \\fbox{...}); one left unclosed (a truncated box) is no answer
- a GSM8K-style `#### X` line
- the last "answer is X" / "Answer: X" statement ("final answer", "the answer to ... is")
- a display-math block `\\[ ... \\]` or `$$ ... $$` that ends the response
- a response that starts with a value ended by ';' ("\\frac{1}{2};", the form the tiny
  model's warm-up teaches; what follows the ';' is ignored)
- a response that is just the answer: one short line holding an expression ("x = 3/2",
  "$\\frac{1}{2}$", "(B)") or a short sentence with a single number ("so the total is 42")

A `####` line or an answer statement counts only if no later line holds more math (digits,
LaTeX, `=`): a solution that goes on reasoning after it (or is cut off) did not end there.
With no explicit final answer the verdict is `no_answer`, even when a number in the reasoning
equals the gold. The extracted answer alone is handed to math-verify, which compares it
symbolically with the gold. On top of math-verify:

- multiple choice: a gold that is a single choice letter (`\\text{(B)}`, `(B)`, `B`) is
  compared by letter with the response's final answer ("(B)", "B", "(B) 12", "\\boxed{B}")
- a set `\\{1,2\\}` never equals an ordered pair or interval `(1,2)` (math-verify equates them)
- rewrites, with plain regular expressions, of forms math-verify misreads (FACTS.md):
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
from typing import Any, Mapping, Optional, Tuple

from rlvr.rewards.types import GroundTruth

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
    r"\banswer\b(?:[ \t]*\**[ \t]*[:=]|[^.\n:=]{0,40}?\b(?:is|are|was|will be|would be)\b[ \t]*:?)"
    r"[ \t]*\**[ \t]*", re.IGNORECASE)
_MATHY = re.compile(r"[0-9\\$=]")  # what a line that still does math holds
# Where an answer stated in prose ends: a full stop, a clause after a comma, a reason.
_CLAUSE_END = re.compile(r"\.(?:\s|$)|;|,\s+(?=[A-Za-z]{2})|\s+(?:because|since|as|which|so|from|where)\b")
_COMMAND = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(r"[A-Za-z]{2,}")  # a word, not a one-letter variable
_NUMBER = re.compile(r"\d+(?:[.,/]\d+)*")
_MAX_WHOLE_CHARS = 80  # a response this short may be just the answer
_MAX_WHOLE_WORDS = 12
# Multiple choice: wrappers around a choice letter, a gold that is one, a response that starts with one.
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|boxed)\s*\{([^{}]*)\}")
_CHOICE_GOLD = re.compile(r"\(?([A-J])\)?")
_CHOICE_ANSWER = re.compile(r"\(([A-J])\)|([A-J])(?:[).:](?:\s|$)|$)")


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


def _last_boxed(text: str) -> Optional[str]:
    """Content of the last \\boxed{...}; "" if it is never closed; None if there is no box."""
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
            return text[last.end():i]
        i += 1
    return ""


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


def _clip_statement(rest: str) -> Optional[str]:
    """The answer stated at the start of `rest` (the text after "the answer is")."""
    line = rest.split("\n", 1)[0].strip()
    if re.match(r"not\b", line, re.IGNORECASE):  # "the answer is not 42"
        return None
    if line.startswith("$") and line[1:2].isdigit() and line.count("$") == 1:
        line = line[1:]  # a currency sign, not math: "the answer is $18.90."
    span = _math_span(line)
    if span:
        return span
    end = _CLAUSE_END.search(line)
    answer = (line[:end.start()] if end else line).strip().rstrip(".")
    return answer or None


def _final_display(text: str) -> Optional[str]:
    """Content of a \\[...\\] or $$...$$ block that ends the response (trailing full stop allowed)."""
    body = text.rstrip().rstrip(".").rstrip()
    for opener, closer in (("\\[", "\\]"), ("$$", "$$")):
        if body.endswith(closer):
            start = body.rfind(opener, 0, len(body) - len(closer))
            if start >= 0:
                return body[start + len(opener):len(body) - len(closer)].strip().rstrip(".,;").strip()
    return None


def _whole_answer(text: str) -> Optional[str]:
    """The response itself when it is just the answer (see the module docstring), else None."""
    line = text.strip()
    if not line or "\n" in line or len(line) > _MAX_WHOLE_CHARS:
        return None
    core = line.rstrip(".").strip()
    if core[:1] in "$\\" or not _WORD.search(_COMMAND.sub("", core)):
        inner = core.strip("$").strip()
        if inner.startswith("\\(") and inner.endswith("\\)"):
            inner = inner[2:-2].strip()
        return core if not _WORD.search(_COMMAND.sub("", inner)) else None
    if "\\" in line or "$" in line or len(line.split()) > _MAX_WHOLE_WORDS:
        return None
    return line if len(_NUMBER.findall(line)) == 1 else None


def final_answer(response: str) -> Optional[Tuple[str, str]]:
    """(answer text, how it was stated: boxed | hash | statement | display | terminated | whole), or None.

    `response` should already be normalized (normalize_math_text). Linear-time string work.
    """
    boxed = _last_boxed(response)
    if boxed is not None:
        return (boxed.strip(), "boxed") if boxed.strip() else None
    hashes = None
    for hashes in _HASH_LINE.finditer(response):
        pass
    if hashes is not None and _ends_the_math(response, hashes.end()):
        return hashes.group(1).strip(), "hash"
    statement = None
    for statement in _STATEMENT.finditer(response):
        pass
    if statement is not None and _ends_the_math(response, statement.end()):
        answer = _clip_statement(response[statement.end():])  # None: "the answer is not 42"
        return (answer, "statement") if answer else None
    display = _final_display(response)
    if display:
        return display, "display"
    head, semicolon, _ = response.lstrip().partition(";")  # the warm-up's "<answer>;" form
    if semicolon and "=" not in head and _whole_answer(head):
        return head.strip(), "terminated"
    whole = _whole_answer(response)
    return (whole, "whole") if whole else None


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


def verify_math(response: str, gold: str, meta: Optional[Mapping[str, Any]] = None) -> GroundTruth:
    """1.0 iff the response's explicit final answer equals the gold answer mathematically.

    reason: ok | wrong | no_answer (no explicit final answer, or it does not parse) |
    parse_error (the gold itself does not parse). No timeout of its own: run it in a VerifierPool.
    """
    mv = _math_verify()
    stated = final_answer(normalize_math_text(response))
    gold_letter = choice_letter(normalize_math_text(gold.strip()), gold=True)
    if gold_letter:
        if stated is None:
            return GroundTruth(0.0, "no_answer", None)
        letter = choice_letter(stated[0])
        ok = letter == gold_letter
        return GroundTruth(1.0 if ok else 0.0, "ok" if ok else "wrong", letter or stated[0][:MAX_ANSWER_CHARS])
    gold_parsed = parse_gold(gold)
    if not gold_parsed:
        return GroundTruth(0.0, "parse_error", None, {"error": f"gold {gold[:80]!r} did not parse"})
    if stated is None:
        return GroundTruth(0.0, "no_answer", None)
    parsed = _parse_answer(*stated)
    if not parsed:
        return GroundTruth(0.0, "no_answer", None)
    kinds = {_bracket_kind(gold_parsed), _bracket_kind(parsed)}
    ok = kinds != {"set", "ordered"} and mv.verify(list(gold_parsed), parsed, timeout_seconds=None)
    return GroundTruth(1.0 if ok else 0.0, "ok" if ok else "wrong", answer_text(parsed))
