"""Numbers written in English words -> a value math-verify reads ("twelve" -> "12").

    parse_number_words("negative three apples") -> ("-3", 14)      # (value, characters used)
    parse_number_words("three quarters")        -> ("\\frac{3}{4}", 14)
    parse_number_words("four and a half")       -> ("\\frac{9}{2}", 15)
    parse_number_words("one of the options")    -> None             # "one of": a pronoun

Cardinals up to the billions ("two thousand three hundred forty-five", "one hundred and five",
"a hundred"), a sign ("negative", "minus"), fractions with a spelled denominator ("one half",
"a third", "two thirds", "three fifths"; not "second", which is also a unit of time), mixed
numbers ("four and a half") and decimals ("three point five"). Pure string work, linear in the
input; only the leading phrase is read, so the caller decides where an answer starts.
"""
from __future__ import annotations

import re
from fractions import Fraction
from typing import List, Optional, Tuple

UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}
SCALES = {"thousand": 10 ** 3, "million": 10 ** 6, "billion": 10 ** 9}
_ORDINALS = {"half": 2, "halves": 2, "third": 3, "quarter": 4, "fourth": 4, "fifth": 5, "sixth": 6,
             "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12,
             "twentieth": 20, "hundredth": 100, "thousandth": 1000}
DENOMINATORS = {**_ORDINALS, **{w + "s": d for w, d in _ORDINALS.items() if not w.endswith("f")}}
SIGNS = ("negative", "minus")
# Any word that can start or continue a number phrase (for spotting one in a sentence).
NUMBER_WORD = (r"(?:" + "|".join(sorted(list(UNITS) + list(TENS) + ["hundred"] + list(SCALES),
                                       key=len, reverse=True)) + r")")
_TOKEN = re.compile(r"[A-Za-z]+|\S")


def _tokens(text: str) -> List[Tuple[str, int]]:
    """(lower-case word, end offset) for each word; a hyphen between words is a space."""
    return [(m.group(0).lower(), m.end()) for m in _TOKEN.finditer(text.replace("-", " "))]


def _cardinal(tokens, i: int) -> Tuple[Optional[int], int]:
    """The whole number spelled from tokens[i] on: (value, index after it), or (None, i).

    Each word must be allowed after the previous one ("twenty three", "five hundred and two",
    "twelve hundred"); the phrase ends at the first word that is not.
    """
    total, current, last, j, top_scale = 0, 0, None, i, None
    while j < len(tokens):
        word = tokens[j][0]
        nxt = tokens[j + 1][0] if j + 1 < len(tokens) else ""
        if word == "zero" and last is None:
            return 0, j + 1
        if word in UNITS and word != "zero" and UNITS[word] < 10 and last in (None, "tens", "hundred", "scale", "and"):
            current, last = current + UNITS[word], "unit"
        elif word in UNITS and UNITS[word] >= 10 and last in (None, "hundred", "scale", "and"):
            current, last = current + UNITS[word], "teen"
        elif word in TENS and last in (None, "hundred", "scale", "and"):
            current, last = current + TENS[word], "tens"
        elif word == "a" and last is None and (nxt == "hundred" or nxt in SCALES):
            current, last = 1, "unit"
        elif word == "hundred" and last in ("unit", "teen") and current < 100:
            current, last = current * 100, "hundred"
        elif word in SCALES and last in ("unit", "teen", "tens", "hundred") and (
                top_scale is None or SCALES[word] < top_scale):
            total, current, last, top_scale = total + current * SCALES[word], 0, "scale", SCALES[word]
        elif word == "and" and last in ("hundred", "scale") and (nxt in UNITS or nxt in TENS) and nxt != "zero":
            last = "and"
        else:
            break
        j += 1
    if last in (None, "and"):
        return None, i
    return total + current, j


def parse_number_words(text: str) -> Optional[Tuple[str, int]]:
    """(value as math text, characters consumed) for the number phrase `text` starts with.

    None when `text` does not start with one, or starts with "one of" (a pronoun, not a count).
    """
    tokens = _tokens(text[:400])
    i, sign = 0, ""
    if tokens and tokens[0][0] in SIGNS:
        i, sign = 1, "-"
    if i + 1 < len(tokens) and tokens[i][0] == "a" and tokens[i + 1][0] in DENOMINATORS:  # "a half"
        return _signed(sign, Fraction(1, DENOMINATORS[tokens[i + 1][0]])), tokens[i + 1][1]
    whole, j = _cardinal(tokens, i)
    if whole is None:
        return None
    nxt = tokens[j][0] if j < len(tokens) else ""
    if nxt in DENOMINATORS and 0 < whole < 100:  # "three quarters"
        return _signed(sign, Fraction(whole, DENOMINATORS[nxt])), tokens[j][1]
    if nxt == "and":  # "four and a half", "two and three quarters"
        part = parse_number_words(text[tokens[j][1]:])
        if part and "frac" in part[0] and not part[0].startswith("-"):
            numerator, denominator = map(int, re.findall(r"\d+", part[0]))
            if numerator < denominator:
                return _signed(sign, whole + Fraction(numerator, denominator)), tokens[j][1] + part[1]
    if nxt == "point":  # "three point one four"
        digits, k = "", j + 1
        while k < len(tokens) and tokens[k][0] in UNITS and UNITS[tokens[k][0]] < 10:
            digits, k = digits + str(UNITS[tokens[k][0]]), k + 1
        if digits:
            return f"{sign}{whole}.{digits}", tokens[k - 1][1]
    if nxt == "of" and whole == 1:  # "one of the two options"
        return None
    return _signed(sign, Fraction(whole)), tokens[j - 1][1]


def _signed(sign: str, value: Fraction) -> str:
    """"12", "-3" or "\\frac{3}{4}" (with the sign in front)."""
    if value.denominator == 1:
        return f"{sign}{value.numerator}" if value else "0"
    return f"{sign}\\frac{{{value.numerator}}}{{{value.denominator}}}"
