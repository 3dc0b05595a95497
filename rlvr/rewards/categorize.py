"""Online categorization of reward errors and the per-step reward metrics (torch in, floats out).

Every label comes from the one labeller, rlvr.rewards.labels.label_errors (module docstring there:
its rule, chosen by agreement with the exact Shapley effect in `rlvr theory --random`). Online,
each prompt's G samples form a group, each weighing 1/G (the group mean stands in for the
policy's expected reward, V_P), and the gold answer defines y*: a sample is optimal when
gt >= gt_pass (1.0: full credit), whether or not the group holds one. This is a diagnostic
heuristic, not a causal measurement.

Systematic error vs noise. A proxy of a stochastic design (flip noise, random reward) is the
design's expected proxy E[r_P | prompt, response] plus fresh noise. Labels are errors of the
theory's kind only when given the *systematic* proxy (the expected proxy with the design's noise
channel undone, which rlvr.rewards.scoring writes as `systematic_proxy`): then plain flip noise
has no labelled errors at all. The noise is measured by `noise_metrics` instead (signal scale,
noise variance, within-group signal-to-noise ratio).

"Pass" in `reward_error_metrics` means full credit: reward >= 1.0 by default, for both the
gt and the proxy. So 0.5 partial credit is a fail (an error, but not a false positive), a
keyword bonus on a correct answer (1.1) is a pass, and a backward-corrected flip reward
passes exactly when the flipped reward passed ((1 - rho0)/(1 - rho0 - rho1) >= 1, while
-rho0/(1 - rho0 - rho1) < 0). These rates describe the realized proxy, noise included.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional

import torch

from rlvr.rewards.labels import CODES, DEFAULT_RULE, FAMILIES, family, label_codes

CATEGORIES = ("none", *FAMILIES)
SUBCATEGORIES = CODES  # "none" and every label name, in the labeller's code order
ATOL = 1e-6

_SUB_TO_CAT = torch.tensor([0 if s == "none" else CATEGORIES.index(family(s)) for s in SUBCATEGORIES])


def _as_groups(proxy: torch.Tensor, gt: torch.Tensor, ndim: int):
    proxy, gt = torch.as_tensor(proxy), torch.as_tensor(gt)
    if proxy.shape != gt.shape or proxy.dim() != ndim or proxy.numel() == 0:
        want = "[P, G]" if ndim == 2 else "[G]"
        raise ValueError(f"proxy {tuple(proxy.shape)} and gt {tuple(gt.shape)} must both be non-empty {want}")
    return proxy.double(), gt.double()


def category_codes(proxy: torch.Tensor, gt: torch.Tensor, fine: bool = False,
                   atol: float = ATOL, gt_pass: float = 1.0, rule: str = DEFAULT_RULE) -> torch.Tensor:
    """Codes [P, G] of proxy [P, G] vs gt [P, G]: indices into CATEGORIES, or into
    SUBCATEGORIES if `fine`. Each group's samples weigh 1/G; a sample is optimal when gt >= gt_pass.
    Give the systematic proxy to label errors of the theory's kind (module docstring)."""
    proxy, gt = _as_groups(proxy, gt, 2)
    code = torch.from_numpy(label_codes(gt.numpy(), proxy.numpy(), None, best=gt_pass, rule=rule, atol=atol))
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


def noise_metrics(proxy: torch.Tensor, gt: torch.Tensor, expected: torch.Tensor) -> Dict[str, float]:
    """How much of the proxy is signal and how much noise, from proxy, gt and the design's expected
    proxy E[r_P | y], all [P, G] (one group per row, the policy's own samples).

    reward/signal_scale: the within-group least-squares slope of E[r_P | y] on r_G (flip noise:
      1 - rho0 - rho1); the pooled slope when no group's gt varies; NaN when no gt varies at all.
    reward/noise_var: mean of (r_P - E[r_P | y])^2, the variance the design's draws add.
    reward/signal_var: within-group population variance of E[r_P | y], averaged over groups.
    reward/snr: signal_var / noise_var (inf for a noiseless design with signal; NaN for 0 / 0).
    """
    proxy, gt = _as_groups(proxy, gt, 2)
    expected, _ = _as_groups(expected, gt, 2)
    e_c = expected - expected.mean(dim=1, keepdim=True)
    g_c = gt - gt.mean(dim=1, keepdim=True)
    num, den = (e_c * g_c).sum().item(), (g_c * g_c).sum().item()
    if den <= 0:  # no group's ground truth varies: pool the samples across groups
        e_p, g_p = expected - expected.mean(), gt - gt.mean()
        num, den = (e_p * g_p).sum().item(), (g_p * g_p).sum().item()
    noise_var = ((proxy - expected) ** 2).mean().item()
    signal_var = expected.var(dim=1, correction=0).mean().item()
    if noise_var > 0:
        snr = signal_var / noise_var
    else:
        snr = math.inf if signal_var > 0 else math.nan
    return {"reward/signal_scale": num / den if den > 0 else math.nan, "reward/noise_var": noise_var,
            "reward/signal_var": signal_var, "reward/snr": snr}


def reward_error_metrics(proxy: torch.Tensor, gt: torch.Tensor, proxy_pass: float = 1.0,
                         gt_pass: float = 1.0, fine: bool = False, atol: float = ATOL,
                         expected: Optional[torch.Tensor] = None,
                         systematic: Optional[torch.Tensor] = None) -> Dict[str, float]:
    """Error rates, categories and variance diagnostics of proxy [P, G] vs gt [P, G].

    Fractions are over all P*G samples unless named otherwise. A sample passes when its
    reward >= proxy_pass (proxy) or >= gt_pass (gt). false_positive_rate = P(proxy pass |
    gt fail), false_negative_rate = P(proxy fail | gt pass) (0 when nothing is conditioned
    on). Stds are population stds within a group, averaged over groups; a group is flat when
    its std <= atol. `fine` adds an errors/<label> fraction per label not named like a family.

    systematic [P, G] (the scored records' `systematic_proxy`): the error labels (errors/*) are
    computed on it instead of the realized proxy, and reward/systematic_error_rate is added.
    expected [P, G] (the records' `expected_proxy`): adds noise_metrics.
    """
    proxy, gt = _as_groups(proxy, gt, 2)
    labelled = proxy if systematic is None else _as_groups(systematic, gt, 2)[0]
    sub = category_codes(labelled, gt, fine=True, atol=atol, gt_pass=gt_pass)
    n = float(proxy.numel())
    pp, gp = proxy >= proxy_pass - atol, gt >= gt_pass - atol
    proxy_std, gt_std = proxy.std(dim=1, correction=0), gt.std(dim=1, correction=0)
    proxy_flat, gt_flat = proxy_std <= atol, gt_std <= atol
    # Every count in one transfer: sub-label counts, the 2x2 pass table, the flat-group table.
    counts = torch.cat([torch.bincount(sub.flatten(), minlength=len(SUBCATEGORIES)),
                        torch.bincount((2 * pp + gp).flatten(), minlength=4),
                        torch.bincount(2 * proxy_flat + gt_flat, minlength=4),
                        ((proxy - gt).abs() > atol).sum().reshape(1)]).tolist()
    per_sub = dict(zip(SUBCATEGORIES, counts[:len(SUBCATEGORIES)]))
    pf_gf, pf_gp, pp_gf, pp_gp = counts[len(SUBCATEGORIES):len(SUBCATEGORIES) + 4]
    groups = float(proxy.shape[0])
    pv_gv, pv_gflat, pflat_gv, pflat_gflat = counts[len(SUBCATEGORIES) + 4:len(SUBCATEGORIES) + 8]
    realized_errors = counts[-1]
    proxy_std_mean, gt_std_mean = torch.stack([proxy_std.mean(), gt_std.mean()]).tolist()
    gt_fail, gt_passes = pf_gf + pp_gf, pf_gp + pp_gp
    family_count = {f: sum(c for name, c in per_sub.items() if name != "none" and family(name) == f)
                    for f in CATEGORIES[1:]}

    metrics = {
        "reward/error_rate": realized_errors / n,
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
    if systematic is not None:
        metrics["reward/systematic_error_rate"] = (n - per_sub["none"]) / n
    if expected is not None:
        metrics.update(noise_metrics(proxy, gt, expected))
    if fine:
        for name in SUBCATEGORIES[1:]:
            if name not in FAMILIES:
                metrics[f"errors/{name}"] = per_sub[name] / n
    return metrics


def reward_channels(scored):
    """(proxy, gt, expected, systematic) [P, G] float64 tensors of scored groups (lists of the
    records rlvr.rewards.scoring.score_samples returns); a record without `expected_proxy` /
    `systematic_proxy` (scored before they existed) counts its proxy as both."""
    rows = [[(r["proxy"], r["gt"], r.get("expected_proxy", r["proxy"]), r.get("systematic_proxy", r["proxy"]))
             for r in group] for group in scored]
    t = torch.tensor(rows, dtype=torch.float64)
    return t[..., 0], t[..., 1], t[..., 2], t[..., 3]
