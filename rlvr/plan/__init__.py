"""Plans made before a GPU run: the memory of each GPU (`rlvr plan`) and the pinned CUDA stack."""
from rlvr.plan.check import memory_problems, plan_recipe

__all__ = ["memory_problems", "plan_recipe"]
