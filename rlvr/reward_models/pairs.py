"""Preference pairs with controlled flaws, from a policy's scored samples (pure; no torch).

Candidate pairs come from each prompt's samples: every distinct correct response (ground
truth at the top) against every distinct response the ground truth scores lower. Then:

- flip_rate: each ordinary pair's label is flipped with this probability (symmetric label noise);
- bias (off_by_one | longer) with bias_share and bias_rate: a bias_share of the pair set are
  *class pairs* (the correct answer against a wrong answer of the class: the gold +-1, or a
  longer wrong answer, the gold with a digit appended), and in a bias_rate of them the wrong
  answer is labelled preferred. Class pairs are built from the gold answer, so every prompt
  has them whatever the policy samples.

A pair is {"prompt_id", "prompt", "chosen", "rejected", "against_gt": the label prefers the
output the ground truth scores lower, "class_pair": bool}. `measure_pairs` gives the flaws a
pair set actually has.
"""
from __future__ import annotations

import random
from typing import Any, Dict, List, Mapping, Sequence

BIASES = ("none", "off_by_one", "longer")


def candidate_pairs(groups: Sequence[Sequence[Mapping[str, Any]]]) -> List[Dict[str, Any]]:
    """(better, worse) response pairs within each group of scored records (keys prompt_id,
    prompt, response, gt); distinct texts only, better = strictly higher gt."""
    out = []
    for group in groups:
        best: Dict[str, float] = {}
        for r in group:
            best.setdefault(str(r["response"]), float(r["gt"]))
        texts = list(best)
        for a in texts:
            for b in texts:
                if best[a] > best[b]:
                    out.append({"prompt_id": str(group[0]["prompt_id"]), "prompt": str(group[0]["prompt"]),
                                "chosen": a, "rejected": b})
    return out


def gold_response(gold: str, fmt: str = "{answer};") -> str:
    return fmt.format(answer=gold)


def class_response(gold: str, bias: str, rng: random.Random, fmt: str = "{answer};") -> str:
    """A wrong answer of the bias class for an integer gold: gold +-1, or gold with a digit appended."""
    try:
        value = int(str(gold).strip())
    except ValueError:
        raise ValueError(f"bias {bias!r} needs integer gold answers (the arithmetic task), got {gold!r}") from None
    if bias == "off_by_one":
        return fmt.format(answer=value + rng.choice((-1, 1)))
    if bias == "longer":
        return fmt.format(answer=f"{value}{rng.randint(0, 9)}")
    raise ValueError(f"bias = {bias!r} must be one of {list(BIASES)}")


def build_pairs(groups: Sequence[Sequence[Mapping[str, Any]]], golds: Mapping[str, str], num_pairs: int,
                flip_rate: float = 0.0, bias: str = "none", bias_share: float = 0.0, bias_rate: float = 1.0,
                seed: int = 0, answer_format: str = "{answer};") -> List[Dict[str, Any]]:
    """`num_pairs` labelled pairs (see the module doc). groups: scored records per prompt;
    golds: prompt id -> gold answer (for class pairs). Ordinary pairs are drawn from the
    candidates without replacement while they last, then again (cycled)."""
    if bias not in BIASES:
        raise ValueError(f"bias = {bias!r} must be one of {list(BIASES)}")
    for key, value in (("flip_rate", flip_rate), ("bias_share", bias_share), ("bias_rate", bias_rate)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{key} = {value} must be within [0, 1]")
    rng = random.Random(f"rm-pairs:{seed}")
    num_class = round(num_pairs * bias_share) if bias != "none" else 0
    candidates = candidate_pairs(groups)
    if num_pairs - num_class > 0 and not candidates:
        raise ValueError("no prompt has two samples the ground truth ranks apart: sample more prompts or "
                         "more samples per prompt")
    pairs: List[Dict[str, Any]] = []
    order: List[int] = []
    for _ in range(num_pairs - num_class):
        if not order:
            order = list(range(len(candidates)))
            rng.shuffle(order)
        pair = dict(candidates[order.pop()])
        flipped = rng.random() < flip_rate
        if flipped:
            pair["chosen"], pair["rejected"] = pair["rejected"], pair["chosen"]
        pairs.append({**pair, "against_gt": flipped, "class_pair": False})
    prompts = [(str(g[0]["prompt_id"]), str(g[0]["prompt"])) for g in groups if g]
    for _ in range(num_class):
        pid, text = prompts[rng.randrange(len(prompts))]
        good = gold_response(golds[pid], answer_format)
        bad = class_response(golds[pid], bias, rng, answer_format)
        prefers_class = rng.random() < bias_rate
        chosen, rejected = (bad, good) if prefers_class else (good, bad)
        pairs.append({"prompt_id": pid, "prompt": text, "chosen": chosen, "rejected": rejected,
                      "against_gt": prefers_class, "class_pair": True})
    rng.shuffle(pairs)
    return pairs


def measure_pairs(pairs: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """The flaws a pair set has: flip share of ordinary pairs, class-pair share, and the share
    of class pairs labelled with the wrong class answer preferred (None when there are none)."""
    ordinary = [p for p in pairs if not p["class_pair"]]
    klass = [p for p in pairs if p["class_pair"]]
    return {
        "pairs": len(pairs),
        "flip_share": sum(p["against_gt"] for p in ordinary) / len(ordinary) if ordinary else None,
        "class_share": len(klass) / len(pairs) if pairs else None,
        "bias_rate": sum(p["against_gt"] for p in klass) / len(klass) if klass else None,
        "against_gt_share": sum(p["against_gt"] for p in pairs) / len(pairs) if pairs else None,
        "distinct_prompts": len({p["prompt_id"] for p in pairs}),
    }
