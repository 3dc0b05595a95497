"""Reward randomness pinned: seeded_uniform's values at fixed keys, and per-sample flip draws."""
import pytest

from rlvr.rewards.designs import build_design
from rlvr.rewards.seeded import seeded_uniform
from rlvr.rewards.types import GroundTruth, ScoredSample


@pytest.mark.parametrize("args, value", [
    ((0, "p0", 0), 0.8797311740032013),
    ((7, "q", 3), 0.6701430482107109),
    ((1, "train-5", 12, "answer=46"), 0.5009770014070164),
    ((17, "p-b", 0), 0.4292669555367535),
    ((17, "p-b", 1), 0.8891047733911994),
    ((17, "p-b", 4), 0.02357577722629881),  # sample 0 of epoch 1 when G = 4
])
def test_seeded_uniform_values_are_pinned(args, value):
    # Changing these breaks comparability with every stored run and study: a new key scheme
    # or hash needs a new salt, not an edit here.
    assert seeded_uniform(*args) == value


def wrong(prompt_id, index):
    return ScoredSample(prompt_id, index, "12;", "46", 3, GroundTruth(0.0, "wrong", "12"))


def test_flip_draws_differ_across_the_samples_of_one_group():
    design = build_design({"name": "flip", "fp_rate": 0.5, "seed": 17})
    # u = 0.429, 0.889, 0.046, 0.778 (above) -> flipped, kept, flipped, kept
    assert design.score_group([wrong("p-b", j) for j in range(4)]) == [1.0, 0.0, 1.0, 0.0]
    # the next epoch's samples of the same prompt (indices 4..7): u = 0.024, 0.498, 0.679, 0.471
    assert design.score_group([wrong("p-b", j) for j in range(4, 8)]) == [1.0, 1.0, 0.0, 1.0]
    # the seed and the prompt id enter the key too
    other_seed = build_design({"name": "flip", "fp_rate": 0.5, "seed": 18})
    draws = {(s, p): tuple(d.score_group([wrong(p, j) for j in range(16)]))
             for s, d in ((17, design), (18, other_seed)) for p in ("p-a", "p-b")}
    assert len(set(draws.values())) == 4
