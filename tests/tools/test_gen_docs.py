"""tools/gen_docs.py: the generated reference pages match the code, every schema key and
design parameter is documented, and its parser reads a field's inline comment."""
import dataclasses

import pytest

from rlvr.config.schema import RecipeConfig


def test_the_generated_pages_match_the_code(load_tool):
    gen = load_tool("gen_docs.py")
    stale = gen.stale_pages()
    assert not stale, f"{stale} differ from the code: run `python tools/gen_docs.py` and commit the result"


def test_check_mode_names_the_stale_page_and_the_command(load_tool, tmp_path, monkeypatch, capsys):
    gen = load_tool("gen_docs.py")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "recipes.md").write_text(gen.render_recipes().replace("RL steps", "RL stepz"))
    (tmp_path / "docs" / "metrics.md").write_text(gen.render_metrics())
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.stale_pages(tmp_path) == ["docs/recipes.md"]
    assert gen.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "docs/recipes.md" in err and "python tools/gen_docs.py" in err


def test_every_recipe_key_is_on_the_page_with_its_default_and_range(load_tool):
    gen = load_tool("gen_docs.py")
    rows = {key: (default, limit, meaning) for _, section in gen.recipe_keys() for key, _, default, limit, meaning in section}
    leaves = 0
    for f in dataclasses.fields(RecipeConfig):
        sub = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(sub):
            for g in dataclasses.fields(sub):
                assert f"{f.name}.{g.name}" in rows
                leaves += 1
        else:
            assert f.name in rows
            leaves += 1
    assert len(rows) == leaves
    assert all(meaning for _, _, meaning in rows.values())
    assert rows["trainer.zero_stage"][:2] == ("0", "[0, 3]")
    assert rows["rollout.backend"][1] == "one of `hf`, `vllm`"
    assert rows["task.operations"][0] == '["+"]'


def test_field_docs_reads_the_annotation_and_the_comment_of_each_field(load_tool):
    gen = load_tool("gen_docs.py")
    source = "class A:\n    x: int = 3  # three things\n    y: Optional[str] = None\n"
    assert gen.field_docs(source) == {"A": {"x": ("int", "three things"), "y": ("Optional[str]", "")}}


def test_inherited_design_parameters_keep_their_comments(load_tool):
    gen = load_tool("gen_docs.py")
    from rlvr.rewards.designs import DESIGNS

    docs = gen.class_field_docs(DESIGNS["systematic_false_positive"])
    assert docs["rate"][1].startswith("probability the error hits")  # declared on the base class
    assert docs["value"][1] == "proxy given to a hit sample"  # redeclared by the subclass
    for name, cls in DESIGNS.items():
        docs = gen.class_field_docs(cls)
        for f in dataclasses.fields(cls):
            assert docs.get(f.name, ("", ""))[1], f"design {name}: parameter {f.name} has no `# comment`"


@pytest.mark.parametrize("value, shown", [(None, "null"), (True, "true"), (2.0e-4, "0.0002"), ("", '""'),
                                          (["+"], '["+"]'), ({"name": "ground_truth"}, "{name: ground_truth}")])
def test_defaults_are_shown_as_a_recipe_writes_them(load_tool, value, shown):
    assert load_tool("gen_docs.py").show(value) == shown
