from rlvr.config import load_recipe
from rlvr.controller.loop import Controller


def test_prompt_template_wraps_every_question_and_keeps_braces():
    cfg = load_recipe(None, ["task.prompt_template='Q: {question} put it in \\boxed{}'", "task.train_size=10", "rollout.prompts_per_step=4",
                             "task.eval_size=4"])
    train, held_out = Controller(cfg).prompts()
    assert len(train) == 10 and len(held_out) == 4
    assert all(p.text.startswith("Q: ") and p.text.endswith("= put it in \\boxed{}") for p in train + held_out)


def test_a_used_run_folder_is_refused_and_an_early_failure_leaves_a_failed_summary(tmp_path):
    import json

    import pytest

    from rlvr.config import RecipeError
    from rlvr.tasks.loaders import TaskDataError

    cfg = load_recipe(None, [f"output_dir={tmp_path}", "run_name=r", "task.name=gsm8k", "reward.verifier=math",
                             f"task.path={tmp_path}/missing.jsonl"])
    with pytest.raises((TaskDataError, FileNotFoundError, ValueError)):
        Controller(cfg).run()
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "failed" and "missing.jsonl" in summary["error"]

    (tmp_path / "r" / "metrics.jsonl").write_text('{"step": 0}\n')
    with pytest.raises(RecipeError, match="already holds a run"):
        Controller(cfg).run()


def test_chat_template_wraps_each_prompt_as_a_user_turn(tmp_path):
    import pytest

    from rlvr.config import RecipeError
    from rlvr.controller.prompts import chat_prompts
    from rlvr.models.tiny import build_char_tokenizer
    from rlvr.tasks import Prompt

    tok = build_char_tokenizer(tmp_path)
    prompts = [Prompt("p0", "1+2=", "3"), Prompt("p1", "4+4=", "8")]
    with pytest.raises(RecipeError, match=r"the tokenizer of tiny has no chat template: set it false"):
        chat_prompts(tok, prompts, "tiny")
    tok.chat_template = ("{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"
                         "{% if add_generation_prompt %}[assistant]{% endif %}")
    wrapped = chat_prompts(tok, prompts, "tiny")
    assert [p.text for p in wrapped] == ["[user]1+2=[assistant]", "[user]4+4=[assistant]"]
    assert [(p.id, p.gold) for p in wrapped] == [("p0", "3"), ("p1", "8")]
    with pytest.raises(RecipeError, match="apply_chat_template = true, but the built tiny model"):
        load_recipe(None, ["task.apply_chat_template=true"])
