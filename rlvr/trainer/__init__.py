"""Policy training: the padded TrainBatch, PolicyTrainer ranks (DeepSpeed ZeRO) and their group.

Names are imported on first use, so `rlvr.trainer.batch` and `rlvr.trainer.policy_trainer`
load without Ray (the group needs it).
"""
import importlib

_WHERE = {
    "TrainBatch": "batch", "make_train_batch": "batch", "position_ids_from_mask": "batch",
    "resolve_pad_id": "batch", "split_batch": "batch", "trim_padding": "batch",
    "TrainerGroup": "group", "TrainerGroupError": "group",
    "PolicyTrainer": "policy_trainer", "PolicyTrainerActor": "policy_trainer",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"rlvr.trainer.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
