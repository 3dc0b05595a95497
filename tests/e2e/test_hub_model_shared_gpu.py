"""A run as on a one-GPU machine, on CPU: model.path is a hub id served from a local HF cache
(offline), the trainer rank (0.5) and the rollout engine (0.4) share one declared GPU, and
only the newest checkpoint is kept; checkpoints are written from the resolved snapshot."""
import json

import pytest

from .test_quickstart import short_run


@pytest.mark.e2e
def test_hub_model_on_a_shared_declared_gpu_keeps_the_last_checkpoint(tmp_path, tiny_hub_model, monkeypatch):
    import huggingface_hub.constants

    from rlvr.controller.loop import train

    _, cache, repo_id, snapshot, sha = tiny_hub_model
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    summary = train(short_run(tmp_path, f"model.path={repo_id}", "cluster.num_gpus=1",
                              "trainer.num_gpus_per_rank=0.5", "rollout.num_gpus_per_worker=0.4",
                              "checkpoint_every=1", "checkpoint_keep_last=1"))
    assert summary["status"] == "finished"
    assert summary["model_dir"] == str(snapshot) and summary["warmup"]["revision"] == sha
    run = tmp_path / "e2e"
    assert f"path: {repo_id}" in (run / "config.yaml").read_text()  # the recipe keeps the hub id
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_000003"]
    last = run / "checkpoints" / "step_000003"
    assert json.loads((last / "rlvr_state.json").read_text())["step"] == 3
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (last / name).is_file() and not (last / name).is_symlink(), name
    assert (last / "tokenizer.json").read_bytes() == (snapshot / "tokenizer.json").read_bytes()
