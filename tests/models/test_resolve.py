"""model.path: a local folder or a hub id, checked at recipe load without the network and
resolved once from a local HF cache (offline), the way huggingface_hub lays one out."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.config import RecipeError, load_recipe
from rlvr.models.resolve import ModelPathError, check_model_path, is_hub_id, resolve_model_path

ROOT = Path(__file__).resolve().parents[2]


def test_hub_ids_and_local_paths_are_told_apart(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    assert is_hub_id("Qwen/Qwen2.5-0.5B-Instruct") and is_hub_id("gpt2")
    for local in ("/abs/model", "./model", "../model", "~/model", "a/b/c", "models/missing", "win\\path"):
        assert not is_hub_id(local), local
    (tmp_path / "org" / "name").mkdir(parents=True)  # a local folder shaped like a hub id wins
    assert not is_hub_id("org/name")


def test_recipe_load_rejects_a_missing_or_incomplete_local_folder_but_not_a_hub_id(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RecipeError, match=r"recipe <defaults>: model.path = '/nonexistent/m' does not exist"):
        load_recipe(None, ["model.path=/nonexistent/m"])
    with pytest.raises(RecipeError, match=r"has no config.json"):
        load_recipe(None, [f"model.path={empty}"])
    (empty / "config.json").write_text("{}")
    assert check_model_path(str(empty)) is None
    # A hub id is not looked up at load (no network, no cache needed): HF_HUB_OFFLINE is set here.
    assert load_recipe(None, ["model.path=nobody/not-cached"]).model.path == "nobody/not-cached"


def test_hub_id_resolves_to_the_cached_snapshot_offline(tiny_hub_model):
    home, cache, repo_id, snapshot, sha = tiny_hub_model
    folder, info = resolve_model_path(repo_id, cache_dir=str(cache))
    assert folder == str(snapshot) and info == {"source": repo_id, "hub_id": repo_id, "revision": sha}
    assert (Path(folder) / "config.json").is_file() and (Path(folder) / "config.json").is_symlink()
    with pytest.raises(ModelPathError, match=r"'nobody/not-cached' is not in the HF cache .* HF_HUB_OFFLINE is set"):
        resolve_model_path("nobody/not-cached", cache_dir=str(cache))
    local, info = resolve_model_path(str(snapshot))
    assert local == str(snapshot.resolve()) and info == {"source": str(snapshot)}


def test_hf_home_is_honoured_in_a_fresh_process(tiny_hub_model):
    home, _, repo_id, snapshot, _ = tiny_hub_model
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    env.update(HF_HOME=str(home), HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", "from rlvr.models.resolve import resolve_model_path as r; "
                          f"print(r({repo_id!r})[0])"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == str(snapshot)
