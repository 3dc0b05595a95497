"""IFBench-style instruction constraints: small, pure-Python, rule-checked properties of a text.

A constraint spec is a mapping `{"name": <registry name>, **params}`, e.g.
`{"name": "word_count_between", "low": 2, "high": 5}`. Each registered constraint has a
check (text, **params) -> bool, an instruction template that a prompt shows the policy, and
a parameter sampler used by the synthetic constraint task (rlvr.tasks.constraints_task).

The `constraints` verifier reads `meta["constraints"]` (a list of specs) and returns
GroundTruth(score=1.0 iff every constraint holds, details={"constraints_held": [bool, ...]
in the order of meta["constraints"], "constraints": [name, ...]}). The `partial_credit`
design reads `details["constraints_held"]`.
"""
from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Sequence

from rlvr.rewards.errors import RewardConfigError
from rlvr.rewards.types import GroundTruth

_WORD = re.compile(r"[A-Za-z0-9']+")
_LETTERS = string.ascii_lowercase
_KEYWORDS = ("sun", "blue", "river", "stone", "light", "green", "moon", "tree", "fish", "rain")
_ENDINGS = (".", "!", "?", " ok", " end")


def words(text: str) -> List[str]:
    """The words of a text: runs of letters, digits and apostrophes."""
    return _WORD.findall(text)


@dataclass(frozen=True)
class Constraint:
    """One registered constraint.

    check: (text, **params) -> bool.  template: str.format(**params) gives the instruction.
    params: the parameter names (all required).  sample: rng -> params for the synthetic task.
    """

    name: str
    check: Callable[..., bool]
    template: str
    params: tuple
    sample: Callable[[random.Random], Dict[str, Any]]


CONSTRAINTS: Dict[str, Constraint] = {}


def _register(name: str, template: str, params: Sequence[str],
              sample: Callable[[random.Random], Dict[str, Any]]):
    def wrap(check):
        CONSTRAINTS[name] = Constraint(name, check, template, tuple(params), sample)
        return check

    return wrap


@_register("starts_with_letter", "Start your answer with the letter '{letter}'.", ["letter"],
           lambda rng: {"letter": rng.choice(_LETTERS)})
def starts_with_letter(text: str, letter: str) -> bool:
    """The first non-space character is `letter` (either case)."""
    stripped = text.lstrip()
    return bool(stripped) and stripped[0].lower() == str(letter).lower()


@_register("ends_with", "End your answer with '{suffix}'.", ["suffix"],
           lambda rng: {"suffix": rng.choice(_ENDINGS)})
def ends_with(text: str, suffix: str) -> bool:
    """The text, trailing whitespace removed, ends with `suffix` (either case)."""
    return text.rstrip().lower().endswith(str(suffix).lower())


def _sample_word_range(rng: random.Random) -> Dict[str, Any]:
    low = rng.randint(1, 4)
    return {"low": low, "high": low + rng.randint(1, 3)}


@_register("word_count_between", "Use between {low} and {high} words.", ["low", "high"],
           _sample_word_range)
def word_count_between(text: str, low: int, high: int) -> bool:
    """low <= number of words <= high (inclusive)."""
    return int(low) <= len(words(text)) <= int(high)


@_register("contains_keyword", "Include the word '{keyword}'.", ["keyword"],
           lambda rng: {"keyword": rng.choice(_KEYWORDS)})
def contains_keyword(text: str, keyword: str) -> bool:
    """`keyword` occurs as a whole word, ignoring case."""
    target = str(keyword).lower()
    return any(w.lower() == target for w in words(text))


@_register("all_lowercase", "Write only lowercase letters.", [], lambda rng: {})
def all_lowercase(text: str) -> bool:
    """At least one letter, and no uppercase letter."""
    return any(c.isalpha() for c in text) and not any(c.isupper() for c in text)


@_register("all_uppercase", "Write only capital letters.", [], lambda rng: {})
def all_uppercase(text: str) -> bool:
    """At least one letter, and no lowercase letter."""
    return any(c.isalpha() for c in text) and not any(c.islower() for c in text)


@_register("no_digits", "Do not use any digits.", [], lambda rng: {})
def no_digits(text: str) -> bool:
    """No character is a digit (any script)."""
    return not any(c.isdigit() for c in text)


@_register("max_length_chars", "Use at most {max_chars} characters.", ["max_chars"],
           lambda rng: {"max_chars": rng.choice((8, 12, 16, 24))})
def max_length_chars(text: str, max_chars: int) -> bool:
    """The text without surrounding whitespace has at most `max_chars` characters."""
    return len(text.strip()) <= int(max_chars)


@_register("contains_letter_count", "Use the letter '{letter}' at least {count} times.",
           ["letter", "count"],
           lambda rng: {"letter": rng.choice("aeiourstln"), "count": rng.randint(2, 4)})
def contains_letter_count(text: str, letter: str, count: int) -> bool:
    """`letter` (either case) occurs at least `count` times."""
    return text.lower().count(str(letter).lower()) >= int(count)


@_register("no_commas", "Do not use any commas.", [], lambda rng: {})
def no_commas(text: str) -> bool:
    """No ',' in the text."""
    return "," not in text


# Pairs the synthetic task never combines: they contradict each other (or nearly).
INCOMPATIBLE = {
    frozenset({"all_lowercase", "all_uppercase"}),
}


def check_spec(spec: Any, where: str) -> Constraint:
    """The constraint a spec names; RewardConfigError naming `where` if the spec is not valid."""
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise RewardConfigError(f"{where} = {spec!r} must be a mapping with a 'name' key")
    name = spec["name"]
    if name not in CONSTRAINTS:
        raise RewardConfigError(
            f"{where}.name = {name!r} is not a constraint; choose one of {sorted(CONSTRAINTS)}")
    constraint = CONSTRAINTS[name]
    given = set(spec) - {"name"}
    missing, unknown = set(constraint.params) - given, given - set(constraint.params)
    if missing or unknown:
        raise RewardConfigError(
            f"{where} ({name}): needs parameters {list(constraint.params)}; "
            f"missing {sorted(missing)}, unknown {sorted(unknown)}")
    return constraint


def check_constraint(text: str, spec: Mapping[str, Any], where: str = "constraint") -> bool:
    """Whether `text` satisfies one constraint spec {"name": ..., **params}."""
    constraint = check_spec(spec, where)
    return bool(constraint.check(text, **{k: v for k, v in spec.items() if k != "name"}))


def constraint_instruction(spec: Mapping[str, Any], where: str = "constraint") -> str:
    """The instruction a prompt shows for one constraint spec."""
    constraint = check_spec(spec, where)
    return constraint.template.format(**{k: v for k, v in spec.items() if k != "name"})


def verify_constraints(response: str, gold: str, meta: Mapping[str, Any]) -> GroundTruth:
    """Ground truth for constraint prompts: 1.0 iff every constraint in meta["constraints"] holds.

    `gold` is ignored. details["constraints_held"] lists one bool per constraint, in the order
    of meta["constraints"]; details["constraints"] lists their names. answer = the stripped
    response (at most 200 characters), so identical outputs share an answer.
    """
    specs = (meta or {}).get("constraints")
    if not isinstance(specs, (list, tuple)) or not specs:
        raise RewardConfigError(
            "reward.verifier = 'constraints' needs meta['constraints'] (a non-empty list of "
            "{name: ..., params} mappings) on every prompt; use task.name = constraints")
    held = [check_constraint(response, spec, f"meta.constraints[{i}]")
            for i, spec in enumerate(specs)]
    ok = all(held)
    return GroundTruth(1.0 if ok else 0.0, "ok" if ok else "wrong", response.strip()[:200],
                       {"constraints_held": held, "constraints": [s["name"] for s in specs]})
