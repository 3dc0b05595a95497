"""Exact log-linear policy-gradient simulator (`rlvr theory`).

Checks a reward design on a small exactly-solvable bandit before spending GPU
hours, and grounds rlvr's error categorization: it trains softmax(<phi(y), theta>)
on a proxy reward r_P, reports when E[r_G] reaches a threshold, categorizes each
reward error at the initial policy (arXiv 2604.25872, Section 3) and checks each
category causally by correcting that error alone.

Modules: policy (closed-form math), simulator (batched training loop), config
(load + validate), categorize, ablation, runner (configs -> results), paper
(Section 3.3 set), random_families (`--random`), sweep (`--sweep`: the
fitted scaling exponents), plot, command (`main(argv)`).
"""

from rlvr.theory.categorize import CATEGORIES, ErrorCategory, categorize_errors, erroneous_outputs
from rlvr.theory.config import TheoryConfig, TheoryConfigError, config_from_dict, load_config
from rlvr.theory.runner import run_configs
from rlvr.theory.simulator import Algorithm, Trajectories, simulate

__all__ = [
    "CATEGORIES",
    "Algorithm",
    "ErrorCategory",
    "TheoryConfig",
    "TheoryConfigError",
    "Trajectories",
    "categorize_errors",
    "config_from_dict",
    "erroneous_outputs",
    "load_config",
    "run_configs",
    "simulate",
]
