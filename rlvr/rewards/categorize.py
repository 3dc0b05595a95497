"""Online categorization of reward errors: rlvr's operationalisation of the paper's categories.

arXiv 2604.25872 categorizes an error (r_P(y) != r_G(y)) by whether y attracts probability
under policy gradient: in the tabular case the logit of y rises iff r_P(y) > V_P. rlvr
estimates this per prompt group of G on-policy samples (a diagnostic heuristic, not a causal
measurement): V_P = mean proxy reward of the group, V_G = mean ground-truth reward. The gold
answer defines y*: a sample is optimal when gt >= gt_pass (1.0: full credit), whether or not
the group holds one, so a wrong sample with a positive advantage is hacking even in an
all-wrong group. Labels (the shared vocabulary, rlvr/rewards/labels.py):

- harmful_hacking: suboptimal, proxy > V_P, and proxy >= the proxy of every optimal sample
  in the group (always, when the group has none);
- harmful_stalling: suboptimal, proxy > V_P, but below some optimal sample's proxy (e.g. 0.5
  partial credit for one of two constraints, paper Section 5);
- harmful_suppression: optimal, proxy <= V_P (it never attracts probability);
- harmful_slowdown: optimal, under-rewarded (proxy < gt) but still > V_P;
- beneficial: mediocre (V_G < gt < gt_pass) and proxy <= V_P: the paper's y_med kept from
  stalling the policy (never fires with 0/1 rewards);
- benign_I: suboptimal and proxy <= V_P, gt <= V_G: it attracts under neither reward;
- benign_best: optimal, over-rewarded (proxy > gt) above V_P: it attracts either way.

Comparisons with the means use the tolerance atol (a proxy within atol of V_P does not
attract probability). rlvr.theory.categorize labels errors of the exact bandit at theta_0
with expectations under pi_0, with the same names.

"Pass" in `reward_error_metrics` means full credit: reward >= 1.0 by default, for both the
gt and the proxy. So 0.5 partial credit is a fail (an error, but not a false positive), a
keyword bonus on a correct answer (1.1) is a pass, and a backward-corrected flip reward
passes exactly when the flipped reward passed ((1 - rho0)/(1 - rho0 - rho1) >= 1, while
-rho0/(1 - rho0 - rho1) < 0).
"""
from __future__ import annotations

from typing import Dict, List

import torch

from rlvr.rewards.labels import ONLINE_LABELS, family

CATEGORIES = ("none", "harmful", "benign", "beneficial")
SUBCATEGORIES = ("none", *ONLINE_LABELS)
ATOL = 1e-6


_SUB_TO_CAT = torch.tensor([CATEGORIES.index(family(s)) for s in SUBCATEGORIES])
(_NONE, _HACKING, _STALLING, _SUPPRESSION, _SLOWDOWN, _BENEFICIAL, _BENIGN_I, _BENIGN_BEST) = (
    torch.tensor(SUBCATEGORIES.index(name)) for name in (
        "none", "harmful_hacking", "harmful_stalling", "harmful_suppression", "harmful_slowdown",
        "beneficial", "benign_I", "benign_best"))


def _as_groups(proxy: torch.Tensor, gt: torch.Tensor, ndim: int):
    proxy, gt = torch.as_tensor(proxy), torch.as_tensor(gt)
    if proxy.shape != gt.shape or proxy.dim() != ndim or proxy.numel() == 0:
        want = "[P, G]" if ndim == 2 else "[G]"
        raise ValueError(f"proxy {tuple(proxy.shape)} and gt {tuple(gt.shape)} must both be non-empty {want}")
    return proxy.double(), gt.double()


def category_codes(proxy: torch.Tensor, gt: torch.Tensor, fine: bool = False,
                   atol: float = ATOL, gt_pass: float = 1.0) -> torch.Tensor:
    """Codes [P, G] of proxy [P, G] vs gt [P, G]: indices into CATEGORIES, or into
    SUBCATEGORIES if `fine`. A sample is optimal (y*) when gt >= gt_pass."""
    proxy, gt = _as_groups(proxy, gt, 2)
    v_p = proxy.mean(dim=1, keepdim=True)
    v_g = gt.mean(dim=1, keepdim=True)

    error = (proxy - gt).abs() > atol
    attracts = proxy > v_p + atol  # logit rises under the proxy (tabular policy gradient)
    optimal = gt >= gt_pass - atol  # the gold answer defines y*, sampled or not
    # highest proxy among the group's optimal samples (-inf when none was sampled)
    best_proxy = proxy.where(optimal, -torch.inf).amax(dim=1, keepdim=True)
    under = proxy < gt
    # One decision tree, evaluated for all samples at once (the module docstring's rules).
    code = torch.where(
        attracts,
        torch.where(optimal,
                    torch.where(proxy > gt, _BENIGN_BEST, torch.where(under, _SLOWDOWN, _BENIGN_I)),
                    torch.where(proxy >= best_proxy - atol, _HACKING, _STALLING)),
        torch.where(optimal,
                    torch.where(under, _SUPPRESSION, _BENIGN_I),
                    torch.where(gt > v_g + atol, _BENEFICIAL, _BENIGN_I)))
    code = code.masked_fill_(~error, _NONE)
    return code if fine else _SUB_TO_CAT[code]


def categorize(proxy: torch.Tensor, gt: torch.Tensor, fine: bool = False,
               atol: float = ATOL) -> List[List[str]]:
    """Category names [P][G] of proxy [P, G] vs gt [P, G] (sub-labels if `fine`)."""
    names = SUBCATEGORIES if fine else CATEGORIES
    return [[names[c] for c in row] for row in category_codes(proxy, gt, fine, atol).tolist()]


def categorize_group(proxy: torch.Tensor, gt: torch.Tensor, fine: bool = False,
                     atol: float = ATOL) -> List[str]:
    """Category names [G] of one group, proxy [G] vs gt [G] (sub-labels if `fine`)."""
    proxy, gt = _as_groups(proxy, gt, 1)
    return categorize(proxy[None], gt[None], fine, atol)[0]


def reward_error_metrics(proxy: torch.Tensor, gt: torch.Tensor, proxy_pass: float = 1.0,
                         gt_pass: float = 1.0, fine: bool = False,
                         atol: float = ATOL) -> Dict[str, float]:
    """Error rates, categories and variance diagnostics of proxy [P, G] vs gt [P, G].

    Fractions are over all P*G samples unless named otherwise. A sample passes when its
    reward >= proxy_pass (proxy) or >= gt_pass (gt). false_positive_rate = P(proxy pass |
    gt fail), false_negative_rate = P(proxy fail | gt pass) (0 when nothing is conditioned
    on). Stds are population stds within a group, averaged over groups; a group is flat when
    its std <= atol. `fine` adds an errors/<sub-label> fraction per harmful and benign sub-label.
    """
    proxy, gt = _as_groups(proxy, gt, 2)
    sub = category_codes(proxy, gt, fine=True, atol=atol, gt_pass=gt_pass)
    n = float(proxy.numel())
    pp, gp = proxy >= proxy_pass - atol, gt >= gt_pass - atol
    proxy_std, gt_std = proxy.std(dim=1, correction=0), gt.std(dim=1, correction=0)
    proxy_flat, gt_flat = proxy_std <= atol, gt_std <= atol
    # Every count in one transfer: sub-label counts, the 2x2 pass table, the flat-group table.
    counts = torch.cat([torch.bincount(sub.flatten(), minlength=len(SUBCATEGORIES)),
                        torch.bincount((2 * pp + gp).flatten(), minlength=4),
                        torch.bincount(2 * proxy_flat + gt_flat, minlength=4)]).tolist()
    per_sub = dict(zip(SUBCATEGORIES, counts[:len(SUBCATEGORIES)]))
    pf_gf, pf_gp, pp_gf, pp_gp = counts[len(SUBCATEGORIES):len(SUBCATEGORIES) + 4]
    groups = float(proxy.shape[0])
    pv_gv, pv_gflat, pflat_gv, pflat_gflat = counts[len(SUBCATEGORIES) + 4:]
    proxy_std_mean, gt_std_mean = torch.stack([proxy_std.mean(), gt_std.mean()]).tolist()
    gt_fail, gt_passes = pf_gf + pp_gf, pf_gp + pp_gp
    family_count = {f: sum(c for name, c in per_sub.items() if family(name) == f) for f in CATEGORIES[1:]}

    metrics = {
        "reward/error_rate": (n - per_sub["none"]) / n,  # every error gets a label other than none
        "reward/false_positive_rate": pp_gf / gt_fail if gt_fail else 0.0,
        "reward/false_negative_rate": pf_gp / gt_passes if gt_passes else 0.0,
        "errors/harmful": family_count["harmful"] / n,
        "errors/benign": family_count["benign"] / n,
        "errors/beneficial": family_count["beneficial"] / n,
        "reward/table_pp_gp": pp_gp / n,
        "reward/table_pp_gf": pp_gf / n,
        "reward/table_pf_gp": pf_gp / n,
        "reward/table_pf_gf": pf_gf / n,
        "reward/proxy_std": proxy_std_mean,
        "reward/gt_std": gt_std_mean,
        "reward/zero_proxy_variance_groups": (pflat_gv + pflat_gflat) / groups,
        "reward/gt_flat_proxy_varied_groups": pv_gflat / groups,
    }
    if fine:
        for name in SUBCATEGORIES:
            if family(name) in ("harmful", "benign"):
                metrics[f"errors/{name}"] = per_sub[name] / n
    return metrics
