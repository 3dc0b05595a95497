"""A recipe's initial policy and that policy's scored samples, in-process (no Ray): what
rm-train builds pairs from and what rm-eval measures a reward model on."""
from __future__ import annotations

import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from rlvr.config.schema import RecipeConfig
from rlvr.controller.prompts import task_prompts
from rlvr.tasks import Prompt

CHUNK_PROMPTS = 64  # prompts per generate call (bounds memory on a long prompt list)


def log(message: str) -> None:
    print(f"[rlvr rm] {message}", file=sys.stderr, flush=True)


def policy_folder(cfg: RecipeConfig, policy: str = "initial") -> Tuple[str, Dict]:
    """(model folder, info): the recipe's initial policy (built or cached exactly as `rlvr train`
    builds it, under output_dir/_models) or, for any other value, that model folder / hub id."""
    if policy != "initial":
        from rlvr.reward_models.model import resolve_folder

        return resolve_folder(policy), {"source": policy}
    from rlvr.models.prepare import prepare_policy
    from rlvr.rewards.verifiers import get_verifier

    train, held_out = task_prompts(cfg)
    return prepare_policy(cfg, train, held_out, get_verifier(cfg.reward.verifier), log)


def scored_samples(cfg: RecipeConfig, model_dir: str, prompts: Sequence[Prompt], samples_per_prompt: int,
                   design: Optional[Mapping[str, Any]] = None, seed: int = 0, device: str = "cpu"
                   ) -> List[List[Dict[str, Any]]]:
    """[prompt][sample] records sampled from the policy in `model_dir` (HF generate at
    rollout.temperature, rollout.max_new_tokens), scored by the recipe's verifier and `design`
    (default ground_truth): keys prompt_id, prompt, response, gold, gt, proxy, seq_logprob."""
    import torch

    from rlvr.rewards.worker import RewardWorker, sample_records
    from rlvr.rollout.hf_engine import HFEngine

    if cfg.task.apply_chat_template:
        from rlvr.controller.loop import chat_prompts
        from rlvr.models.tokenizer import load_tokenizer

        prompts = chat_prompts(load_tokenizer(model_dir), prompts, model_dir)
    torch.set_num_threads(1)
    engine = HFEngine(model_dir, seed=seed, dtype=cfg.model.dtype, device=device)
    worker = RewardWorker(cfg.reward.verifier, dict(design or {"name": "ground_truth"}),
                          timeout_s=cfg.reward.timeout_s)
    out: List[List[Dict[str, Any]]] = []
    try:
        for k in range(0, len(prompts), CHUNK_PROMPTS):
            chunk = list(prompts[k:k + CHUNK_PROMPTS])
            ids = [engine.tokenizer(p.text, add_special_tokens=False)["input_ids"] for p in chunk]
            generations = engine.generate(ids, samples_per_prompt, cfg.rollout.max_new_tokens,
                                          temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                                          seed=seed + k, stop_token_ids=[engine.tokenizer.eos_token_id])
            records = sample_records([(p.id, p.gold, p.meta, p.text) for p in chunk], generations)
            flat = worker.score([r for group in records for r in group])
            for i, group in enumerate(generations):
                rows = flat[i * samples_per_prompt:(i + 1) * samples_per_prompt]
                for row, g in zip(rows, group):
                    row["seq_logprob"] = float(sum(g.logprobs))
                out.append(rows)
    finally:
        worker.close()
        engine.shutdown()
    return out
