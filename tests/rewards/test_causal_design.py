"""correct_errors: one error class corrected online, on hand-made groups."""
import pytest

from rlvr.rewards.designs import build_design
from rlvr.rewards.designs.causal import group_kind
from rlvr.rewards.errors import RewardConfigError
from rlvr.rewards.types import GroundTruth, ScoredSample


def group(gts):
    return [ScoredSample("p0", j, "x", "1", 1, GroundTruth(g, "ok" if g >= 1 else "wrong")) for j, g in enumerate(gts)]


def test_corrects_only_the_named_label_in_the_named_groups():
    hacking_everywhere = build_design({"name": "correct_errors", "labels": ["harmful_hacking"]})
    all_wrong_only = build_design({"name": "correct_errors", "labels": ["harmful_hacking"], "groups": "all_wrong"})
    # all-wrong group, a false positive on sample 0 (proxy 1 > V_P 0.25): hacking
    assert hacking_everywhere.apply(group([0, 0, 0, 0]), [1, 0, 0, 0]) == [0, 0, 0, 0]
    assert all_wrong_only.apply(group([0, 0, 0, 0]), [1, 0, 0, 0]) == [0, 0, 0, 0]
    # mixed group: sample 1 is hacking (proxy 1 = the optimal sample 0's), sample 2 (correct,
    # proxy 0 <= V_P 0.5) is suppression
    mixed_gt, mixed_proxy = [1, 0, 1, 0], [1, 1, 0, 0]
    assert hacking_everywhere.apply(group(mixed_gt), mixed_proxy) == [1, 0, 0, 0]  # suppression kept
    assert all_wrong_only.apply(group(mixed_gt), mixed_proxy) == mixed_proxy  # not an all-wrong group
    suppression = build_design({"name": "correct_errors", "labels": ["harmful_suppression"]})
    assert suppression.apply(group(mixed_gt), mixed_proxy) == [1, 1, 1, 0]


def test_inside_compose_after_a_flip():
    design = build_design({"name": "compose", "designs": [
        {"name": "flip", "fp_rate": 1.0, "fn_rate": 1.0}, {"name": "correct_errors", "labels": ["harmful_hacking"]}]})
    # the flip inverts every reward (1 - rho0 - rho1 = -1: no scale to undo, the inversion is
    # systematic): [0, 1, 1]; the wrong samples are hacking (corrected), the correct one is
    # suppressed (kept)
    assert design.score_group(group([1, 0, 0])) == [0, 0, 0]
    # in an all-wrong group every sample gets 1: over-rewarded wrong answers, hacking: corrected
    assert design.score_group(group([0, 0, 0])) == [0, 0, 0]


def test_flip_noise_has_nothing_to_correct():
    # fp 0.4 drawn per sample: E[r_P | y] = 0.4 + 0.6 gt, no error of the theory's kind; the arm is
    # the flip itself. A persistent flip is systematic: its false positives are corrected.
    for persistent, corrected in ((False, False), (True, True)):
        flip = {"name": "flip", "fp_rate": 0.4, "seed": 3, "persistent": persistent}
        arm = build_design({"name": "compose", "designs": [flip, {"name": "correct_errors",
                                                                  "labels": ["harmful_hacking", "harmful_stalling"]}]})
        alone = build_design(flip)
        changed = 0
        for p in range(40):
            g = [ScoredSample(f"p{p}", j, "x", "1", 1, GroundTruth(0.0, "wrong", answer=str(j % 2))) for j in range(4)]
            noisy, fixed = alone.score_group(g), arm.score_group(g)
            changed += noisy != fixed
            if corrected:
                assert fixed == [0.0] * 4
        assert (changed > 0) == corrected


def test_matched_random_corrects_as_many_errors_at_random():
    hacking = build_design({"name": "correct_errors", "labels": ["harmful_hacking"]})
    matched = build_design({"name": "correct_errors", "labels": ["harmful_hacking"], "matched_random": True, "seed": 1})
    # sample 0 (correct, proxy 0) is suppression; 1 and 2 (wrong, proxy 1) are hacking
    gts, proxy = [1, 0, 0, 1, 0, 0], [0, 1, 1, 1, 0, 0]
    errors = {0, 1, 2}
    by_class = hacking.apply(group(gts), proxy)
    assert by_class == [0, 0, 0, 1, 0, 0]
    counts, chosen = set(), set()
    for seed in range(30):
        arm = build_design({"name": "correct_errors", "labels": ["harmful_hacking"], "matched_random": True,
                            "seed": seed})
        out = arm.apply(group(gts), proxy)
        fixed = {j for j, (a, b) in enumerate(zip(out, proxy)) if a != b}
        assert fixed <= errors
        counts.add(len(fixed))
        chosen |= fixed
        assert arm.apply(group(gts), proxy) == out  # seeded: the same draw again
    assert counts == {2} and chosen == errors  # always two corrections, spread over all three errors
    # nothing labelled in the class: nothing corrected
    assert matched.apply(group([1, 0, 0, 0]), [0, 0, 0, 0]) == [0, 0, 0, 0]


def test_group_kind_and_config_errors():
    assert [group_kind(g) for g in ([0, 0], [1, 1], [1, 0], [0.5, 0])] == ["all_wrong", "all_right", "mixed", "all_wrong"]
    with pytest.raises(RewardConfigError, match=r"reward.design.labels\[0\] = 'hacking' is not an online label"):
        build_design({"name": "correct_errors", "labels": ["hacking"]})
    with pytest.raises(RewardConfigError, match="reward.design.groups = 'some'"):
        build_design({"name": "correct_errors", "labels": ["harmful_stalling"], "groups": "some"})
    with pytest.raises(RewardConfigError, match="renamed 'beneficial_best'"):
        build_design({"name": "correct_errors", "labels": ["benign_best"]})
    with pytest.raises(RewardConfigError, match="labels is empty"):
        build_design({"name": "correct_errors"})
