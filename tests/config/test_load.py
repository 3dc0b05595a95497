import re
from pathlib import Path

import pytest

from rlvr.config import RecipeError, load_recipe, to_yaml
from rlvr.config.schema import RecipeConfig

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_and_quickstart_load():
    assert load_recipe(None).trainer.zero_stage == 0
    cfg = load_recipe(str(ROOT / "recipes" / "quickstart.yaml"), ["trainer.lr=5e-4", "steps=3"])
    assert cfg.trainer.lr == 5e-4 and cfg.steps == 3
    assert cfg.reward.design == {"name": "ground_truth"}
    assert "zero_stage: 2" in to_yaml(cfg)


def write(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text, fragment", [
    ("trainer:\n  zero_stage: 5\n", "trainer.zero_stage = 5 must be within [0, 3]"),
    ("trainer:\n  learning_rate: 0.1\n", "trainer.learning_rate"),
    ("rollout:\n  samples_per_prompt: many\n", "rollout.samples_per_prompt"),
    ("rollout:\n  backend: tgi\n", "rollout.backend = 'tgi' must be one of"),
    ("rollout:\n  samples_per_prompt: 1\n", "rollout.samples_per_prompt = 1 must be >= 2"),
    ("reward:\n  design:\n    name: flip\n    fp_rate: 1.5\n", "reward.design.fp_rate = 1.5 must be within [0, 1]"),
    ("reward:\n  design:\n    name: flipp\n", "reward.design.name = 'flipp' is not a reward design"),
    ("reward:\n  verifier: regex\n", "reward.verifier = 'regex' is not a verifier"),
    ("task:\n  name: gsm8k\nreward:\n  verifier: math\n", "set task.path"),
    ("task:\n  name: gsm8k\n  path: x.jsonl\n", "reward.verifier = 'arithmetic' cannot check task 'gsm8k'"),
    ("rollout:\n  top_p: 0.9\n", "rollout.top_p = 0.9: only 1.0"),
    ("algorithm:\n  clip_eps: 0.0\n", "algorithm.clip_eps = 0.0 must be within"),
    ("reward:\n  timeout_s: 0\n", "reward.timeout_s = 0.0 must be"),
    ("trainer:\n  num_ranks: 9\nrollout:\n  prompts_per_step: 2\n  samples_per_prompt: 4\n", "trainer.num_ranks = 9 exceeds the 8 sequences"),
    ("task:\n  train_size: 100\nwarmup:\n  validation_size: 100\n", "warmup.validation_size = 100 must be below task.train_size = 100"),
    ("cluster:\n  num_cpus: 2\ntrainer:\n  num_ranks: 2\n", "cluster.num_cpus = 2 is fewer than the 4 actors"),
    ("task:\n  name: chess\n", "task.name = 'chess' is not a task"),
    ("task:\n  prompt_template: 'Q:'\n", "must contain {question}"),
    ("rollout:\n  temperature: 0\n", "rollout.temperature = 0.0 must be > 0"),
    ("algorithm:\n  name: ppo\n", "algorithm.name = 'ppo' must be one of"),
    ("algorithm:\n  kl_in: both\n", "algorithm.kl_in = 'both' must be one of"),
    ("algorithm:\n  clip_ratio_c: 0.5\n", "algorithm.clip_ratio_c = 0.5 must be 0 (off) or > 1"),
    ("algorithm:\n  loss_agg: seq_mean\n", "algorithm.loss_agg = 'seq_mean' must be one of"),
    ("trainer:\n  updates_per_step: 2\n  ppo_epochs: 2\n", "alias of trainer.ppo_epochs"),
    ("trainer:\n  num_gpus_per_rank: 2\n", "trainer.num_gpus_per_rank = 2.0 must be within [0.0, 1.0]"),
    ("rollout:\n  tensor_parallel_size: 2\n", "rollout.tensor_parallel_size = 2 needs rollout.backend = vllm"),
    ("rollout:\n  backend: vllm\n  tensor_parallel_size: 2\n", "set rollout.num_gpus_per_worker"),
    ("rollout:\n  backend: vllm\n  tensor_parallel_size: 2\n  num_gpus_per_worker: 0.5\n",
     "shards need distinct GPUs; set num_gpus_per_worker = 1 or cluster.colocate = true"),
    ("trainer:\n  num_ranks: 2\n  num_gpus_per_rank: 0.5\n", "ranks need distinct GPUs (NCCL)"),
    ("cluster:\n  colocate: true\ntrainer:\n  num_gpus_per_rank: 0.5\n", "set both trainer.num_gpus_per_rank and"),
    ("cluster:\n  colocate: true\ntrainer:\n  num_gpus_per_rank: 0.7\nrollout:\n  num_gpus_per_worker: 0.4\n",
     "= 1.1 exceeds one GPU with cluster.colocate = true"),
    ("cluster:\n  address: auto\n  num_gpus: 1\n", "cluster.num_gpus declares an embedded"),
    ("cluster:\n  num_gpus: 1\n", "declares GPUs but no actor asks for one"),
    ("checkpoint_keep_last: -1\n", "checkpoint_keep_last = -1 must be >= 0"),
    ("model:\n  path: ./no/such/model\n", "model.path = './no/such/model' does not exist"),
    ("rollout:\n  weight_sync: nccl\n", "rollout.weight_sync = 'nccl' must be one of ['auto', 'collective', 'in_process', 'ipc', 'object_store']"),
    ("rollout:\n  sync_bucket_mb: 0\n", "rollout.sync_bucket_mb = 0.0 must be >= 0.001"),
    ("cluster:\n  colocate: true\ntrainer:\n  num_gpus_per_rank: 0.5\nrollout:\n  num_gpus_per_worker: 0.4\n"
     "  weight_sync: collective\n", "an NCCL group cannot hold: set rollout.weight_sync = ipc (or auto)"),
    ("trainer:\n  num_gpus_per_rank: 1\nrollout:\n  weight_sync: ipc\n", "without cluster.colocate = true engines get GPUs"),
    ("cluster:\n  colocate: true\ntrainer:\n  num_gpus_per_rank: 0.5\nrollout:\n  backend: vllm\n  weight_sync: ipc\n"
     "  num_gpus_per_worker: 0.4\n  tensor_parallel_size: 2\n", "feeds one-GPU engines only"),
    ("algorithm:\n  tis_cap: -1\n", "algorithm.tis_cap = -1.0 must be >= 0.0"),
    ("algorithm:\n  tis_cap: 0.5\n", "algorithm.tis_cap = 0.5 must be 0 (off) or >= 1"),
    ("algorithm:\n  tis_cap: 2\n  recompute_logprobs: false\n", "needs algorithm.recompute_logprobs = true"),
    ("rollout:\n  overlap: true\n", "set algorithm.tis_cap (e.g. 2.0) or algorithm.recompute_logprobs = false"),
    ("model:\n  dtype: float16\n", "model.dtype = 'float16' must be one of ['bfloat16', 'float32']"),
])
def test_bad_recipe_names_file_and_key(tmp_path, text, fragment):
    with pytest.raises(RecipeError) as err:
        load_recipe(write(tmp_path, text))
    assert "bad.yaml" in str(err.value)
    assert fragment in str(err.value)


def test_bad_override_names_key():
    with pytest.raises(RecipeError, match=r"trainer\.num_ranks = 0 must be >= 1"):
        load_recipe(None, ["trainer.num_ranks=0"])
    with pytest.raises(RecipeError, match="key=value"):
        load_recipe(None, ["trainer.num_ranks"])
    with pytest.raises(RecipeError, match="task.prompt_template"):
        load_recipe(None, ["task.prompt_template=Q: {question}"])  # unquoted: YAML reads a mapping
    with pytest.raises(RecipeError, match="quote override values"):
        load_recipe(None, ["task.prompt_template=x: [y"])


def test_missing_recipe_file():
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe("/nonexistent/recipe.yaml")


def test_every_schema_field_has_a_comment():
    source = (ROOT / "rlvr" / "config" / "schema.py").read_text().splitlines()
    fields = [line for line in source if re.match(r"^    \w+: [\w\[\], ]+ = ", line)]
    assert len(fields) > 40
    undocumented = [line for line in fields if "  # " not in line]
    assert undocumented == []


def test_recipes_start_with_their_command():
    recipes = sorted((ROOT / "recipes").rglob("*.yaml"))
    assert len(recipes) > 20
    for recipe in recipes:
        command = recipe.read_text().splitlines()[0]
        assert command.startswith("# rlvr "), recipe
        assert str(recipe.relative_to(ROOT)) in command, recipe
    for recipe in (ROOT / "recipes").glob("*.yaml"):
        load_recipe(str(recipe))


def test_recipe_drift_sees_design_parameters_on_one_side_only():
    from rlvr.config.load import recipe_drift

    old = "seed: 0\nreward:\n  design:\n    name: flip\n    fp_rate: 0.2\n"
    new = "seed: 0\nreward:\n  design:\n    name: flip\n    fp_rate: 0.2\n    fn_rate: 0.3\n"
    assert recipe_drift(old, new) == ["reward.design: {'name': 'flip', 'fp_rate': 0.2} -> "
                                      "{'name': 'flip', 'fp_rate': 0.2, 'fn_rate': 0.3}"]
    assert recipe_drift(old, old + "new_field: 1\n") == []  # a schema field added since is not a change


def test_dr_grpo_aggregation_constant_defaults_to_the_generation_budget():
    cfg = load_recipe(None, ["algorithm.loss_agg=dr_grpo", "rollout.max_new_tokens=12"])
    assert cfg.algorithm.loss_agg_constant == 12
    assert load_recipe(None, ["algorithm.loss_agg=dr_grpo", "algorithm.loss_agg_constant=5"]).algorithm.loss_agg_constant == 5
    assert load_recipe(None, ["rollout.temperature=0.7"]).rollout.temperature == 0.7


def test_weight_sync_auto_resolves_to_ipc_when_colocated_and_ipc_is_accepted_there():
    colocate = ["cluster.colocate=true", "trainer.num_gpus_per_rank=0.5", "rollout.num_gpus_per_worker=0.4"]
    assert load_recipe(None).rollout.weight_sync == "collective"
    assert load_recipe(None, colocate).rollout.weight_sync == "ipc"
    assert load_recipe(None, colocate + ["rollout.weight_sync=ipc"]).rollout.weight_sync == "ipc"
    assert load_recipe(None, colocate + ["rollout.weight_sync=object_store"]).rollout.weight_sync == "object_store"
    tp2 = colocate + ["rollout.backend=vllm", "rollout.tensor_parallel_size=2"]
    assert load_recipe(None, tp2).rollout.weight_sync == "object_store"  # ipc feeds one-GPU engines only
    assert load_recipe(None, ["rollout.weight_sync=ipc"]).rollout.weight_sync == "ipc"  # CPU: the shared-memory twin
    for recipe in ("gpu_single.yaml", "quickstart.yaml"):
        load_recipe(str(ROOT / "recipes" / recipe))


def test_engine_in_trainer_resolves_the_in_process_sync_and_names_each_key_it_rules_out():
    cfg = load_recipe(None, ["rollout.in_trainer=true"])
    assert cfg.rollout.weight_sync == "in_process"
    assert load_recipe(None, ["rollout.in_trainer=true", "rollout.weight_sync=in_process"]).rollout.in_trainer
    with pytest.raises(RecipeError, match="rollout.weight_sync = in_process .* set rollout.in_trainer = true"):
        load_recipe(None, ["rollout.weight_sync=in_process"])
    for override, key in [("rollout.backend=vllm", "rollout.backend = vllm"),
                          ("rollout.num_workers=2", "rollout.num_workers = 2"),
                          ("rollout.overlap=true algorithm.tis_cap=2.0", "rollout.overlap = true"),
                          ("rollout.num_gpus_per_worker=0.5", "rollout.num_gpus_per_worker = 0.5"),
                          ("rollout.weight_sync=collective", "rollout.weight_sync = collective")]:
        with pytest.raises(RecipeError, match=f"rollout.in_trainer = true .*but {key}"):
            load_recipe(None, ["rollout.in_trainer=true", *override.split()])
