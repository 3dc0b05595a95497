"""Resource layout math against hand-counted bundles (no Ray here)."""
from pathlib import Path

import pytest

from rlvr.config import load_recipe
from rlvr.controller.layout import ResourceError, check_fits, layout_for, pack_gpus, pin_roles, plan_layout

ROOT = Path(__file__).resolve().parents[2]


def test_cpu_default_is_one_cpu_bundle_per_actor_as_before():
    layout = layout_for(load_recipe(None))
    assert layout.bundles == [{"CPU": 1.0}] * 3
    assert [s.bundle for s in layout.trainer + layout.rollout + layout.reward] == [0, 1, 2]
    assert layout.gpus == 0 and layout.cpus == 3
    assert layout.rollout[0].num_gpus == 0 and layout.rollout[0].shard_bundles == (1,)


def test_trainer_half_and_engine_point_four_pack_onto_one_gpu():
    layout = plan_layout(1, 0.5, 1, 0.4, 1, 1, colocate=False)
    assert layout.bundles == [{"CPU": 1.0, "GPU": 0.5}, {"CPU": 1.0, "GPU": 0.4}, {"CPU": 1.0}]
    assert layout.gpus == 1 and layout.cpus == 3
    assert layout.trainer[0].num_gpus == 0.5 and layout.rollout[0].num_gpus == 0.4


@pytest.mark.parametrize("fractions, cards", [
    ([], 0), ([0.5, 0.4], 1), ([0.6, 0.6, 0.6], 3), ([0.5, 0.5, 0.5], 2),
    ([0.6, 0.5, 0.5, 0.4], 2),  # 0.6+0.4 | 0.5+0.5
    ([1.0, 1.0, 0.3], 3), ([0.25] * 8, 2),
])
def test_pack_gpus_first_fit_decreasing(fractions, cards):
    assert pack_gpus(fractions) == cards


def test_tensor_parallel_engines_get_one_whole_gpu_bundle_per_shard():
    # 4 trainer ranks x 1 GPU, 2 engines x TP 2 x 1 GPU, 1 reward worker: 8 GPUs.
    layout = plan_layout(4, 1.0, 2, 1.0, 2, 1, colocate=False)
    assert layout.bundles == ([{"CPU": 1.0, "GPU": 1.0}] * 4 + [{"CPU": 1.0, "GPU": 1.0}, {"GPU": 1.0}] * 2
                              + [{"CPU": 1.0}])
    assert [(e.bundle, e.shard_bundles, e.num_gpus, e.gpus_per_shard) for e in layout.rollout] == [
        (4, (4, 5), 0.0, 1.0), (6, (6, 7), 0.0, 1.0)]  # the engine actor itself holds no GPU
    assert layout.reward[0].bundle == 8
    assert layout.gpus == 8 and layout.cpus == 7


def test_colocate_puts_rank_i_and_shard_i_on_card_i():
    # 2 ranks x 0.5, 1 engine x TP 2 x 0.4, 2 reward workers: 2 whole-GPU bundles.
    layout = plan_layout(2, 0.5, 1, 0.4, 2, 2, colocate=True)
    assert layout.bundles == [{"CPU": 2.0, "GPU": 1.0}, {"CPU": 1.0, "GPU": 1.0}, {"CPU": 1.0}, {"CPU": 1.0}]
    assert [(s.bundle, s.num_gpus) for s in layout.trainer] == [(0, 0.5), (1, 0.5)]
    assert layout.rollout[0].shard_bundles == (0, 1) and layout.rollout[0].gpus_per_shard == 0.4
    assert [s.bundle for s in layout.reward] == [2, 3]
    assert layout.gpus == 2 and layout.cpus == 5
    # More engines than ranks: one card per engine, the rank on the first.
    layout = plan_layout(1, 0.5, 2, 0.4, 1, 1, colocate=True)
    assert layout.bundles[:2] == [{"CPU": 2.0, "GPU": 1.0}, {"CPU": 1.0, "GPU": 1.0}]
    assert [(e.bundle, e.num_gpus) for e in layout.rollout] == [(0, 0.4), (1, 0.4)]
    # Two TP-2 engines on 4 cards: engine 1's actor (its CPU) lives on its first shard, card 2.
    layout = plan_layout(1, 0.5, 2, 0.4, 2, 0, colocate=True)
    assert layout.bundles == [{"CPU": 2.0, "GPU": 1.0}, {"GPU": 1.0}, {"CPU": 1.0, "GPU": 1.0}, {"GPU": 1.0}]
    assert [e.shard_bundles for e in layout.rollout] == [(0, 1), (2, 3)]


def test_shipped_gpu_recipes_need_the_hardware_they_name():
    single = layout_for(load_recipe(str(ROOT / "recipes" / "gpu_single.yaml")))
    assert single.gpus == 1 and single.bundles[0] == {"CPU": 2.0, "GPU": 1.0}
    math = layout_for(load_recipe(str(ROOT / "recipes" / "gpu_math.yaml")))
    assert math.gpus == 8 and math.cpus == 12


def test_check_fits_names_the_missing_resource_and_the_keys():
    layout = plan_layout(2, 1.0, 1, 1.0, 1, 1, colocate=False)  # 3 GPU, 4 CPU
    check_fits(layout, {"GPU": 3.0, "CPU": 4.0})
    with pytest.raises(ResourceError, match=r"needs 3 GPU .*the Ray cluster has 2: lower trainer.num_gpus_per_rank"):
        check_fits(layout, {"GPU": 2.0, "CPU": 64.0})
    with pytest.raises(ResourceError, match=r"needs 4 CPU .*has 3: lower trainer.num_ranks"):
        check_fits(layout, {"GPU": 8.0, "CPU": 3.0})
    with pytest.raises(ResourceError, match=r"needs 1 GPU .*has 0"):
        check_fits(plan_layout(1, 0.5, 1, 0.4, 1, 1, colocate=False), {"CPU": 8.0})
    two_nodes = [{"GPU": 2.0, "CPU": 8.0}, {"GPU": 2.0, "CPU": 8.0}]
    check_fits(layout, {"GPU": 4.0, "CPU": 16.0}, two_nodes, "PACK")
    with pytest.raises(ResourceError, match=r"STRICT_PACK .*needs 3 GPU and the largest node has 2"):
        check_fits(layout, {"GPU": 4.0, "CPU": 16.0}, two_nodes, "STRICT_PACK")


def test_custom_resources_pin_each_roles_bundles_engine_shards_included():
    # separate layout: [trainer 0, 1][engine 0 shards 0, 1][reward 0]
    layout = pin_roles(plan_layout(2, 1.0, 1, 1.0, 2, 1, colocate=False),
                       {"rollout": {"gpu_pool": 1}, "reward": {"cpu_pool": 0.5}})
    assert [b.get("gpu_pool", 0) for b in layout.bundles] == [0, 0, 1, 1, 0]
    assert [b.get("cpu_pool", 0) for b in layout.bundles] == [0, 0, 0, 0, 0.5]
    assert [b["GPU"] for b in layout.bundles[:4]] == [1.0] * 4  # CPU and GPU as the layout set them
    # colocate: trainer rank i and shard i share bundle i, which asks for the larger amount of each
    shared = pin_roles(plan_layout(2, 0.5, 2, 0.4, 1, 1, colocate=True),
                       {"trainer": {"pool": 1, "t": 2}, "rollout": {"pool": 3}})
    assert [(b.get("pool"), b.get("t")) for b in shared.bundles] == [(3, 2), (3, 2), (None, None)]


def test_layout_for_pins_the_recipes_roles_and_check_fits_counts_custom_resources():
    cfg = load_recipe(None, ["cluster.custom_resources={reward: {reward_node: 1}}", "reward.num_workers=2"])
    layout = layout_for(cfg)
    assert [b.get("reward_node", 0) for b in layout.bundles] == [0, 0, 1, 1]
    check_fits(layout, {"CPU": 4.0, "reward_node": 2.0})
    with pytest.raises(ResourceError, match=r"needs 2 of the custom resource reward_node .*has 1: start nodes "
                                            r"that declare it \(ray start --resources '\{\"reward_node\": 2\}'\)"):
        check_fits(layout, {"CPU": 4.0, "reward_node": 1.0})
    assert layout_for(load_recipe(None, [])).bundles == [{"CPU": 1.0}] * 3  # nothing pinned: as before


@pytest.mark.parametrize("value, message", [
    ("{critic: {n: 1}}", r"cluster.custom_resources.critic: not a role; use trainer, rollout, reward"),
    ("{reward: {GPU: 1}}", r"cluster.custom_resources.reward.GPU: GPU is Ray's own resource"),
    ("{reward: {n: 0}}", r"cluster.custom_resources.reward.n = 0.0 must be a number > 0"),
])
def test_custom_resources_refuse_what_no_node_could_mean(value, message):
    from rlvr.config.errors import RecipeError

    with pytest.raises(RecipeError, match=message):
        load_recipe(None, [f"cluster.custom_resources={value}"])


def test_engine_in_trainer_takes_no_bundle_of_its_own():
    layout = layout_for(load_recipe(None, ["rollout.in_trainer=true"]))
    assert layout.bundles == [{"CPU": 1.0}] * 2  # trainer rank 0 (with the engine), reward worker
    assert layout.rollout[0].bundle == 0 and layout.rollout[0].num_cpus == 0 and layout.rollout[0].num_gpus == 0
    assert layout.rollout[0].in_trainer and not layout_for(load_recipe(None)).rollout[0].in_trainer
    assert [s.bundle for s in layout.trainer + layout.reward] == [0, 1]
    assert "the rollout engine inside rank 0" in layout.describe()
    # on GPUs the ranks' shares are the only ones: 2 ranks x 1 GPU, a CPU reward worker
    gpu = plan_layout(2, 1.0, 1, 0.0, 1, 1, colocate=False, engine_in_trainer=True)
    assert gpu.bundles == [{"CPU": 1.0, "GPU": 1.0}] * 2 + [{"CPU": 1.0}] and gpu.gpus == 2
