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

Systematic error vs noise. Every design declares (RewardDesign, below):
- `errors`: "systematic" when its proxy is a function of (prompt, response) (its errors are
  errors of the categorization theory's kind: persistent flips, systematic_* at rate 1, tables,
  shaped rewards, a fixed reward model), or "stochastic" when it draws afresh per sample (flip
  noise, random reward, systematic_* at rate < 1);
- `expected_proxy(sample, running, noisy)`: E[r_P | prompt, response] given the running proxy
  (for a systematic design, simply its output);
- `signal_map(inner)`: the affine map a + b * r_G that its noise channel applies to every output
  (flip: rho0 + (1 - rho0 - rho1) r_G; random: p + 0 * r_G); identity for the rest.
`score_channels` gives, per group, the realized proxy, the expected proxy and the *systematic*
proxy (expected, with the map undone: (E - a) / b when b > 0), which the one labeller labels
(rlvr/rewards/labels.py): plain flip noise then has no errors of the theory's kind.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping as MappingABC
from collections.abc import Sequence as SequenceABC
from dataclasses import InitVar, dataclass
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

from rlvr.rewards.errors import RewardConfigError
from rlvr.rewards.types import ScoredSample


@dataclass(kw_only=True, eq=False)
class RewardDesign:
    """Maps one prompt's group of samples (and its running proxy) to proxy rewards.

    Per-sample designs override `transform`; group-aware designs (majority vote, compose)
    override `apply`. Subclasses validate their fields in `validate(where)`.
    """

    name: typing.ClassVar[str] = "design"
    reads_prompt: typing.ClassVar[bool] = False  # True: scored records must carry the prompt text ("prompt")
    errors: typing.ClassVar[str] = "systematic"
    """"systematic": the proxy is a function of (prompt, response); "stochastic": fresh draws per
    sample (a design whose kind depends on its fields overrides this with a property)."""
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

    # ---- systematic error vs noise (module docstring)

    def expected_proxy(self, sample: ScoredSample, running: float, noisy: bool = False) -> float:
        """E[r_P | prompt, response] of one sample given its running proxy. noisy: the running
        proxy is itself random (an earlier stochastic design in a compose) and `running` is its
        mean. A systematic design's output is its expectation; stochastic designs override this
        (exact when their transform is affine in the running proxy over its values)."""
        return float(self.transform(sample, running))

    def expected_group(self, group: Sequence[ScoredSample], running: Sequence[float],
                       noisy: bool = False) -> List[float]:
        """expected_proxy of a group [G] given its running proxy [G] (group-aware designs override; a
        systematic design that only overrides apply is its own expectation)."""
        if type(self).transform is RewardDesign.transform and type(self).expected_proxy is RewardDesign.expected_proxy:
            return [float(v) for v in self.apply(group, running)]
        return [float(self.expected_proxy(s, float(r), noisy)) for s, r in zip(group, running)]

    def signal_map(self, inner: Tuple[float, float]) -> Tuple[float, float]:
        """(a, b): the design's expected output is a + b * r_G(y) apart from its systematic errors,
        given that the running proxy's is inner = (a', b'). Identity unless the design's noise
        (flip) or an affine rescaling changes the reward's scale; (0, 1) for a design that
        replaces the running proxy with its own reward."""
        return inner

    def apply_tracked(self, group: Sequence[ScoredSample], proxy: Sequence[float], expected: Sequence[float],
                      signal: Tuple[float, float], noisy: bool
                      ) -> Tuple[List[float], List[float], Tuple[float, float], bool]:
        """(proxy [G], expected proxy [G], signal map, noisy) after this design, from the same
        before it. Compose folds this; correct_errors overrides it to label the systematic part."""
        out = self.apply(group, proxy)
        if self.errors == "systematic" and not noisy:  # deterministic all along: its own expectation
            return out, [float(v) for v in out], self.signal_map(signal), False
        return out, self.expected_group(group, expected, noisy), self.signal_map(signal), True

    def score_channels(self, group: Sequence[ScoredSample]) -> Tuple[List[float], List[float], List[float]]:
        """(proxy, expected proxy, systematic proxy) of one prompt's group [G], starting from the
        ground truth. systematic = (expected - a) / b with (a, b) = signal_map when b > 0 (the
        noise channel's rescaling undone), else the expected proxy itself."""
        if type(self).score_group is not RewardDesign.score_group:  # a design that overrides score_group only
            proxy = [float(v) for v in self.score_group(group)]
            return proxy, list(proxy), list(proxy)
        gts = [float(s.gt.score) for s in group]
        proxy, expected, (a, b), _ = self.apply_tracked(group, gts, gts, (0.0, 1.0), False)
        systematic = [(e - a) / b for e in expected] if b > 0 else list(expected)
        return proxy, expected, systematic

    def score_batch_channels(self, groups: Sequence[Sequence[ScoredSample]]) -> List[Tuple[List[float], List[float], List[float]]]:
        """score_channels of every group [B] of one scoring call. A design that scores a whole call
        at once (it overrides score_batch: a learned reward model) is deterministic, so its proxy is
        also its expected and systematic proxy."""
        if type(self).score_batch is not RewardDesign.score_batch:
            return [([float(v) for v in values],) * 3 for values in self.score_batch(groups)]
        return [self.score_channels(group) for group in groups]


DESIGNS: Dict[str, Callable[..., RewardDesign]] = {}


def reads_prompt(spec: Mapping[str, Any]) -> bool:
    """Whether the design a reward.design mapping builds reads the prompt text (decided from the
    registry, without building it: a learned reward model loads weights)."""
    cls = DESIGNS.get(spec.get("name"))
    children = [d for d in spec.get("designs") or [] if isinstance(d, MappingABC)]
    return bool(getattr(cls, "reads_prompt", False)) or any(reads_prompt(d) for d in children)


def register_design(name: str):
    """Class decorator: register a design under its recipe name."""

    def wrap(cls):
        known = DESIGNS.get(name)
        if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
            raise RewardConfigError(f"{cls.__module__}: design name {name!r} is already registered by "
                                    f"{known.__module__}.{known.__qualname__}: choose another name")
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
