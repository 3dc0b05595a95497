"""The study file: validation before anything runs, recipe path resolution, arm x seed expansion."""
from pathlib import Path

import pytest

from rlvr.study.spec import StudyError, load_study

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"


def write_study(folder: Path, text: str, name: str = "toy.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_arm_seed_expansion_and_relative_recipe(tmp_path):
    # The recipe path is relative to the study file, not to the working directory.
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "base.yaml").write_text(QUICKSTART.read_text())
    path = write_study(tmp_path / "recipes" / "studies", """
recipe: ../base.yaml
seeds: [3, 7]
overrides: [steps=5]
threshold: 0.5
arms:
  gt: []
  fp: [reward.design.name=flip, reward.design.fp_rate=0.2]
""")
    study = load_study(path, out=tmp_path / "out")
    assert study.recipe == (tmp_path / "recipes" / "base.yaml").resolve()
    assert study.name == "toy" and study.threshold == 0.5
    assert [(r.arm, r.seed, r.run_name) for r in study.runs] == [
        ("gt", 3, "gt__seed3"), ("fp", 3, "fp__seed3"), ("gt", 7, "gt__seed7"), ("fp", 7, "fp__seed7")]
    fp7 = study.runs[3]
    assert fp7.overrides == ["steps=5", "reward.design.name=flip", "reward.design.fp_rate=0.2", "seed=7"]
    assert fp7.cfg.seed == 7 and fp7.cfg.steps == 5
    assert fp7.cfg.reward.design == {"name": "flip", "fp_rate": 0.2}
    assert fp7.cfg.run_name == "fp__seed7" and fp7.cfg.output_dir == str(tmp_path / "out")
    assert study.runs[0].cfg.reward.design == {"name": "ground_truth"}
    # wandb: the study's name groups its runs; each run is tagged with its arm and axis values
    assert fp7.cfg.logging.wandb_group == "toy"
    assert fp7.cfg.logging.wandb_tags == ["arm=fp", "reward.design.name=flip", "reward.design.fp_rate=0.2"]
    assert study.control == "gt" and study.last_k == 3 and study.eval_metric == "eval/gt_accuracy"


def test_defaults_output_dir_and_seeds(tmp_path):
    study = load_study(write_study(tmp_path, f"recipe: {QUICKSTART}\narms: {{gt: }}\n", "my_study.yaml"))
    assert study.output_dir == Path("runs/studies/my_study")
    assert study.seeds == [0] and study.arms == {"gt": []} and study.threshold is None


def test_shipped_studies_validate():
    for name in ("flip_noise", "designs", "algorithms"):
        path = ROOT / "recipes" / "studies" / f"{name}.yaml"
        assert path.read_text().startswith(f"# rlvr study recipes/studies/{name}.yaml\n")
        study = load_study(path)
        assert len(study.runs) == len(study.arms) * 2
    corrected = [r for r in load_study(ROOT / "recipes/studies/designs.yaml").runs if r.arm == "flip_corrected"]
    assert [d["name"] for d in corrected[0].cfg.reward.design["designs"]] == ["flip", "backward_correction"]


@pytest.mark.parametrize("body, fragments", [
    ("arms: {gt: []}\nseedz: [0]\n", ["study bad.yaml", "unknown key 'seedz'"]),
    ("arms: {gt: [], fp: [reward.design.name=flip, reward.design.fp_ratee=0.2]}\n",
     ["study bad.yaml", "arm 'fp'", "reward.design.fp_ratee", "recipe quickstart.yaml"]),
    ("arms: {gt: [], slow: [stepz=3]}\n", ["study bad.yaml", "arm 'slow'", "stepz"]),
    ("arms: {gt: [], big: [trainer.zero_stage=5]}\n", ["arm 'big'", "trainer.zero_stage = 5 must be within [0, 3]"]),
    ("overrides: [stepz=3]\narms: {gt: []}\n", ["study bad.yaml: overrides", "stepz"]),
    ("arms: {gt: [seed=3]}\n", ["arm 'gt'", "seed is set by the study's `seeds` list"]),
    ("overrides: [output_dir=x]\narms: {gt: []}\n", ["overrides", "output_dir is set by"]),
    ("arms: {gt: [steps]}\n", ["arm 'gt'", "'steps' must look like key=value"]),
    ("arms: {gt: steps=3}\n", ["arm 'gt'", "must be a list of key=value strings"]),
    ("arms: {'a/b': []}\n", ["arm name 'a/b'"]),
    ("arms: {}\n", ["arms must map arm names"]),
    ("seeds: [0, 0]\narms: {gt: []}\n", ["seeds [0, 0] repeat a seed"]),
    ("seeds: 3\narms: {gt: []}\n", ["seeds must be a non-empty list of integers"]),
    ("threshold: 2\narms: {gt: []}\n", ["threshold = 2 must be a number within [0, 1]"]),
])
def test_bad_study_fails_up_front_naming_file_arm_and_key(tmp_path, body, fragments):
    path = write_study(tmp_path, f"recipe: {QUICKSTART}\n{body}", "bad.yaml")
    with pytest.raises(StudyError) as err:
        load_study(path)
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)


def test_missing_recipe_and_file(tmp_path):
    with pytest.raises(StudyError, match="does not exist"):
        load_study(tmp_path / "nope.yaml")
    path = write_study(tmp_path / "s", "recipe: ../missing.yaml\narms: {gt: []}\n", "bad.yaml")
    with pytest.raises(StudyError, match=r"study bad.yaml: recipe ../missing.yaml -> .*missing.yaml does not exist"):
        load_study(path)
