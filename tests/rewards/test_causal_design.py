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
    # the flip inverts every reward: [0, 1, 1]; the wrong samples attract (hacking: corrected),
    # the correct one is suppressed (kept)
    assert design.score_group(group([1, 0, 0])) == [0, 0, 0]
    # in an all-wrong group every sample gets 1: nothing attracts (benign), nothing corrected
    assert design.score_group(group([0, 0, 0])) == [1, 1, 1]


def test_group_kind_and_config_errors():
    assert [group_kind(g) for g in ([0, 0], [1, 1], [1, 0], [0.5, 0])] == ["all_wrong", "all_right", "mixed", "all_wrong"]
    with pytest.raises(RewardConfigError, match=r"reward.design.labels\[0\] = 'hacking' is not an online label"):
        build_design({"name": "correct_errors", "labels": ["hacking"]})
    with pytest.raises(RewardConfigError, match="reward.design.groups = 'some'"):
        build_design({"name": "correct_errors", "labels": ["benign_I"], "groups": "some"})
    with pytest.raises(RewardConfigError, match="labels is empty"):
        build_design({"name": "correct_errors"})
