"""Score sample records: ground truth from a verifier pool, proxy from a reward design.

One function shared by training (RewardWorker) and offline re-scoring (`rlvr score`), so a
stored rollout re-scored under the same design gets exactly the proxy training saw.
"""
from __future__ import annotations

from typing import Any, Dict, Hashable, List, Mapping, Optional, Sequence

from rlvr.rewards.designs import RewardDesign
from rlvr.rewards.types import GroundTruth, ScoredSample


def record_meta(record: Mapping[str, Any]) -> Dict[str, Any]:
    """The verifier's meta for a record: record["meta"], with a top-level "constraints" merged in."""
    meta = dict(record.get("meta") or {})
    if record.get("constraints") is not None:
        meta["constraints"] = record["constraints"]
    return meta


def group_key(record: Mapping[str, Any]) -> Hashable:
    """Samples of one prompt form a group; rollouts of different steps never share one."""
    return (record.get("step"), str(record["prompt_id"]))


def score_samples(records: Sequence[Mapping[str, Any]], pool, design: RewardDesign) -> List[Dict[str, Any]]:
    """Score N records; returns N new dicts (same order).

    Input keys: prompt_id, sample_index, response, gold; optional num_tokens (default
    len(response)), meta, constraints, step, prompt (the prompt text). Output: each record
    copied, with gt (float), proxy (float), expected_proxy (E[proxy | prompt, response], float),
    systematic_proxy (the expected proxy with the design's noise channel undone: what error
    labels compare with gt), reason (str), answer (str or None) set, and gt_details (dict) when the
    verifier reported details (e.g. constraints_held). The design sees each group (same
    prompt_id, and same step when present) whole, in input order, and every group of the call
    at once (`RewardDesign.score_batch`: a learned reward scores them in one batch).
    """
    gts: List[GroundTruth] = pool.verify_many(
        [(str(r["response"]), str(r["gold"]), record_meta(r)) for r in records])
    groups: Dict[Hashable, List[int]] = {}
    for i, record in enumerate(records):
        groups.setdefault(group_key(record), []).append(i)
    channels: List[Optional[tuple]] = [None] * len(records)
    members_of = list(groups.values())
    batch = [[_scored_sample(records[i], gts[i]) for i in members] for members in members_of]
    for members, group, (values, expected, systematic) in zip(members_of, batch,
                                                              design.score_batch_channels(batch)):
        if len(values) != len(group):
            raise ValueError(f"design {design.name!r} returned {len(values)} rewards for a "
                             f"group of {len(group)} samples")
        for i, value, e, s in zip(members, values, expected, systematic):
            channels[i] = (float(value), float(e), float(s))
    out = []
    for record, gt, (proxy, expected_proxy, systematic_proxy) in zip(records, gts, channels):
        scored = dict(record)
        scored.update(gt=float(gt.score), proxy=proxy, reason=gt.reason, answer=gt.answer,
                      expected_proxy=expected_proxy, systematic_proxy=systematic_proxy)
        if gt.details:
            scored["gt_details"] = dict(gt.details)
        else:
            scored.pop("gt_details", None)
        out.append(scored)
    return out


def _scored_sample(record: Mapping[str, Any], gt: GroundTruth) -> ScoredSample:
    response = str(record["response"])
    num_tokens = record.get("num_tokens")
    return ScoredSample(
        prompt_id=str(record["prompt_id"]),
        sample_index=int(record.get("sample_index", 0)),
        response=response,
        gold=str(record["gold"]),
        num_tokens=len(response) if num_tokens is None else int(num_tokens),
        gt=gt,
        prompt=str(record.get("prompt") or ""),
    )
