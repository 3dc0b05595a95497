"""The audit profile on a hand-made fixture with known rates and pairs."""
import math

import pytest
import torch

from rlvr.rewards.audit import audit_profile, format_audit


def fixture():
    # prompt 0: two right, two wrong; the proxy gives one wrong answer full credit (a false positive)
    # prompt 1: all wrong, proxy 0 everywhere;  prompt 2: all right, proxy drops one (a false negative)
    gt = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    proxy = torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 1.0, 1.0]])
    logp = torch.log(torch.tensor([[0.4, 0.1, 0.2, 0.3], [0.25] * 4, [0.25] * 4]))
    return proxy, gt, logp


def test_audit_profile_by_hand():
    p = audit_profile(*fixture())
    assert p["gt/accuracy"] == pytest.approx(6 / 12) and p["proxy/reward_mean"] == pytest.approx(6 / 12)
    assert p["audit/success_histogram"] == [1, 0, 1, 0, 1]
    assert p["audit/prompts_never_solved"] == pytest.approx(1 / 3)
    assert p["reward/false_positive_rate"] == pytest.approx(1 / 6)  # 1 of 6 wrong samples passes
    assert p["reward/false_negative_rate"] == pytest.approx(1 / 6)  # 1 of 6 right samples fails
    assert p["reward/table_pp_gf"] == pytest.approx(1 / 12) and p["reward/table_pf_gp"] == pytest.approx(1 / 12)
    assert p["reward/zero_proxy_variance_groups"] == pytest.approx(1 / 3)  # prompt 1
    # Pairs only in prompt 0 (gt varies): (0,2), (0,3), (1,2), (1,3); the proxy ties (0,2) and (1,2).
    assert p["audit/ranking_pairs"] == 4
    assert p["audit/acc"] == pytest.approx(0.5)
    # weights pi(y+) pi(y-): 0.08, 0.12, 0.02, 0.03 (sum 0.25); correct pairs (0,3), (1,3): 0.15 / 0.25
    assert p["audit/acc_w"] == pytest.approx(0.6)
    # mean proxy of prompt 0 is 0.75; y- = 2 has proxy 1 >= 0.75: not forgiven, so HAcc = Acc
    assert p["audit/hacc"] == pytest.approx(0.5) and p["audit/hacc_w"] == pytest.approx(0.6)
    assert sum(p["audit/error_counts"].values()) == 2  # two errors in all
    text = format_audit(p)
    assert "false-positive rate" in text and "0/4:1" in text and "Acc-W" in text


def test_no_pairs_gives_no_ranking_metrics():
    gt = torch.ones(2, 3)
    p = audit_profile(gt.clone(), gt, torch.zeros(2, 3))
    assert p["audit/ranking_pairs"] == 0 and p["audit/acc"] is None
    assert "Acc  " in format_audit(p) or "-" in format_audit(p)
    with pytest.raises(ValueError, match="one shape"):
        audit_profile(gt, gt[:1], gt)
