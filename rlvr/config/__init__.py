"""The recipe schema and its loader (the loader, needing omegaconf, is imported on first use)."""
from rlvr.config.schema import RecipeConfig

__all__ = ["RecipeConfig", "RecipeError", "load_recipe", "to_yaml"]


def __getattr__(name: str):
    if name == "RecipeError":
        from rlvr.config.errors import RecipeError

        return RecipeError
    if name in ("load_recipe", "to_yaml"):
        import importlib

        return getattr(importlib.import_module("rlvr.config.load"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
