"""Plug-ins (rlvr/plugins.py): a module named under `plugins:` registers a design and a verifier
that a recipe then uses by name, in-process and through the Ray actors; its errors name it."""
import sys
import textwrap

import pytest

from rlvr.config import RecipeError, load_recipe

PLUGIN = textwrap.dedent('''
    from dataclasses import dataclass

    from rlvr.rewards.designs import RewardDesign, register_design
    from rlvr.rewards.types import GroundTruth
    from rlvr.rewards.verifiers import register_verifier


    @register_verifier("{name}_first_digit")
    def first_digit(response, gold, meta=None):
        """1.0 when the response's first character is the gold's first digit."""
        ok = bool(response) and response[0] == gold[0]
        return GroundTruth(1.0 if ok else 0.0, "ok" if ok else "wrong", response[:1] or None)


    @register_design("{name}_halve")
    @dataclass(kw_only=True, eq=False)
    class Halve(RewardDesign):
        """The running proxy times `factor`."""

        factor: float = 0.5  # multiplier of the proxy

        def transform(self, sample, proxy):
            if sample.response == "boom":
                raise ValueError("cannot score boom")
            return self.factor * proxy
''')


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A plug-in module in a folder of its own, found from the current folder (as a user's is);
    the registries are put back afterwards (generated docs list what they hold)."""
    from rlvr.rewards.designs import DESIGNS
    from rlvr.rewards.verifiers import VERIFIERS

    saved = dict(DESIGNS), dict(VERIFIERS)
    name = f"myplug_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(PLUGIN.replace("{name}", name))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.setenv("PYTHONPATH", "")
    yield name
    sys.modules.pop(name, None)
    for registry, before in zip((DESIGNS, VERIFIERS), saved):
        registry.clear()
        registry.update(before)


def test_a_plugin_design_and_verifier_score_in_process_and_in_verifier_processes(plugin, tmp_path):
    import os

    from rlvr.rewards.worker import RewardWorker

    cfg = load_recipe(None, [f"plugins=[{plugin}]", f"reward.verifier={plugin}_first_digit",
                             f"reward.design.name={plugin}_halve", "reward.design.factor=0.25"])
    assert cfg.plugins == [plugin]
    assert str(tmp_path) in os.environ["PYTHONPATH"].split(os.pathsep)  # verifier processes import it too
    worker = RewardWorker(cfg.reward.verifier, cfg.reward.design, plugins=cfg.plugins)
    try:
        assert not worker.pool.in_process  # a plug-in verifier defaults to killable processes
        records = [{"prompt_id": "p", "sample_index": j, "response": r, "gold": "46", "num_tokens": 2, "meta": {}}
                   for j, r in enumerate(["47;", "56;"])]
        scored = worker.score(records)
        assert [(r["gt"], r["proxy"]) for r in scored] == [(1.0, 0.25), (0.0, 0.0)]
        with pytest.raises(RuntimeError, match=f"plug-in {plugin}: design '{plugin}_halve' failed: "
                                               "ValueError: cannot score boom"):
            worker.score([{**records[0], "response": "boom"}])
    finally:
        worker.close()


def test_plugin_errors_name_the_plugin(tmp_path, monkeypatch, plugin):
    with pytest.raises(RecipeError, match=r"plugins\[0\] = 'no_such_plugin_xyz': no such module"):
        load_recipe(None, ["plugins=[no_such_plugin_xyz]"])
    (tmp_path / "broken_plugin_xyz.py").write_text("import math\n\nraise RuntimeError('bad config')\n")
    with pytest.raises(RecipeError, match=r"plug-in broken_plugin_xyz failed to import: RuntimeError: bad config "
                                          r"\(.*broken_plugin_xyz.py:3\)"):
        load_recipe(None, ["plugins=[broken_plugin_xyz]"])
    (tmp_path / "clash_plugin_xyz.py").write_text(
        "from rlvr.rewards.designs import RewardDesign, register_design\n\n"
        "@register_design('flip')\nclass Flip(RewardDesign):\n    pass\n")
    with pytest.raises(RecipeError, match="clash_plugin_xyz: design name 'flip' is already registered by "
                                          "rlvr.rewards.designs"):
        load_recipe(None, ["plugins=[clash_plugin_xyz]"])
    with pytest.raises(RecipeError, match=r"plugins\[0\] = 'x/y.py': name a module"):
        load_recipe(None, ["plugins=[x/y.py]"])
    for name in ("broken_plugin_xyz", "clash_plugin_xyz"):
        sys.modules.pop(name, None)


@pytest.mark.e2e
def test_a_short_run_trains_on_a_plugin_design_through_the_actors(plugin, tmp_path):
    import json

    from rlvr.controller.loop import train
    from tests.e2e.test_quickstart import short_run

    cfg = short_run(tmp_path / "runs", f"plugins=[{plugin}]", f"reward.design.name={plugin}_halve",
                    f"reward.verifier={plugin}_first_digit", "eval.audit_prompts=0", "steps=2")
    summary = train(cfg)
    assert summary["status"] == "finished"
    samples = [json.loads(line) for line in (tmp_path / "runs" / "e2e" / "samples" / "step_000001.jsonl").open()]
    assert samples and all(s["proxy"] == 0.5 * s["gt"] for s in samples)
    assert any(s["gt"] == 1.0 for s in samples)
