"""`rlvr theory --random`: seeded random families, the confusion matrix by hand, the command."""
import json

from rlvr.theory.command import main
from rlvr.theory.random_families import cohen_kappa, confusion, random_agreement, random_instances

KAPPA_SEED0_40 = {"theory_v1@0.0001": 0.58, "online_v1@0": 0.51, "direction@0.0001": 0.65, "direction@0.02": 0.84,
                  "direction_attract@0.02": 0.75, "first_order@0": -0.12, "always_harmful": 0.0,
                  "fix_one_ablation": 0.64, "add_one_ablation": 0.85}


def test_random_instances_are_seeded_and_have_errors():
    a, b = random_instances(6, seed=3), random_instances(6, seed=3)
    assert a == b and a != random_instances(6, seed=4)
    for raw in a:
        assert raw["gt_rewards"][0] == 1.0 and max(raw["gt_rewards"][1:]) < 1.0  # one optimal output
        errors = [y for y, (p, g) in enumerate(zip(raw["proxy_rewards"], raw["gt_rewards"])) if p != g]
        assert 1 <= len(errors) <= 2
        assert abs(sum(raw["initial_probs"]) - 1) < 1e-9


def test_confusion_by_hand():
    rows = [{"label": "harmful_hacking", "fix_one": "harmful"}, {"label": "harmful_stalling", "fix_one": "benign"},
            {"label": "beneficial", "fix_one": "beneficial"}, {"label": "benign_I", "fix_one": "harmful"}]
    c = confusion(rows, "fix_one")
    assert c["n"] == 4 and c["agreement"] == 0.5
    assert c["matrix"]["harmful"] == {"harmful": 1, "benign": 1, "beneficial": 0}
    assert c["by_label"]["harmful_stalling"] == {"n": 1, "agree": 0, "verdicts": {"harmful": 0, "benign": 1,
                                                                                  "beneficial": 0}, "agreement": 0.0}
    assert list(c["by_label"]) == ["harmful_hacking", "harmful_stalling", "beneficial", "benign_I"]


def test_random_command_writes_the_aggregate(tmp_path, capsys):
    assert main(["--random", "5", "--seed", "1", "--thresholds", "0.9", "--horizons", "300",
                 "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "random.json").read_text())
    (setting,) = report["settings"]
    assert setting["threshold"] == 0.9 and setting["steps"] == 300 and setting["errors"] >= 5
    assert sum(setting["verdicts"].values()) == setting["errors"] - setting["undetermined"]
    assert set(setting["scores"]) == set(report["rules"]) | {"always_harmful", "fix_one_ablation", "add_one_ablation"}
    assert setting["scores"]["always_harmful"]["kappa"] in (0.0, None)
    assert "Cohen's kappa" in capsys.readouterr().out
    assert main(["--random", "3", "--horizons", "x"]) == 2
    assert main(["--random", "3", "--paper"]) == 2


def test_cohen_kappa_by_hand():
    # 4 of 5 agree; marginals a: H 3, B 2; b: H 2, B 3 -> p_e = (3*2 + 2*3) / 25 = 0.48
    agreement, kappa = cohen_kappa(list("HHHBB"), list("HHBBB"), classes="HB")
    assert agreement == 0.8 and abs(kappa - (0.8 - 0.48) / 0.52) < 1e-12
    assert cohen_kappa(["harmful"] * 3, ["harmful"] * 3) == (1.0, None)  # chance agreement 1
    assert cohen_kappa([], []) == (None, None)


def test_each_rule_kappa_on_a_fixed_seed():
    # 40 instances, seed 0, threshold 0.9, 2000 steps: the numbers `rlvr theory --random 40` prints.
    report = random_agreement(40, seed=0, thresholds=(0.9,), horizons=(2000,))
    (setting,) = report["settings"]
    kappa = {rule: round(score["kappa"], 2) for rule, score in setting["scores"].items() if score["kappa"] is not None}
    assert kappa == KAPPA_SEED0_40
    assert report["default_rule"] == "direction@0.02"
    best = max((r for r in report["rules"]), key=lambda r: setting["scores"][r]["kappa"])
    assert best == report["default_rule"]
