"""reward.num_gpus_per_worker: reward workers' bundles carry their GPU share and count toward the GPUs."""
from rlvr.config import load_recipe
from rlvr.controller.layout import layout_for, plan_layout


def test_reward_share_goes_into_its_bundles_and_packs_with_the_others():
    layout = plan_layout(1, 0.5, 1, 0.25, 1, 2, colocate=False, gpus_per_reward_worker=0.125)
    assert [s.num_gpus for s in layout.reward] == [0.125, 0.125]
    assert [layout.bundles[s.bundle] for s in layout.reward] == [{"CPU": 1.0, "GPU": 0.125}] * 2
    assert layout.gpus == 1  # 0.5 + 0.25 + 2 x 0.125 fit one card
    assert plan_layout(1, 0.5, 1, 0.5, 1, 1, colocate=False, gpus_per_reward_worker=0.25).gpus == 2


def test_colocate_shares_a_card_when_there_is_room_else_takes_its_own():
    layout = plan_layout(1, 0.5, 1, 0.4, 1, 1, colocate=True, gpus_per_reward_worker=0.1)
    assert layout.gpus == 1 and layout.reward[0].bundle == 0 and layout.reward[0].num_gpus == 0.1
    assert layout.bundles == [{"CPU": 3.0, "GPU": 1.0}]  # trainer, engine and reward worker on card 0
    layout = plan_layout(1, 0.5, 1, 0.4, 1, 2, colocate=True, gpus_per_reward_worker=0.5)
    assert layout.gpus == 2 and [s.num_gpus for s in layout.reward] == [0.5, 0.5]
    assert [layout.bundles[s.bundle] for s in layout.reward] == [{"CPU": 1.0, "GPU": 0.5}] * 2


def test_default_is_cpu_and_the_recipe_key_reaches_the_layout(tmp_path):
    assert plan_layout(1, 0, 1, 0, 1, 1, colocate=False).reward[0].num_gpus == 0
    recipe = tmp_path / "r.yaml"
    recipe.write_text("reward: {num_gpus_per_worker: 0.25}\ntrainer: {num_gpus_per_rank: 0.5}\n")
    layout = layout_for(load_recipe(str(recipe), []))
    assert layout.reward[0].num_gpus == 0.25 and layout.gpus == 1
