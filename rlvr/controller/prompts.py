"""The run's prompts: the task's splits with the prompt template, the chat template, and the
epoch-wise shuffled order in which the loop samples them."""
from __future__ import annotations

import random
from dataclasses import asdict, replace
from typing import Any, Dict, List, Sequence, Tuple

from rlvr.config import RecipeConfig
from rlvr.tasks import Prompt


class PromptSampler:
    """Epoch-wise shuffled prompt order; a pure function of (seed, step)."""

    def __init__(self, prompts: Sequence[Prompt], seed: int):
        self.prompts, self.seed = list(prompts), seed
        self._orders: Dict[int, List[int]] = {}  # the last two epochs' orders (overlap plans one step ahead)

    def _position(self, step: int, size: int):
        """(epoch, batch index within the epoch) of a step; a partial last batch is skipped."""
        return divmod(step - 1, max(1, len(self.prompts) // size))

    def epoch(self, step: int, size: int) -> int:
        """How many full passes over the prompts came before this step's batch."""
        return self._position(step, size)[0]

    def batch(self, step: int, size: int) -> List[Prompt]:
        epoch, index = self._position(step, size)
        return [self.prompts[i] for i in self._order(epoch)[index * size:(index + 1) * size]]

    def _order(self, epoch: int) -> List[int]:
        """Epoch `epoch`'s shuffled prompt indices, shuffled once per epoch: the loop asks for a
        batch once or twice a step, and a shuffle takes the driver 0.3 ms for 2,000 prompts and
        15 ms for 100,000."""
        order = self._orders.get(epoch)
        if order is None:
            order = list(range(len(self.prompts)))
            random.Random(f"{self.seed}:{epoch}").shuffle(order)
            self._orders = {e: o for e, o in self._orders.items() if e == epoch - 1}
            self._orders[epoch] = order
        return order


def seeded_choice(prompts: Sequence[Prompt], count: int, seed: int) -> List[Prompt]:
    """`count` prompts chosen by `seed` (all of them, shuffled, when count exceeds the list)."""
    order = list(range(len(prompts)))
    random.Random(seed).shuffle(order)
    return [prompts[i] for i in order[:count]]


def task_prompts(cfg: RecipeConfig) -> Tuple[List[Prompt], List[Prompt]]:
    """(train prompts, held-out eval prompts) of the recipe's task, with its prompt template."""
    from rlvr.tasks.registry import get_task_prompts

    task, template = asdict(cfg.task), cfg.task.prompt_template
    splits = tuple([replace(p, text=template.replace("{question}", p.text)) for p in
                    get_task_prompts(task, split, count)]
                   for split, count in (("train", cfg.task.train_size), ("eval", cfg.task.eval_size)))
    for split, prompts in zip(("train", "eval"), splits):
        seen: Dict[str, int] = {}
        for i, p in enumerate(prompts):
            if p.id in seen:  # rewards group by prompt id: two prompts must never share one
                raise ValueError(f"task {cfg.task.name}: {split} prompts {seen[p.id]} and {i} "
                                 f"share the id {p.id!r}")
            seen[p.id] = i
    return splits


def verifier_inputs(prompt: Prompt) -> Dict[str, Any]:
    """What a verifier needs besides response and gold (kept in samples so `rlvr score` can
    re-score them): the prompt's constraints, for the constraints task."""
    return {"constraints": prompt.meta["constraints"]} if "constraints" in prompt.meta else {}


def chat_prompts(tokenizer, prompts: Sequence[Prompt], model: str) -> List[Prompt]:
    """Each prompt's text wrapped as one user turn by the tokenizer's chat template, ending
    with the assistant's turn opening (task.apply_chat_template)."""
    if not getattr(tokenizer, "chat_template", None):
        from rlvr.config.load import RecipeError

        raise RecipeError(f"task.apply_chat_template = true but the tokenizer of {model} has no chat "
                          "template: set it false, or use an instruct/chat model")
    return [replace(p, text=tokenizer.apply_chat_template([{"role": "user", "content": p.text}],
                                                          tokenize=False, add_generation_prompt=True))
            for p in prompts]


def split_round_robin(items: Sequence[Any], parts: int) -> List[List[Any]]:
    """`items` dealt to `parts` lists: part k gets items k, k + parts, ..."""
    return [list(items[i::parts]) for i in range(parts)]
