"""model.path -> the local folder every actor and checkpoint uses.

`model.path` is a local HF model folder or a hub id (`org/name`). The recipe check only looks
at the local disk (`check_model_path`, no network); the controller resolves a hub id once with
`huggingface_hub.snapshot_download` (which honours HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE and
HF_TOKEN) and passes the snapshot folder on. On a multi-node cluster the HF cache must be on
storage every node sees (as checkpoints must be).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Optional, Tuple

from rlvr.config.errors import RecipeError

# A hub repo id: "name" or "org/name" of letters, digits, '.', '_', '-'.
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*$")
# Files a training run never reads: other frameworks' weights and original checkpoints.
IGNORE_PATTERNS = ["*.pth", "*.pt", "original/*", "*.msgpack", "*.h5", "*.ot", "*.onnx", "onnx/*",
                   "*.gguf", "*.tflite"]


class ModelPathError(RecipeError):
    """model.path cannot be used; the message says why and what to do, in one line."""


def is_hub_id(value: str) -> bool:
    """True when `value` reads as a hub id rather than a local path.

    Local: starts with / . ~, exists on disk, has more than one '/', or its parent folder
    exists here (models/x with a models/ folder). Everything else shaped like org/name is a
    hub id.
    """
    value = value.strip()
    if not value or value.startswith(("/", ".", "~")) or "\\" in value or value.count("/") > 1:
        return False
    path = Path(value).expanduser()
    if path.exists() or (str(path.parent) not in ("", ".") and path.parent.exists()):
        return False
    return bool(_HUB_ID.match(value))


def check_model_path(value: str) -> Optional[str]:
    """Why a local model.path cannot be used (None when fine, and always None for a hub id):
    for the recipe check, which must not touch the network."""
    if is_hub_id(value):
        return None
    path = Path(value).expanduser()
    if not path.exists():
        return (f"model.path = {value!r} does not exist (a local folder; a hub id looks like "
                "org/name): fix the path, or leave model.path unset to build the tiny model")
    if not path.is_dir():
        return f"model.path = {value!r} is a file: give the HF model folder that holds config.json"
    if not (path / "config.json").is_file():
        return (f"model.path = {value!r} has no config.json: give an HF model folder "
                "(save_pretrained output or a hub snapshot)")
    return None


def resolve_model_path(value: str, cache_dir: Optional[str] = None) -> Tuple[str, Dict[str, str]]:
    """(absolute local folder, info) for model.path; a hub id is fetched once into the HF cache.

    info: {"source": value} plus, for a hub id, {"hub_id", "revision": snapshot commit}.
    cache_dir: the HF hub cache (None = huggingface_hub's own: HF_HUB_CACHE or HF_HOME/hub).
    Raises ModelPathError with a one-line reason.
    """
    problem = check_model_path(value)
    if problem:
        raise ModelPathError(problem)
    if not is_hub_id(value):
        return str(Path(value).expanduser().resolve()), {"source": value}
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    cache = cache_dir or constants.HF_HUB_CACHE
    try:
        folder = snapshot_download(value, cache_dir=cache_dir, ignore_patterns=IGNORE_PATTERNS)
    except GatedRepoError:
        raise ModelPathError(f"model.path = {value!r} is a gated hub repo: accept its licence on the "
                             "hub and set HF_TOKEN (or `hf auth login`)") from None
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise ModelPathError(f"model.path = {value!r} is not a hub repo (or is private: set HF_TOKEN) "
                             "and not a local folder") from None
    except LocalEntryNotFoundError:
        why = ("HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the hub cannot be reached")
        raise ModelPathError(f"model.path = {value!r} is not in the HF cache {cache} and {why}: run "
                             f"`hf download {value}` where the hub is reachable (same HF_HOME), or give "
                             "a local folder") from None
    except Exception as err:  # noqa: BLE001 - e.g. an incomplete snapshot: one line, not a traceback
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelPathError(f"model.path = {value!r}: fetching it failed ({first})") from None
    if not (Path(folder) / "config.json").is_file():
        raise ModelPathError(f"model.path = {value!r}: the hub snapshot {folder} has no config.json "
                             "(not a transformers model repo?)")
    return folder, {"source": value, "hub_id": value, "revision": Path(folder).name}
