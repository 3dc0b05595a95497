"""`rlvr audit` through the real actors on the quickstart, with a design of known rates."""
import json
from pathlib import Path

import pytest

from rlvr.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]


def test_bad_recipe_and_bad_prompts_are_one_line_errors(tmp_path, capsys):
    assert cli_main(["audit", str(ROOT / "recipes" / "quickstart.yaml"), "trainer.zero_stage=5"]) == 2
    assert "trainer.zero_stage = 5" in capsys.readouterr().err
    assert cli_main(["audit", str(ROOT / "recipes" / "quickstart.yaml"), "--prompts", "-3"]) == 2


@pytest.mark.e2e
def test_audit_reports_the_designs_known_rates(tmp_path, capsys):
    out = tmp_path / "audit.json"
    # fp_rate 1 and fn_rate 0: every wrong answer passes the proxy, no right answer fails it.
    code = cli_main(["audit", str(ROOT / "recipes" / "quickstart.yaml"), f"output_dir={tmp_path}",
                     "warmup.steps=100", "warmup.target_accuracy=0.05", "task.eval_size=16", "task.train_size=200",
                     "rollout.samples_per_prompt=4", "reward.design.name=flip", "reward.design.fp_rate=1.0",
                     "--prompts", "24", "--out", str(out)])
    assert code == 0
    profile = json.loads(out.read_text())
    assert profile["audit/prompts"] == 24 and profile["audit/samples_per_prompt"] == 4
    assert sum(profile["audit/success_histogram"]) == 24
    assert profile["reward/false_negative_rate"] == 0.0
    if profile["gt/accuracy"] < 1.0:
        assert profile["reward/false_positive_rate"] == 1.0
        assert profile["proxy/reward_mean"] == 1.0
    assert profile["reward_design"]["fp_rate"] == 1.0
    printed = capsys.readouterr().out
    assert "audit: 24 prompts x 4 samples" in printed and "false-positive rate" in printed
