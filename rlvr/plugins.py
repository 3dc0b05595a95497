"""User plug-ins: Python modules a recipe names under `plugins:`, imported before the run (on
the driver, in every reward and rollout worker, and in verifier processes) so that the reward
designs and verifiers they register are usable by name without editing rlvr.

    # my_rewards.py, beside the recipe or anywhere on PYTHONPATH
    from rlvr.rewards.designs import RewardDesign, register_design
    from rlvr.rewards.verifiers import register_verifier

docs/rewards.md has a worked example.
"""
from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import Iterable, List


class PluginError(ValueError):
    """A plug-in module could not be imported; the message names it and the recipe key."""


def _root(module) -> str:
    """The sys.path folder `module` was imported from (its top package's parent)."""
    path = Path(module.__file__).resolve()
    depth = module.__name__.count(".") + (1 if path.name == "__init__.py" else 0)
    return str(path.parents[depth])


def import_plugins(names: Iterable[str], where: str = "plugins") -> List[str]:
    """Import each plug-in module (dotted name, importable from sys.path or the current folder)
    and put its folder on PYTHONPATH, which processes started afterwards inherit (an embedded
    Ray cluster's workers, verifier processes). Returns the folders."""
    names = list(names)
    if names and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # `rlvr train` finds a plug-in beside the recipe, as `python -m` would
    roots: List[str] = []
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name or name.endswith(".py") or "/" in name:
            raise PluginError(f"{where}[{i}] = {name!r}: name a module (my_rewards or mypkg.my_rewards), "
                              "not a file path; its folder must be the current one or on PYTHONPATH")
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name and (name == err.name or name.startswith(err.name + ".")):
                raise PluginError(f"{where}[{i}] = {name!r}: no such module (looked in the current folder "
                                  "and on PYTHONPATH)") from None
            raise PluginError(f"plug-in {name} failed to import: {type(err).__name__}: {err}") from err
        except Exception as err:
            last = traceback.extract_tb(err.__traceback__)[-1]
            raise PluginError(f"plug-in {name} failed to import: {type(err).__name__}: {err} "
                              f"({last.filename}:{last.lineno})") from err
        if getattr(module, "__file__", None):
            roots.append(_root(module))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    new = [r for r in dict.fromkeys(roots) if r not in paths]
    if new:
        os.environ["PYTHONPATH"] = os.pathsep.join(new + paths)
    return roots
