"""Every shipped GPU recipe fits an 80 GB card; a layout that does not fit names its largest item."""
from pathlib import Path

import pytest

from rlvr.cli import main
from rlvr.config import load_recipe
from rlvr.plan import memory_problems, plan_recipe

ROOT = Path(__file__).resolve().parents[2]
GPU_RECIPES = sorted(ROOT.glob("recipes/gpu_*.yaml"))
SEVEN_B = {  # the 7B model of each recipe's model family
    "Qwen/Qwen2.5-Math-1.5B": "Qwen/Qwen2.5-Math-7B",
    "Qwen/Qwen2.5-0.5B-Instruct": "Qwen/Qwen2.5-7B-Instruct",
}
ONE_CARD = {"gpu_single.yaml", "gpu_reward_model.yaml"}  # a 7B model's trainer states (~150 GB) cannot fit one card


def load(recipe, *overrides):
    return load_recipe(str(recipe), ["cluster.gpu_memory_gb=80", *overrides])


def test_gpu_recipes_are_found():
    assert {p.name for p in GPU_RECIPES} >= {"gpu_math.yaml", "gpu_single.yaml"}


@pytest.mark.parametrize("recipe", GPU_RECIPES, ids=lambda p: p.name)
def test_recipe_fits_an_80_gb_card_for_its_model(recipe):
    cfg = load(recipe)
    assert memory_problems(cfg) == []
    plan = plan_recipe(cfg)
    assert plan.trainer and plan.total(plan.trainer) <= 80e9
    assert plan.engine is not None and plan.engine.sequences >= 1


@pytest.mark.parametrize("recipe", GPU_RECIPES, ids=lambda p: p.name)
def test_recipe_with_the_7b_model_of_its_family(recipe):
    cfg = load(recipe)
    seven = load(recipe, f"model.path={SEVEN_B[cfg.model.path]}")
    problems = memory_problems(seven, where=f"recipe {recipe.name}")
    if recipe.name in ONE_CARD:  # the recipe's comment says so and points at gpu_math's layout
        assert len(problems) == 1 and "optimizer states" in problems[0] and "trainer.num_ranks" in problems[0]
    else:
        assert problems == []


def test_7b_without_gradient_checkpointing_fails_naming_activations():
    cfg = load(ROOT / "recipes/gpu_math.yaml", "model.path=Qwen/Qwen2.5-Math-7B",
               "trainer.gradient_checkpointing=false")
    (problem,) = memory_problems(cfg, where="recipe gpu_math.yaml")
    assert problem.startswith("recipe gpu_math.yaml: a trainer GPU needs 113.8 GB while training")
    assert "largest item is activations (checkpointing off) at 62.7 GB: trainer.gradient_checkpointing=true" in problem


def test_engine_share_is_counted_on_a_shared_card_and_named_when_largest():
    cfg = load(ROOT / "recipes/gpu_single.yaml", "rollout.gpu_memory_utilization=0.9",
               "rollout.num_gpus_per_worker=0.4")
    (problem,) = memory_problems(cfg)
    assert "engine share (0.9 x card) at 72.0 GB: rollout.gpu_memory_utilization" in problem


def test_engine_budget_too_small_for_its_weights():
    cfg = load(ROOT / "recipes/gpu_math.yaml", "model.path=Qwen/Qwen2.5-Math-7B", "rollout.gpu_memory_utilization=0.2")
    (problem,) = memory_problems(cfg)
    assert "engine GPU's budget" in problem and "rollout.tensor_parallel_size" in problem


def test_no_gpu_no_plan():
    assert memory_problems(load_recipe(str(ROOT / "recipes/quickstart.yaml"))) == []


def test_cli_prints_the_table_and_fails_when_over(capsys):
    assert main(["plan", str(ROOT / "recipes/gpu_math.yaml"), "cluster.gpu_memory_gb=80"]) == 0
    out = capsys.readouterr().out
    assert "per trainer GPU (rank 0), while training" in out and "fits" in out
    assert "logits (4 x 2048 x 151936 x 2 B x 2)" in out
    assert main(["plan", str(ROOT / "recipes/gpu_math.yaml"), "cluster.gpu_memory_gb=40",
                 "model.path=Qwen/Qwen2.5-Math-7B"]) == 1
    err = capsys.readouterr().err
    assert "of the card has" not in err and "the card has 40.0 GB (cluster.gpu_memory_gb)" in err


def test_cli_says_nothing_to_plan_without_gpus(capsys):
    assert main(["plan", str(ROOT / "recipes/quickstart.yaml")]) == 0
    assert "nothing to plan" in capsys.readouterr().out


def test_a_sleeping_engine_is_counted_while_generating_not_while_training():
    cfg = load(ROOT / "recipes/gpu_single.yaml")
    awake = plan_recipe(cfg)
    cfg.rollout.sleep_while_training = True  # the key rollout.sleep_while_training, read with getattr
    asleep = plan_recipe(cfg)
    names = lambda items: [item.name.split(" (")[0] for item in items]  # noqa: E731
    assert "engine share" in names(awake.trainer) and not awake.generating
    assert "engine share" not in names(asleep.trainer)
    assert "engine share" in names(asleep.generating) and "activations" not in names(asleep.generating)
    assert asleep.total(asleep.trainer) == pytest.approx(awake.total(awake.trainer) - 0.35 * 80e9)


def test_an_engine_in_the_trainer_counts_its_weights_always_and_its_kv_cache_while_generating():
    inside = ("rollout.backend=hf", "rollout.in_trainer=true", "rollout.num_gpus_per_worker=0",
              "rollout.weight_sync=auto", "cluster.colocate=false", "trainer.num_gpus_per_rank=1")
    cfg = load(ROOT / "recipes/gpu_single.yaml", *inside)
    plan = plan_recipe(cfg)
    by_name = {item.name.split(" (")[0]: item.bytes for item in plan.trainer}
    assert plan.trainer[0].name.startswith("parameters")
    assert plan.trainer[0].bytes > 0
    assert by_name["engine weights in rank 0"] == pytest.approx(plan.trainer[0].bytes)  # w P, as the rank's (ZeRO < 3)
    kv = [item for item in plan.generating if item.name.startswith("engine KV cache")]
    r = cfg.rollout
    assert kv and f"{r.prompts_per_step * r.samples_per_prompt} sequences" in kv[0].name
    assert not any(item.name.startswith(("activations", "logits")) for item in plan.generating)
    # a step's sequences that cannot fit beside the trainer's states are refused, naming the fix
    big = load(ROOT / "recipes/gpu_single.yaml", *inside, "rollout.prompts_per_step=4096")
    (problem,) = memory_problems(big)
    assert "while generating" in problem and "engine KV cache" in problem and "rollout.prompts_per_step" in problem
