"""`rlvr theory --random`: seeded random families, the confusion matrix by hand, the command."""
import json

from rlvr.theory.command import main
from rlvr.theory.random_families import confusion, random_instances


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
    assert setting["threshold"] == 0.9 and setting["steps"] == 300
    for kind in ("fix_one", "add_one"):
        assert sum(sum(row.values()) for row in setting[kind]["matrix"].values()) == setting["errors"] >= 5
    assert "agreement" in capsys.readouterr().out
    assert main(["--random", "3", "--horizons", "x"]) == 2
    assert main(["--random", "3", "--paper"]) == 2
