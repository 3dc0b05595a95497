"""Keys a task or reward design does not read are refused at load, naming the key and the
recipe file, and never reach the warm-up cache's hash."""
import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from rlvr.config import RecipeError, load_recipe
from rlvr.models.prepare import WARMUP_VERSION, policy_cache_key
from rlvr.tasks.registry import TASK_KEYS, TASKS

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "recipes" / "quickstart.yaml")
GSM8K = ["task.name=gsm8k", "reward.verifier=math", "task.path=data/x_{split}.jsonl"]


def test_a_key_the_task_does_not_read_is_refused_in_one_line():
    with pytest.raises(RecipeError) as err:
        load_recipe(QUICKSTART, ["task.path=/x.jsonl"])
    assert str(err.value) == ("recipe quickstart.yaml: task.path is not used by task arithmetic (it reads: "
                              "num_digits, operations, seed, train_size, eval_size, prompt_template, "
                              "apply_chat_template)")


def test_every_unused_key_is_named_and_schema_defaults_are_not_given():
    with pytest.raises(RecipeError, match=r"task.num_digits, task.sft_both_rate are not used by task gsm8k "
                                          r"\(it reads: path, question_key, answer_key, seed"):
        load_recipe(None, [*GSM8K, "task.num_digits=3", "task.sft_both_rate=0.5"])
    cfg = load_recipe(None, [*GSM8K, "task.num_digits=2", "task.operations=[+]"])  # the defaults: not "given"
    assert cfg.task.name == "gsm8k"
    with pytest.raises(RecipeError, match="task.question_key is not used by task constraints"):
        load_recipe(None, ["task.name=constraints", "reward.verifier=constraints", "task.question_key=q"])


def test_every_task_declares_its_keys_and_every_shipped_recipe_loads():
    assert set(TASK_KEYS) == set(TASKS)
    for recipe in sorted((ROOT / "recipes").glob("*.yaml")):
        load_recipe(str(recipe))


def test_a_design_refuses_a_parameter_it_does_not_have_naming_the_recipe():
    with pytest.raises(RecipeError) as err:
        load_recipe(QUICKSTART, ["reward.design={name: flip, fp_rate: 0.2, p: 0.5}"])
    assert str(err.value).startswith("recipe quickstart.yaml: reward.design.p is not a parameter of design 'flip'")


def test_unread_task_keys_do_not_enter_the_cache_hash_and_valid_recipes_hash_as_before():
    cfg = load_recipe(QUICKSTART)
    # set behind the loader's back: the hash must still ignore what the task does not read
    assert policy_cache_key(replace(cfg, task=replace(cfg.task, path="/x.jsonl", question_key="q"))) \
        == policy_cache_key(cfg)
    assert policy_cache_key(replace(cfg, task=replace(cfg.task, num_digits=3))) != policy_cache_key(cfg)
    # the formula before unread keys were dropped: models already cached stay valid
    blob = json.dumps([asdict(cfg.model), asdict(cfg.warmup), asdict(cfg.task), cfg.rollout.max_new_tokens,
                       WARMUP_VERSION], sort_keys=True)
    assert policy_cache_key(cfg) == hashlib.sha256(blob.encode()).hexdigest()[:12]
