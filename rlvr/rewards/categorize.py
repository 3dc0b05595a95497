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
    above_vg = gt > v_g + atol
    # highest proxy among the group's optimal samples (-inf when none was sampled)
    best_proxy = torch.where(optimal, proxy, torch.full_like(proxy, -torch.inf)).max(dim=1, keepdim=True).values

    code = torch.full(proxy.shape, SUBCATEGORIES.index("benign_I"), dtype=torch.long)
    code[attracts & optimal & (proxy > gt)] = SUBCATEGORIES.index("benign_best")
    code[attracts & optimal & (proxy < gt)] = SUBCATEGORIES.index("harmful_slowdown")
    code[attracts & ~optimal] = SUBCATEGORIES.index("harmful_stalling")
    code[attracts & ~optimal & (proxy >= best_proxy - atol)] = SUBCATEGORIES.index("harmful_hacking")
    code[~attracts & optimal & (proxy < gt)] = SUBCATEGORIES.index("harmful_suppression")
    code[~attracts & ~optimal & above_vg] = SUBCATEGORIES.index("beneficial")
    code[~error] = SUBCATEGORIES.index("none")
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
    cat = _SUB_TO_CAT[sub]
    n = float(proxy.numel())

    pp, gp = proxy >= proxy_pass - atol, gt >= gt_pass - atol
    gt_fail, gt_passes = (~gp).sum().item(), gp.sum().item()
    proxy_std, gt_std = proxy.std(dim=1, correction=0), gt.std(dim=1, correction=0)
    proxy_flat, gt_flat = proxy_std <= atol, gt_std <= atol

    metrics = {
        "reward/error_rate": ((proxy - gt).abs() > atol).sum().item() / n,
        "reward/false_positive_rate": (pp & ~gp).sum().item() / gt_fail if gt_fail else 0.0,
        "reward/false_negative_rate": (~pp & gp).sum().item() / gt_passes if gt_passes else 0.0,
        "errors/harmful": (cat == CATEGORIES.index("harmful")).sum().item() / n,
        "errors/benign": (cat == CATEGORIES.index("benign")).sum().item() / n,
        "errors/beneficial": (cat == CATEGORIES.index("beneficial")).sum().item() / n,
        "reward/table_pp_gp": (pp & gp).sum().item() / n,
        "reward/table_pp_gf": (pp & ~gp).sum().item() / n,
        "reward/table_pf_gp": (~pp & gp).sum().item() / n,
        "reward/table_pf_gf": (~pp & ~gp).sum().item() / n,
        "reward/proxy_std": proxy_std.mean().item(),
        "reward/gt_std": gt_std.mean().item(),
        "reward/zero_proxy_variance_groups": proxy_flat.double().mean().item(),
        "reward/gt_flat_proxy_varied_groups": (gt_flat & ~proxy_flat).double().mean().item(),
    }
    if fine:
        for i, name in enumerate(SUBCATEGORIES):
            if family(name) in ("harmful", "benign"):
                metrics[f"errors/{name}"] = (sub == i).sum().item() / n
    return metrics
