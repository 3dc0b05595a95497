"""Proxy reward designs: (group of scored samples) -> proxy rewards. Registry + builder.

A design is declared in the recipe under `reward.design` as `{name: <design>, <param>: ...}`
and built by `build_design`. Every design is a keyword-only dataclass whose fields are its
recipe parameters (one comment each); unknown keys, wrong types and out-of-range values
raise `RewardConfigError` naming the full key path, e.g.
`reward.design.designs[1].fp_rate = 1.5 must be within [0, 1]`.

The running proxy. A design maps a group and the *running proxy* of that group to new proxy
rewards (`RewardDesign.apply`). Used alone, the running proxy is the ground-truth score, so
`score_group(group) == apply(group, [s.gt.score for s in group])`. Inside `compose`, each
design receives the previous design's output: `compose [d1, d2, d3]` = d3(d2(d1(gt))).
Designs either *transform* the running proxy (flip, backward_correction, affine,
length_bias, keyword_bonus, systematic_*, table) or *replace* it with a reward computed
from the sample alone (ground_truth, partial_credit, format_only, random, incorrect_only,
majority_vote); each design's docstring says which.

Randomness is a pure function of (design seed, prompt id, sample index) through
`seeded_uniform`, so every arm of a study, every process and a resumed run see the same
proxy rewards.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping as MappingABC
from collections.abc import Sequence as SequenceABC
from dataclasses import InitVar, dataclass
from typing import Any, Callable, Dict, List, Mapping, Sequence

from rlvr.rewards.errors import RewardConfigError
from rlvr.rewards.types import ScoredSample


@dataclass(kw_only=True, eq=False)
class RewardDesign:
    """Maps one prompt's group of samples (and its running proxy) to proxy rewards.

    Per-sample designs override `transform`; group-aware designs (majority vote, compose)
    override `apply`. Subclasses validate their fields in `validate(where)`.
    """

    name: typing.ClassVar[str] = "design"
    where: InitVar[str] = "reward.design"  # recipe key path, used in error messages

    def __post_init__(self, where: str) -> None:
        _check_field_types(self, where)
        self.validate(where)

    def validate(self, where: str) -> None:
        """Check and normalise fields; raise RewardConfigError naming `where.<field>`."""

    def transform(self, sample: ScoredSample, proxy: float) -> float:
        """New proxy reward of one sample given its running proxy."""
        raise NotImplementedError(f"design {self.name!r} must override transform or apply")

    def apply(self, group: Sequence[ScoredSample], proxy: Sequence[float]) -> List[float]:
        """Proxy rewards of a group [G] given its running proxy [G] (same order)."""
        if len(group) != len(proxy):
            raise ValueError(f"{len(group)} samples but {len(proxy)} running proxy values")
        return [float(self.transform(s, float(p))) for s, p in zip(group, proxy)]

    def score_group(self, group: Sequence[ScoredSample]) -> List[float]:
        """Proxy rewards of one prompt's group [G], starting from the ground truth."""
        return self.apply(group, [float(s.gt.score) for s in group])

    def score_batch(self, groups: Sequence[Sequence[ScoredSample]]) -> List[List[float]]:
        """Proxy rewards of every group [B][G] of one scoring call. Per-group designs need not
        override it; a design that scores the whole call at once (a learned reward model) does."""
        return [self.score_group(group) for group in groups]

    def score(self, sample: ScoredSample) -> float:
        """Proxy reward of one sample scored as a group of one."""
        return self.score_group([sample])[0]


DESIGNS: Dict[str, Callable[..., RewardDesign]] = {}


def register_design(name: str):
    """Class decorator: register a design under its recipe name."""

    def wrap(cls):
        cls.name = name
        DESIGNS[name] = cls
        return cls

    return wrap


def design_params(cls) -> List[str]:
    """The recipe parameters of a design class (its dataclass fields)."""
    return [f.name for f in dataclasses.fields(cls)]


def build_design(spec: Mapping[str, Any], where: str = "reward.design") -> RewardDesign:
    """Build a design from its recipe mapping {name: ..., params...}; errors name the key."""
    if not isinstance(spec, MappingABC):
        raise RewardConfigError(
            f"{where} = {spec!r} must be a mapping with a 'name' (one of {sorted(DESIGNS)})")
    spec = dict(spec)
    if "name" not in spec:
        raise RewardConfigError(f"{where}.name is missing; choose one of {sorted(DESIGNS)}")
    name = spec.pop("name")
    if not isinstance(name, str) or name not in DESIGNS:
        raise RewardConfigError(
            f"{where}.name = {name!r} is not a reward design; choose one of {sorted(DESIGNS)}"
        )
    cls = DESIGNS[name]
    params = design_params(cls)
    for key in spec:
        if key not in params:
            raise RewardConfigError(
                f"{where}.{key} is not a parameter of design {name!r}; its parameters are {params}")
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in spec:
            raise RewardConfigError(f"{where}.{f.name} is missing (design {name!r} requires it)")
    return cls(**spec, where=where)


# ---------------------------------------------------------------- parameter checks

def check_rate(value: Any, key: str) -> float:
    """A probability from a recipe, or a RewardConfigError naming the key."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RewardConfigError(f"{key} = {value!r} must be a number within [0, 1]")
    if not 0.0 <= float(value) <= 1.0:
        raise RewardConfigError(f"{key} = {value} must be within [0, 1]")
    return float(value)


def check_regex(value: str, key: str) -> "re.Pattern[str]":
    """A compiled regular expression, or a RewardConfigError naming the key."""
    try:
        return re.compile(value)
    except re.error as err:
        raise RewardConfigError(f"{key} = {value!r} is not a valid regular expression: {err}") from None


_TYPE_WORDS = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """`value` converted to the annotated type `tp`, or a RewardConfigError naming `key`."""
    if tp is Any:
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key)
            except RewardConfigError as err:
                errors.append(str(err).split(" must be ", 1)[-1])
        raise RewardConfigError(f"{key} = {value!r} must be " + " or ".join(errors))
    if origin in (list, List):
        if isinstance(value, (str, bytes)) or not isinstance(value, SequenceABC):
            raise RewardConfigError(f"{key} = {value!r} must be a list")
        return [_coerce(v, args[0] if args else Any, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, MappingABC):
            raise RewardConfigError(f"{key} = {value!r} must be a mapping")
        kt, vt = args if args else (Any, Any)
        return {_coerce(k, kt, key): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RewardConfigError(f"{key} = {value!r} must be a number")
        return value  # an int stays as written, so range errors quote the recipe
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RewardConfigError(f"{key} = {value!r} must be an integer")
        return int(value)
    if tp in (bool, str):
        if not isinstance(value, tp):
            raise RewardConfigError(f"{key} = {value!r} must be {_TYPE_WORDS[tp]}")
        return value
    return value


def _check_field_types(design: RewardDesign, where: str) -> None:
    hints = typing.get_type_hints(type(design))
    for f in dataclasses.fields(design):
        value = getattr(design, f.name)
        setattr(design, f.name, _coerce(value, hints[f.name], f"{where}.{f.name}"))


# Importing the modules registers their designs.
from rlvr.rewards.designs import basic, causal, shaped, spurious, systematic, transforms  # noqa: E402,F401
from rlvr.rewards.designs import reward_model  # noqa: E402,F401
