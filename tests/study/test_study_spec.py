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


ARM_STUDIES = [p for p in sorted((ROOT / "recipes" / "studies").glob("*.yaml"))
               if "kind: reward_models" not in p.read_text()]  # those have tests/reward_models' own checks


@pytest.mark.parametrize("path", ARM_STUDIES, ids=lambda p: p.stem)
def test_every_shipped_study_loads(path):
    assert path.read_text().startswith(f"# rlvr study recipes/studies/{path.name}\n")
    study = load_study(path)
    assert len(study.runs) == len(study.arms) * len(study.seeds)
    blocked = {arm for block, arm, ref in study.comparisons} | {ref for _, _, ref in study.comparisons}
    block_of = {arm: block for block, members in study.blocks.items() for arm in members}
    assert all(block_of[arm] == block_of[ref] == block for block, arm, ref in study.comparisons)
    assert blocked <= set(study.arms)


BLOCKED = """
arms:
  binary_easy: [task.train_size=200]
  partial_easy: [task.train_size=200, reward.design.name=flip]
  binary_rare: [task.train_size=300]
  partial_rare: [task.train_size=300, reward.design.name=flip]
blocks: {easy: [binary_easy, partial_easy], rare: [binary_rare, partial_rare]}
"""


def test_blocks_compare_each_arm_with_its_own_blocks_control(tmp_path):
    study = load_study(write_study(tmp_path, f"recipe: {QUICKSTART}\n{BLOCKED}"
                                   "control: {easy: binary_easy, rare: binary_rare}\n"
                                   "interaction: ['(partial_rare - binary_rare) - (partial_easy - binary_easy)']\n"))
    assert study.blocks == {"easy": ["binary_easy", "partial_easy"], "rare": ["binary_rare", "partial_rare"]}
    assert study.comparisons == [("easy", "partial_easy", "binary_easy"), ("rare", "partial_rare", "binary_rare")]
    assert study.interactions == [("(partial_rare - binary_rare) - (partial_easy - binary_easy)",
                                   ("partial_rare", "binary_rare"), ("partial_easy", "binary_easy"))]
    assert study.control == ""  # no single control once there are blocks
    # Default control: each block's first arm.
    default = load_study(write_study(tmp_path, f"recipe: {QUICKSTART}\n{BLOCKED}", "d.yaml"))
    assert default.controls == {"easy": "binary_easy", "rare": "binary_rare"}
    assert default.comparisons == study.comparisons
    # Explicit pairs replace the default comparisons.
    pairs = load_study(write_study(tmp_path, f"recipe: {QUICKSTART}\n{BLOCKED}"
                                   "compare: [binary_easy - partial_easy]\n", "p.yaml"))
    assert pairs.comparisons == [("easy", "binary_easy", "partial_easy")] and pairs.controls == {}


def test_primary_metric_and_graded_eval_metric(tmp_path):
    study = load_study(write_study(tmp_path, f"recipe: {QUICKSTART}\nprimary_metric: last_k_eval_gt_accuracy\n"
                                   "eval_metric: eval/gt_reward_mean\narms: {gt: [], fp: [reward.design.name=flip]}\n"))
    # eval/gt_reward_mean is logged by every greedy evaluation: no eval.samples_per_prompt needed.
    assert study.primary_metric == "last_k_eval_gt_accuracy" and study.eval_metric == "eval/gt_reward_mean"
    assert study.control == "gt" and study.comparisons == [("all", "fp", "gt")]
    assert load_study(write_study(tmp_path, f"recipe: {QUICKSTART}\narms: {{gt: []}}\n", "n.yaml")).primary_metric is None
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
    ("primary_metric: final_accuracy\narms: {gt: []}\n", ["primary_metric = 'final_accuracy' must be one of"]),
    ("primary_metric: steps_to_threshold\narms: {gt: []}\n", ["steps_to_threshold needs a threshold"]),
    ("eval_metric: eval/gt_reward\narms: {gt: []}\n", ["eval_metric = 'eval/gt_reward' must be one of"]),
    (BLOCKED + "control: binary_easy\n", ["control = 'binary_easy' names one arm but the study has blocks",
                                           "{easy: binary_easy, rare: binary_rare}"]),
    (BLOCKED + "control: {easy: binary_easy, rare: binary_easy}\n",
     ["control.rare = 'binary_easy' is not an arm of block rare"]),
    (BLOCKED + "control: {easy: binary_easy}\n", ["control must name one arm per block ['easy', 'rare']"]),
    (BLOCKED + "compare: [partial_rare - binary_easy]\n",
     ["compare 'partial_rare - binary_easy': partial_rare is in block rare, binary_easy in block easy"]),
    (BLOCKED + "compare: [partial_rare-binary_rare]\n", ["must read 'arm - reference'"]),
    (BLOCKED + "compare: [partial_rare - nope]\n", ["'nope' is not an arm"]),
    (BLOCKED + "interaction: ['(partial_rare - binary_easy) - (partial_easy - binary_easy)']\n",
     ["partial_rare - binary_easy crosses blocks rare and easy"]),
    (BLOCKED + "interaction: ['partial_rare - binary_rare']\n", ["must read '(a - b) - (c - d)'"]),
    (BLOCKED.replace("rare: [binary_rare, partial_rare]", "rare: [binary_rare]"), ["arm 'partial_rare' is in no block"]),
    (BLOCKED.replace("rare: [binary_rare, partial_rare]", "rare: [binary_rare, binary_easy]"),
     ["arm 'binary_easy' is in blocks easy and rare"]),
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
