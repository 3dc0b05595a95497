"""The reward worker: a verifier pool plus a reward design, as a plain class and a Ray actor.

    worker = RewardWorkerActor.remote("math", {"name": "flip", "fp_rate": 0.1, "seed": 0})
    scored = ray.get(worker.score.remote(records))   # records as in score_samples

The verifier processes live inside the actor's process tree; close() stops them.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple

import ray

from rlvr.plugins import import_plugins
from rlvr.rewards.designs import build_design
from rlvr.rewards.scoring import score_samples
from rlvr.rewards.verifiers import VerifierPool


def sample_records(prompts: Sequence[Tuple], generations, epoch: int = 0) -> List[List[Dict[str, Any]]]:
    """[prompt][sample] records to score for (prompt id, gold, meta[, prompt text]) and their
    Generations. A sample's reward-randomness key is (prompt id, sample_index = epoch * G + j).
    The prompt text, when given, rides along as "prompt" (a learned reward model reads it)."""
    return [[{"prompt_id": p[0], "sample_index": epoch * len(group) + j, "response": g.text, "gold": p[1],
              "num_tokens": len(g.token_ids), "meta": p[2], **({"prompt": p[3]} if len(p) > 3 else {})}
             for j, g in enumerate(group)]
            for p, group in zip(prompts, generations)]


SCORE_KEYS = ("gt", "proxy", "reason", "answer", "expected_proxy", "systematic_proxy", "gt_details")  # what score_samples adds


class RewardWorker:
    """Scores rollout records: ground truth from `verifier`, proxy from the `design` mapping.

    design: the recipe's reward.design mapping, e.g. {"name": "flip", "fp_rate": 0.1}.
    timeout_s: per-sample verifier timeout. num_procs: verifier processes.
    """

    def __init__(self, verifier: str, design: Mapping[str, Any], timeout_s: float = 5.0,
                 num_procs: int = 1, plugins: Sequence[str] = ()):
        import_plugins(plugins)  # the recipe's plug-ins register their designs and verifiers here too
        self.design = build_design(dict(design), "reward.design")
        self.pool = VerifierPool(verifier, num_procs=num_procs, timeout_s=timeout_s)

    def score(self, records: Sequence[Mapping[str, Any]], scores_only: bool = False) -> List[Dict[str, Any]]:
        """score_samples(records, pool, design): each record with gt, proxy, reason, answer.
        With `scores_only`, each record's key (prompt_id, sample_index) and what scoring added
        (SCORE_KEYS): the caller holds the records, and sending each response back doubled the
        bytes a step moves."""
        try:
            scored = score_samples(records, self.pool, self.design)
            if scores_only:
                return [{k: r[k] for k in ("prompt_id", "sample_index", *SCORE_KEYS) if k in r} for r in scored]
            return scored
        except Exception as err:
            module = type(self.design).__module__
            if module.startswith("rlvr."):
                raise
            raise RuntimeError(f"plug-in {module}: design {self.design.name!r} failed: "
                               f"{type(err).__name__}: {err}") from err

    def stats(self) -> Dict[str, int]:
        """Counts since start: samples, timeouts, worker restarts."""
        return dict(self.pool.stats)

    def close(self) -> None:
        self.pool.close()


RewardWorkerActor = ray.remote(RewardWorker)
