"""Load and validate a `rlvr theory` config (YAML or JSON).

Flat keys, one schema: the problem (features, initial policy, rewards), the
algorithm (fields of `simulator.Algorithm`, defaults there) and the reporting
options below. Every error names the key and the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rlvr.theory import policy
from rlvr.theory.simulator import (BASELINES, GRADIENTS, KL_DIRECTIONS, KL_REFERENCES, NORMALIZE_STD, OPTIMIZERS,
                                   Algorithm)

_PROB_SUM_TOL = 1e-6
_REPRESENT_TOL = 1e-6  # max |log softmax(phi theta0) - log p| accepted for initial_probs


class TheoryConfigError(ValueError):
    """A theory config is malformed; the message names the key and the file."""


@dataclass(frozen=True)
class TheoryConfig:
    """One bandit problem plus how to train on it and what to report."""

    features: np.ndarray
    """(K, d) output features phi(y); identity when the config omits `features`. With `prompts`:
    (P, K, d), and rewards / probabilities below gain the same leading prompt axis."""
    theta0: np.ndarray
    """(d,) initial parameters, solved so that softmax(phi theta0) is the configured policy."""
    proxy_rewards: np.ndarray
    """(K,) r_P: the reward the policy is trained on."""
    gt_rewards: np.ndarray
    """(K,) r_G: the ground truth the threshold is measured on (as mean over prompts of E[r_G])."""
    threshold: float
    """E_pi[r_G] level whose first-hitting step is reported."""
    algorithm: Algorithm
    """Optimizer, estimator and step count."""
    seed: int = 0
    """Seed of the sampled variant (numpy default_rng); ablations reuse it (common random numbers)."""
    seeds: tuple[int, ...] | None = None
    """Sampled variant: seeds whose steps-to-threshold spread is reported (the first is `seed`)."""
    log_every: int | None = None
    """Trajectory log interval in steps (None: ~1000 even points plus ~100 log-spaced early steps)."""
    negligible_prob: float = 0.02
    """Outputs with initial probability below this are 'benign_II' (finite-horizon benign); 0.02 is
    the cut at which the default labelling rule best predicted the Shapley verdict (docs/labels.md)."""
    ablation_tolerance: float = 0.05
    """Relative change in steps-to-threshold within which a corrected error counts as benign."""
    name: str = "theory"
    """Run name used in summaries and plot titles (default: the config file's stem)."""

    @property
    def num_outputs(self) -> int:
        return int(self.features.shape[-2])

    @property
    def num_prompts(self) -> int:
        """1 for a single-prompt config (features (K, d)); P with `prompts`."""
        return 1 if self.features.ndim == 2 else int(self.features.shape[0])

    @property
    def initial_probs(self) -> np.ndarray:
        """(K,) pi_0 = softmax(phi theta0 / temperature)."""
        return policy.policy_probs(self.features / self.algorithm.temperature, self.theta0)


_ALGORITHM_KEYS = tuple(f.name for f in dataclasses.fields(Algorithm))
_OPTION_KEYS = ("seed", "seeds", "log_every", "negligible_prob", "ablation_tolerance", "name")
_PROMPT_KEYS = ("features", "initial_logits", "initial_probs", "proxy_rewards", "gt_rewards")
_PROBLEM_KEYS = _PROMPT_KEYS + ("prompts", "threshold")
ALLOWED_KEYS = _PROBLEM_KEYS + _ALGORITHM_KEYS + _OPTION_KEYS
REQUIRED_KEYS = ("proxy_rewards", "gt_rewards", "lr", "steps", "threshold")


class _Checker:
    """Typed access to one raw config mapping, raising errors that name key and file."""

    def __init__(self, raw: dict[str, Any], source: str):
        self.raw, self.source = raw, source

    def fail(self, key: str, message: str) -> TheoryConfigError:
        value = self.raw.get(key, "<missing>")
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        return TheoryConfigError(f"theory config {self.source}: {key} = {shown} {message}")

    def number(self, key: str, default: float | None = None, *, low: float | None = None,
               low_open: bool = False, high: float | None = None, high_open: bool = False) -> float:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(key, "must be a finite number")
        if low is not None and (value < low or (low_open and value == low)):
            raise self.fail(key, f"must be {'>' if low_open else '>='} {low}")
        if high is not None and (value > high or (high_open and value == high)):
            raise self.fail(key, f"must be {'<' if high_open else '<='} {high}")
        return float(value)

    def integer(self, key: str, default: int | None = None, *, low: int | None = None) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, "must be an integer")
        if low is not None and value < low:
            raise self.fail(key, f"must be >= {low}")
        return int(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        return value

    def choice(self, key: str, default: str, options: tuple[str, ...]) -> str:
        value = self.raw.get(key, default)
        if value not in options:
            raise self.fail(key, f"must be one of {', '.join(repr(o) for o in options)}")
        return value

    def vector(self, key: str, length: int | None) -> np.ndarray:
        value = self.raw[key]
        if not isinstance(value, (list, tuple)) or not value:
            raise self.fail(key, "must be a non-empty list of numbers")
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
            raise self.fail(key, "must be a list of numbers")
        array = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(array)):
            raise self.fail(key, "must contain only finite numbers")
        if length is not None and array.shape != (length,):
            raise self.fail(key, f"must have one entry per output: expected {length}, got {array.shape[0]}")
        return array

    def matrix(self, key: str) -> np.ndarray:
        value = self.raw[key]
        rows_ok = isinstance(value, (list, tuple)) and value and all(isinstance(r, (list, tuple)) and r for r in value)
        if not rows_ok:
            raise self.fail(key, "must be a non-empty K x d list of lists (one feature row per output)")
        if len({len(r) for r in value}) != 1:
            raise self.fail(key, f"rows must all have the same length d; got lengths {sorted({len(r) for r in value})}")
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for r in value for v in r):
            raise self.fail(key, "must contain only numbers")
        array = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(array)):
            raise self.fail(key, "must contain only finite numbers")
        return array


def _check_keys(raw: dict[str, Any], source: str) -> None:
    for key in raw:
        if key not in ALLOWED_KEYS:
            close = difflib.get_close_matches(str(key), ALLOWED_KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise TheoryConfigError(
                f"theory config {source}: unknown key {key!r}; {hint}allowed keys: {', '.join(ALLOWED_KEYS)}"
            )
    if "prompts" in raw:
        clash = [k for k in _PROMPT_KEYS if k in raw]
        if clash:
            raise TheoryConfigError(f"theory config {source}: {clash[0]!r} must sit inside each entry of 'prompts' "
                                    "when 'prompts' is given")
        raw = {**raw, "proxy_rewards": 0, "gt_rewards": 0, "initial_probs": 0}  # checked per prompt
    for key in REQUIRED_KEYS:
        if key not in raw:
            raise TheoryConfigError(f"theory config {source}: missing required key {key!r}")
    given = [k for k in ("initial_logits", "initial_probs") if k in raw]
    if len(given) != 1:
        raise TheoryConfigError(
            f"theory config {source}: give exactly one of 'initial_logits' or 'initial_probs' "
            f"(got {given or 'neither'})"
        )


def _initial_log_probs(check: _Checker, num_outputs: int) -> tuple[str, np.ndarray]:
    """Validated initial policy as (key, log-probabilities up to a constant) of shape (K,)."""
    if "initial_logits" in check.raw:
        return "initial_logits", check.vector("initial_logits", num_outputs)
    probs = check.vector("initial_probs", num_outputs)
    if np.any(probs <= 0):
        raise check.fail(
            "initial_probs",
            f"must be > 0 everywhere (output {int(np.argmin(probs))} is {probs.min()}): a log-linear policy "
            "never assigns exactly 0; use a tiny value such as 1e-12",
        )
    if abs(probs.sum() - 1.0) > _PROB_SUM_TOL:
        raise check.fail("initial_probs", f"must sum to 1 (sums to {probs.sum():.9g})")
    return "initial_probs", np.log(probs)


_UNREPRESENTABLE = ("cannot be represented by the given features (max log-probability error {error:.3g}): "
                    "softmax(phi theta) only reaches distributions whose log-probabilities lie in "
                    "span(features) + constant; change 'features' or the initial policy")


def _problem(check: _Checker) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, np.ndarray]:
    """One prompt's features (K, d), r_P (K,), r_G (K,), the initial-policy key and its log-probs (K,)."""
    features = check.matrix("features") if "features" in check.raw else None
    num_outputs = features.shape[0] if features is not None else len(check.vector("proxy_rewards", None))
    proxy = check.vector("proxy_rewards", num_outputs)
    gt = check.vector("gt_rewards", num_outputs)
    if features is None:
        features = np.eye(num_outputs)
    init_key, target = _initial_log_probs(check, num_outputs)
    return features, proxy, gt, init_key, target


def _prompts(check: _Checker) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`prompts`: features (P, K, d), r_P and r_G (P, K), and one theta0 (d,) shared by all prompts,
    solved jointly (one free constant per prompt) so that each prompt starts at its own policy."""
    entries = check.raw["prompts"]
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise check.fail("prompts", "must be a non-empty list of mappings (features, initial_probs or "
                         "initial_logits, proxy_rewards, gt_rewards)")
    problems = []
    for p, entry in enumerate(entries):
        source = f"{check.source} prompts[{p}]"
        for key in entry:
            if key not in _PROMPT_KEYS:
                raise TheoryConfigError(f"theory config {source}: unknown key {key!r}; a prompt takes "
                                        f"{', '.join(_PROMPT_KEYS)}")
        for key in ("proxy_rewards", "gt_rewards"):
            if key not in entry:
                raise TheoryConfigError(f"theory config {source}: missing required key {key!r}")
        if sum(k in entry for k in ("initial_logits", "initial_probs")) != 1:
            raise TheoryConfigError(f"theory config {source}: give exactly one of 'initial_logits' or "
                                    "'initial_probs'")
        problems.append(_problem(_Checker(entry, source)))
    shapes = {f.shape for f, *_ in problems}
    if len(shapes) != 1:
        raise check.fail("prompts", f"every prompt needs the same number of outputs and features (K x d); "
                         f"got {sorted(shapes)}")
    features = np.stack([f for f, *_ in problems])
    num_prompts, k, d = features.shape
    # Phi_p theta + c_p = log pi_0,p for every prompt p: a least-squares problem in (theta, c).
    system = np.zeros((num_prompts * k, d + num_prompts))
    for p in range(num_prompts):
        system[p * k:(p + 1) * k, :d] = features[p]
        system[p * k:(p + 1) * k, d + p] = 1.0
    targets = np.concatenate([t for *_, t in problems])
    theta0 = np.linalg.lstsq(system, targets, rcond=None)[0][:d]
    error = max(float(np.abs(policy.log_softmax(features[p] @ theta0) - policy.log_softmax(problems[p][4])).max())
                for p in range(num_prompts))
    if error > _REPRESENT_TOL:
        raise check.fail("prompts", "initial policies " + _UNREPRESENTABLE.format(error=error)
                         + " (theta is shared by every prompt)")
    return features, np.stack([x[1] for x in problems]), np.stack([x[2] for x in problems]), theta0


def _normalize_std(check: _Checker) -> str:
    """'none' | 'detached' | 'official'; the old booleans mean false -> 'none', true -> 'detached'."""
    value = check.raw.get("normalize_std", Algorithm.normalize_std)
    if isinstance(value, bool):
        return "detached" if value else "none"
    return check.choice("normalize_std", Algorithm.normalize_std, NORMALIZE_STD)


def _seeds(check: _Checker, algorithm: Algorithm) -> tuple[int, ...] | None:
    """Validated `seeds` list (None when absent); only meaningful for gradient: sampled."""
    value = check.raw.get("seeds")
    if value is None:
        return None
    if (not isinstance(value, (list, tuple)) or not value
            or any(isinstance(v, bool) or not isinstance(v, int) for v in value)):
        raise check.fail("seeds", "must be a non-empty list of integers")
    if len(set(value)) != len(value):
        raise check.fail("seeds", "must not repeat a seed")
    if algorithm.gradient != "sampled":
        raise check.fail("seeds", "needs gradient: sampled (the exact gradient is deterministic)")
    if "seed" in check.raw and check.raw["seed"] != value[0]:
        raise check.fail("seed", "conflicts with 'seeds': give only 'seeds' (its first entry is the main run's seed)")
    return tuple(int(v) for v in value)


def config_from_dict(raw: Any, source: str = "<dict>", default_name: str = "theory") -> TheoryConfig:
    """Validate a raw mapping (parsed YAML/JSON) into a TheoryConfig; `source` names the file in errors."""
    if not isinstance(raw, dict):
        raise TheoryConfigError(
            f"theory config {source}: top level must be a mapping of keys, got {type(raw).__name__}"
        )
    _check_keys(raw, source)
    check = _Checker(raw, source)
    if "prompts" in raw:
        features, proxy, gt, theta0 = _prompts(check)
    else:
        features, proxy, gt, init_key, target = _problem(check)
        theta0, error = policy.theta_for_log_probs(features, target)
        if error > _REPRESENT_TOL:
            raise check.fail(init_key, _UNREPRESENTABLE.format(error=error))
    # softmax(Phi theta / tau): tau * theta0 gives the same initial policy at any temperature.
    theta0 = theta0 * check.number("temperature", Algorithm.temperature, low=0, low_open=True)

    algorithm = Algorithm(
        lr=check.number("lr", low=0, low_open=True),
        steps=check.integer("steps", low=0),
        gradient=check.choice("gradient", Algorithm.gradient, GRADIENTS),
        samples_per_step=check.integer("samples_per_step", Algorithm.samples_per_step, low=1),
        normalize_std=_normalize_std(check),
        kl_coef=check.number("kl_coef", Algorithm.kl_coef, low=0),
        kl_reference=check.choice("kl_reference", Algorithm.kl_reference, KL_REFERENCES),
        kl_direction=check.choice("kl_direction", Algorithm.kl_direction, KL_DIRECTIONS),
        temperature=check.number("temperature", Algorithm.temperature, low=0, low_open=True),
        clip_eps=None if raw.get("clip_eps") is None else check.number("clip_eps", low=0, low_open=True),
        inner_epochs=check.integer("inner_epochs", Algorithm.inner_epochs, low=1),
        optimizer=check.choice("optimizer", Algorithm.optimizer, OPTIMIZERS),
        baseline=check.choice("baseline", Algorithm.baseline, BASELINES),
    )
    if algorithm.gradient == "sampled" and algorithm.normalize_std == "detached" and algorithm.samples_per_step < 2:
        raise check.fail(
            "normalize_std",
            "needs samples_per_step >= 2 with gradient: sampled (a sample std needs two samples); "
            "or use 'official' (the std under pi)",
        )
    if algorithm.normalize_std == "official" and (
            algorithm.inner_epochs != 1 or algorithm.clip_eps is not None or algorithm.baseline != "none"):
        raise check.fail("normalize_std", "'official' is the paper code's plain update: it needs inner_epochs 1, "
                         "no clip_eps and baseline 'none' (use 'detached' for GRPO-style runs)")
    seeds = _seeds(check, algorithm)
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise check.fail("name", "must be a non-empty string")
    return TheoryConfig(
        features=features,
        theta0=theta0,
        proxy_rewards=proxy,
        gt_rewards=gt,
        threshold=check.number("threshold"),
        algorithm=algorithm,
        seed=seeds[0] if seeds else check.integer("seed", TheoryConfig.seed),
        seeds=seeds,
        log_every=None if raw.get("log_every") is None else check.integer("log_every", low=1),
        negligible_prob=check.number("negligible_prob", TheoryConfig.negligible_prob, low=0, high=1),
        ablation_tolerance=check.number("ablation_tolerance", TheoryConfig.ablation_tolerance, low=0),
        name=name,
    )


def load_config(path: str | Path) -> TheoryConfig:
    """Read a .json, .yaml or .yml theory config and validate it."""
    path = Path(path)
    if not path.is_file():
        raise TheoryConfigError(f"theory config {path}: file not found")
    suffix = path.suffix.lower()
    text = path.read_text()
    try:
        if suffix == ".json":
            raw = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            raw = yaml.safe_load(text)
        else:
            raise TheoryConfigError(f"theory config {path}: unsupported extension {suffix!r}; use .json, .yaml or .yml")
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise TheoryConfigError(f"theory config {path}: cannot parse: {exc}") from exc
    return config_from_dict(raw, source=str(path), default_name=path.stem)


def config_to_dict(config: TheoryConfig) -> dict[str, Any]:
    """The resolved config (defaults filled in, initial policy as probabilities) as plain JSON data."""
    problem = {
        "features": config.features.tolist(),
        "initial_probs": config.initial_probs.tolist(),
        "proxy_rewards": config.proxy_rewards.tolist(),
        "gt_rewards": config.gt_rewards.tolist(),
    }
    if config.num_prompts > 1 or config.features.ndim == 3:
        problem = {"prompts": [{key: value[p] for key, value in problem.items()} for p in range(config.num_prompts)]}
    return {
        "name": config.name,
        **problem,
        "threshold": config.threshold,
        **dataclasses.asdict(config.algorithm),
        "seed": config.seed,
        **({"seeds": list(config.seeds)} if config.seeds else {}),
        "log_every": config.log_every,
        "negligible_prob": config.negligible_prob,
        "ablation_tolerance": config.ablation_tolerance,
    }
