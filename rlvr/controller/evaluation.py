"""Measurements beside training: held-out evaluation, the initial policy's audit under the
proxy, and the trainer-vs-engine log-prob check at the end of a run."""
from __future__ import annotations

from typing import Any, Dict, Sequence

from rlvr.config import RecipeConfig
from rlvr.controller.prompts import seeded_choice
from rlvr.controller.step import StepRunner, reward_tensors
from rlvr.tasks import Prompt

AUDIT_SEED = 5_000_011  # the audit's prompt choice and sampling: the same in every arm and seed
AUDIT_EPOCH = 1_000_000  # reward-randomness key epoch of audit samples: draws apart from training's
EVAL_SAMPLING_SEED = 7_000_003  # + step: sampled evaluation draws, independent of the recipe's seed


def evaluate(steps: StepRunner, cfg: RecipeConfig, prompts: Sequence[Prompt], step: int) -> Dict[str, float]:
    """Greedy ground-truth accuracy on the held-out split; with eval.samples_per_prompt = k,
    also the mean accuracy of k sampled answers per prompt and pass@k."""
    from rlvr.rewards.accuracy import sampled_eval_metrics

    _, generations, _, _ = steps.generate(prompts, 1, 0.0, seed=0)
    scored = steps.score(prompts, generations)
    gts = [g[0]["gt"] for g in scored]
    metrics = {"eval/gt_accuracy": sum(x >= 1.0 for x in gts) / len(gts),
               "eval/gt_reward_mean": sum(gts) / len(gts)}
    k = cfg.eval.samples_per_prompt
    if k:  # the same sampling seed at a given step in every arm and run of a study
        _, generations, _, _ = steps.generate(prompts, k, cfg.eval.temperature, seed=EVAL_SAMPLING_SEED + step)
        correct = reward_tensors(steps.score(prompts, generations))[1] >= 1.0
        metrics.update(sampled_eval_metrics(correct))
    return metrics


def audit(steps: StepRunner, cfg: RecipeConfig, train_prompts: Sequence[Prompt], num_prompts: int) -> Dict[str, Any]:
    """The initial policy's profile under the proxy (rlvr/rewards/audit.py): G samples on
    `num_prompts` training prompts chosen by AUDIT_SEED, scored by both channels."""
    import torch

    from rlvr.rewards.audit import audit_profile

    prompts = seeded_choice(train_prompts, num_prompts, AUDIT_SEED)
    G = cfg.rollout.samples_per_prompt
    _, generations, _, _ = steps.generate(prompts, G, cfg.rollout.temperature, seed=AUDIT_SEED)
    from rlvr.rewards.categorize import reward_channels

    scored = steps.score(prompts, generations, epoch=AUDIT_EPOCH)
    proxy, gt, expected, systematic = reward_channels(scored)
    logp = torch.tensor([[sum(g.logprobs) for g in group] for group in generations], dtype=torch.float64)
    return audit_profile(proxy, gt, logp, expected=expected, systematic=systematic)


def sync_check(actors, tokenizer, prompt: Prompt) -> float:
    """|log p(response)| difference between trainer and each rollout engine on a fixed sequence."""
    import ray

    prompt_ids = tokenizer(prompt.text, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(prompt.gold, add_special_tokens=False)["input_ids"]
    reference = actors.trainer.sequence_logprobs([prompt_ids], [response_ids])[0]
    scores = ray.get([w.score.remote(prompt_ids, response_ids) for w in actors.rollout])
    return max(abs(reference - sum(tokens)) for tokens in scores)
