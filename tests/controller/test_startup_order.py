"""The start-up order of Controller.inputs (docs/loop.md, "Start-up, to step 1"): Ray's start
begins before the prompts are read, the cluster is joined before the initial policy (a cluster
too small fails before a download or warm-up), and the actors are launched before the driver
loads its tokenizer, once: `_start_actors` then only waits for them."""
from rlvr.config import load_recipe
from rlvr.controller.actors import ActorPool
from rlvr.controller.loop import Controller
from rlvr.tasks import Prompt


def test_inputs_starts_ray_first_and_launches_the_actors_before_the_tokenizer(monkeypatch, tmp_path):
    calls = []
    prompts = [Prompt(id="p0", text="1+1=", gold="2")]
    monkeypatch.setattr(ActorPool, "begin", lambda self: calls.append("begin ray"))
    monkeypatch.setattr(Controller, "prompts", lambda self: calls.append("prompts") or (prompts, prompts))
    monkeypatch.setattr(ActorPool, "reserve", lambda self: calls.append("join ray"))
    monkeypatch.setattr(Controller, "initial_policy", lambda self, train, held_out: calls.append("policy") or ("dir", {}))

    def launch(self, model_dir):
        calls.append(f"launch {model_dir}")
        self._launched = model_dir

    monkeypatch.setattr(ActorPool, "launch", launch)
    import rlvr.models.tokenizer as tokenizer

    monkeypatch.setattr(tokenizer, "load_tokenizer", lambda model_dir, built: calls.append(f"tokenizer built={built}"))
    controller = Controller(load_recipe(None, [f"output_dir={tmp_path}"]))
    assert controller.inputs()[2] == "dir"
    assert calls == ["begin ray", "prompts", "join ray", "policy", "launch dir", "tokenizer built=True"]

    class Group:
        def wait_ready(self):
            calls.append("trainer ready")

    actors = controller.actors
    actors.trainer, actors.rollout, actors._pending_ready = Group(), [], []
    import ray

    monkeypatch.setattr(ray, "get", lambda refs: calls.append(f"wait {len(refs)}"))
    actors.wait_ready("dir")
    assert calls[-2:] == ["trainer ready", "wait 0"]  # no second launch


def test_a_failed_ray_start_is_raised_by_inputs_and_its_thread_released(monkeypatch, tmp_path):
    prompts = [Prompt(id="p0", text="1+1=", gold="2")]

    def start(self):
        raise RuntimeError("ray.init failed")

    monkeypatch.setattr(ActorPool, "_start_cluster", start)
    monkeypatch.setattr(Controller, "prompts", lambda self: (prompts, prompts))
    controller = Controller(load_recipe(None, [f"output_dir={tmp_path}"]))
    try:
        controller.inputs()
        raise AssertionError("inputs() did not raise")
    except RuntimeError as err:
        assert str(err) == "ray.init failed"
    thread = controller.actors._cluster_start._thread
    assert thread.is_alive()
    controller.end_cluster()
    thread.join(5)
    assert not thread.is_alive()


def test_engines_start_before_the_trainer_only_where_they_share_its_gpus():
    from dataclasses import replace

    from rlvr.config.schema import RecipeConfig
    from rlvr.controller.actors import engines_start_first

    base = RecipeConfig()
    own_cards = replace(base, trainer=replace(base.trainer, num_gpus_per_rank=1),
                        rollout=replace(base.rollout, num_gpus_per_worker=1))
    assert not engines_start_first(own_cards, gpus=2)  # separate cards: all start at once
    assert engines_start_first(replace(own_cards, cluster=replace(base.cluster, colocate=True)), gpus=1)
    shared = replace(own_cards, trainer=replace(base.trainer, num_gpus_per_rank=0.5),
                     rollout=replace(base.rollout, num_gpus_per_worker=0.4))
    assert engines_start_first(shared, gpus=1)
    assert not engines_start_first(base, gpus=0)  # CPU: nothing to measure
